//! The PostgreSQL migrations and runner on a real server, each test on a database of its own.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_vector::database::{BackendKind, DatabaseConnection};
use diesel_vector::migrations::{self, MigrationError, Outcome};
use diesel_vector::models::{FragmentEmbedding, NewFragment, NewFragmentEmbedding};
use diesel_vector::schema::{fragment_embeddings, fragments};

use crate::common::{smooth, spawn_helper, telemetry};
use crate::{with_user, FreshDb};

/// The application's original SQL, as it stood before diesel-vector (plus the minimal `fragments`).
const ORIGINAL_SQL: &str = "
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE fragments (
    id bigserial PRIMARY KEY,
    content text NOT NULL,
    created_at timestamp DEFAULT now(),
    updated_at timestamp DEFAULT now()
);
CREATE TABLE fragment_embeddings (
    id bigserial PRIMARY KEY,
    fragment_id bigint NOT NULL REFERENCES fragments(id) ON DELETE CASCADE,
    provider varchar(255) NOT NULL,
    model varchar(255) NOT NULL,
    dims integer NOT NULL,
    embedding vector(1536),
    content_hash varchar(255) NOT NULL,
    created_at timestamp DEFAULT now(),
    updated_at timestamp DEFAULT now(),
    UNIQUE(fragment_id, provider, model, content_hash)
);
CREATE INDEX fragment_embeddings_cosine_idx ON fragment_embeddings USING ivfflat (embedding vector_cosine_ops);
";

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Columns (type, nullability, default), constraints, indexes and sequences of the public schema,
/// leaving out Diesel's bookkeeping.
fn catalog_snapshot(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
                || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END \
                || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') AS line \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 \
           AND NOT a.attisdropped AND c.relname NOT LIKE '\\_\\_diesel%' \
         UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
           WHERE connamespace = 'public'::regnamespace AND conname NOT LIKE '\\_\\_diesel%' \
         UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE '\\_\\_diesel%' \
         UNION ALL SELECT 'sequence ' || sequencename FROM pg_sequences WHERE schemaname = 'public' \
         ORDER BY 1",
    )
    .load::<Line>(conn)
    .unwrap()
    .into_iter()
    .map(|l| l.line)
    .collect()
}

fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT ({sql})::bigint AS n")).get_result::<N>(conn).unwrap().n
}

fn checksum(conn: &mut PgConnection) -> String {
    diesel::sql_query(
        "SELECT coalesce(md5(string_agg(e::text, ',' ORDER BY id)), '') AS line FROM fragment_embeddings e",
    )
    .get_result::<Line>(conn)
    .unwrap()
    .line
}

fn add_rows(conn: &mut PgConnection, n: usize) {
    for i in 0..n {
        let id: i64 = diesel::insert_into(fragments::table)
            .values(NewFragment { content: &format!("fragment {i}") })
            .returning(fragments::id)
            .get_result(conn)
            .unwrap();
        let v = smooth(1536, i as f32);
        diesel::insert_into(fragment_embeddings::table)
            .values(NewFragmentEmbedding::new(id, "openai", "small", &v, &format!("h{i}")))
            .execute(conn)
            .unwrap();
    }
}

#[test]
fn migrations_produce_exactly_the_original_schema() {
    let (migrated, original) = (FreshDb::create(), FreshDb::create());
    let mut conn = migrated.conn();
    let (applied, events) = telemetry::capture(|| migrations::run_pending_migrations(&mut conn));
    let applied = applied.unwrap();
    assert_eq!(
        applied.iter().map(|m| m.outcome).collect::<Vec<_>>(),
        [Outcome::Applied, Outcome::Applied, Outcome::Applied]
    );
    assert!(
        events.iter().filter(|e| e.contains("backend=postgresql") && e.contains("outcome=applied")).count() == 3,
        "{events:#?}"
    );
    let registered = diesel_vector::index::registry::load(&mut conn).unwrap();
    assert_eq!(registered, [diesel_vector::schema::fragment_embeddings_index().clone()]);

    let mut reference = original.conn();
    reference.batch_execute(ORIGINAL_SQL).unwrap();
    let snapshot = catalog_snapshot(&mut conn);
    assert!(snapshot.iter().any(|l| l == "fragment_embeddings.embedding vector(1536)"), "{snapshot:#?}");
    assert!(snapshot.iter().any(|l| l.contains("USING ivfflat (embedding vector_cosine_ops)")), "{snapshot:#?}");
    assert_eq!(snapshot, catalog_snapshot(&mut reference));
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty());

    // The models work on it, cascade included.
    add_rows(&mut conn, 2);
    let rows: Vec<FragmentEmbedding> =
        fragment_embeddings::table.select(FragmentEmbedding::as_select()).load(&mut conn).unwrap();
    assert_eq!(rows.len(), 2);
    diesel::delete(fragments::table.filter(fragments::content.eq("fragment 0"))).execute(&mut conn).unwrap();
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM fragment_embeddings"), 1);
}

#[test]
fn up_down_up_restores_the_schema_and_keeps_pgvector() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let first = catalog_snapshot(&mut conn);
    while migrations::revert_last_migration(&mut conn).unwrap().is_some() {}
    assert_eq!(catalog_snapshot(&mut conn), Vec::<String>::new());
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"),
        1,
        "down never drops pgvector"
    );
    migrations::run_pending_migrations(&mut conn).unwrap();
    assert_eq!(catalog_snapshot(&mut conn), first);
    assert_eq!(
        migrations::redo_last_migration(&mut conn).unwrap().as_deref(),
        Some("2025-01-01-000003_register_fragment_embeddings_index")
    );
    assert_eq!(catalog_snapshot(&mut conn), first);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM __diesel_vector_indexes"), 1);
}

#[test]
fn a_database_made_by_the_original_sql_is_adopted_without_changing_a_row() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(ORIGINAL_SQL).unwrap();
    add_rows(&mut conn, 5);
    let (before_schema, before_rows) = (catalog_snapshot(&mut conn), checksum(&mut conn));

    let applied = migrations::run_pending_migrations(&mut conn).unwrap();
    assert_eq!(
        applied.iter().map(|m| m.outcome).collect::<Vec<_>>(),
        [Outcome::Adopted, Outcome::Adopted, Outcome::Applied],
        "the registering migration runs: it only records the index"
    );
    assert_eq!(catalog_snapshot(&mut conn), before_schema);
    assert_eq!(checksum(&mut conn), before_rows);
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|s| s.applied));
    // Adopted means applied: the application's next insert works, and reverting drops the tables.
    add_rows(&mut conn, 1);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM fragment_embeddings"), 6);
}

#[test]
fn a_table_of_another_shape_is_an_error_naming_the_difference_and_nothing_changes() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(
        &ORIGINAL_SQL
            .replace("embedding vector(1536),", "embedding text,")
            .replace("CREATE INDEX fragment_embeddings_cosine_idx ON fragment_embeddings USING ivfflat (embedding vector_cosine_ops);", ""),
    )
    .unwrap();
    let before = catalog_snapshot(&mut conn);
    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    match &err {
        MigrationError::IncompatibleTable { table, differences } => {
            assert_eq!(table, "fragment_embeddings");
            assert_eq!(differences, &["column embedding is text, expected vector(1536)"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(catalog_snapshot(&mut conn), before);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM pg_class WHERE relname = '__diesel_schema_migrations'"), 0);
}

#[test]
fn a_run_with_nothing_pending_does_not_wait_for_another_runner() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    // Another session holds the runner's advisory lock ("dv_migr"), as a runner in progress does.
    let mut other = db.conn();
    other.batch_execute(&format!("SELECT pg_advisory_lock({})", 0x0064_765f_6d69_6772_i64)).unwrap();
    conn.batch_execute("SET lock_timeout = '2s'").unwrap();
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty());
}

#[test]
fn a_start_up_check_with_nothing_pending_works_on_a_read_only_session() {
    // As on a hot standby, or for a role with read-only access: nothing to do means nothing to write.
    let db = FreshDb::create();
    migrations::run_pending_migrations(&mut db.conn()).unwrap();
    let mut conn = db.conn();
    conn.batch_execute("SET default_transaction_read_only = on").unwrap();
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty());
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|m| m.applied));
}

#[test]
fn a_migration_that_fails_halfway_leaves_nothing_of_itself() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    // A relation holding the index's name makes CREATE INDEX fail after CREATE TABLE succeeded.
    conn.batch_execute("CREATE TABLE fragment_embeddings_cosine_idx (x int)").unwrap();
    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    assert!(
        matches!(&err, MigrationError::Migration { migration, .. } if migration == "2025-01-01-000002_create_fragment_embeddings"),
        "{err:?}"
    );
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM pg_class WHERE relname = 'fragment_embeddings'"), 0);
    let status = migrations::migration_status(&mut conn).unwrap();
    assert_eq!(status.iter().map(|s| s.applied).collect::<Vec<_>>(), [true, false, false]);
}

#[test]
fn a_role_that_may_not_create_pgvector_gets_told_what_to_do_and_nothing_is_written() {
    let role = format!("dv_app_{}", std::process::id());
    let mut admin = PgConnection::establish(&crate::common::pg_url()).unwrap();
    admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'dv'")).unwrap();
    let db = FreshDb::owned_by(Some(&role));
    let url = with_user(&db.url, &role, "dv");
    let mut conn = PgConnection::establish(&url).unwrap();

    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    assert!(matches!(&err, MigrationError::PgvectorNotCreated { role: r, .. } if *r == role), "{err:?}");
    assert!(err.to_string().contains("ask a superuser to run `CREATE EXTENSION vector;`"), "{err}");
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"), 0);

    // Once a superuser has created it, the same role migrates.
    db.conn().batch_execute("CREATE EXTENSION vector").unwrap();
    assert_eq!(migrations::run_pending_migrations(&mut conn).unwrap().len(), 3);
    drop(conn);
    drop(db);
    admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).unwrap();
}

#[test]
fn database_connection_picks_postgres_from_the_url() {
    let db = FreshDb::create();
    let mut conn = DatabaseConnection::establish(&db.url).unwrap();
    assert_eq!(conn.kind(), BackendKind::Postgres);
    assert_eq!(conn.run_pending_migrations().unwrap().len(), 3);
    assert!(conn.migration_status().unwrap().iter().all(|s| s.applied));
    let bad = DatabaseConnection::establish(&db.url.replace("/dv_test", "/no_such_db_dv_test"));
    assert!(matches!(bad, Err(MigrationError::Connection(_))));
}

#[test]
fn eight_processes_migrating_one_fresh_database_all_succeed_once() {
    let db = FreshDb::create();
    let children: Vec<_> = (0..8)
        .map(|_| spawn_helper("migrations::helper_process_runs_migrations", &[("DV_MIGRATE_URL", &db.url)]))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut conn = db.conn();
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM __diesel_schema_migrations"), 3);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM pg_class WHERE relname = 'fragment_embeddings'"), 1);
}

#[test]
#[ignore = "run in a child process by eight_processes_migrating_one_fresh_database_all_succeed_once"]
fn helper_process_runs_migrations() {
    let url = std::env::var("DV_MIGRATE_URL").expect("spawned with DV_MIGRATE_URL");
    let mut conn = PgConnection::establish(&url).unwrap();
    migrations::run_pending_migrations(&mut conn).unwrap();
}
