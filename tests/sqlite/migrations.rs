//! The SQLite migrations and runner on real databases.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_vector::migrations::{self, MigrationError, Outcome};
use diesel_vector::models::{Fragment, FragmentEmbedding, NewFragment, NewFragmentEmbedding};
use diesel_vector::schema::{fragment_embeddings, fragments};
use diesel_vector::Vector;

use crate::common::{smooth, spawn_helper, telemetry};
use crate::EXTENSION_REGISTRATION;

const EMBEDDINGS_UP: &str = include_str!("../../migrations_sqlite/2025-01-01-000002_create_fragment_embeddings/up.sql");
const FRAGMENTS_UP: &str = include_str!("../../migrations_sqlite/2025-01-01-000001_create_fragments/up.sql");

fn file_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db").to_str().unwrap().to_owned();
    (dir, path)
}

fn open(path: &str) -> SqliteConnection {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    diesel_vector::sqlite::establish(path).unwrap()
}

/// The schema as SQLite records it (every table, index and trigger with its SQL), for comparisons.
fn schema_snapshot(conn: &mut SqliteConnection) -> Vec<(String, String, Option<String>)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        sql: Option<String>,
    }
    // Everything but SQLite's and Diesel's bookkeeping and the vec0 table with its shadow tables,
    // which the crate (not the migrations) manages.
    diesel::sql_query(
        "SELECT type AS kind, name, sql FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_\\_diesel%' ESCAPE '\\' \
           AND NOT (name LIKE 'fragment_embeddings_idx%' AND name NOT IN ('fragment_embeddings_idx_queue', \
                'fragment_embeddings_idx_state', 'fragment_embeddings_idx_insert', 'fragment_embeddings_idx_update', \
                'fragment_embeddings_idx_delete')) \
         ORDER BY type, name",
    )
    .load::<Row>(conn)
    .unwrap()
    .into_iter()
    .map(|r| (r.kind, r.name, r.sql))
    .collect()
}

fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
    diesel::select(sql::<BigInt>(&format!("(SELECT count(*) FROM {table})"))).get_result(conn).unwrap()
}

fn insert_fragment(conn: &mut SqliteConnection, content: &str) -> i64 {
    diesel::insert_into(fragments::table)
        .values(NewFragment { content })
        .returning(fragments::id)
        .get_result(conn)
        .unwrap()
}

#[test]
fn a_fresh_database_gets_every_migration_once() {
    let mut conn = crate::conn();
    let applied = migrations::run_pending_migrations(&mut conn).unwrap();
    let names: Vec<_> = applied.iter().map(|m| (m.name.as_str(), m.outcome)).collect();
    assert_eq!(
        names,
        [
            ("2025-01-01-000001_create_fragments", Outcome::Applied),
            ("2025-01-01-000002_create_fragment_embeddings", Outcome::Applied),
            ("2025-01-01-000003_register_fragment_embeddings_index", Outcome::Applied),
            ("2025-01-01-000004_queue_only_changed_fragment_embeddings", Outcome::Applied)
        ]
    );
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty());
    let status = migrations::migration_status(&mut conn).unwrap();
    assert!(status.iter().all(|s| s.applied), "{status:?}");
    assert_eq!(status.len(), 4);
    // `generate::write` refuses these versions to an application's migrations.
    let versions: Vec<&str> = status.iter().map(|s| s.version.as_str()).collect();
    assert!(versions.iter().all(|v| diesel_vector::index::generate::RESERVED_VERSIONS.contains(v)), "{versions:?}");
    let registered = diesel_vector::index::registry::load(&mut conn).unwrap();
    assert_eq!(registered, [diesel_vector::schema::fragment_embeddings_index().clone()]);
}

#[test]
fn the_schema_module_matches_what_the_migrations_create() {
    let mut conn = crate::conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    #[derive(QueryableByName)]
    struct Col {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let columns = |conn: &mut SqliteConnection, table: &str| -> Vec<String> {
        diesel::sql_query(format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))
            .load::<Col>(conn)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    use diesel::Column as _;
    assert_eq!(
        columns(&mut conn, "fragments"),
        [fragments::id::NAME, fragments::content::NAME, fragments::created_at::NAME, fragments::updated_at::NAME]
    );
    assert_eq!(columns(&mut conn, "fragment_embeddings").len(), 9);

    // Every model round-trips through the real tables.
    let fragment_id = insert_fragment(&mut conn, "hello");
    let v = smooth(1536, 0.1);
    let new = NewFragmentEmbedding::new(fragment_id, "openai", "text-embedding-3-small", &v, "h1");
    diesel::insert_into(fragment_embeddings::table).values(&new).execute(&mut conn).unwrap();
    let fragment: Fragment = fragments::table.select(Fragment::as_select()).first(&mut conn).unwrap();
    assert_eq!(fragment.content, "hello");
    assert!(fragment.created_at.is_some());
    let row: FragmentEmbedding =
        FragmentEmbedding::belonging_to(&fragment).select(FragmentEmbedding::as_select()).first(&mut conn).unwrap();
    assert_eq!((row.dims, row.provider.as_str(), row.embedding.as_ref()), (1536, "openai", Some(&v)));
}

#[test]
fn the_blob_check_rejects_vectors_of_the_wrong_length() {
    let mut conn = crate::conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let fragment_id = insert_fragment(&mut conn, "x");
    let short = Vector::new(vec![0.5; 3]).unwrap();
    let err = diesel::insert_into(fragment_embeddings::table)
        .values(NewFragmentEmbedding::new(fragment_id, "p", "m", &short, "h"))
        .execute(&mut conn)
        .unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    // dims that disagree with the BLOB are rejected too.
    let v = smooth(1536, 0.0);
    let mut lying = NewFragmentEmbedding::new(fragment_id, "p", "m", &v, "h");
    lying.dims = 1535;
    assert!(diesel::insert_into(fragment_embeddings::table).values(&lying).execute(&mut conn).is_err());
    assert_eq!(count(&mut conn, "fragment_embeddings"), 0);
}

#[test]
fn deleting_a_fragment_deletes_its_embeddings_and_queues_their_index_entries() {
    let mut conn = crate::conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let keep = insert_fragment(&mut conn, "keep");
    let gone = insert_fragment(&mut conn, "gone");
    let (a, b) = (smooth(1536, 1.0), smooth(1536, 2.0));
    diesel::insert_into(fragment_embeddings::table)
        .values(&vec![
            NewFragmentEmbedding::new(keep, "p", "m", &a, "h"),
            NewFragmentEmbedding::new(gone, "p", "m", &b, "h"),
        ])
        .execute(&mut conn)
        .unwrap();
    conn.batch_execute("DELETE FROM fragment_embeddings_idx_queue").unwrap();
    diesel::delete(fragments::table.find(gone)).execute(&mut conn).unwrap();
    assert_eq!(count(&mut conn, "fragment_embeddings"), 1);
    let queued: i64 =
        diesel::select(sql::<BigInt>("(SELECT id FROM fragment_embeddings_idx_queue)")).get_result(&mut conn).unwrap();
    assert_eq!(queued, 2, "the cascaded delete of embedding 2 is queued for the index");
}

#[test]
fn up_down_up_leaves_the_schema_as_it_was() {
    let mut conn = crate::conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    #[cfg(feature = "sqlite-vec")]
    diesel_vector::sqlite::sync_index(&mut conn).unwrap();
    let first = schema_snapshot(&mut conn);
    assert!(first.iter().any(|(_, name, _)| name == "fragment_embeddings_unique"));

    assert_eq!(
        migrations::revert_last_migration(&mut conn).unwrap().as_deref(),
        Some("2025-01-01-000004_queue_only_changed_fragment_embeddings")
    );
    assert_eq!(
        migrations::revert_last_migration(&mut conn).unwrap().as_deref(),
        Some("2025-01-01-000003_register_fragment_embeddings_index")
    );
    #[cfg(feature = "sqlite-vec")]
    assert_eq!(
        count(&mut conn, "sqlite_master WHERE name = 'fragment_embeddings_idx'"),
        0,
        "the vec0 table went with it"
    );
    assert_eq!(
        migrations::revert_last_migration(&mut conn).unwrap().as_deref(),
        Some("2025-01-01-000002_create_fragment_embeddings")
    );
    assert_eq!(count(&mut conn, "sqlite_master WHERE name LIKE 'fragment_embeddings%'"), 0);
    assert_eq!(
        migrations::revert_last_migration(&mut conn).unwrap().as_deref(),
        Some("2025-01-01-000001_create_fragments")
    );
    assert_eq!(migrations::revert_last_migration(&mut conn).unwrap(), None);
    assert_eq!(schema_snapshot(&mut conn), vec![]);
    assert_eq!(count(&mut conn, "__diesel_vector_indexes"), 0, "the shared registry stays, empty");

    migrations::run_pending_migrations(&mut conn).unwrap();
    assert_eq!(schema_snapshot(&mut conn), first);
    assert_eq!(
        migrations::redo_last_migration(&mut conn).unwrap().as_deref(),
        Some("2025-01-01-000004_queue_only_changed_fragment_embeddings")
    );
    assert_eq!(schema_snapshot(&mut conn), first);
}

#[test]
fn a_migration_that_fails_halfway_leaves_nothing_of_itself() {
    let mut conn = crate::conn();
    // An index of this name elsewhere makes the second statement of the embeddings migration fail
    // after its CREATE TABLE succeeded.
    conn.batch_execute("CREATE TABLE other (x); CREATE UNIQUE INDEX fragment_embeddings_unique ON other (x);").unwrap();
    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    assert!(
        matches!(&err, MigrationError::Migration { migration, .. } if migration == "2025-01-01-000002_create_fragment_embeddings")
    );
    assert!(err.to_string().contains("index fragment_embeddings_unique already exists"), "{err}");
    assert_eq!(count(&mut conn, "sqlite_master WHERE name = 'fragment_embeddings'"), 0);
    assert_eq!(count(&mut conn, "sqlite_master WHERE name LIKE 'fragment_embeddings_idx%'"), 0);
    // The migration before it stays applied; the failed one is still pending.
    let status = migrations::migration_status(&mut conn).unwrap();
    assert_eq!(status.iter().map(|s| s.applied).collect::<Vec<_>>(), [true, false, false, false]);
}

#[test]
fn existing_tables_of_the_same_shape_are_adopted_without_touching_rows() {
    let mut conn = crate::conn();
    conn.batch_execute(FRAGMENTS_UP).unwrap();
    conn.batch_execute(EMBEDDINGS_UP).unwrap();
    let id = insert_fragment(&mut conn, "existing");
    let v = smooth(1536, 3.0);
    diesel::insert_into(fragment_embeddings::table)
        .values(NewFragmentEmbedding::new(id, "p", "m", &v, "h"))
        .execute(&mut conn)
        .unwrap();
    let tables = |conn: &mut SqliteConnection| -> Vec<_> {
        schema_snapshot(conn)
            .into_iter()
            .filter(|(_, name, _)| name.starts_with("fragment") && !name.contains("_idx"))
            .collect()
    };
    let before = tables(&mut conn);

    let applied = migrations::run_pending_migrations(&mut conn).unwrap();
    assert_eq!(
        applied.iter().map(|m| m.outcome).collect::<Vec<_>>(),
        [Outcome::Adopted, Outcome::Adopted, Outcome::Applied, Outcome::Applied],
        "the registering migration runs: it only records the index; so does the queue's change"
    );
    assert_eq!(tables(&mut conn), before);
    assert_eq!((count(&mut conn, "fragments"), count(&mut conn, "fragment_embeddings")), (1, 1));
    let back: Option<Vector> =
        fragment_embeddings::table.select(fragment_embeddings::embedding).first(&mut conn).unwrap();
    assert_eq!(back, Some(v));
}

#[test]
fn a_table_of_another_shape_is_an_error_and_nothing_changes() {
    let mut conn = crate::conn();
    conn.batch_execute(FRAGMENTS_UP).unwrap();
    conn.batch_execute(&EMBEDDINGS_UP.replace("embedding BLOB CHECK", "embedding TEXT CHECK")).unwrap();
    let before = schema_snapshot(&mut conn);
    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    match &err {
        MigrationError::IncompatibleTable { table, differences } => {
            assert_eq!(table, "fragment_embeddings");
            assert_eq!(differences, &["column embedding is TEXT, expected BLOB"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("nothing was changed"));
    assert_eq!(schema_snapshot(&mut conn), before);
    assert_eq!(count(&mut conn, "sqlite_master WHERE name = '__diesel_schema_migrations'"), 0);
}

#[test]
fn every_migration_is_reported_to_tracing() {
    let mut conn = crate::conn();
    let (result, events) = telemetry::capture(|| migrations::run_pending_migrations(&mut conn));
    result.unwrap();
    let applied: Vec<_> = events.iter().filter(|e| e.contains("outcome=applied")).collect();
    assert_eq!(applied.len(), 4, "{events:#?}");
    assert!(
        applied[0].contains("backend=sqlite")
            && applied[0].contains("version=20250101000001")
            && applied[0].contains("duration_ms=")
    );
    assert!(events.iter().any(|e| e.contains("migrations up to date") && e.contains("count=4")), "{events:#?}");

    let mut broken = crate::conn();
    broken
        .batch_execute("CREATE TABLE other (x); CREATE UNIQUE INDEX fragment_embeddings_unique ON other (x);")
        .unwrap();
    let (result, events) = telemetry::capture(|| migrations::run_pending_migrations(&mut broken));
    assert!(result.is_err());
    let failed: Vec<_> = events.iter().filter(|e| e.starts_with("ERROR") && e.contains("outcome=failed")).collect();
    assert!(failed.iter().any(|e| e.contains("version=20250101000002") && e.contains("already exists")), "{events:#?}");
}

#[test]
fn a_start_up_check_with_nothing_pending_works_on_a_read_only_file() {
    let (_dir, path) = file_db();
    migrations::run_pending_migrations(&mut open(&path)).unwrap();
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    let uri = diesel_vector::database::sqlite_read_only_uri(&path);
    let mut conn = diesel_vector::sqlite::ConnectionOptions::default().wal(false).establish(&uri).unwrap();
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty());
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|m| m.applied));
}

#[test]
fn eight_processes_migrating_one_fresh_database_all_succeed_once() {
    let (_dir, path) = file_db();
    let children: Vec<_> = (0..8)
        .map(|_| spawn_helper("migrations::helper_process_runs_migrations", &[("DV_MIGRATE_URL", &path)]))
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
    let mut conn = open(&path);
    assert_eq!(count(&mut conn, "__diesel_schema_migrations"), 4);
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|s| s.applied));
}

#[test]
#[ignore = "run in a child process by eight_processes_migrating_one_fresh_database_all_succeed_once"]
fn helper_process_runs_migrations() {
    let path = std::env::var("DV_MIGRATE_URL").expect("spawned with DV_MIGRATE_URL");
    let mut conn = diesel_vector::sqlite::establish(&path).unwrap();
    migrations::run_pending_migrations(&mut conn).unwrap();
}

#[test]
fn a_hand_made_embeddings_table_without_the_index_queue_is_reported_half_applied() {
    let mut conn = crate::conn();
    conn.batch_execute(FRAGMENTS_UP).unwrap();
    let table_only = EMBEDDINGS_UP.split("CREATE TABLE fragment_embeddings_idx_queue").next().unwrap();
    conn.batch_execute(table_only).unwrap();
    let before = schema_snapshot(&mut conn);
    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    match &err {
        MigrationError::PartiallyPresent { present, missing, .. } => {
            assert_eq!(present, &["fragment_embeddings"]);
            assert!(missing.contains(&"fragment_embeddings_idx_queue".to_owned()) && missing.len() == 5, "{missing:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(schema_snapshot(&mut conn), before);
}

// ---------------------------------------------------------------------------------------------------
// The application's own migrations: `documents` of its own and a generated vector index migration.

use diesel_migrations::FileBasedMigrations;
use diesel_vector::database::{AppMigrations, DatabaseConnection};

use crate::common::app;

fn app_source(dirs: &app::AppDirs) -> FileBasedMigrations {
    FileBasedMigrations::from_path(&dirs.sqlite).unwrap()
}

fn add_documents(conn: &mut SqliteConnection, n: usize) {
    for i in 0..n {
        let v = smooth(768, i as f32);
        diesel::sql_query("INSERT INTO documents (lang, title, body, embedding) VALUES (?, ?, 'body', ?)")
            .bind::<Text, _>(if i % 2 == 0 { "en" } else { "de" })
            .bind::<Text, _>(format!("title {i}"))
            .bind::<diesel_vector::sql_types::Vector, _>(&v)
            .execute(conn)
            .unwrap();
    }
}

fn exists(conn: &mut SqliteConnection, name: &str) -> bool {
    count(conn, &format!("sqlite_master WHERE name = '{name}'")) > 0
}

#[test]
fn an_application_s_migrations_run_without_the_crate_s_own_tables() {
    let dirs = app::write();
    let mut conn = crate::conn();
    let source = app_source(&dirs);
    let (applied, events) = telemetry::capture(|| migrations::run_pending_migrations_from(&mut conn, &source));
    assert_eq!(
        applied.unwrap().iter().map(|m| (m.name.as_str(), m.outcome)).collect::<Vec<_>>(),
        [(app::CREATE_DOCUMENTS, Outcome::Applied), (app::CREATE_INDEX, Outcome::Applied)]
    );
    assert_eq!(events.iter().filter(|e| e.contains("backend=sqlite") && e.contains("outcome=applied")).count(), 2);
    assert!(!exists(&mut conn, "fragments") && !exists(&mut conn, "fragment_embeddings"));
    assert_eq!(diesel_vector::index::registry::load(&mut conn).unwrap(), [app::spec()]);
    assert!(migrations::migration_status_from(&mut conn, &source).unwrap().iter().all(|s| s.applied));
    assert!(migrations::run_pending_migrations_from(&mut conn, &source).unwrap().is_empty());
    add_documents(&mut conn, 3);
    assert_eq!(
        count(&mut conn, "\"__dv_documents_embedding_queue\""),
        0,
        "rows inserted above the index's last id are not queued"
    );
    assert_eq!(diesel_vector::sqlite::status(&mut conn, &app::spec()).unwrap().pending_changes, 3, "they are pending");
    conn.batch_execute("UPDATE documents SET title = 'x'; UPDATE documents SET lang = 'fr' WHERE id = 2").unwrap();
    assert_eq!(
        count(&mut conn, "\"__dv_documents_embedding_queue\""),
        1,
        "an update of a filter column is queued, one of another column is not"
    );
}

#[test]
fn objects_made_by_the_same_sql_by_hand_are_adopted_and_the_index_registered() {
    let dirs = app::write();
    let mut conn = crate::conn();
    conn.batch_execute(app::DOCUMENTS_SQLITE).unwrap();
    conn.batch_execute(&app::index_up(&dirs.sqlite)).unwrap();
    add_documents(&mut conn, 4);
    conn.batch_execute("UPDATE documents SET lang = 'fr'").unwrap();
    // As an application that made the structures by hand before the registry existed.
    conn.batch_execute("DELETE FROM __diesel_vector_indexes").unwrap();
    let before = schema_snapshot(&mut conn);

    let applied = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(applied.iter().map(|m| m.outcome).collect::<Vec<_>>(), [Outcome::Adopted, Outcome::Adopted]);
    assert_eq!(schema_snapshot(&mut conn), before);
    assert_eq!(count(&mut conn, "documents"), 4);
    assert_eq!(count(&mut conn, "\"__dv_documents_embedding_queue\""), 4, "the queue's rows are untouched");
    assert_eq!(diesel_vector::index::registry::load(&mut conn).unwrap(), [app::spec()], "adopting registers it");
}

#[test]
fn a_vector_column_of_another_type_is_refused_and_nothing_changes() {
    let dirs = app::write();
    let mut conn = crate::conn();
    conn.batch_execute(&app::DOCUMENTS_SQLITE.replace("body TEXT NOT NULL", "body TEXT NOT NULL, embedding TEXT"))
        .unwrap();
    let before = schema_snapshot(&mut conn);
    let err = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap_err();
    match &err {
        MigrationError::IncompatibleTable { table, differences } => {
            assert_eq!(table, "documents");
            assert_eq!(differences, &["column embedding is TEXT, expected BLOB"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(schema_snapshot(&mut conn), before);
    assert!(!exists(&mut conn, "__diesel_schema_migrations"), "not even the first migration was recorded");
}

#[test]
fn an_index_queue_made_by_hand_without_its_triggers_is_reported_half_applied() {
    let dirs = app::write();
    let mut conn = crate::conn();
    conn.batch_execute(app::DOCUMENTS_SQLITE).unwrap();
    let up = app::index_up(&dirs.sqlite);
    conn.batch_execute(up.split("CREATE TRIGGER").next().unwrap()).unwrap();
    let before = schema_snapshot(&mut conn);
    let err = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap_err();
    match &err {
        MigrationError::PartiallyPresent { migration, present, missing } => {
            assert_eq!(migration, app::CREATE_INDEX);
            assert!(present.contains(&"__dv_documents_embedding_queue".to_owned()), "{present:?}");
            assert_eq!(missing.len(), 3, "the three triggers: {missing:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(schema_snapshot(&mut conn), before);
}

#[test]
fn an_application_s_migrations_revert_and_redo() {
    let dirs = app::write();
    let mut conn = crate::conn();
    let source = app_source(&dirs);
    migrations::run_pending_migrations_from(&mut conn, &source).unwrap();
    add_documents(&mut conn, 2);
    let migrated = schema_snapshot(&mut conn);
    assert_eq!(migrations::redo_last_migration_from(&mut conn, &source).unwrap().as_deref(), Some(app::CREATE_INDEX));
    assert_eq!(schema_snapshot(&mut conn), migrated);
    assert_eq!(count(&mut conn, "documents"), 2);
    assert_eq!(migrations::revert_last_migration_from(&mut conn, &source).unwrap().as_deref(), Some(app::CREATE_INDEX));
    assert!(!exists(&mut conn, "__dv_documents_embedding_queue"));
    assert!(diesel_vector::index::registry::load(&mut conn).unwrap().is_empty());
    assert_eq!(
        migrations::revert_last_migration_from(&mut conn, &source).unwrap().as_deref(),
        Some(app::CREATE_DOCUMENTS)
    );
    assert_eq!(migrations::revert_last_migration_from(&mut conn, &source).unwrap(), None);
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn reverting_an_application_s_index_drops_its_vec0_table() {
    use diesel_vector::index::{generate, IndexSpec, SqliteIndex};
    let dir = tempfile::tempdir().unwrap();
    let (pg, sqlite) = (dir.path().join("pg"), dir.path().join("sqlite"));
    app::add(&sqlite, app::CREATE_DOCUMENTS, app::DOCUMENTS_SQLITE, "DROP TABLE documents;");
    let spec = IndexSpec::builder("documents", "embedding", 768).sqlite_index(SqliteIndex::VEC0).build().unwrap();
    generate::write(
        &generate::render(&spec, &generate::Options::default().add_column(true)),
        "20260101000001",
        &pg,
        &sqlite,
    )
    .unwrap();
    let source = FileBasedMigrations::from_path(&sqlite).unwrap();
    let mut conn = crate::conn();
    migrations::run_pending_migrations_from(&mut conn, &source).unwrap();
    add_documents(&mut conn, 2);
    diesel_vector::sqlite::sync(&mut conn, &spec).unwrap();
    assert!(exists(&mut conn, spec.vec0_table()));
    migrations::revert_last_migration_from(&mut conn, &source).unwrap();
    assert!(!exists(&mut conn, spec.vec0_table()), "the revert dropped the vec0 table of the index it unregistered");
}

#[test]
fn database_connection_runs_the_application_s_folder_for_its_backend() {
    let dirs = app::write();
    let (_dir, path) = file_db();
    let mut conn = {
        let _guard = EXTENSION_REGISTRATION.read().unwrap();
        DatabaseConnection::establish(&path).unwrap()
    };
    let app = AppMigrations::under(&dirs.root);
    assert_eq!(conn.run_pending_migrations_from(&app).unwrap().len(), 2);
    assert_eq!(conn.redo_last_migration_from(&app).unwrap().as_deref(), Some(app::CREATE_INDEX));
    assert!(conn.migration_status_from(&app).unwrap().iter().all(|m| m.applied));
    // Embedded sets work the same way (here the crate's own folders, embedded as an application would).
    const PG_SET: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations_pg");
    const SQLITE_SET: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations_sqlite");
    let embedded = AppMigrations::embedded(&PG_SET, &SQLITE_SET);
    assert_eq!(conn.run_pending_migrations_from(&embedded).unwrap().len(), 4);
}

#[test]
fn eight_processes_running_an_application_s_migrations_all_succeed_once() {
    let dirs = app::write();
    let (_dir, path) = file_db();
    let dir = dirs.sqlite.to_str().unwrap();
    let start = start_together();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_helper(
                "migrations::helper_process_runs_an_application_s_migrations",
                &[
                    (start.0, &start.1),
                    ("DV_MIGRATE_URL", &path),
                    ("DV_MIGRATE_DIR", dir),
                    ("DV_MIGRATE_ACTION", "run"),
                ],
            )
        })
        .collect();
    wait_all(children);
    let mut conn = open(&path);
    assert_eq!(count(&mut conn, "__diesel_schema_migrations"), 2);
    assert_eq!(count(&mut conn, "__diesel_vector_indexes"), 1);
}

/// Issue 15, defect 5, on SQLite: each redo reverts and re-runs the last migration as one operation.
#[test]
fn eight_concurrent_redos_leave_every_migration_applied_and_every_row() {
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    migrations::run_pending_migrations(&mut conn).unwrap();
    let id = insert_fragment(&mut conn, "kept");
    let v = smooth(1536, 1.0);
    diesel::insert_into(fragment_embeddings::table)
        .values(NewFragmentEmbedding::new(id, "p", "m", &v, "h"))
        .execute(&mut conn)
        .unwrap();
    drop(conn);
    let start = start_together();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_helper(
                "migrations::helper_process_runs_an_application_s_migrations",
                &[(start.0, &start.1), ("DV_MIGRATE_URL", &path), ("DV_MIGRATE_ACTION", "redo")],
            )
        })
        .collect();
    wait_all(children);
    let mut conn = open(&path);
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|s| s.applied));
    assert_eq!((count(&mut conn, "fragments"), count(&mut conn, "fragment_embeddings")), (1, 1));

    let dirs = app::write();
    let (_app_dir, app_path) = file_db();
    let mut conn = open(&app_path);
    migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    add_documents(&mut conn, 2);
    drop(conn);
    let dir = dirs.sqlite.to_str().unwrap();
    let start = start_together();
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_helper(
                "migrations::helper_process_runs_an_application_s_migrations",
                &[
                    (start.0, &start.1),
                    ("DV_MIGRATE_URL", &app_path),
                    ("DV_MIGRATE_DIR", dir),
                    ("DV_MIGRATE_ACTION", "redo"),
                ],
            )
        })
        .collect();
    wait_all(children);
    let mut conn = open(&app_path);
    assert!(migrations::migration_status_from(&mut conn, &app_source(&dirs)).unwrap().iter().all(|s| s.applied));
    assert_eq!(count(&mut conn, "documents"), 2);
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
    let path = std::env::var("DV_MIGRATE_URL").expect("spawned with DV_MIGRATE_URL");
    let mut conn = diesel_vector::sqlite::establish(&path).unwrap();
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

#[test]
fn an_application_s_migration_that_builds_on_a_table_made_elsewhere_runs() {
    // The rehearsal's in-memory database lacks `documents` (made outside the migrations): the index
    // migration is not rehearsed, and runs.
    let dirs = app::write();
    std::fs::remove_dir_all(dirs.sqlite.join(app::CREATE_DOCUMENTS)).unwrap();
    let mut conn = crate::conn();
    conn.batch_execute(app::DOCUMENTS_SQLITE).unwrap();
    conn.batch_execute("CREATE TABLE other (x)").unwrap();
    let (applied, events) =
        telemetry::capture(|| migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)));
    assert_eq!(applied.unwrap().iter().map(|m| m.outcome).collect::<Vec<_>>(), [Outcome::Applied]);
    assert!(events.iter().any(|e| e.contains("the rehearsal stopped at migration")), "{events:#?}");
}

/// Runs the application's first migration only, as an earlier deploy did.
fn apply_documents_only(conn: &mut SqliteConnection, dirs: &app::AppDirs) {
    let aside = dirs.root.join("aside");
    std::fs::rename(dirs.sqlite.join(app::CREATE_INDEX), &aside).unwrap();
    migrations::run_pending_migrations_from(conn, &app_source(dirs)).unwrap();
    std::fs::rename(&aside, dirs.sqlite.join(app::CREATE_INDEX)).unwrap();
}

#[test]
fn an_index_made_by_hand_after_an_earlier_deploy_is_adopted() {
    let dirs = app::write();
    let mut conn = crate::conn();
    apply_documents_only(&mut conn, &dirs);
    conn.batch_execute(&app::index_up(&dirs.sqlite)).unwrap();
    add_documents(&mut conn, 2);
    let applied = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(
        applied.iter().map(|m| (m.name.as_str(), m.outcome)).collect::<Vec<_>>(),
        [(app::CREATE_INDEX, Outcome::Adopted)]
    );
    assert_eq!(count(&mut conn, "documents"), 2);
}

#[test]
fn a_table_that_drifted_from_its_migrations_still_takes_a_new_migration() {
    let dirs = app::write();
    let mut conn = crate::conn();
    apply_documents_only(&mut conn, &dirs);
    conn.batch_execute("ALTER TABLE documents DROP COLUMN title").unwrap();
    let applied = migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert_eq!(applied.iter().map(|m| m.outcome).collect::<Vec<_>>(), [Outcome::Applied]);
}

#[test]
fn an_application_migration_sharing_a_version_with_the_crate_s_own_is_the_application_s() {
    // Diesel records a migration by its version alone. An application whose first migration carries one of
    // the crate's versions (written by hand; `generate::write` refuses them) and that has no `fragments`
    // tables does not use the crate's schema: doctor reports its own migrations, all applied, and nothing
    // of the crate's; an export says the same.
    let dirs = app::write();
    let reserved = dirs.sqlite.join("2025-01-01-000001_create_documents");
    std::fs::rename(dirs.sqlite.join(app::CREATE_DOCUMENTS), &reserved).unwrap();
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    migrations::run_pending_migrations_from(&mut conn, &app_source(&dirs)).unwrap();
    assert!(!exists(&mut conn, "fragments") && !exists(&mut conn, "fragment_embeddings"));
    drop(conn);

    let mut db = DatabaseConnection::establish(&path).unwrap();
    let options = diesel_vector::doctor::DiagnoseOptions::default().migration_dir(&dirs.sqlite);
    let report = diesel_vector::doctor::diagnose_with(&mut db, &options).unwrap();
    assert!(report.fragments.is_none(), "{report:#?}");
    assert_eq!(report.migrations.applied, ["20250101000001", "20260101000001"]);
    assert_eq!(report.migrations.pending, Some(Vec::new()));
    assert!(!report.needs_action(), "{report:#?}");

    #[cfg(feature = "jsonl")]
    {
        let mut out = Vec::new();
        diesel_vector::jsonl::export(&mut db, &mut out, &Default::default(), &mut |_, _| {}).unwrap();
        assert!(!diesel_vector::jsonl::declares_crate_schema(&out), "{}", String::from_utf8_lossy(&out[..80]));
    }
}

#[test]
fn postgresql_sql_run_on_sqlite_is_named_as_such_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("2026-03-01-000000_enable_pgvector");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("up.sql"), "CREATE EXTENSION IF NOT EXISTS vector;").unwrap();
    std::fs::write(folder.join("down.sql"), "").unwrap();
    let mut conn = crate::conn();
    let source = FileBasedMigrations::from_path(dir.path()).unwrap();
    let err = migrations::run_pending_migrations_from(&mut conn, &source).unwrap_err().to_string();
    assert!(
        err.ends_with("this is PostgreSQL's SQL: is this the PostgreSQL migration folder, run on an SQLite database?"),
        "{err}"
    );
    let status = migrations::migration_status_from(&mut conn, &source).unwrap();
    assert!(status.iter().all(|m| !m.applied), "{status:?}");
}
