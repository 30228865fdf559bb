//! SQLite through diesel-async (feature `async`): [`AsyncSqliteConnection`], diesel-async's
//! `SyncConnectionWrapper<SqliteConnection>`, which runs each call on tokio's blocking pool.
//!
//! The `_async` functions run their sync twin there, whole: an index sync is one immediate transaction
//! on the blocking thread, exactly as on a sync connection, and the async caller's thread never waits for
//! SQLite. A future dropped half way does not stop the work: diesel-async waits for the blocking call to
//! end when its future is dropped (on a multi-thread runtime; on a current-thread runtime that wait
//! panics, inside diesel-async, for every query alike).

use std::future::Future;

use diesel::{ConnectionError, SqliteConnection};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use diesel_async::AsyncConnection;

use super::connection::ConnectionOptions;
use super::extension::register_sqlite_vec;
use super::index::{IndexError, IndexStatus, SyncReport};
use crate::index::IndexSpec;

/// diesel-async's SQLite connection: a [`SqliteConnection`] whose calls run on tokio's blocking pool.
/// Open it with [`establish_async`] (or [`ConnectionOptions::establish_async`]) to get the crate's set-up.
pub type AsyncSqliteConnection = SyncConnectionWrapper<SqliteConnection>;

impl ConnectionOptions {
    /// [`ConnectionOptions::establish`] for diesel-async: registers sqlite-vec (when compiled in), opens
    /// `database_url` and applies these options, on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`ConnectionOptions::establish`].
    pub fn establish_async(
        &self,
        database_url: &str,
    ) -> impl Future<Output = Result<AsyncSqliteConnection, ConnectionError>> + Send + 'static {
        let (options, url) = (self.clone(), database_url.to_owned());
        async move {
            register_sqlite_vec().map_err(|rc| {
                ConnectionError::BadConnection(format!("could not register sqlite-vec (SQLite error code {rc})"))
            })?;
            let mut conn = AsyncSqliteConnection::establish(&url).await?;
            conn.spawn_blocking(move |conn| options.apply(conn))
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
    }
}

/// [`establish`](super::establish) for diesel-async: an [`AsyncSqliteConnection`] with the default
/// [`ConnectionOptions`] (sqlite-vec registered when compiled in, foreign keys on, a 5 s busy timeout,
/// WAL for file databases).
///
/// # Errors
///
/// As [`establish`](super::establish).
pub fn establish_async(
    database_url: &str,
) -> impl Future<Output = Result<AsyncSqliteConnection, ConnectionError>> + Send + 'static {
    ConnectionOptions::default().establish_async(database_url)
}

/// Runs `job` on the wrapper's blocking thread with its own copy of `spec`.
fn blocking<'c, S, T>(
    conn: &'c mut SyncConnectionWrapper<SqliteConnection, S>,
    spec: &IndexSpec,
    job: fn(&mut SqliteConnection, &IndexSpec) -> Result<T, IndexError>,
) -> impl Future<Output = Result<T, IndexError>> + Send + 'c
where
    S: SpawnBlocking + Send,
    T: Send + 'static,
{
    let spec = spec.clone();
    let future = conn.spawn_blocking(move |conn| Ok(job(conn, &spec)));
    async move { future.await? }
}

/// [`sync`](super::sync) on an [`AsyncSqliteConnection`].
///
/// # Errors
///
/// As [`sync`](super::sync).
pub fn sync_async<'c, S: SpawnBlocking + Send>(
    conn: &'c mut SyncConnectionWrapper<SqliteConnection, S>,
    spec: &IndexSpec,
) -> impl Future<Output = Result<SyncReport, IndexError>> + Send + 'c {
    blocking(conn, spec, super::sync)
}

/// [`rebuild`](super::rebuild) on an [`AsyncSqliteConnection`].
///
/// # Errors
///
/// As [`rebuild`](super::rebuild).
pub fn rebuild_async<'c, S: SpawnBlocking + Send>(
    conn: &'c mut SyncConnectionWrapper<SqliteConnection, S>,
    spec: &IndexSpec,
) -> impl Future<Output = Result<SyncReport, IndexError>> + Send + 'c {
    blocking(conn, spec, super::rebuild)
}

/// [`status`](super::status) on an [`AsyncSqliteConnection`].
///
/// # Errors
///
/// As [`status`](super::status).
pub fn status_async<'c, S: SpawnBlocking + Send>(
    conn: &'c mut SyncConnectionWrapper<SqliteConnection, S>,
    spec: &IndexSpec,
) -> impl Future<Output = Result<IndexStatus, IndexError>> + Send + 'c {
    blocking(conn, spec, super::status)
}

/// [`sync_index`](super::sync_index) (the crate's own `fragment_embeddings` index) on an
/// [`AsyncSqliteConnection`].
///
/// # Errors
///
/// As [`sync`](super::sync).
pub fn sync_index_async<S: SpawnBlocking + Send>(
    conn: &mut SyncConnectionWrapper<SqliteConnection, S>,
) -> impl Future<Output = Result<SyncReport, IndexError>> + Send + '_ {
    sync_async(conn, crate::schema::fragment_embeddings_index())
}

/// [`rebuild_index`](super::rebuild_index) on an [`AsyncSqliteConnection`].
///
/// # Errors
///
/// As [`sync`](super::sync).
pub fn rebuild_index_async<S: SpawnBlocking + Send>(
    conn: &mut SyncConnectionWrapper<SqliteConnection, S>,
) -> impl Future<Output = Result<SyncReport, IndexError>> + Send + '_ {
    rebuild_async(conn, crate::schema::fragment_embeddings_index())
}

/// [`index_status`](super::index_status) on an [`AsyncSqliteConnection`].
///
/// # Errors
///
/// As [`status`](super::status).
pub fn index_status_async<S: SpawnBlocking + Send>(
    conn: &mut SyncConnectionWrapper<SqliteConnection, S>,
) -> impl Future<Output = Result<IndexStatus, IndexError>> + Send + '_ {
    status_async(conn, crate::schema::fragment_embeddings_index())
}
