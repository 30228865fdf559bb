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
    // `generate::write` refuses these versions to an application's migrations.
    for m in migrations::migration_status(&mut conn).unwrap() {
        assert!(diesel_vector::index::generate::RESERVED_VERSIONS.contains(&m.version.as_str()), "{m:?}");
    }

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

// ---------------------------------------------------------------------------------------------------
// The application's own migrations: `documents` of its own and a generated vector index migration.

use diesel_migrations::FileBasedMigrations;
use diesel_vector::database::AppMigrations;

use crate::common::app;

fn app_source(dirs: &app::AppDirs) -> FileBasedMigrations {
    FileBasedMigrations::from_path(&dirs.pg).unwrap()
}

/// What the application's `documents` looks like with the generated migration applied, made by hand.
const DOCUMENTS_BY_HAND: &str = "
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE documents (
    id bigserial PRIMARY KEY,
    lang text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    embedding vector(768)
);
";
const INDEX_BY_HAND: &str =
    "CREATE INDEX documents_embedding_cosine_idx ON documents USING hnsw (embedding vector_cosine_ops);";

fn add_documents(conn: &mut PgConnection, n: usize) {
    for i in 0..n {
        let v = smooth(768, i as f32).to_string();
        conn.batch_execute(&format!(
            "INSERT INTO documents (lang, title, body, embedding) VALUES ('{}', 'title {i}', 'body {i}', '{v}')",
            if i % 2 == 0 { "en" } else { "de" }
        ))
        .unwrap();
    }
}

fn documents_checksum(conn: &mut PgConnection) -> String {
    diesel::sql_query("SELECT coalesce(md5(string_agg(d::text, ',' ORDER BY id)), '') AS line FROM documents d")
        .get_result::<Line>(conn)
        .unwrap()
        .line
}

fn relation_exists(conn: &mut PgConnection, name: &str) -> bool {
    scalar(conn, &format!("SELECT count(*) FROM pg_class WHERE relname = '{name}'")) > 0
}

#[test]
fn an_application_s_migrations_run_without_the_crate_s_own_tables() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    let source = app_source(&dirs);
    let (applied, events) = telemetry::capture(|| migrations::run_pending_migrations_from(&mut conn, &source));
    let applied = applied.unwrap();
    assert_eq!(
        applied.iter().map(|m| (m.name.as_str(), m.outcome)).collect::<Vec<_>>(),
        [(app::CREATE_DOCUMENTS, Outcome::Applied), (app::CREATE_INDEX, Outcome::Applied)]
    );
    assert_eq!(
        events.iter().filter(|e| e.contains("backend=postgresql") && e.contains("outcome=applied")).count(),
        2,
        "{events:#?}"
    );
    assert!(!relation_exists(&mut conn, "fragments"), "the crate's own set is not run on an application's database");
    assert!(!relation_exists(&mut conn, "fragment_embeddings"));
    assert_eq!(diesel_vector::index::registry::load(&mut conn).unwrap(), [app::spec()]);
    assert!(migrations::migration_status_from(&mut conn, &source).unwrap().iter().all(|s| s.applied));
    assert!(migrations::run_pending_migrations_from(&mut conn, &source).unwrap().is_empty());
    // The crate's own set is a set of its own: its status is independent.
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|s| !s.applied));

    add_documents(&mut conn, 3);
    let snapshot = catalog_snapshot(&mut conn);
    assert!(snapshot.iter().any(|l| l == "documents.embedding vector(768)"), "{snapshot:#?}");
    assert!(snapshot.iter().any(|l| l.contains("USING hnsw (embedding vector_cosine_ops)")), "{snapshot:#?}");
}

#[test]
fn objects_made_by_hand_are_adopted_and_the_index_registered_without_changing_a_row() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS_BY_HAND).unwrap();
    conn.batch_execute(INDEX_BY_HAND).unwrap();
    add_documents(&mut conn, 5);
    let (before_schema, before_rows) = (catalog_snapshot(&mut conn), documents_checksum(&mut conn));

    let applied = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(applied.iter().map(|m| m.outcome).collect::<Vec<_>>(), [Outcome::Adopted, Outcome::Adopted]);
    assert_eq!(catalog_snapshot(&mut conn), before_schema, "the registry aside, nothing changed");
    assert_eq!(documents_checksum(&mut conn), before_rows);
    assert_eq!(diesel_vector::index::registry::load(&mut conn).unwrap(), [app::spec()], "adopting registers it");

    // Adopted means applied: reverting runs the generated down migration.
    let reverted = migrations::revert_last_migration_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(reverted.as_deref(), Some(app::CREATE_INDEX));
    assert!(!relation_exists(&mut conn, "documents_embedding_cosine_idx"));
    assert!(diesel_vector::index::registry::load(&mut conn).unwrap().is_empty());
}

#[test]
fn a_table_made_by_hand_is_adopted_and_the_index_migration_then_runs() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(app::DOCUMENTS_PG).unwrap();
    conn.batch_execute("INSERT INTO documents (lang, title, body) VALUES ('en', 't', 'b')").unwrap();
    let applied = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(applied.iter().map(|m| m.outcome).collect::<Vec<_>>(), [Outcome::Adopted, Outcome::Applied]);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM documents WHERE embedding IS NULL"), 1);
}

#[test]
fn an_index_of_another_definition_is_refused_naming_it_and_nothing_changes() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS_BY_HAND).unwrap();
    conn.batch_execute(&INDEX_BY_HAND.replace("vector_cosine_ops", "vector_l2_ops")).unwrap();
    let before = catalog_snapshot(&mut conn);
    let err = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap_err();
    match &err {
        MigrationError::IncompatibleTable { table, differences } => {
            assert_eq!(table, "documents");
            assert_eq!(
                differences,
                &["index documents_embedding_cosine_idx is hnsw (embedding vector_l2_ops), expected hnsw (embedding \
                   vector_cosine_ops)"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(catalog_snapshot(&mut conn), before);
    assert!(!relation_exists(&mut conn, "__diesel_schema_migrations"));
    assert!(!relation_exists(&mut conn, "__diesel_vector_indexes"));
}

#[test]
fn a_vector_column_of_other_dimensions_is_refused_naming_it() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(&DOCUMENTS_BY_HAND.replace("vector(768)", "vector(384)")).unwrap();
    let err = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap_err();
    assert!(
        matches!(&err, MigrationError::IncompatibleTable { table, differences }
            if table == "documents" && differences == &["column embedding is vector(384), expected vector(768)"]),
        "{err:?}"
    );
    assert!(!relation_exists(&mut conn, "__diesel_schema_migrations"));
}

#[test]
fn a_vector_column_made_by_hand_without_its_index_is_reported_half_applied() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS_BY_HAND).unwrap();
    let before = catalog_snapshot(&mut conn);
    let err = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap_err();
    match &err {
        MigrationError::PartiallyPresent { migration, present, missing } => {
            assert_eq!(migration, app::CREATE_INDEX);
            assert_eq!(present, &["documents"]);
            assert_eq!(missing, &["documents_embedding_cosine_idx"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(catalog_snapshot(&mut conn), before);
    assert!(!relation_exists(&mut conn, "__diesel_schema_migrations"), "nothing changed, not even the first");
}

#[test]
fn an_application_s_migrations_revert_and_redo() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    let source = app_source(&dirs);
    migrations::run_pending_migrations_from(&mut conn, &source).unwrap();
    add_documents(&mut conn, 2);
    let migrated = catalog_snapshot(&mut conn);

    assert_eq!(migrations::redo_last_migration_from(&mut conn, &source).unwrap().as_deref(), Some(app::CREATE_INDEX));
    assert_eq!(catalog_snapshot(&mut conn), migrated);
    assert_eq!(diesel_vector::index::registry::load(&mut conn).unwrap(), [app::spec()]);
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM documents WHERE embedding IS NULL"),
        2,
        "the column was re-added"
    );

    assert_eq!(migrations::revert_last_migration_from(&mut conn, &source).unwrap().as_deref(), Some(app::CREATE_INDEX));
    assert!(!catalog_snapshot(&mut conn).iter().any(|l| l.contains("embedding")));
    assert!(diesel_vector::index::registry::load(&mut conn).unwrap().is_empty());
    assert_eq!(
        migrations::revert_last_migration_from(&mut conn, &source).unwrap().as_deref(),
        Some(app::CREATE_DOCUMENTS)
    );
    assert_eq!(migrations::revert_last_migration_from(&mut conn, &source).unwrap(), None);
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"),
        1,
        "down never drops pgvector"
    );
}

#[test]
fn database_connection_runs_the_application_s_folder_for_its_backend() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = DatabaseConnection::establish(&db.url).unwrap();
    let app = AppMigrations::under(&dirs.root);
    assert_eq!(conn.migration_status_from(&app).unwrap().iter().filter(|m| !m.applied).count(), 2);
    assert_eq!(conn.run_pending_migrations_from(&app).unwrap().len(), 2);
    assert_eq!(conn.redo_last_migration_from(&app).unwrap().as_deref(), Some(app::CREATE_INDEX));
    assert_eq!(conn.revert_last_migration_from(&app).unwrap().as_deref(), Some(app::CREATE_INDEX));
    let missing = conn.run_pending_migrations_from(&AppMigrations::dir(dirs.root.join("nope"))).unwrap_err();
    assert!(matches!(missing, MigrationError::Harness(_)), "{missing:?}");
    // Embedded sets work the same way (here the crate's own folders, embedded as an application would).
    const PG_SET: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations_pg");
    const SQLITE_SET: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations_sqlite");
    let embedded = AppMigrations::embedded(&PG_SET, &SQLITE_SET);
    assert_eq!(conn.run_pending_migrations_from(&embedded).unwrap().len(), 3);
}

#[test]
fn eight_processes_running_an_application_s_migrations_all_succeed_once() {
    let dirs = app::write();
    let db = FreshDb::create();
    let dir = dirs.pg.to_str().unwrap();
    let start = start_together();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_helper(
                "migrations::helper_process_runs_an_application_s_migrations",
                &[
                    (start.0, &start.1),
                    ("DV_MIGRATE_URL", &db.url),
                    ("DV_MIGRATE_DIR", dir),
                    ("DV_MIGRATE_ACTION", "run"),
                ],
            )
        })
        .collect();
    wait_all(children);
    let mut conn = db.conn();
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM __diesel_schema_migrations"), 2);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM __diesel_vector_indexes"), 1);
}

/// Issue 15, defect 5: concurrent redos each revert and re-run the last migration; none reverts an
/// older one (revert and re-run were two locked operations).
#[test]
fn eight_concurrent_redos_leave_every_migration_applied_and_every_row() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    add_rows(&mut conn, 3);
    let rows = checksum(&mut conn);
    let start = start_together();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_helper(
                "migrations::helper_process_runs_an_application_s_migrations",
                &[(start.0, &start.1), ("DV_MIGRATE_URL", &db.url), ("DV_MIGRATE_ACTION", "redo")],
            )
        })
        .collect();
    wait_all(children);
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|s| s.applied));
    assert_eq!(checksum(&mut conn), rows, "fragment_embeddings and its rows are still there");
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM __diesel_vector_indexes"), 1);

    // The same with an application's set, whose last migration drops and re-adds a column.
    let dirs = app::write();
    let app_db = FreshDb::create();
    let mut conn = app_db.conn();
    migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    add_documents(&mut conn, 2);
    let dir = dirs.pg.to_str().unwrap();
    let start = start_together();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_helper(
                "migrations::helper_process_runs_an_application_s_migrations",
                &[
                    (start.0, &start.1),
                    ("DV_MIGRATE_URL", &app_db.url),
                    ("DV_MIGRATE_DIR", dir),
                    ("DV_MIGRATE_ACTION", "redo"),
                ],
            )
        })
        .collect();
    wait_all(children);
    assert!(migrations::migration_status_from(&mut conn, &app_source(&dirs)).unwrap().iter().all(|s| s.applied));
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM documents"), 2, "documents was never reverted");
}

/// The environment of a helper that starts at the same moment as its siblings: `DV_START_AT` is a time
/// (milliseconds since the epoch) far enough ahead for every process to be up and connected by then.
fn start_together() -> (&'static str, String) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    ("DV_START_AT", (now.as_millis() + 1500).to_string())
}

fn wait_for_start() {
    if let Some(at) = std::env::var("DV_START_AT").ok().and_then(|v| v.parse::<u128>().ok()) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        std::thread::sleep(std::time::Duration::from_millis(at.saturating_sub(now) as u64));
    }
}

fn wait_all(children: Vec<std::process::Child>) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "run in child processes by the concurrency tests"]
fn helper_process_runs_an_application_s_migrations() {
    let url = std::env::var("DV_MIGRATE_URL").expect("spawned with DV_MIGRATE_URL");
    let mut conn = PgConnection::establish(&url).unwrap();
    let source = std::env::var("DV_MIGRATE_DIR").ok().map(|dir| FileBasedMigrations::from_path(dir).unwrap());
    wait_for_start();
    match (std::env::var("DV_MIGRATE_ACTION").as_deref(), &source) {
        (Ok("run"), Some(s)) => drop(migrations::run_pending_migrations_from(&mut conn, s).unwrap()),
        (Ok("run"), None) => drop(migrations::run_pending_migrations(&mut conn).unwrap()),
        // A few rounds each, so that the processes' operations interleave.
        (Ok("redo"), Some(s)) => {
            for _ in 0..4 {
                assert!(migrations::redo_last_migration_from(&mut conn, s).unwrap().is_some());
            }
        }
        (Ok("redo"), None) => {
            for _ in 0..4 {
                assert!(migrations::redo_last_migration(&mut conn).unwrap().is_some());
            }
        }
        (other, _) => panic!("unknown action {other:?}"),
    }
}

/// Issue 15, defect 18: pgvector created in a schema that is not on the search_path.
#[test]
fn pgvector_outside_the_search_path_is_refused_before_anything_changes() {
    let db = FreshDb::create();
    db.conn().batch_execute("CREATE SCHEMA ext; CREATE EXTENSION vector SCHEMA ext;").unwrap();
    let mut conn = db.conn();
    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    match &err {
        MigrationError::PgvectorNotOnSearchPath { schema, search_path, .. } => {
            assert_eq!(schema, "ext");
            assert_eq!(search_path, "\"$user\", public");
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("add the schema to the search_path"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"), 0);

    // The application's vector migration is refused the same way; one without vectors runs.
    let dirs = app::write();
    let err = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap_err();
    assert!(matches!(err, MigrationError::PgvectorNotOnSearchPath { .. }), "{err:?}");
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"), 0);
    let plain = plain_app();
    assert_eq!(migrations::run_pending_migrations_from(&mut conn, &plain.1).unwrap().len(), 1);

    // With the schema on the path, the crate's migrations run.
    conn.batch_execute(&format!("ALTER DATABASE {} SET search_path TO \"$user\", public, ext", db_name(&db.url)))
        .unwrap();
    let mut conn = db.conn();
    assert_eq!(migrations::run_pending_migrations(&mut conn).unwrap().len(), 3);
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap().split('?').next().unwrap()
}

/// An application set without any vector: one `notes` table.
fn plain_app() -> (tempfile::TempDir, FileBasedMigrations) {
    let dir = tempfile::tempdir().unwrap();
    app::add(
        dir.path(),
        "2026-02-01-000000_create_notes",
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL);",
        "DROP TABLE notes;",
    );
    let source = FileBasedMigrations::from_path(dir.path()).unwrap();
    (dir, source)
}

#[test]
fn an_application_without_vectors_migrates_where_pgvector_cannot_be_created() {
    let role = format!("dv_novec_{}", std::process::id());
    let mut admin = PgConnection::establish(&crate::common::pg_url()).unwrap();
    admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'dv'")).unwrap();
    let db = FreshDb::owned_by(Some(&role));
    let mut conn = PgConnection::establish(&with_user(&db.url, &role, "dv")).unwrap();

    let (_dir, plain) = plain_app();
    let applied = migrations::run_pending_migrations_from(&mut conn, &plain).unwrap();
    assert_eq!(applied.iter().map(|m| m.outcome).collect::<Vec<_>>(), [Outcome::Applied]);
    assert_eq!(scalar(&mut conn, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"), 0);

    // A set that needs pgvector is told what to do, before its first migration runs.
    let dirs = app::write();
    let err = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap_err();
    assert!(matches!(&err, MigrationError::PgvectorNotCreated { role: r, .. } if *r == role), "{err:?}");
    assert!(!relation_exists(&mut conn, "documents"));
    drop(conn);
    drop(db);
    admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).unwrap();
}

/// Runs the application's first migration only, as an earlier deploy did.
fn apply_documents_only(conn: &mut PgConnection, dirs: &app::AppDirs) {
    let aside = dirs.root.join("aside");
    std::fs::rename(dirs.pg.join(app::CREATE_INDEX), &aside).unwrap();
    migrations::run_pending_migrations_from(conn, &app_source(dirs)).unwrap();
    std::fs::rename(&aside, dirs.pg.join(app::CREATE_INDEX)).unwrap();
}

#[test]
fn a_column_and_index_added_by_hand_after_an_earlier_deploy_are_adopted() {
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    apply_documents_only(&mut conn, &dirs);
    conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector; ALTER TABLE documents ADD COLUMN embedding vector(768)")
        .unwrap();
    conn.batch_execute(INDEX_BY_HAND).unwrap();
    add_documents(&mut conn, 2);
    let applied = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(
        applied.iter().map(|m| (m.name.as_str(), m.outcome)).collect::<Vec<_>>(),
        [(app::CREATE_INDEX, Outcome::Adopted)]
    );
    assert_eq!(diesel_vector::index::registry::load(&mut conn).unwrap(), [app::spec()]);
}

#[test]
fn a_table_that_drifted_from_its_migrations_still_takes_a_new_migration() {
    // A column of `documents` was dropped by hand: not the index migration's business.
    let dirs = app::write();
    let db = FreshDb::create();
    let mut conn = db.conn();
    apply_documents_only(&mut conn, &dirs);
    conn.batch_execute("ALTER TABLE documents DROP COLUMN title").unwrap();
    let applied = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(applied.iter().map(|m| m.outcome).collect::<Vec<_>>(), [Outcome::Applied]);
}

#[test]
fn a_migration_using_pgvector_s_types_before_creating_the_extension_says_to_create_it() {
    let db = FreshDb::create();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("2026-03-01-000000_create_notes");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("up.sql"), "CREATE TABLE notes (id bigint PRIMARY KEY, embedding vector(3));").unwrap();
    std::fs::write(folder.join("down.sql"), "DROP TABLE notes;").unwrap();
    let mut conn = db.conn();
    let source = FileBasedMigrations::from_path(dir.path()).unwrap();
    let err = migrations::run_pending_migrations_from(&mut conn, &source).unwrap_err().to_string();
    assert!(err.contains(r#"type "vector" does not exist"#), "{err}");
    assert!(
        err.ends_with("put `CREATE EXTENSION IF NOT EXISTS vector;` before the migration's first use of them"),
        "{err}"
    );
}
