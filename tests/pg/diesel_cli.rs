//! The real diesel CLI runs `migrations_pg/` and prints a schema that uses diesel-vector's type.

use diesel_vector::migrations;

use crate::common::{diesel_cli, run_diesel};
use crate::FreshDb;

#[test]
fn the_diesel_cli_runs_redoes_and_reverts_the_postgresql_migrations() {
    let Some(cli) = diesel_cli() else { return };
    let db = FreshDb::create();
    let url = db.url.as_str();
    run_diesel(&cli, &["migration", "run", "--database-url", url]);
    run_diesel(&cli, &["migration", "redo", "--all", "--database-url", url]);
    run_diesel(&cli, &["migration", "revert", "--database-url", url]);
    let mut conn = db.conn();
    let status = migrations::migration_status(&mut conn).unwrap();
    assert_eq!(status.iter().map(|s| s.applied).collect::<Vec<_>>(), [true, true, false]);
    run_diesel(&cli, &["migration", "run", "--database-url", url]);
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty(), "the runner agrees with the CLI");

    let schema = run_diesel(&cli, &["print-schema", "--database-url", url]);
    assert!(schema.contains("use diesel_vector::sql_types::*;"), "{schema}");
    assert!(schema.contains("embedding -> Nullable<Vector>"), "{schema}");
    assert!(!schema.contains("pub struct Vector"), "no generated Vector type: {schema}");
}
