//! The searches' `_async` twins (feature `async`): [`IndexSearch::run_async`],
//! [`TypedSearch::run_async`] and [`Search::run_async`], on diesel-async's connections.
//!
//! They check and plan the search exactly as the sync `run` (the same errors, before any query), then:
//!
//! | connection | how the search runs | a dropped future |
//! |---|---|---|
//! | `AsyncPgConnection` | the PostgreSQL search's own code (written once over the crate's executor), awaiting tokio-postgres: no thread is blocked | its transaction is rolled back after the statement in flight, so its `SET LOCAL` settings end with it; the connection is usable (or, dropped during `BEGIN`/`COMMIT` itself, marked broken by diesel-async so that a pool replaces it) |
//! | `SyncConnectionWrapper<SqliteConnection>` | the sync SQLite search, whole, in one call on tokio's blocking pool (the index sync it may start included); a typed filter is rendered to SQL and binds first, so it need not be `'static` | the search goes on to its end on the blocking thread (diesel-async waits for it), so the connection's `busy_timeout` is always put back |

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use super::typed::SearchFilter;
use super::{plan, report, span, Found, Hit, IndexSearch, Neighbor, Plan, Search, SearchError, TypedSearch};

/// An async connection a search runs on: diesel-async's `AsyncPgConnection` and, with feature `sqlite`,
/// `SyncConnectionWrapper<SqliteConnection>` ([`crate::sqlite::AsyncSqliteConnection`]). Sealed.
pub trait AsyncSearchTarget: crate::migrations::sealed::Sealed + Send {
    /// The backend.
    #[doc(hidden)]
    type Db: diesel::backend::Backend;
    #[doc(hidden)]
    const BACKEND: &'static str;
    /// Up to about `plan.limit` hits (possibly more, unsorted) and the path taken.
    #[doc(hidden)]
    fn knn_async<'a, F: SearchFilter<Self::Db>>(
        &'a mut self,
        plan: &'a Plan<'a>,
        filter: &'a F,
    ) -> impl Future<Output = Result<Found, SearchError>> + Send + 'a;
    /// [`Search::run_async`].
    #[doc(hidden)]
    fn search_fragments_async<'a>(
        &'a mut self,
        search: &'a Search<'a>,
    ) -> impl Future<Output = Result<Vec<Neighbor>, SearchError>> + Send + 'a;
}

/// [`super::execute`] on an async connection: the same plan, span and report around the backend's
/// `knn_async`.
pub(crate) async fn execute_async<C, F>(
    search: &IndexSearch<'_>,
    filter: &F,
    conn: &mut C,
) -> Result<Vec<Hit>, SearchError>
where
    C: AsyncSearchTarget,
    F: SearchFilter<C::Db>,
{
    let plan = plan(search)?;
    let span = span(search, C::BACKEND, filter.is_empty());
    let started = Instant::now();
    // Entered while the future is made too: the SQLite wrapper takes the span to its blocking thread.
    let found = span.in_scope(|| conn.knn_async(&plan, filter)).instrument(span.clone()).await?;
    Ok(report(search, &span, C::BACKEND, found, started))
}

impl IndexSearch<'_> {
    /// [`IndexSearch::run`] on an async connection: diesel-async's `AsyncPgConnection` or
    /// [`crate::sqlite::AsyncSqliteConnection`] (opened with [`crate::sqlite::establish_async`]).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_async::SimpleAsyncConnection;
    /// use diesel_vector::index::{generate, IndexSpec, Metric};
    /// use diesel_vector::{search, sqlite, Vector};
    ///
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let mut conn = sqlite::establish_async(":memory:").await?; // or an AsyncPgConnection
    /// conn.batch_execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL)").await?;
    /// let spec = IndexSpec::builder("documents", "embedding", 3).metric(Metric::L2).partition_by(["lang"]).build()?;
    /// conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).await?;
    /// // Little-endian f32 BLOBs: [1,0,0], [0.9,0.1,0], [0,1,0].
    /// conn.batch_execute(
    ///     "INSERT INTO documents (id, lang, embedding) VALUES (1, 'en', x'0000803f0000000000000000'), \
    ///      (2, 'fr', x'6666663fcdcccc3d00000000'), (3, 'fr', x'000000000000803f00000000')",
    /// )
    /// .await?;
    ///
    /// let q = Vector::new(vec![1.0, 0.0, 0.0])?;
    /// let hits = spec.search(&q).k(2).filter_eq("lang", "fr").run_async(&mut conn).await?;
    /// assert_eq!(search::ids(&hits), [2, 3]);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    ///
    /// # Errors
    ///
    /// As [`IndexSearch::run`], as errors of the returned future (never a panic).
    pub async fn run_async<C: AsyncSearchTarget>(&self, conn: &mut C) -> Result<Vec<Hit>, SearchError> {
        execute_async(self, &super::NoFilter, conn).await
    }
}

impl<T, F> TypedSearch<'_, T, F> {
    /// [`TypedSearch::run`] on an async connection (see [`IndexSearch::run_async`]).
    ///
    /// # Errors
    ///
    /// As [`TypedSearch::run`].
    pub async fn run_async<C>(&self, conn: &mut C) -> Result<Vec<Hit>, SearchError>
    where
        C: AsyncSearchTarget,
        F: SearchFilter<C::Db>,
    {
        let search = self.generic()?;
        execute_async(&search, &self.filter, conn).await
    }
}

impl Search<'_> {
    /// [`Search::run`] on an async connection (see [`IndexSearch::run_async`]).
    ///
    /// # Errors
    ///
    /// As [`Search::run`].
    pub fn run_async<'a, C: AsyncSearchTarget>(
        &'a self,
        conn: &'a mut C,
    ) -> impl Future<Output = Result<Vec<Neighbor>, SearchError>> + Send + 'a {
        conn.search_fragments_async(self)
    }
}
