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
            ("2025-01-01-000003_register_fragment_embeddings_index", Outcome::Applied)
        ]
    );
    assert!(migrations::run_pending_migrations(&mut conn).unwrap().is_empty());
    let status = migrations::migration_status(&mut conn).unwrap();
    assert!(status.iter().all(|s| s.applied), "{status:?}");
    assert_eq!(status.len(), 3);
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
        Some("2025-01-01-000003_register_fragment_embeddings_index")
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
    assert_eq!(status.iter().map(|s| s.applied).collect::<Vec<_>>(), [true, false, false]);
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
        [Outcome::Adopted, Outcome::Adopted, Outcome::Applied],
        "the registering migration runs: it only records the index"
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
    assert_eq!(applied.len(), 3, "{events:#?}");
    assert!(
        applied[0].contains("backend=sqlite")
            && applied[0].contains("version=20250101000001")
            && applied[0].contains("duration_ms=")
    );
    assert!(events.iter().any(|e| e.contains("migrations up to date") && e.contains("count=3")), "{events:#?}");

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
    assert_eq!(count(&mut conn, "__diesel_schema_migrations"), 3);
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
