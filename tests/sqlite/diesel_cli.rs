//! The real diesel CLI (which cannot load sqlite-vec) runs `migrations_sqlite/`, and diesel-vector's
//! index copes with everything it leaves behind.

use diesel::prelude::*;
use diesel_vector::migrations;
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::schema::{fragment_embeddings, fragments};

use crate::common::{diesel_cli, run_diesel, smooth};
use crate::EXTENSION_REGISTRATION;

#[test]
fn the_diesel_cli_runs_redoes_and_reverts_the_sqlite_migrations() {
    let Some(cli) = diesel_cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.db").to_str().unwrap().to_owned();
    let cfg = ["--config-file", "diesel_sqlite.toml"];
    let run = |args: &[&str]| run_diesel(&cli, &[&cfg[..], args, &["--database-url", &path]].concat());
    run(&["migration", "run"]);
    run(&["migration", "redo", "--all"]);

    let mut conn = {
        let _guard = EXTENSION_REGISTRATION.read().unwrap();
        diesel_vector::sqlite::establish(&path).unwrap()
    };
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty(), "the runner agrees with the CLI");
    let id: i64 = diesel::insert_into(fragments::table)
        .values(fragments::content.eq("x"))
        .returning(fragments::id)
        .get_result(&mut conn)
        .unwrap();
    let v = smooth(1536, 0.0);
    diesel::insert_into(fragment_embeddings::table)
        .values(NewFragmentEmbedding::new(id, "p", "m", &v, "h"))
        .execute(&mut conn)
        .unwrap();
    assert_eq!(diesel_vector::sqlite::sync_index(&mut conn).unwrap().applied, 1);

    // Reverting with the CLI works: the queue of every insert back, the registration (and the index's
    // codes), then the table itself...
    drop(conn);
    run(&["migration", "revert"]);
    run(&["migration", "revert"]);
    run(&["migration", "revert"]);
    run(&["migration", "run"]);
    let schema = run(&["print-schema"]);
    assert!(
        schema.contains("fragment_embeddings (id)") && schema.contains("embedding -> Nullable<Binary>"),
        "{schema}"
    );

    // ...and the index is built again from the table.
    let mut conn = {
        let _guard = EXTENSION_REGISTRATION.read().unwrap();
        diesel_vector::sqlite::establish(&path).unwrap()
    };
    let report = diesel_vector::sqlite::sync_index(&mut conn).unwrap();
    assert!(report.rebuilt);
    assert_eq!(report.applied, 0, "the stale entry is gone");
    assert!(diesel_vector::sqlite::index_status(&mut conn).unwrap().is_up_to_date());
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|s| s.applied));
}
