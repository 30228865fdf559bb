//! The vec0 index follows every writer, with or without sqlite-vec on the writing connection.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary};
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::schema::{fragment_embeddings, fragments};
use diesel_vector::sqlite::{self, index_status, sync_index, IndexError};
use diesel_vector::{migrations, Vector};

use crate::common::smooth;
use crate::EXTENSION_REGISTRATION;

fn migrated_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx.db").to_str().unwrap().to_owned();
    let mut conn = open(&path);
    migrations::run_pending_migrations(&mut conn).unwrap();
    (dir, path)
}

fn open(path: &str) -> SqliteConnection {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    sqlite::establish(path).unwrap()
}

/// A connection without sqlite-vec, like the diesel CLI's or a plain application's.
fn open_without_extension(path: &str) -> SqliteConnection {
    let _exclusive = EXTENSION_REGISTRATION.write().unwrap();
    sqlite::deregister_sqlite_vec();
    let conn = SqliteConnection::establish(path);
    sqlite::register_sqlite_vec().unwrap();
    let mut conn = conn.unwrap();
    assert_eq!(sqlite::sqlite_vec_version(&mut conn).unwrap(), None);
    conn.batch_execute("PRAGMA foreign_keys = ON").unwrap();
    conn
}

fn add(conn: &mut SqliteConnection, content: &str, model: &str, v: &Vector) -> i64 {
    let fragment_id: i64 = diesel::insert_into(fragments::table)
        .values(fragments::content.eq(content))
        .returning(fragments::id)
        .get_result(conn)
        .unwrap();
    diesel::insert_into(fragment_embeddings::table)
        .values(NewFragmentEmbedding::new(fragment_id, "p", model, v, content))
        .returning(fragment_embeddings::id)
        .get_result(conn)
        .unwrap()
}

/// The k nearest embedding ids for (p, model) straight from the vec0 table.
fn knn(conn: &mut SqliteConnection, model: &str, q: &Vector, k: i64) -> Vec<i64> {
    #[derive(QueryableByName)]
    struct Hit {
        #[diesel(sql_type = BigInt)]
        rowid: i64,
    }
    diesel::sql_query(
        "SELECT rowid FROM fragment_embeddings_idx WHERE embedding MATCH ? AND k = ? AND provider = 'p' AND model = ? \
         ORDER BY distance",
    )
    .bind::<Binary, _>(bytes(q))
    .bind::<BigInt, _>(k)
    .bind::<diesel::sql_types::Text, _>(model)
    .load::<Hit>(conn)
    .unwrap()
    .into_iter()
    .map(|h| h.rowid)
    .collect()
}

fn bytes(v: &Vector) -> Vec<u8> {
    diesel_vector::codec::encode_sqlite(v).into_owned()
}

#[test]
fn writes_without_the_extension_are_indexed_by_the_next_sync() {
    let (_dir, path) = migrated_file();
    let mut plain = open_without_extension(&path);
    let a = add(&mut plain, "a", "m1", &smooth(1536, 0.0));
    let b = add(&mut plain, "b", "m1", &smooth(1536, 1.5));
    let other_model = add(&mut plain, "c", "m2", &smooth(1536, 0.01));
    let gone = add(&mut plain, "d", "m1", &smooth(1536, 0.02));
    diesel::delete(fragments::table.filter(fragments::content.eq("d"))).execute(&mut plain).unwrap();
    assert_eq!(sync_index(&mut plain).unwrap_err().to_string(), IndexError::ExtensionMissing.to_string());

    let mut conn = open(&path);
    let status = index_status(&mut conn).unwrap();
    assert!(!status.is_up_to_date() && status.needs_rebuild, "{status:?}");
    let report = sync_index(&mut conn).unwrap();
    assert!(report.rebuilt);
    assert_eq!(report.applied, 3);
    assert_eq!(knn(&mut conn, "m1", &smooth(1536, 0.0), 5), [a, b], "nearest first, one model only, deleted rows gone");
    assert_eq!(knn(&mut conn, "m2", &smooth(1536, 0.0), 5), [other_model]);
    assert!(!knn(&mut conn, "m1", &smooth(1536, 0.0), 5).contains(&gone));

    // Later changes through the plain connection: an update and a delete, applied by the next sync.
    diesel::update(fragment_embeddings::table.find(b))
        .set(fragment_embeddings::embedding.eq(smooth(1536, 0.001)))
        .execute(&mut plain)
        .unwrap();
    diesel::delete(fragment_embeddings::table.find(a)).execute(&mut plain).unwrap();
    let c = add(&mut plain, "e", "m1", &smooth(1536, 4.0));
    let report = sync_index(&mut conn).unwrap();
    assert_eq!((report.rebuilt, report.applied), (false, 3));
    assert_eq!(knn(&mut conn, "m1", &smooth(1536, 0.0), 5), [b, c]);
    let status = index_status(&mut conn).unwrap();
    assert!(status.is_up_to_date(), "{status:?}");
    assert_eq!((status.indexed_rows, status.embedded_rows), (Some(3), 3));
    assert_eq!(sync_index(&mut conn).unwrap().applied, 0, "nothing pending, nothing done");
}

#[test]
fn a_vec0_table_left_over_from_an_earlier_install_is_rebuilt() {
    let (_dir, path) = migrated_file();
    let mut conn = open(&path);
    add(&mut conn, "old", "m", &smooth(1536, 0.0));
    sync_index(&mut conn).unwrap();
    // What `diesel migration revert` then `run` does: plain SQL, leaving the vec0 table behind.
    let mut plain = open_without_extension(&path);
    for sql in [
        include_str!("../../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/down.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000002_create_fragment_embeddings/down.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000002_create_fragment_embeddings/up.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/up.sql"),
    ] {
        plain.batch_execute(sql).unwrap();
    }
    let fresh = add(&mut plain, "new", "m", &smooth(1536, 2.0));
    assert_eq!(fresh, 1, "ids start again, so the stale entry would collide");

    let report = sync_index(&mut conn).unwrap();
    assert!(report.rebuilt);
    assert_eq!(knn(&mut conn, "m", &smooth(1536, 2.0), 5), [1]);
    let stored: i64 =
        diesel::select(sql::<BigInt>("(SELECT count(*) FROM fragment_embeddings_idx)")).get_result(&mut conn).unwrap();
    assert_eq!(stored, 1);
}

#[test]
fn zero_vectors_stay_out_of_the_cosine_index() {
    let (_dir, path) = migrated_file();
    let mut conn = open(&path);
    add(&mut conn, "zero", "m", &Vector::new(vec![0.0; 1536]).unwrap());
    let real = add(&mut conn, "real", "m", &smooth(1536, 0.0));
    sync_index(&mut conn).unwrap();
    assert_eq!(knn(&mut conn, "m", &smooth(1536, 0.3), 5), [real]);
}

#[test]
fn syncing_before_the_migrations_says_so() {
    let mut conn = crate::conn();
    let err = sync_index(&mut conn).unwrap_err();
    assert!(matches!(err, IndexError::NotMigrated { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "the vector index fragment_embeddings_idx on fragment_embeddings is not set up in this database (its change \
         queue and state are missing): apply the migration that creates it"
    );
}

#[test]
fn a_search_after_writes_without_the_extension_sees_them() {
    use diesel_vector::search::Search;
    let (_dir, path) = migrated_file();
    let mut conn = open(&path);
    let first = add(&mut conn, "first", "m", &smooth(1536, 0.0));
    assert_eq!(Search::new("p", "m", &smooth(1536, 0.0)).k(5).run(&mut conn).unwrap().len(), 1);

    let mut plain = open_without_extension(&path);
    let second = add(&mut plain, "second", "m", &smooth(1536, 0.05));
    diesel::delete(fragment_embeddings::table.find(first)).execute(&mut plain).unwrap();

    let hits = Search::new("p", "m", &smooth(1536, 0.0)).k(5).run(&mut conn).unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [second]);
}

#[test]
fn migrating_without_sqlite_vec_works_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db").to_str().unwrap().to_owned();
    let mut plain = open_without_extension(&path);
    let (applied, events) = crate::common::telemetry::capture(|| migrations::run_pending_migrations(&mut plain));
    assert_eq!(applied.unwrap().len(), 3);
    let warning = events.iter().find(|e| e.starts_with("WARN")).expect("a warning");
    assert!(warning.contains("sqlite-vec is not loaded on this connection"), "{warning}");
}
