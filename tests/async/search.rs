//! Search on diesel-async's connections, as an async application runs it: its own `documents` table
//! (768 dims, a `lang` partition, a `year` to filter on) with the index migration the crate's generator
//! renders, dozens of tasks writing and searching at once, each answer checked against the exact one
//! (the distance DSL's scan, ties by id) and against the sync search on the same data.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_vector::index::{generate, IndexSpec};
use diesel_vector::search::{self, Hit, SearchError, Strategy};
use diesel_vector::{Vector, VectorExpressionMethods};

use crate::common::documents::{self as fixture, documents, Doc, DIMS};
use crate::pg::{pool, FreshDb};

diesel_vector::vector_index! {
    /// The application's index: cosine, HNSW on PostgreSQL, sqlite-vec's vec0 on SQLite, by language.
    static DOCUMENTS: documents { column: embedding, dims: 768, partition_by: [lang], pg_index: Hnsw, sqlite_index: VEC0 }
}

fn spec() -> IndexSpec {
    DOCUMENTS.try_spec().unwrap().clone()
}

/// The generated migration: the `embedding` column, the index, its registration.
fn migration() -> generate::Migration {
    generate::render(&spec(), &generate::Options::default().add_column(true))
}

/// Inserts one document through `$conn` (one row per statement: diesel-async's SQLite wrapper has no
/// multi-row INSERT).
macro_rules! insert {
    ($conn:expr, $doc:expr) => {{
        let doc: &Doc = $doc;
        diesel::insert_into(documents::table)
            .values((
                documents::id.eq(doc.id),
                documents::lang.eq(doc.lang),
                documents::year.eq(doc.year),
                documents::body.eq(format!("document {}", doc.id)),
                documents::embedding.eq(doc.embedding.as_ref()),
            ))
            .execute($conn)
            .await
    }};
}

/// The exact `k` nearest (id, distance) among `lang` rows of `year >= min_year`, by the distance DSL's
/// scan on `$conn`, ties by id, rows without a finite distance left out.
macro_rules! exact {
    ($conn:expr, $q:expr, $lang:expr, $min_year:expr, $k:expr) => {{
        let q: &Vector = $q;
        let rows: Vec<(i64, Option<f64>)> = documents::table
            .filter(documents::embedding.is_not_null())
            .filter(documents::lang.eq($lang))
            .filter(documents::year.ge($min_year))
            .select((documents::id, documents::embedding.cosine_distance(q)))
            .load($conn)
            .await
            .unwrap();
        let mut rows: Vec<(i64, f64)> =
            rows.into_iter().filter_map(|(id, d)| d.filter(|d| d.is_finite()).map(|d| (id, d))).collect();
        rows.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        rows.truncate($k);
        rows
    }};
}

/// Asserts `hits` are `expected`: the same ids in the same order, distances within f32 rounding.
#[track_caller]
fn assert_same(hits: &[Hit], expected: &[(i64, f64)], what: &str) {
    let ids: Vec<i64> = expected.iter().map(|e| e.0).collect();
    assert_eq!(search::ids(hits), ids, "{what}");
    for (hit, (_, distance)) in hits.iter().zip(expected) {
        // The same distance in `f32` arithmetic summed in another order (sqlite-vec's loop, the SIMD scan).
        assert!((hit.distance - distance).abs() < 1e-5, "{what}: {} vs {distance}", hit.distance);
    }
}

/// What one searcher asks: a query from the documents' clusters, a language, a year and `k`.
struct Ask {
    q: Vector,
    lang: &'static str,
    min_year: i32,
    k: usize,
}

fn asks(n_docs: usize, seed: u64, n: usize) -> Vec<Ask> {
    fixture::queries(seed, n_docs, n)
        .into_iter()
        .enumerate()
        .map(|(i, q)| Ask { q, lang: ["en", "fr"][i % 2], min_year: 2018 + (i % 8) as i32, k: 3 + i % 8 })
        .collect()
}

/// A searcher's answers: by the run-time search, by the typed one with a Diesel filter, by the exact
/// strategy; and the exact references, unfiltered and filtered by year.
type Answers = (Vec<Hit>, Vec<Hit>, Vec<Hit>, Vec<(i64, f64)>, Vec<(i64, f64)>);

/// Runs the three searches of `ask` and the two references on `$conn`.
macro_rules! answer {
    ($conn:expr, $ask:expr) => {{
        let ask: &Ask = $ask;
        let spec = spec();
        let generic = spec.search(&ask.q).k(ask.k).filter_eq("lang", ask.lang).run_async($conn).await?;
        // A filter that borrows: the typed search's filter need not be 'static.
        let not_this = format!("document {}", ask.k);
        let typed = DOCUMENTS
            .search(&ask.q)
            .k(ask.k)
            .partition(documents::lang, ask.lang)
            .filter(documents::year.ge(ask.min_year))
            .filter(documents::body.ne(&not_this))
            .run_async($conn)
            .await?;
        let exact_strategy =
            spec.search(&ask.q).k(ask.k).filter_eq("lang", ask.lang).strategy(Strategy::Exact).run_async($conn).await?;
        let reference = exact!($conn, &ask.q, ask.lang, 0, ask.k);
        let mut filtered = exact!($conn, &ask.q, ask.lang, ask.min_year, ask.k + 1);
        filtered.retain(|(id, _)| format!("document {id}") != not_this);
        filtered.truncate(ask.k);
        Ok::<Answers, SearchError>((generic, typed, exact_strategy, reference, filtered))
    }};
}

/// Checks a searcher's answers against the references.
#[track_caller]
fn check(i: usize, (generic, typed, exact_strategy, reference, filtered): &Answers) {
    assert!(!reference.is_empty(), "searcher {i}: the reference found rows");
    assert_same(generic, reference, &format!("searcher {i}: run-time search"));
    assert_same(exact_strategy, reference, &format!("searcher {i}: exact strategy"));
    assert_same(typed, filtered, &format!("searcher {i}: typed search with Diesel filters"));
}

const N_DOCS: usize = 480;
const SEED: u64 = 14;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dozens_of_tasks_on_a_deadpool_search_their_documents_as_the_exact_scan_and_the_sync_search_do() {
    let db = FreshDb::create().await;
    let pool = pool(&db.url, 8);
    {
        let mut conn = pool.get().await.unwrap();
        conn.batch_execute(fixture::PG_TABLE).await.unwrap();
        conn.batch_execute(&migration().pg_up).await.unwrap();
    }
    let docs = fixture::docs(N_DOCS, SEED);

    // 48 writers: each inserts its ten documents and finds each of them first in its own language.
    let writers: Vec<_> = docs
        .chunks(N_DOCS / 48)
        .map(|chunk| {
            let (pool, chunk) = (pool.clone(), chunk.to_vec());
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                for doc in &chunk {
                    insert!(&mut conn, doc).unwrap();
                    let Some(v) = doc.embedding.as_ref().filter(|v| v.as_slice().iter().any(|x| *x != 0.0)) else {
                        continue;
                    };
                    let hits = spec().search(v).k(1).filter_eq("lang", doc.lang).run_async(&mut *conn).await?;
                    assert_eq!(search::ids(&hits), [doc.id], "a document is its own nearest");
                }
                Ok::<_, SearchError>(chunk.len())
            })
        })
        .collect();
    let mut written = 0;
    for writer in writers {
        written += writer.await.expect("no panic in a writer").unwrap();
    }
    assert_eq!(written, N_DOCS);
    pool.get().await.unwrap().batch_execute("ANALYZE documents").await.unwrap();

    // 48 searchers at once, each with its query, language, year and k.
    let searchers: Vec<_> = asks(N_DOCS, SEED, 48)
        .into_iter()
        .map(|ask| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                answer!(&mut *conn, &ask)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for (i, searcher) in searchers.into_iter().enumerate() {
        let answer = searcher.await.expect("no panic in a searcher").unwrap();
        check(i, &answer);
        answers.push(answer);
    }

    // The sync search on the same data gives the same hits, to the bit.
    #[cfg(feature = "pg")]
    {
        let url = db.url.clone();
        let sync: Vec<Vec<Hit>> = tokio::task::spawn_blocking(move || {
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            asks(N_DOCS, SEED, 48)
                .iter()
                .map(|ask| spec().search(&ask.q).k(ask.k).filter_eq("lang", ask.lang).run(&mut conn).unwrap())
                .collect()
        })
        .await
        .unwrap();
        for (i, (sync, answer)) in sync.iter().zip(&answers).enumerate() {
            assert_eq!(sync, &answer.0, "searcher {i}: the sync search");
        }
    }
}

#[derive(QueryableByName, Debug)]
struct Session {
    #[diesel(sql_type = Bool)]
    outside_transaction: bool,
    #[diesel(sql_type = Text)]
    seqscan: String,
    #[diesel(sql_type = Nullable<Text>)]
    ef_search: Option<String>,
}

/// Whether the session is outside any transaction (a setting made for the current transaction only is
/// gone at the next statement), with the planner and pgvector at their defaults.
async fn session(conn: &mut AsyncPgConnection) -> Session {
    conn.batch_execute("SELECT set_config('dv_test.probe', 'set', true)").await.unwrap();
    diesel::sql_query(
        "SELECT coalesce(current_setting('dv_test.probe', true), '') <> 'set' AS outside_transaction, \
         current_setting('enable_seqscan') AS seqscan, current_setting('hnsw.ef_search', true) AS ef_search",
    )
    .get_result(conn)
    .await
    .unwrap()
}

#[track_caller]
fn assert_clean(session: &Session, what: &str) {
    assert!(session.outside_transaction, "{what}: no transaction left open: {session:?}");
    assert_eq!(session.seqscan, "on", "{what}: the search's SET LOCAL ended with its transaction");
    assert!(matches!(session.ef_search.as_deref(), None | Some("40")), "{what}: {session:?}");
}

/// `documents` with its vector index's migration and `n` documents of `seed`.
async fn indexed_documents(conn: &mut AsyncPgConnection, n: usize, seed: u64) {
    conn.batch_execute(fixture::PG_TABLE).await.unwrap();
    conn.batch_execute(&migration().pg_up).await.unwrap();
    for doc in &fixture::docs(n, seed) {
        insert!(&mut *conn, doc).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_dropped_at_any_point_leaves_the_pooled_connection_usable() {
    let db = FreshDb::create().await;
    {
        let mut conn = db.conn().await;
        indexed_documents(&mut conn, 200, 3).await;
        conn.batch_execute("ANALYZE documents").await.unwrap();
    }
    let pool = pool(&db.url, 1);
    let q = fixture::queries(3, 200, 1).remove(0);
    let spec = spec();
    let search = spec.search(&q).k(5).filter_eq("lang", "en");
    let expected = search.run_async(&mut *pool.get().await.unwrap()).await.unwrap();

    // Dropped after its first poll, then later and later: during the set-up, the query, the commit.
    let mut dropped = 0;
    for micros in [0, 20, 50, 100, 200, 300, 500, 800, 1200, 2000, 3000, 5000] {
        let mut conn = pool.get().await.unwrap();
        match tokio::time::timeout(Duration::from_micros(micros), search.run_async(&mut *conn)).await {
            Err(_) => dropped += 1,
            Ok(hits) => assert_eq!(hits.unwrap(), expected),
        }
        drop(conn);
        let mut conn = pool.get().await.unwrap();
        assert_clean(&session(&mut conn).await, &format!("dropped after {micros} µs"));
        assert_eq!(search.run_async(&mut *conn).await.unwrap(), expected, "dropped after {micros} µs");
    }
    assert!(dropped > 0, "at least one search was dropped half way");

    // Dropped while its query waits for a lock another session holds: the rollback runs once the
    // statement in flight ends, before the connection's next user.
    let mut locker = db.conn().await;
    locker.batch_execute("BEGIN; LOCK TABLE documents IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let mut conn = pool.get().await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_millis(300), search.run_async(&mut *conn)).await;
    assert!(blocked.is_err(), "the search waited for the lock");
    drop(conn);
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        locker.batch_execute("COMMIT").await.unwrap();
    });
    let mut conn = pool.get().await.unwrap();
    assert_clean(&session(&mut conn).await, "dropped while waiting for a lock");
    assert_eq!(search.run_async(&mut *conn).await.unwrap(), expected);
    release.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_dropped_at_any_point_leaves_a_plain_connection_usable() {
    // Trial 7: dropped while diesel-async's own `BEGIN` was in flight, a search left its transaction manager
    // marked as cancelled, and the next search on the same (unpooled) connection panicked in a debug build.
    let db = FreshDb::create().await;
    let mut conn = db.conn().await;
    indexed_documents(&mut conn, 200, 3).await;
    let q = fixture::queries(3, 200, 1).remove(0);
    let spec = spec();
    let search = spec.search(&q).k(5).filter_eq("lang", "en");
    let expected = search.run_async(&mut conn).await.unwrap();
    let mut dropped = 0;
    for micros in (0..150).map(|i| i * 10) {
        if tokio::time::timeout(Duration::from_micros(micros), search.run_async(&mut conn)).await.is_err() {
            dropped += 1;
        }
        assert_clean(&session(&mut conn).await, &format!("dropped after {micros} µs"));
        assert_eq!(search.run_async(&mut conn).await.unwrap(), expected, "dropped after {micros} µs");
    }
    assert!(dropped > 0, "at least one search was dropped half way");
}

/// The bad searches, in order: wrong dimensions, a zero query under cosine, `k = 0`, a table that does
/// not exist, a filter on a column that does not exist, a filter value of the wrong type, a typed
/// partition on a column that is not one.
macro_rules! bad_searches {
    ($conn:expr) => {{
        let short = Vector::new(vec![1.0, 2.0, 3.0]).unwrap();
        let zero = Vector::new(vec![0.0; DIMS]).unwrap();
        let q = Vector::new(vec![0.5; DIMS]).unwrap();
        let spec = spec();
        let nowhere = IndexSpec::builder("nowhere", "embedding", DIMS as u64).build().unwrap();
        vec![
            spec.search(&short).run_async($conn).await,
            spec.search(&zero).run_async($conn).await,
            spec.search(&q).k(0).run_async($conn).await,
            nowhere.search(&q).run_async($conn).await,
            spec.search(&q).filter_eq("colour", "red").run_async($conn).await,
            spec.search(&q).filter_eq("year", "recent").run_async($conn).await,
            DOCUMENTS.search(&q).partition(documents::year, 2020).run_async($conn).await,
        ]
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_an_error_of_the_async_search_as_on_the_sync_path() {
    let db = FreshDb::create().await;
    let mut conn = db.conn().await;
    indexed_documents(&mut conn, 20, 5).await;
    let errors = tokio::spawn(async move {
        let errors = bad_searches!(&mut conn);
        let q = fixture::queries(5, 20, 1).remove(0);
        let still_works = spec().search(&q).k(3).run_async(&mut conn).await.map(|h| h.len());
        (errors, still_works)
    })
    .await
    .expect("errors, not a panic in the task");
    let (errors, still_works) = errors;
    check_bad_searches(&errors, true);
    assert_eq!(still_works.unwrap(), 3, "the connection searches after the errors");

    #[cfg(feature = "pg")]
    {
        let url = db.url.clone();
        let sync = tokio::task::spawn_blocking(move || {
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            sync_bad_searches(&mut conn)
        })
        .await
        .unwrap();
        let text = |e: &[Result<Vec<Hit>, SearchError>]| e.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>();
        assert_eq!(text(&errors), text(&sync), "the same errors as the sync search");
    }

    // A database without pgvector: the search's error, not a panic.
    let bare = FreshDb::create().await;
    let mut conn = bare.conn().await;
    conn.batch_execute(fixture::PG_TABLE).await.unwrap();
    let missing = tokio::spawn(async move {
        let q = Vector::new(vec![0.5; DIMS]).unwrap();
        spec().search(&q).k(3).run_async(&mut conn).await
    })
    .await
    .expect("an error, not a panic in the task");
    match missing {
        Err(e @ SearchError::Query(_)) => assert!(e.to_string().contains("vector"), "{e}"),
        Err(SearchError::UnknownColumn { column, .. }) => assert_eq!(column, "embedding"),
        other => panic!("expected an error naming the missing vector type or column, got {other:?}"),
    }
}

#[cfg(feature = "pg")]
fn sync_bad_searches(conn: &mut diesel::PgConnection) -> Vec<Result<Vec<Hit>, SearchError>> {
    let short = Vector::new(vec![1.0, 2.0, 3.0]).unwrap();
    let zero = Vector::new(vec![0.0; DIMS]).unwrap();
    let q = Vector::new(vec![0.5; DIMS]).unwrap();
    let spec = spec();
    let nowhere = IndexSpec::builder("nowhere", "embedding", DIMS as u64).build().unwrap();
    vec![
        spec.search(&short).run(conn),
        spec.search(&zero).run(conn),
        spec.search(&q).k(0).run(conn),
        nowhere.search(&q).run(conn),
        spec.search(&q).filter_eq("colour", "red").run(conn),
        spec.search(&q).filter_eq("year", "recent").run(conn),
        DOCUMENTS.search(&q).partition(documents::year, 2020).run(conn),
    ]
}

#[track_caller]
fn check_bad_searches(errors: &[Result<Vec<Hit>, SearchError>], postgres: bool) {
    assert_eq!(errors.len(), 7);
    let mut errors = errors.iter().map(|r| r.as_ref().expect_err("an error"));
    assert!(matches!(errors.next(), Some(SearchError::InvalidQuery(_))));
    assert!(matches!(errors.next(), Some(SearchError::ZeroQuery)));
    assert!(matches!(errors.next(), Some(SearchError::InvalidK)));
    assert!(
        matches!(errors.next(), Some(SearchError::UnknownTable { table, postgres: p }) if table == "nowhere" && *p == postgres)
    );
    assert!(matches!(errors.next(), Some(SearchError::UnknownColumn { column, .. }) if column == "colour"));
    assert!(matches!(errors.next(), Some(SearchError::FilterValue { column, .. }) if column == "year"));
    assert!(matches!(errors.next(), Some(SearchError::NotAPartitionColumn { column, .. }) if column == "year"));
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::future::Future as _;

    use diesel_vector::sqlite::{self, AsyncSqliteConnection};

    use super::*;

    async fn open(path: &str) -> AsyncSqliteConnection {
        sqlite::establish_async(path).await.unwrap()
    }

    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        timeout: i64,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tasks_search_through_the_sqlite_wrapper_as_the_exact_scan_and_the_sync_search_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db").to_str().unwrap().to_owned();
        let mut conn = open(&path).await;
        conn.batch_execute(fixture::SQLITE_TABLE).await.unwrap();
        conn.batch_execute(&migration().sqlite_up).await.unwrap();
        let docs = fixture::docs(N_DOCS / 2, SEED);

        // 24 writers on connections of their own: each search finds the writer's new document first,
        // through vec0 brought up to date or, while another writer holds the lock, vec0 plus the queue.
        let writers: Vec<_> = docs
            .chunks(N_DOCS / 48)
            .map(|chunk| {
                let (path, chunk) = (path.clone(), chunk.to_vec());
                tokio::spawn(async move {
                    let mut conn = open(&path).await;
                    for doc in &chunk {
                        insert!(&mut conn, doc).unwrap();
                        let Some(v) = doc.embedding.as_ref().filter(|v| v.as_slice().iter().any(|x| *x != 0.0)) else {
                            continue;
                        };
                        let hits = spec().search(v).k(1).filter_eq("lang", doc.lang).run_async(&mut conn).await?;
                        assert_eq!(search::ids(&hits), [doc.id], "a document is its own nearest");
                    }
                    Ok::<_, SearchError>(chunk.len())
                })
            })
            .collect();
        let mut written = 0;
        for writer in writers {
            written += writer.await.expect("no panic in a writer").unwrap();
        }
        assert_eq!(written, N_DOCS / 2);

        let searchers: Vec<_> = asks(N_DOCS / 2, SEED, 24)
            .into_iter()
            .map(|ask| {
                let path = path.clone();
                tokio::spawn(async move {
                    let mut conn = open(&path).await;
                    answer!(&mut conn, &ask)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for (i, searcher) in searchers.into_iter().enumerate() {
            let answer = searcher.await.expect("no panic in a searcher").unwrap();
            check(i, &answer);
            answers.push(answer);
        }
        // The searches brought the index up to date (only sqlite-vec keeps vec0).
        #[cfg(feature = "sqlite-vec")]
        assert!(sqlite::status_async(&mut conn, &spec()).await.unwrap().is_up_to_date());

        let sync: Vec<Vec<Hit>> = tokio::task::spawn_blocking(move || {
            let mut conn = sqlite::establish(&path).unwrap();
            asks(N_DOCS / 2, SEED, 24)
                .iter()
                .map(|ask| spec().search(&ask.q).k(ask.k).filter_eq("lang", ask.lang).run(&mut conn).unwrap())
                .collect()
        })
        .await
        .unwrap();
        for (i, (sync, answer)) in sync.iter().zip(&answers).enumerate() {
            assert_eq!(sync, &answer.0, "searcher {i}: the sync search");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_input_is_an_error_of_the_async_search_on_sqlite_and_stored_nan_is_skipped() {
        let mut conn = open(":memory:").await;
        conn.batch_execute(fixture::SQLITE_TABLE).await.unwrap();
        conn.batch_execute(&migration().sqlite_up).await.unwrap();
        for doc in &fixture::docs(20, 5) {
            insert!(&mut conn, doc).unwrap();
        }
        let (errors, nan_search) = tokio::spawn(async move {
            let errors = bad_searches!(&mut conn);
            // Another writer stored a NaN where the CHECK only looks at the BLOB's length.
            let mut nan = vec![0u8; DIMS * 4];
            nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            diesel::sql_query("UPDATE documents SET embedding = ? WHERE id = 7")
                .bind::<diesel::sql_types::Binary, _>(nan)
                .execute(&mut conn)
                .await
                .unwrap();
            let q = Vector::new(vec![0.5; DIMS]).unwrap();
            let nan_search = spec().search(&q).k(20).run_async(&mut conn).await;
            (errors, nan_search)
        })
        .await
        .expect("errors, not a panic in the task");
        check_bad_searches(&errors, false);
        let hits = nan_search.unwrap();
        assert!(!search::ids(&hits).contains(&7), "the NaN row is skipped: {hits:?}");
        assert!(hits.iter().all(|h| h.distance.is_finite()));
        assert!(!hits.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_sqlite_search_finishes_its_index_sync_and_puts_the_busy_timeout_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db").to_str().unwrap().to_owned();
        let mut conn = open(&path).await;
        conn.batch_execute(fixture::SQLITE_TABLE).await.unwrap();
        conn.batch_execute(&migration().sqlite_up).await.unwrap();
        // Batches of 4 rows until a search was dropped while its blocking call ran (at least 5 batches):
        // on a loaded machine the blocking thread can finish before the first poll returns.
        let docs = fixture::docs(400, 9);
        for doc in &docs[..100] {
            insert!(&mut conn, doc).unwrap();
        }
        // With sqlite-vec, each search has queued rows to apply to vec0 first; without, it scans.
        #[cfg(feature = "sqlite-vec")]
        sqlite::sync_async(&mut conn, &spec()).await.unwrap();
        let q = fixture::queries(9, 400, 1).remove(0);
        let spec = spec();
        let search = spec.search(&q).k(5).filter_eq("lang", "en");
        let mut dropped = 0;
        let mut batches = 0;
        for batch in docs[100..].chunks(4) {
            if batches >= 5 && dropped > 0 {
                break;
            }
            batches += 1;
            for doc in batch {
                insert!(&mut conn, doc).unwrap();
            }
            #[cfg(feature = "sqlite-vec")]
            assert_eq!(sqlite::status_async(&mut conn, &spec).await.unwrap().pending_changes, 4);
            {
                // Polled once (the blocking call starts), then dropped. (On a loaded machine the blocking
                // thread may finish before the first poll returns: then nothing was dropped.)
                let mut future = std::pin::pin!(search.run_async(&mut conn));
                let first = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await;
                match first {
                    std::task::Poll::Pending => dropped += 1,
                    std::task::Poll::Ready(hits) => assert_eq!(hits.unwrap().len(), 5),
                }
            }
            // The blocking call went on: the queue is applied, the busy timeout back at the connection's.
            #[cfg(feature = "sqlite-vec")]
            {
                let status = sqlite::status_async(&mut conn, &spec).await.unwrap();
                assert!(status.is_up_to_date(), "{status:?}");
            }
            let timeout: Timeout = diesel::sql_query("PRAGMA busy_timeout").get_result(&mut conn).await.unwrap();
            assert_eq!(timeout.timeout, 5000);
        }
        assert!(dropped > 0, "at least one search of {batches} was dropped while its blocking call ran");
        let expected = exact!(&mut conn, &q, "en", 0, 5);
        assert_same(&search.run_async(&mut conn).await.unwrap(), &expected, "after the dropped search");
    }
}

/// The crate's own `fragment_embeddings` search, `Search::run_async`, on both async connections.
mod fragments {
    use diesel_vector::models::NewFragmentEmbedding;
    use diesel_vector::schema::{fragment_embeddings, fragments};
    use diesel_vector::search::Search;

    use super::*;

    fn unit(i: usize) -> Vector {
        Vector::new((0..1536).map(|j| if j == i { 1.0 } else { 0.1 }).collect()).unwrap()
    }

    macro_rules! fragments_search {
        ($conn:expr) => {{
            diesel_vector::migrations::run_pending_migrations_async($conn).await.unwrap();
            let mut ids = Vec::new();
            for i in 0..4 {
                let fragment: i64 = diesel::insert_into(fragments::table)
                    .values(fragments::content.eq(format!("fragment {i}")))
                    .returning(fragments::id)
                    .get_result($conn)
                    .await
                    .unwrap();
                let v = unit(i);
                diesel::insert_into(fragment_embeddings::table)
                    .values(NewFragmentEmbedding::new(fragment, "openai", "small", &v, "hash"))
                    .execute($conn)
                    .await
                    .unwrap();
                ids.push(fragment);
            }
            let q = unit(1);
            let all = Search::new("openai", "small", &q).k(2).run_async($conn).await.unwrap();
            assert_eq!(all.iter().map(|n| n.fragment_id).collect::<Vec<_>>()[0], ids[1]);
            assert_eq!(all.len(), 2);
            let among = [ids[2], ids[3]];
            let some = Search::new("openai", "small", &q).k(2).fragment_ids(&among).run_async($conn).await.unwrap();
            let mut found: Vec<i64> = some.iter().map(|n| n.fragment_id).collect();
            found.sort_unstable();
            assert_eq!(found, among);
            let other_model = Search::new("openai", "large", &q).run_async($conn).await.unwrap();
            assert!(other_model.is_empty());
        }};
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_crates_own_search_runs_on_async_pg_connection() {
        let db = FreshDb::create().await;
        let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
        fragments_search!(&mut conn);
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_crates_own_search_runs_on_the_sqlite_wrapper() {
        let mut conn = diesel_vector::sqlite::establish_async(":memory:").await.unwrap();
        fragments_search!(&mut conn);
    }
}

/// Each async search logs the same `search` event as a sync one (backend, index, path, rows), on the
/// thread that awaits it.
mod telemetry {
    use super::*;

    fn field<'e>(events: &'e [String], name: &str) -> Vec<&'e str> {
        let prefix = format!("{name}=");
        events
            .iter()
            .filter(|e| e.starts_with("INFO diesel_vector::search"))
            .filter_map(|e| e.split(' ').find_map(|f| f.strip_prefix(prefix.as_str())))
            .collect()
    }

    #[test]
    fn an_async_search_on_postgresql_logs_its_path() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let db = runtime.block_on(FreshDb::create());
        let (hits, events) = crate::common::telemetry::capture(|| {
            runtime.block_on(async {
                let mut conn = db.conn().await;
                conn.batch_execute(fixture::PG_TABLE).await.unwrap();
                conn.batch_execute(&migration().pg_up).await.unwrap();
                for doc in &fixture::docs(40, 8) {
                    insert!(&mut conn, doc).unwrap();
                }
                let q = fixture::queries(8, 40, 1).remove(0);
                spec().search(&q).k(3).filter_eq("lang", "en").run_async(&mut conn).await.unwrap()
            })
        });
        assert_eq!(hits.len(), 3);
        assert_eq!(field(&events, "backend"), ["postgresql"], "{events:?}");
        assert_eq!(field(&events, "path"), ["hnsw"], "{events:?}");
        assert_eq!(field(&events, "rows"), ["3"], "{events:?}");
        drop(runtime);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn an_async_search_through_the_sqlite_wrapper_logs_its_path() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (hits, events) = crate::common::telemetry::capture(|| {
            runtime.block_on(async {
                let mut conn = diesel_vector::sqlite::establish_async(":memory:").await.unwrap();
                conn.batch_execute(fixture::SQLITE_TABLE).await.unwrap();
                conn.batch_execute(&migration().sqlite_up).await.unwrap();
                for doc in &fixture::docs(40, 8) {
                    insert!(&mut conn, doc).unwrap();
                }
                let q = fixture::queries(8, 40, 1).remove(0);
                spec().search(&q).k(3).filter_eq("lang", "en").run_async(&mut conn).await.unwrap()
            })
        });
        assert_eq!(hits.len(), 3);
        assert_eq!(field(&events, "backend"), ["sqlite"], "{events:?}");
        // vec0, brought up to date by the search itself, with sqlite-vec; an exact scan without it.
        let expected = if cfg!(feature = "sqlite-vec") { "vec0" } else { "exact_scan" };
        assert_eq!(field(&events, "path"), [expected], "{events:?}");
    }
}

#[tokio::test]
async fn a_partition_index_is_built_searched_and_dropped_on_an_async_connection() {
    use diesel_vector::pg;
    let db = FreshDb::create().await;
    let pool = pool(&db.url, 1);
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(fixture::PG_TABLE).await.unwrap();
    conn.batch_execute(&migration().pg_up).await.unwrap();
    for doc in &fixture::docs(300, 5) {
        insert!(&mut *conn, doc).unwrap();
    }
    let spec = spec();
    let name = pg::create_partition_index_async(&mut conn, &spec, "lang", "fr").await.unwrap();
    assert_eq!(Some(name), pg::partition_index_name(&spec, "lang", &"fr".into()));
    let q = fixture::queries(5, 300, 1).remove(0);
    let search = || spec.search(&q).k(5).filter_eq("lang", "fr");
    let hits = search().run_async(&mut *conn).await.unwrap();
    let exact = search().strategy(Strategy::Exact).run_async(&mut *conn).await.unwrap();
    assert_eq!(search::ids(&hits), search::ids(&exact));
    assert!(hits.iter().all(|h| h.id % 5 == 0));
    assert!(pg::drop_partition_index_async(&mut conn, &spec, "lang", "fr").await.unwrap());
    assert!(!pg::drop_partition_index_async(&mut conn, &spec, "lang", "fr").await.unwrap());
}
