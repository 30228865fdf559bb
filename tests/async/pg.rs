//! PostgreSQL through diesel-async's `AsyncPgConnection`.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Text};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::FileBasedMigrations;
use diesel_vector::migrations::{self, MigrationError, Outcome};
use diesel_vector::{Vector, VectorExpressionMethods};

use crate::common::{self, app};
use crate::documents;

/// A database of its own, created and dropped through `AsyncPgConnection` (this binary links no libpq).
pub struct FreshDb {
    pub url: String,
    name: String,
}

impl FreshDb {
    pub async fn create() -> Self {
        Self::owned_by(None).await
    }

    pub async fn owned_by(owner: Option<&str>) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("dv_async_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut admin = AsyncPgConnection::establish(&common::pg_url()).await.unwrap();
        let owner = owner.map(|o| format!(" OWNER {o}")).unwrap_or_default();
        admin.batch_execute(&format!("CREATE DATABASE {name}{owner}")).await.unwrap();
        Self { url: with_database(&common::pg_url(), &name), name }
    }

    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url).await.unwrap()
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        // No async drop: a thread of its own with a runtime of its own drops the database.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&common::pg_url()).await {
                    let _ = admin.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    match query {
        Some(q) => format!("{scheme}://{host}/{database}?{q}"),
        None => format!("{scheme}://{host}/{database}"),
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).await.unwrap().n
}

pub fn pool(url: &str, size: usize) -> Pool<AsyncPgConnection> {
    Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url)).max_size(size).build().unwrap()
}

/// A document's vector: one per `i`, none equal to another.
fn vector(i: usize) -> Vector {
    common::smooth(768, i as f32 * 0.37)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dozens_of_tasks_on_a_deadpool_write_and_search_their_documents() {
    let db = FreshDb::create().await;
    let dirs = app::write();
    let pool = pool(&db.url, 8);
    {
        let mut conn = pool.get().await.unwrap();
        let source = FileBasedMigrations::from_path(&dirs.pg).unwrap();
        let applied = migrations::run_pending_migrations_from_async(&mut *conn, &source).await.unwrap();
        assert_eq!(
            applied.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            [app::CREATE_DOCUMENTS, app::CREATE_INDEX]
        );
    }

    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                let v = vector(i);
                let id: i64 = diesel::insert_into(documents::table)
                    .values((
                        documents::lang.eq(crate::lang(i)),
                        documents::title.eq(format!("title {i}")),
                        documents::body.eq(format!("body {i}")),
                        documents::embedding.eq(&v),
                    ))
                    .returning(documents::id)
                    .get_result(&mut conn)
                    .await?;
                let nearest: Vec<(i64, Option<f64>)> = documents::table
                    .filter(documents::lang.eq(crate::lang(i)))
                    .select((documents::id, documents::embedding.cosine_distance(&v)))
                    .order(documents::embedding.cosine_distance(&v))
                    .limit(3)
                    .load(&mut conn)
                    .await?;
                let back: Vector =
                    documents::table.find(id).select(documents::embedding.assume_not_null()).first(&mut conn).await?;
                QueryResult::Ok((id, nearest, back == v))
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let (id, nearest, round_trip) = task.await.unwrap().unwrap();
        assert!(round_trip, "document {id} read back bit-exact");
        assert_eq!(nearest[0].0, id, "a document is its own nearest neighbour: {nearest:?}");
        assert!(nearest[0].1.unwrap().abs() < 1e-6);
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 48);
    let mut conn = pool.get().await.unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM documents WHERE embedding IS NOT NULL").await, 48);
    let specs = diesel_vector::index::registry::load_async(&mut *conn).await.unwrap();
    assert_eq!(specs, [app::spec()]);
    let status = diesel_vector::pg::status_async(&mut conn, &app::spec()).await.unwrap();
    assert_eq!((status.method.as_deref(), status.valid, status.rows), (Some("hnsw"), true, 48));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_migrators_apply_each_migration_once() {
    let db = FreshDb::create().await;
    let dirs = app::write();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (url, dir) = (db.url.clone(), dirs.pg.clone());
            tokio::spawn(async move {
                let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
                let own = migrations::run_pending_migrations_async(&mut conn).await?;
                let source = FileBasedMigrations::from_path(&dir).unwrap();
                let app = migrations::run_pending_migrations_from_async(&mut conn, &source).await?;
                Ok::<_, MigrationError>((own, app))
            })
        })
        .collect();
    let (mut own, mut app_applied) = (Vec::new(), Vec::new());
    for task in tasks {
        let (o, a) = task.await.unwrap().unwrap();
        own.extend(o);
        app_applied.extend(a);
    }
    assert_eq!(own.len(), 3, "the crate's three migrations, once each: {own:?}");
    assert_eq!(app_applied.len(), 2, "the application's two, once each: {app_applied:?}");
    assert!(own.iter().chain(&app_applied).all(|m| m.outcome == Outcome::Applied));
    let mut conn = db.conn().await;
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM __diesel_schema_migrations").await, 5);
    let status = migrations::migration_status_async(&mut conn).await.unwrap();
    assert!(status.iter().all(|m| m.applied), "{status:?}");
}

/// Advisory locks held in the current database.
const ADVISORY_LOCKS: &str = "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The application's migrations plus a slow third one that creates a table, sleeps, creates another.
fn slow_app() -> app::AppDirs {
    let dirs = app::write();
    app::add(
        &dirs.pg,
        "2026-01-01-000002_slow",
        "CREATE TABLE half_done (id integer); SELECT pg_sleep(2); CREATE TABLE slow_done (id integer);",
        "DROP TABLE slow_done; DROP TABLE half_done;",
    );
    dirs
}

#[derive(QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    state: String,
}

async fn backend_pid(conn: &mut AsyncPgConnection) -> i32 {
    diesel::sql_query("SELECT pg_backend_pid() AS pid, 'active' AS state")
        .get_result::<Backend>(conn)
        .await
        .unwrap()
        .pid
}

/// Waits until backend `pid` runs `pg_sleep` (`sleeping`), or is idle outside any transaction.
async fn wait_for(observer: &mut AsyncPgConnection, pid: i32, sleeping: bool) {
    for _ in 0..600 {
        let row: Option<Backend> = diesel::sql_query(
            "SELECT pid, CASE WHEN query LIKE '%pg_sleep%' AND state = 'active' THEN 'sleeping' ELSE state END AS state \
             FROM pg_stat_activity WHERE pid = $1",
        )
        .bind::<Integer, _>(pid)
        .get_result(observer)
        .await
        .optional()
        .unwrap();
        let state = row.map(|r| r.state).unwrap_or_default();
        if (sleeping && state == "sleeping") || (!sleeping && state == "idle") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("backend {pid} never became {}", if sleeping { "busy with the slow migration" } else { "idle" });
}

/// Starts the slow migration run on `victim`, drops its future while the slow migration sleeps, and
/// checks from `observer` that the run's transaction was rolled back and its lock released.
async fn cancel_during_the_slow_migration(
    victim: &mut AsyncPgConnection,
    observer: &mut AsyncPgConnection,
    dir: &std::path::Path,
) {
    let pid = backend_pid(victim).await;
    let source = FileBasedMigrations::from_path(dir).unwrap();
    tokio::select! {
        result = migrations::run_pending_migrations_from_async(victim, &source) => {
            panic!("the run should have been cancelled during the slow migration, it returned {result:?}")
        }
        () = wait_for(observer, pid, true) => {}
    }
    // The server finishes the statement in flight, then the queued ROLLBACK and unlock run.
    wait_for(observer, pid, false).await;
    assert_eq!(count(observer, ADVISORY_LOCKS).await, 0, "no lock left");
    assert_eq!(
        count(observer, "SELECT count(*) AS n FROM pg_class WHERE relname IN ('half_done', 'slow_done')").await,
        0
    );
    assert_eq!(
        count(observer, "SELECT count(*) AS n FROM __diesel_schema_migrations WHERE version = '20260101000002'").await,
        0,
        "the slow migration is not recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_run_leaves_no_half_applied_migration_and_no_lock_for_the_next_pooled_connection() {
    let db = FreshDb::create().await;
    let dirs = slow_app();
    let pool = pool(&db.url, 2);
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    cancel_during_the_slow_migration(&mut a, &mut b, &dirs.pg).await;
    drop(a);

    // Another pooled connection migrates at once: the lock is free, the slow migration runs whole, once.
    let source = FileBasedMigrations::from_path(&dirs.pg).unwrap();
    let applied =
        tokio::time::timeout(Duration::from_secs(30), migrations::run_pending_migrations_from_async(&mut *b, &source))
            .await
            .expect("no stuck lock")
            .unwrap();
    assert_eq!(applied.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["2026-01-01-000002_slow"]);
    assert_eq!(
        count(&mut b, "SELECT count(*) AS n FROM pg_class WHERE relname IN ('half_done', 'slow_done')").await,
        2
    );

    // The cancelled connection is back in the pool in order: no transaction open, transactions work.
    let mut a = pool.get().await.unwrap();
    a.transaction::<_, diesel::result::Error, _>(async |conn| {
        conn.batch_execute("CREATE TABLE after_cancel (id integer)").await?;
        Ok(())
    })
    .await
    .unwrap();
    let in_transaction: Vec<Backend> = diesel::sql_query(
        "SELECT pid, state FROM pg_stat_activity \
             WHERE state LIKE 'idle in transaction%' AND datname = current_database()",
    )
    .load(&mut a)
    .await
    .unwrap();
    assert!(in_transaction.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_run_on_a_pool_of_one_is_cleaned_up_before_the_connection_is_used_again() {
    let db = FreshDb::create().await;
    let dirs = slow_app();
    let pool = pool(&db.url, 1);
    let mut observer = db.conn().await;
    let mut conn = pool.get().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    let source = FileBasedMigrations::from_path(&dirs.pg).unwrap();
    tokio::select! {
        result = migrations::run_pending_migrations_from_async(&mut *conn, &source) => panic!("not cancelled: {result:?}"),
        () = wait_for(&mut observer, pid, true) => {}
    }
    drop(conn);
    // The same connection, at once, while the server still sleeps: its queries queue behind the
    // rollback and the unlock.
    let mut conn = pool.get().await.unwrap();
    assert_eq!(backend_pid(&mut conn).await, pid);
    let applied = migrations::run_pending_migrations_from_async(&mut *conn, &source).await.unwrap();
    assert_eq!(applied.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["2026-01-01-000002_slow"]);
    assert_eq!(count(&mut observer, ADVISORY_LOCKS).await, 0);
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgvector_that_may_not_be_created_is_an_error_of_the_async_call_and_nothing_is_written() {
    let role = format!("dv_async_plain_{}", std::process::id());
    let mut admin = AsyncPgConnection::establish(&common::pg_url()).await.unwrap();
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw' NOSUPERUSER"))
        .await
        .unwrap();
    let db = FreshDb::owned_by(Some(&role)).await;
    let url = {
        let (scheme, rest) = db.url.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        format!("{scheme}://{role}:pw@{host}")
    };
    let error = tokio::spawn(async move {
        let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
        let result = migrations::run_pending_migrations_async(&mut conn).await;
        let tables: Exists = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public') AS exists",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        (result, tables.exists)
    })
    .await
    .expect("an error, not a panic in the task");
    match error {
        (Err(MigrationError::PgvectorNotCreated { role: r, .. }), false) => assert_eq!(r, role),
        other => panic!("expected PgvectorNotCreated and no table, got {other:?}"),
    }
    drop(db);
    admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_dimensions_and_nan_are_errors_of_the_async_calls() {
    let db = FreshDb::create().await;
    let dirs = app::write();
    let mut conn = db.conn().await;
    let source = FileBasedMigrations::from_path(&dirs.pg).unwrap();
    migrations::run_pending_migrations_from_async(&mut conn, &source).await.unwrap();
    let url = db.url.clone();
    let (dims, nan, count_after) = tokio::spawn(async move {
        let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
        let short = Vector::new(vec![1.0, 2.0, 3.0]).unwrap();
        let dims = diesel::insert_into(documents::table)
            .values((
                documents::lang.eq("en"),
                documents::title.eq("t"),
                documents::body.eq("b"),
                documents::embedding.eq(&short),
            ))
            .execute(&mut conn)
            .await;
        let nan = diesel::sql_query(
            "INSERT INTO documents (lang, title, body, embedding) VALUES ('en', 't', 'b', '[NaN]'::vector(768))",
        )
        .execute(&mut conn)
        .await;
        (dims, nan, count(&mut conn, "SELECT count(*) AS n FROM documents").await)
    })
    .await
    .expect("errors, not a panic in the task");
    let dims = dims.unwrap_err().to_string();
    assert!(dims.contains("expected 768 dimensions, not 3"), "{dims}");
    let nan = nan.unwrap_err().to_string();
    assert!(nan.contains("NaN not allowed in vector"), "{nan}");
    assert_eq!(count_after, 0, "nothing written");
    assert!(Vector::new(vec![f32::NAN]).is_err(), "a NaN query vector cannot even be built");
}

#[tokio::test]
async fn the_runner_works_on_a_current_thread_runtime() {
    let db = FreshDb::create().await;
    let mut conn = db.conn().await;
    assert_eq!(migrations::run_pending_migrations_async(&mut conn).await.unwrap().len(), 3);
    assert_eq!(
        migrations::redo_last_migration_async(&mut conn).await.unwrap().as_deref(),
        Some("2025-01-01-000003_register_fragment_embeddings_index")
    );
    assert!(migrations::run_pending_migrations_async(&mut conn).await.unwrap().is_empty());
}
