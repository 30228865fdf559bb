//! The seed's index (quantized codes) follows every writer, with or without sqlite-vec on any connection.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::schema::{fragment_embeddings, fragments};
use diesel_vector::search::Search;
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

/// The k nearest embedding ids for (p, model), through the search (the seed's index keeps codes).
fn knn(conn: &mut SqliteConnection, model: &str, q: &Vector, k: usize) -> Vec<i64> {
    let (hits, events) = crate::common::telemetry::capture(|| Search::new("p", model, q).k(k).run(conn).unwrap());
    assert!(events.iter().any(|e| e.contains("path=codes")), "{events:#?}");
    hits.into_iter().map(|h| h.id).collect()
}

#[test]
fn writes_without_the_extension_are_indexed_by_any_connection() {
    let (_dir, path) = migrated_file();
    let mut plain = open_without_extension(&path);
    let a = add(&mut plain, "a", "m1", &smooth(1536, 0.0));
    let b = add(&mut plain, "b", "m1", &smooth(1536, 1.5));
    let other_model = add(&mut plain, "c", "m2", &smooth(1536, 0.01));
    let gone = add(&mut plain, "d", "m1", &smooth(1536, 0.02));
    diesel::delete(fragments::table.filter(fragments::content.eq("d"))).execute(&mut plain).unwrap();

    let status = index_status(&mut plain).unwrap();
    assert!(!status.is_up_to_date() && status.needs_rebuild, "{status:?}");
    // The codes need no extension: the plain connection syncs.
    let report = sync_index(&mut plain).unwrap();
    assert!(report.rebuilt);
    assert_eq!(report.applied, 3);

    let mut conn = open(&path);
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
    assert_eq!((status.codes_rows, status.embedded_rows), (Some(3), 3));
    assert_eq!(sync_index(&mut conn).unwrap().applied, 0, "nothing pending, nothing done");
}

#[test]
fn codes_left_over_from_an_earlier_install_are_rebuilt() {
    let (_dir, path) = migrated_file();
    let mut conn = open(&path);
    add(&mut conn, "old", "m", &smooth(1536, 0.0));
    sync_index(&mut conn).unwrap();
    // What `diesel migration revert` then `run` does, by plain SQL; the old codes are kept aside and put
    // back, as an older down migration that did not drop them would have left them.
    let mut plain = open_without_extension(&path);
    plain.batch_execute("CREATE TABLE kept AS SELECT * FROM fragment_embeddings_idx_codes").unwrap();
    for sql in [
        include_str!("../../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/down.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000002_create_fragment_embeddings/down.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000002_create_fragment_embeddings/up.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/up.sql"),
    ] {
        plain.batch_execute(sql).unwrap();
    }
    plain.batch_execute("CREATE TABLE fragment_embeddings_idx_codes AS SELECT * FROM kept").unwrap();
    let fresh = add(&mut plain, "new", "m", &smooth(1536, 2.0));
    assert_eq!(fresh, 1, "ids start again, so the stale entry would collide");

    // The connection still holds the old codes in memory, and the table holds them too: neither is used.
    assert_eq!(knn(&mut conn, "m", &smooth(1536, 0.0), 5), [1]);
    let status = index_status(&mut conn).unwrap();
    assert!(status.is_up_to_date(), "{status:?}");
    assert_eq!(status.codes_rows, Some(1));
}

#[test]
fn zero_vectors_stay_out_of_the_cosine_index() {
    let (_dir, path) = migrated_file();
    let mut conn = open(&path);
    add(&mut conn, "zero", "m", &Vector::new(vec![0.0; 1536]).unwrap());
    let real = add(&mut conn, "real", "m", &smooth(1536, 0.0));
    sync_index(&mut conn).unwrap();
    assert_eq!(knn(&mut conn, "m", &smooth(1536, 0.3), 5), [real]);
    assert_eq!(index_status(&mut conn).unwrap().codes_rows, Some(1));
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn a_vec0_table_of_an_earlier_version_is_dropped() {
    let (_dir, path) = migrated_file();
    let mut conn = open(&path);
    add(&mut conn, "a", "m", &smooth(1536, 0.0));
    // The seed's vec0 table, as diesel-vector built it before its index kept codes.
    conn.batch_execute(
        "CREATE VIRTUAL TABLE fragment_embeddings_idx USING vec0(provider text partition key, model text partition \
         key, embedding float[1536] distance_metric=cosine, chunk_size=64)",
    )
    .unwrap();
    sync_index(&mut conn).unwrap();
    let left: i64 = diesel::select(sql::<BigInt>(
        "(SELECT count(*) FROM sqlite_master WHERE name LIKE 'fragment_embeddings_idx%' AND name NOT IN \
         ('fragment_embeddings_idx_queue', 'fragment_embeddings_idx_state', 'fragment_embeddings_idx_codes') \
         AND type = 'table')",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(left, 0, "the vec0 table and its shadow tables are gone");
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
fn syncing_after_the_index_or_its_table_went_says_so() {
    for dropped in ["fragment_embeddings_idx_queue", "fragment_embeddings_idx_state", "fragment_embeddings"] {
        let (_dir, path) = migrated_file();
        let mut conn = open(&path);
        // The sync's statements are prepared and kept by this connection before the table goes.
        sync_index(&mut conn).unwrap();
        sync_index(&mut conn).unwrap();
        conn.batch_execute(&format!("PRAGMA foreign_keys = OFF; DROP TABLE \"{dropped}\"")).unwrap();
        let err = sync_index(&mut conn).unwrap_err();
        assert!(matches!(err, IndexError::NotMigrated { .. }), "{dropped}: {err}");
        assert_eq!(
            err.to_string(),
            "the vector index fragment_embeddings_idx on fragment_embeddings is not set up in this database (its \
             change queue and state are missing): apply the migration that creates it",
            "{dropped}"
        );
    }
}

#[test]
fn a_search_after_writes_without_the_extension_sees_them() {
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
fn migrating_without_sqlite_vec_works_silently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db").to_str().unwrap().to_owned();
    let mut plain = open_without_extension(&path);
    let (applied, events) = crate::common::telemetry::capture(|| migrations::run_pending_migrations(&mut plain));
    assert_eq!(applied.unwrap().len(), 4);
    // The seed's index keeps codes, which need no extension: nothing to warn about.
    assert!(!events.iter().any(|e| e.starts_with("WARN")), "{events:#?}");
}

fn queued(conn: &mut SqliteConnection) -> i64 {
    diesel::select(sql::<BigInt>("(SELECT count(*) FROM fragment_embeddings_idx_queue)")).get_result(conn).unwrap()
}

#[test]
fn the_seed_s_index_before_indexed_through_queues_every_insert_and_stays_current_both_ways() {
    let (_dir, path) = migrated_file();
    let mut conn = open(&path);
    let first = add(&mut conn, "first", "m", &smooth(1536, 0.0));
    sync_index(&mut conn).unwrap();
    // Appended since the last sync: not queued, pending all the same.
    let a = add(&mut conn, "a", "m", &smooth(1536, 1.0));
    let b = add(&mut conn, "b", "m", &smooth(1536, 2.0));
    assert_eq!(queued(&mut conn), 0);
    assert_eq!(index_status(&mut conn).unwrap().pending_changes, 2);

    // Reverting the change queues them, and the old trigger queues every insert again.
    assert_eq!(
        migrations::revert_last_migration(&mut conn).unwrap().as_deref(),
        Some("2025-01-01-000004_queue_only_changed_fragment_embeddings")
    );
    assert_eq!(queued(&mut conn), 2, "the rows appended since the last sync were queued by the revert");
    let c = add(&mut conn, "c", "m", &smooth(1536, 3.0));
    assert_eq!(queued(&mut conn), 3);
    let status = index_status(&mut conn).unwrap();
    assert_eq!(status.pending_changes, 3, "{status:?}");
    // (Four rows on codes trained on one: the sync retrains them.)
    assert_eq!(sync_index(&mut conn).unwrap().applied, 4);
    assert!(index_status(&mut conn).unwrap().is_up_to_date());
    for (id, phase) in [(first, 0.0), (a, 1.0), (b, 2.0), (c, 3.0)] {
        assert_eq!(knn(&mut conn, "m", &smooth(1536, phase), 1), [id]);
    }

    // Forward again: what the old trigger queued stays queued; inserts above the largest id are not.
    let d = add(&mut conn, "d", "m", &smooth(1536, 4.0));
    assert_eq!(migrations::run_pending_migrations(&mut conn).unwrap().len(), 1);
    let e = add(&mut conn, "e", "m", &smooth(1536, 5.0));
    assert_eq!(queued(&mut conn), 1);
    assert_eq!(index_status(&mut conn).unwrap().pending_changes, 2);
    for (id, phase) in [(d, 4.0), (e, 5.0), (a, 1.0)] {
        assert_eq!(knn(&mut conn, "m", &smooth(1536, phase), 1), [id]);
    }
    let status = index_status(&mut conn).unwrap();
    assert!(status.is_up_to_date() && status.codes_rows == Some(6), "{status:?}");
}
