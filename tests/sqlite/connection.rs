//! Connections opened by the crate are set up the way the crate needs them.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_vector::sqlite::{self, ConnectionOptions};

use crate::{conn, EXTENSION_REGISTRATION};

fn pragma_int(conn: &mut SqliteConnection, name: &str) -> i32 {
    diesel::select(sql::<Integer>(&format!("(SELECT * FROM pragma_{name})"))).get_result(conn).unwrap()
}

fn journal_mode(conn: &mut SqliteConnection) -> String {
    diesel::select(sql::<Text>("(SELECT * FROM pragma_journal_mode)")).get_result(conn).unwrap()
}

#[test]
fn foreign_keys_are_enforced_and_cascade() {
    let mut conn = conn();
    assert_eq!(pragma_int(&mut conn, "foreign_keys"), 1);
    conn.batch_execute(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE);
         INSERT INTO parent VALUES (1); INSERT INTO child VALUES (10, 1);
         DELETE FROM parent WHERE id = 1;",
    )
    .unwrap();
    let children: i32 = diesel::select(sql::<Integer>("(SELECT count(*) FROM child)")).get_result(&mut conn).unwrap();
    assert_eq!(children, 0);
    let orphan = conn.batch_execute("INSERT INTO child VALUES (11, 99)");
    assert!(orphan.unwrap_err().to_string().contains("FOREIGN KEY constraint failed"));
}

#[test]
fn busy_timeout_is_set_from_the_options() {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    let mut conn = ConnectionOptions::default()
        .busy_timeout(std::time::Duration::from_millis(1234))
        .establish(":memory:")
        .unwrap();
    // pragma_busy_timeout is not a table-valued function; read it with the pragma itself.
    let timeout: i32 = diesel::sql_query("PRAGMA busy_timeout").load::<Timeout>(&mut conn).unwrap()[0].timeout;
    assert_eq!(timeout, 1234);
    assert_eq!(pragma_int(&mut sqlite::establish(":memory:").unwrap(), "foreign_keys"), 1);
}

#[derive(QueryableByName)]
struct Timeout {
    #[diesel(sql_type = Integer)]
    timeout: i32,
}

#[test]
fn file_databases_use_wal_and_memory_databases_keep_their_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    let mut file = sqlite::establish(path.to_str().unwrap()).unwrap();
    assert_eq!(journal_mode(&mut file), "wal");
    let mut memory = sqlite::establish(":memory:").unwrap();
    assert_eq!(journal_mode(&mut memory), "memory");
    let mut no_wal =
        ConnectionOptions::default().wal(false).establish(dir.path().join("b.db").to_str().unwrap()).unwrap();
    assert_eq!(journal_mode(&mut no_wal), "delete");
}

#[test]
fn many_connections_opening_one_new_file_at_once_all_succeed() {
    // Switching a new file to WAL needs an exclusive lock; SQLite answers `database is locked` at once,
    // without waiting for the busy timeout, to the second of two connections that both hold a shared lock
    // and want it. Applications open several connections at once (pools, workers): none may fail.
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db").to_str().unwrap().to_owned();
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        sqlite::establish(&path).map(|mut c| journal_mode(&mut c))
                    })
                })
                .collect();
            for handle in opened {
                assert_eq!(handle.join().unwrap().unwrap(), "wal", "round {round}");
            }
        });
    }
}

#[test]
fn a_bad_path_is_a_connection_error() {
    let result = sqlite::establish("/nonexistent-dir/for/sure/app.db");
    assert!(matches!(result, Err(diesel::ConnectionError::BadConnection(_))), "{:?}", result.err());
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn sqlite_vec_is_registered_and_can_be_removed_and_restored() {
    let _exclusive = EXTENSION_REGISTRATION.write().unwrap();
    let mut with = sqlite::establish(":memory:").unwrap();
    assert_eq!(sqlite::sqlite_vec_version(&mut with).unwrap().as_deref(), Some("v0.1.9"));

    assert!(sqlite::deregister_sqlite_vec());
    let mut without = SqliteConnection::establish(":memory:").unwrap();
    assert_eq!(sqlite::sqlite_vec_version(&mut without).unwrap(), None);
    // The connection opened before keeps its extension.
    assert!(sqlite::sqlite_vec_version(&mut with).unwrap().is_some());

    sqlite::register_sqlite_vec().unwrap();
    sqlite::register_sqlite_vec().unwrap(); // idempotent
    let mut again = SqliteConnection::establish(":memory:").unwrap();
    assert!(sqlite::sqlite_vec_version(&mut again).unwrap().is_some());
}

#[cfg(not(feature = "sqlite-vec"))]
#[test]
fn without_the_feature_sqlite_vec_is_reported_absent() {
    let mut conn = conn();
    assert_eq!(sqlite::sqlite_vec_version(&mut conn).unwrap(), None);
}

#[cfg(feature = "r2d2")]
#[test]
fn pooled_connections_are_set_up_like_established_ones() {
    use diesel::r2d2::{ConnectionManager, Pool};
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("pool.db");
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    let pool = Pool::builder()
        .max_size(2)
        .connection_customizer(Box::new(sqlite::SqliteCustomizer::new(ConnectionOptions::default())))
        .build(ConnectionManager::<SqliteConnection>::new(url.to_str().unwrap()))
        .unwrap();
    let mut conn = pool.get().unwrap();
    assert_eq!(pragma_int(&mut conn, "foreign_keys"), 1);
    assert_eq!(journal_mode(&mut conn), "wal");
    assert_eq!(sqlite::sqlite_vec_version(&mut conn).unwrap().is_some(), sqlite::SQLITE_VEC_COMPILED_IN);
}

/// File databases are read through a memory map by default; work that streams a whole file turns it off.
#[test]
fn a_connection_can_read_without_the_memory_map() {
    #[derive(QueryableByName)]
    struct Mmap {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        mmap_size: i64,
    }
    let mmap_size = |db: &mut diesel_vector::database::DatabaseConnection| {
        let diesel_vector::database::DatabaseConnection::Sqlite(conn) = db else { unreachable!("a SQLite URL") };
        diesel::sql_query("PRAGMA mmap_size").get_result::<Mmap>(conn).unwrap().mmap_size
    };
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let mut db = diesel_vector::database::DatabaseConnection::establish(path.to_str().unwrap()).unwrap();
    assert!(mmap_size(&mut db) > 0);
    db.without_memory_map().unwrap();
    assert_eq!(mmap_size(&mut db), 0);
}
