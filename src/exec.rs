//! One way to run the crate's queries on sync and async connections alike.
//!
//! The migration runner, the PostgreSQL index maintenance and search are written once, as `async` code
//! over [`Exec`]: the queries they run are Diesel query values ([`Sql`], a boxed `sql_query` with its
//! binds), and `Exec` runs them.
//!
//! - On a sync connection (`PgConnection`, `SqliteConnection`) every method does its work at once and
//!   returns a future that is already complete; [`block_on`] polls it once (with a waker that does
//!   nothing), so the sync entry points cost what they did before, plus one poll.
//! - On `AsyncPgConnection` (feature `async`) the same code awaits tokio-postgres, through [`AsyncPg`], a
//!   guard that puts the connection back in order when the caller drops the future half way (see there).
//!
//! Transactions go through each connection's own transaction manager ([`transaction`]), so nesting
//! turns into savepoints exactly as Diesel's `Connection::transaction` does.
// SQLite's runner is sync code that uses only part of this; PostgreSQL's uses all of it.
#![cfg_attr(not(feature = "pg-backend"), allow(dead_code))]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use diesel::backend::Backend;
use diesel::migration::Migration;
use diesel::query_builder::{BoxedSqlQuery, Query, QueryFragment, QueryId, SqlQuery};
use diesel::{QueryResult, QueryableByName};

/// A query the crate runs: `sql_query(...).into_boxed()` with its binds.
pub(crate) type Sql<'q, DB> = BoxedSqlQuery<'q, DB, SqlQuery>;

/// `diesel::sql_query(sql).into_boxed()`, the start of every [`Sql`].
pub(crate) fn sql<'q, DB: Backend>(sql: impl Into<String>) -> Sql<'q, DB> {
    diesel::sql_query(sql).into_boxed()
}

/// Runs the crate's queries on one connection, sync or async (see the module docs).
pub(crate) trait Exec {
    /// The connection's backend.
    type Db: Backend;
    /// How this connection holds a migration: Diesel's `dyn Migration` on a sync connection (its SQL runs
    /// on the connection itself); on an async one, a migration whose SQL was read beforehand.
    type Migration: ?Sized + Migration<Self::Db>;

    /// The rows of `query`.
    async fn load<U>(&mut self, query: Sql<'_, Self::Db>) -> QueryResult<Vec<U>>
    where
        U: QueryableByName<Self::Db> + Send + 'static;

    /// The rows of one of the crate's query nodes (a search's), read by column name.
    async fn load_rows<Q, U>(&mut self, query: Q) -> QueryResult<Vec<U>>
    where
        Q: QueryFragment<Self::Db> + QueryId + Send,
        U: QueryableByName<Self::Db> + Send + 'static;

    /// Whether a transaction (the caller's or the crate's) is open on the connection.
    fn in_transaction(&mut self) -> QueryResult<bool>;

    /// Runs `query` and returns the rows it affected.
    async fn execute(&mut self, query: Sql<'_, Self::Db>) -> QueryResult<usize>;

    /// Runs several statements without binds.
    async fn batch_execute(&mut self, sql: &str) -> QueryResult<()>;

    /// Opens a transaction, or a savepoint inside the open one.
    async fn begin(&mut self) -> QueryResult<()>;

    /// Commits what [`Exec::begin`] opened.
    async fn commit(&mut self) -> QueryResult<()>;

    /// Rolls back what [`Exec::begin`] opened.
    async fn rollback(&mut self) -> QueryResult<()>;

    /// Runs a migration's up (`up = true`) or down SQL, without bookkeeping.
    async fn run_migration(&mut self, migration: &Self::Migration, up: bool) -> diesel::migration::Result<()>;

    /// Tells the connection that the caller is about to take a session-level lock released by `release`
    /// (`Some`), or has released it (`None`). An async connection whose future is dropped while it holds
    /// one runs `release` (see [`AsyncPg`]); a sync connection has nothing to do.
    fn hold(&mut self, release: Option<&'static str>) {
        let _ = release;
    }
}

/// The first row of `query`, or `diesel::result::Error::NotFound`.
pub(crate) async fn first<E: Exec, U>(exec: &mut E, query: Sql<'_, E::Db>) -> QueryResult<U>
where
    U: QueryableByName<E::Db> + Send + 'static,
{
    exec.load(query).await?.into_iter().next().ok_or(diesel::result::Error::NotFound)
}

/// Runs `body` in a transaction (a savepoint when one is open), committed when it returns `Ok`, rolled
/// back otherwise, as Diesel's `Connection::transaction`: a failed rollback is the error returned.
pub(crate) async fn transaction<E, R, Er>(
    exec: &mut E,
    body: impl AsyncFnOnce(&mut E) -> Result<R, Er>,
) -> Result<R, Er>
where
    E: Exec,
    Er: From<diesel::result::Error>,
{
    exec.begin().await?;
    let result = body(exec).await;
    finish(exec, result).await
}

/// Commits after `Ok`, rolls back after `Err`: the end of [`transaction`].
pub(crate) async fn finish<E, R, Er>(exec: &mut E, result: Result<R, Er>) -> Result<R, Er>
where
    E: Exec,
    Er: From<diesel::result::Error>,
{
    match result {
        Ok(value) => match exec.commit().await {
            Ok(()) => Ok(value),
            Err(e) => {
                // As Diesel: a failed commit (a serialization failure, say) leaves the transaction open.
                let _ = exec.rollback().await;
                Err(e.into())
            }
        },
        Err(e) => match exec.rollback().await {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// Runs a future made by the sync side of [`Exec`] to its end on this thread.
///
/// A sync connection's futures complete on their first poll, which is all this does on the usual path
/// (no allocation, no thread parking). Should a future ever wait, the thread parks until it is woken.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return output;
    }
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// A query node whose rows are read by column name ([`Exec::load_rows`]): the same SQL, binds and
/// statement-cache key, as an untyped query that Diesel's sync and diesel-async's `RunQueryDsl` both take.
pub(crate) struct Rows<Q>(pub(crate) Q);

impl<Q: QueryId> QueryId for Rows<Q> {
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q> Query for Rows<Q> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Rows<Q> {
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }
}

impl<Q, C> diesel::RunQueryDsl<C> for Rows<Q> {}

/// The sync connections: each method runs at once.
#[cfg(any(feature = "pg", feature = "sqlite"))]
macro_rules! sync_exec {
    ($conn:ty, $db:ty) => {
        impl Exec for $conn {
            type Db = $db;
            type Migration = dyn Migration<$db>;

            async fn load<U>(&mut self, query: Sql<'_, $db>) -> QueryResult<Vec<U>>
            where
                U: QueryableByName<$db> + Send + 'static,
            {
                diesel::RunQueryDsl::load(query, self)
            }

            async fn load_rows<Q, U>(&mut self, query: Q) -> QueryResult<Vec<U>>
            where
                Q: QueryFragment<$db> + QueryId + Send,
                U: QueryableByName<$db> + Send + 'static,
            {
                diesel::RunQueryDsl::load(Rows(query), self)
            }

            fn in_transaction(&mut self) -> QueryResult<bool> {
                let status = <diesel::connection::AnsiTransactionManager as diesel::connection::TransactionManager<$conn>>::transaction_manager_status_mut(self);
                Ok(status.transaction_depth()?.is_some())
            }

            async fn execute(&mut self, query: Sql<'_, $db>) -> QueryResult<usize> {
                diesel::RunQueryDsl::execute(query, self)
            }

            async fn batch_execute(&mut self, sql: &str) -> QueryResult<()> {
                diesel::connection::SimpleConnection::batch_execute(self, sql)
            }

            async fn begin(&mut self) -> QueryResult<()> {
                <diesel::connection::AnsiTransactionManager as diesel::connection::TransactionManager<$conn>>::begin_transaction(self)
            }

            async fn commit(&mut self) -> QueryResult<()> {
                <diesel::connection::AnsiTransactionManager as diesel::connection::TransactionManager<$conn>>::commit_transaction(self)
            }

            async fn rollback(&mut self) -> QueryResult<()> {
                <diesel::connection::AnsiTransactionManager as diesel::connection::TransactionManager<$conn>>::rollback_transaction(self)
            }

            async fn run_migration(&mut self, migration: &Self::Migration, up: bool) -> diesel::migration::Result<()> {
                if up {
                    migration.run(self)
                } else {
                    migration.revert(self)
                }
            }
        }
    };
}

#[cfg(feature = "pg")]
sync_exec!(diesel::PgConnection, diesel::pg::Pg);
#[cfg(feature = "sqlite")]
sync_exec!(diesel::SqliteConnection, diesel::sqlite::Sqlite);

#[cfg(feature = "async")]
pub(crate) use self::async_pg::AsyncPg;

#[cfg(feature = "async")]
mod async_pg {
    use std::future::Future;
    use std::num::NonZeroU32;
    use std::pin::pin;
    use std::task::{Context, Waker};

    use diesel::pg::Pg;
    use diesel::query_builder::{QueryFragment, QueryId};
    use diesel::{QueryResult, QueryableByName};
    use diesel_async::{AnsiTransactionManager, AsyncPgConnection, SimpleAsyncConnection, TransactionManager};

    use super::{Exec, Sql};
    use crate::migrations::recorded::RecordedMigration;

    /// An `AsyncPgConnection` the crate is working on, which puts it back in order when the future
    /// doing the work is dropped half way (a request cancelled, a timeout).
    ///
    /// A dropped future cannot await anything, and a pool takes the connection back as it is: with a
    /// transaction open (its locks held until the connection is closed: deadpool only checks a
    /// connection when it is next handed out) or with the runner's session-level advisory lock held (which
    /// no pool notices, and which every other migrator would wait for). So when the guard is dropped
    /// with a transaction of its own open or a lock held, it queues `ROLLBACK` and the lock's release on
    /// the connection, without waiting: tokio-postgres sends a request when its future is first polled,
    /// and runs requests in order, so they run right after the statement in flight (which the server
    /// finishes first), before anything the connection's next user sends. The transaction manager is then
    /// set back to "no transaction", which is what the connection will be in by then.
    ///
    /// When the caller had a transaction open already, its state cannot be restored: the lock is released
    /// and the transaction manager marked broken, so that a pool discards the connection.
    ///
    /// A future dropped while the transaction manager's own `BEGIN`, `COMMIT` or `ROLLBACK` was in flight
    /// leaves diesel-async's manager marked as cancelled (and, for `BEGIN`, counting no transaction while
    /// the server will have one): its next transaction statement would then panic in a debug build. So the
    /// guard notes when one is in flight, and at the top level puts a fresh manager in place after queuing
    /// its `ROLLBACK` (a `ROLLBACK` with no transaction open is only a warning).
    pub(crate) struct AsyncPg<'c> {
        conn: &'c mut AsyncPgConnection,
        depth_at_start: Option<NonZeroU32>,
        release: Option<&'static str>,
        /// A `BEGIN`, `COMMIT` or `ROLLBACK` of the transaction manager is being awaited.
        in_flight: bool,
    }

    impl<'c> AsyncPg<'c> {
        pub(crate) fn new(conn: &'c mut AsyncPgConnection) -> Self {
            let depth_at_start = depth(conn).ok().flatten();
            Self { conn, depth_at_start, release: None, in_flight: false }
        }

        /// Awaits one of the transaction manager's statements, noting that it is in flight meanwhile.
        async fn manage(
            &mut self,
            statement: impl AsyncFnOnce(&mut AsyncPgConnection) -> QueryResult<()>,
        ) -> QueryResult<()> {
            self.in_flight = true;
            let result = statement(self.conn).await;
            self.in_flight = false;
            result
        }
    }

    fn depth(conn: &mut AsyncPgConnection) -> QueryResult<Option<NonZeroU32>> {
        AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth()
    }

    /// Sends `sql` on the connection without waiting for it (see [`AsyncPg`]).
    fn send_without_waiting(conn: &AsyncPgConnection, sql: &str) {
        let mut shared = conn;
        let future = SimpleAsyncConnection::batch_execute(&mut shared, sql);
        let mut future = pin!(future);
        let _ = future.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    }

    impl Drop for AsyncPg<'_> {
        fn drop(&mut self) {
            let depth = depth(self.conn);
            let own_transaction = self.in_flight
                || match depth {
                    Ok(depth) => depth != self.depth_at_start,
                    Err(_) => false,
                };
            if !own_transaction && self.release.is_none() {
                return;
            }
            let mut sql = String::new();
            if own_transaction {
                if self.depth_at_start.is_none() {
                    sql.push_str("ROLLBACK;");
                    // A fresh manager: no transaction, and not marked as cancelled mid-statement.
                    *diesel_async::AsyncConnection::transaction_state(self.conn) = AnsiTransactionManager::default();
                } else {
                    AnsiTransactionManager::transaction_manager_status_mut(self.conn).set_in_error();
                }
            }
            if let Some(release) = self.release {
                sql.push_str(release);
            }
            tracing::warn!(
                target: "diesel_vector::async",
                backend = "postgresql",
                rollback = own_transaction,
                release_lock = self.release.is_some(),
                "a diesel-vector future was dropped before it finished: its transaction is rolled back and its lock \
                 released once the statement in flight ends"
            );
            send_without_waiting(self.conn, &sql);
        }
    }

    impl Exec for AsyncPg<'_> {
        type Db = Pg;
        type Migration = RecordedMigration<Pg>;

        async fn load<U>(&mut self, query: Sql<'_, Pg>) -> QueryResult<Vec<U>>
        where
            U: QueryableByName<Pg> + Send + 'static,
        {
            diesel_async::RunQueryDsl::load(query, self.conn).await
        }

        async fn load_rows<Q, U>(&mut self, query: Q) -> QueryResult<Vec<U>>
        where
            Q: QueryFragment<Pg> + QueryId + Send,
            U: QueryableByName<Pg> + Send + 'static,
        {
            diesel_async::RunQueryDsl::load(super::Rows(query), self.conn).await
        }

        fn in_transaction(&mut self) -> QueryResult<bool> {
            Ok(depth(self.conn)?.is_some())
        }

        async fn execute(&mut self, query: Sql<'_, Pg>) -> QueryResult<usize> {
            diesel_async::RunQueryDsl::execute(query, self.conn).await
        }

        async fn batch_execute(&mut self, sql: &str) -> QueryResult<()> {
            SimpleAsyncConnection::batch_execute(self.conn, sql).await
        }

        async fn begin(&mut self) -> QueryResult<()> {
            self.manage(async |conn| AnsiTransactionManager::begin_transaction(conn).await).await
        }

        async fn commit(&mut self) -> QueryResult<()> {
            self.manage(async |conn| AnsiTransactionManager::commit_transaction(conn).await).await
        }

        async fn rollback(&mut self) -> QueryResult<()> {
            self.manage(async |conn| AnsiTransactionManager::rollback_transaction(conn).await).await
        }

        async fn run_migration(
            &mut self,
            migration: &RecordedMigration<Pg>,
            up: bool,
        ) -> diesel::migration::Result<()> {
            for sql in migration.sql(up)? {
                SimpleAsyncConnection::batch_execute(self.conn, sql).await?;
            }
            Ok(())
        }

        fn hold(&mut self, release: Option<&'static str>) {
            self.release = release;
        }
    }

    // The futures above must stay `Send`, so that an application can spawn the crate's async calls.
    #[allow(dead_code)]
    fn assert_send<F: Future + Send>(_: F) {}
}
