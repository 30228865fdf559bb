//! SQLite through diesel-async's `SyncConnectionWrapper` (`diesel_vector::sqlite::AsyncSqliteConnection`).

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use diesel_migrations::FileBasedMigrations;
use diesel_vector::migrations;
use diesel_vector::sqlite::{self, AsyncSqliteConnection};
use diesel_vector::{Vector, VectorExpressionMethods};

use crate::common::{self, app};
use crate::documents;

fn vector(i: usize) -> Vector {
    common::smooth(768, i as f32 * 0.37)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncSqliteConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).await.unwrap().n
}

/// A migrated file database of the application's own (both its migrations and the crate's).
async fn migrated(dir: &tempfile::TempDir, dirs: &app::AppDirs) -> AsyncSqliteConnection {
    let path = dir.path().join("app.db");
    let mut conn = sqlite::establish_async(path.to_str().unwrap()).await.unwrap();
    let source = FileBasedMigrations::from_path(&dirs.sqlite).unwrap();
    let applied = migrations::run_pending_migrations_from_async(&mut conn, &source).await.unwrap();
    assert_eq!(applied.len(), 2);
    conn
}

async fn insert(conn: &mut AsyncSqliteConnection, i: usize, v: &Vector) -> QueryResult<i64> {
    // One row per statement: diesel-async's SQLite wrapper has no multi-row INSERT.
    diesel::insert_into(documents::table)
        .values((
            documents::lang.eq(crate::lang(i)),
            documents::title.eq(format!("title {i}")),
            documents::body.eq(format!("body {i}")),
            documents::embedding.eq(v),
        ))
        .returning(documents::id)
        .get_result(conn)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_index_sync_and_search_through_the_sync_connection_wrapper() {
    let (dir, dirs) = (tempfile::tempdir().unwrap(), app::write());
    let mut conn = migrated(&dir, &dirs).await;
    assert_eq!(migrations::run_pending_migrations_async(&mut conn).await.unwrap().len(), 4, "the crate's own set too");

    // Writers of their own, at once: WAL and the busy timeout let them wait for each other.
    let path = dir.path().join("app.db").to_str().unwrap().to_owned();
    let writers: Vec<_> = (0..24)
        .map(|i| {
            let path = path.clone();
            tokio::spawn(async move {
                let mut conn = sqlite::establish_async(&path).await.unwrap();
                insert(&mut conn, i, &vector(i)).await.map(|id| (i, id))
            })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.push(writer.await.unwrap().unwrap());
    }

    let spec = app::spec();
    let report = sqlite::sync_async(&mut conn, &spec).await.unwrap();
    let status = sqlite::status_async(&mut conn, &spec).await.unwrap();
    assert!(status.is_up_to_date(), "{status:?}");
    assert_eq!(status.embedded_rows, 24);
    assert!(report.rebuilt, "the migration marked the new index for a first build");
    assert_eq!(status.structures, spec.sqlite_index());
    let registered = diesel_vector::index::registry::load_async(&mut conn).await.unwrap();
    assert_eq!(registered.iter().map(|s| s.name()).collect::<Vec<_>>(), [spec.name(), "fragment_embeddings_idx"]);

    for (i, id) in ids {
        let v = vector(i);
        let nearest: Vec<(i64, Option<f64>)> = documents::table
            .filter(documents::lang.eq(crate::lang(i)))
            .select((documents::id, documents::embedding.cosine_distance(&v)))
            .order(documents::embedding.cosine_distance(&v))
            .limit(3)
            .load(&mut conn)
            .await
            .unwrap();
        assert_eq!(nearest[0].0, id);
        assert!(nearest[0].1.unwrap().abs() < 1e-6);
    }

    // Later writes queue for the index; the next sync applies them.
    insert(&mut conn, 24, &vector(24)).await.unwrap();
    assert_eq!(sqlite::status_async(&mut conn, &spec).await.unwrap().pending_changes, 1);
    let report = sqlite::sync_async(&mut conn, &spec).await.unwrap();
    assert_eq!((report.rebuilt, report.applied), (false, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_dimensions_and_nan_are_errors_of_the_async_calls_on_sqlite() {
    let (dir, dirs) = (tempfile::tempdir().unwrap(), app::write());
    let mut conn = migrated(&dir, &dirs).await;
    let short = Vector::new(vec![1.0, 2.0, 3.0]).unwrap();
    let handle = tokio::spawn(async move {
        let dims = insert(&mut conn, 0, &short).await;
        // Another writer stored a NaN (the generated CHECK looks at the BLOB's shape, not its values).
        let mut nan = vec![0u8; 768 * 4];
        nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        diesel::sql_query("INSERT INTO documents (id, lang, title, body, embedding) VALUES (7, 'en', 't', 'b', ?)")
            .bind::<diesel::sql_types::Binary, _>(nan)
            .execute(&mut conn)
            .await
            .unwrap();
        let read: Result<Vector, _> =
            documents::table.find(7).select(documents::embedding.assume_not_null()).first(&mut conn).await;
        let read = read.map_err(|e| diesel_vector::VectorError::find(&e).cloned());
        let status = sqlite::sync_async(&mut conn, &app::spec()).await.map(|_| ());
        let status = status.and(sqlite::status_async(&mut conn, &app::spec()).await);
        (dims, read, status, count(&mut conn, "SELECT count(*) AS n FROM documents").await)
    });
    let (dims, read, status, rows) = handle.await.expect("errors, not a panic in the task");
    let dims = dims.unwrap_err().to_string();
    assert!(dims.contains("CHECK constraint failed"), "{dims}");
    assert!(
        matches!(read, Err(Some(diesel_vector::VectorError::NotFinite { index: 0, .. }))),
        "the NaN is refused when read, naming its position: {read:?}"
    );
    let status = status.unwrap();
    assert_eq!((rows, status.embedded_rows), (1, 1), "only the row written raw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sqlite_run_still_applies_whole_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("own.db");
    let mut conn = sqlite::establish_async(path.to_str().unwrap()).await.unwrap();
    let cancelled =
        tokio::time::timeout(Duration::from_micros(1), migrations::run_pending_migrations_async(&mut conn)).await;
    // diesel-async waits for the blocking call when its future is dropped: the run went on to its end.
    let status = migrations::migration_status_async(&mut conn).await.unwrap();
    match cancelled {
        Err(_) | Ok(Ok(_)) => assert!(status.iter().all(|m| m.applied), "{status:?}"),
        Ok(Err(e)) => panic!("{e}"),
    }
    assert!(migrations::run_pending_migrations_async(&mut conn).await.unwrap().is_empty());
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM __diesel_schema_migrations").await, 4);
}
