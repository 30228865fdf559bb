//! The runner's `_async` twins, for diesel-async's connections (feature `async`).
//!
//! | connection | how it runs | a dropped future |
//! |---|---|---|
//! | `AsyncPgConnection` | the runner's own code, awaiting tokio-postgres: no thread is blocked | the migration in flight is rolled back and the advisory lock released (after the statement in flight), the connection is usable |
//! | `SyncConnectionWrapper<SqliteConnection>` | the sync runner on tokio's blocking pool (`spawn_blocking`) | the run goes on to its end (diesel-async waits for it when the future is dropped) |
//!
//! The migrations' SQL is read when the function is called (see [`recorded`](super::recorded)), so the
//! returned future borrows nothing but the connection and can be spawned.

use std::future::Future;

use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel_async::AsyncPgConnection;

use super::backend::Listed;
use super::recorded::RecordedMigration;
use super::{redo_last, revert_last, run_pending, sealed, status, AppliedMigration, MigrationError, MigrationStatus};
use crate::exec::AsyncPg;
use crate::index::registry::{self, RegistryError};
use crate::index::IndexSpec;

/// The migrations an `_async` call works on, read beforehand: the crate's own set, or an application's.
#[doc(hidden)]
#[derive(Debug)]
pub struct AsyncSet<DB> {
    /// `None`: the crate's own set (its versions are listed once per process).
    recorded: Option<Vec<RecordedMigration<DB>>>,
}

impl<DB: Backend + 'static> AsyncSet<DB> {
    fn own() -> Self {
        Self { recorded: None }
    }

    fn record(source: &dyn MigrationSource<DB>) -> Result<Self, MigrationError> {
        Ok(Self { recorded: Some(RecordedMigration::record_all(source)?) })
    }
}

/// `$job(conn, &set)` with an [`AsyncSet`] as the core's `Set`.
macro_rules! with_set {
    ($set:expr, $conn:expr, $job:path) => {
        match &$set.recorded {
            None => $job($conn, &crate::migrations::Set::<[RecordedMigration<_>]>::Own).await,
            Some(list) => $job($conn, &crate::migrations::Set::From(list.as_slice())).await,
        }
    };
}

/// An async connection the runner can migrate: diesel-async's `AsyncPgConnection` and, with feature
/// `sqlite`, `SyncConnectionWrapper<SqliteConnection>`. Sealed; the methods are the runner's internals.
pub trait AsyncMigrationTarget: sealed::Sealed + Send {
    /// The backend.
    #[doc(hidden)]
    type Db: Backend + 'static;
    #[doc(hidden)]
    fn run_pending(
        &mut self,
        set: AsyncSet<Self::Db>,
    ) -> impl Future<Output = Result<Vec<AppliedMigration>, MigrationError>> + Send + '_;
    #[doc(hidden)]
    fn revert_last(
        &mut self,
        set: AsyncSet<Self::Db>,
    ) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + '_;
    #[doc(hidden)]
    fn redo_last(
        &mut self,
        set: AsyncSet<Self::Db>,
    ) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + '_;
    #[doc(hidden)]
    fn status(
        &mut self,
        set: AsyncSet<Self::Db>,
    ) -> impl Future<Output = Result<Vec<MigrationStatus>, MigrationError>> + Send + '_;
    #[doc(hidden)]
    fn registry(&mut self) -> impl Future<Output = Result<Vec<IndexSpec>, RegistryError>> + Send + '_;
}

impl sealed::Sealed for AsyncPgConnection {}

impl AsyncMigrationTarget for AsyncPgConnection {
    type Db = Pg;

    async fn run_pending(&mut self, set: AsyncSet<Pg>) -> Result<Vec<AppliedMigration>, MigrationError> {
        with_set!(set, &mut AsyncPg::new(self), run_pending)
    }

    async fn revert_last(&mut self, set: AsyncSet<Pg>) -> Result<Option<String>, MigrationError> {
        with_set!(set, &mut AsyncPg::new(self), revert_last)
    }

    async fn redo_last(&mut self, set: AsyncSet<Pg>) -> Result<Option<String>, MigrationError> {
        with_set!(set, &mut AsyncPg::new(self), redo_last)
    }

    async fn status(&mut self, set: AsyncSet<Pg>) -> Result<Vec<MigrationStatus>, MigrationError> {
        with_set!(set, &mut AsyncPg::new(self), status)
    }

    async fn registry(&mut self) -> Result<Vec<IndexSpec>, RegistryError> {
        let mut conn = AsyncPg::new(self);
        if !crate::pg::migrations::exists(&mut conn, registry::REGISTRY_TABLE).await? {
            return Ok(Vec::new());
        }
        registry::load_rows(&mut conn).await
    }
}

impl<DB: Backend + 'static> Listed<dyn Migration<DB>> for [RecordedMigration<DB>] {
    fn list(&self) -> Result<Vec<Box<dyn Migration<DB>>>, MigrationError> {
        Ok(self.iter().map(|m| Box::new(RecordedMigration::clone(m)) as Box<dyn Migration<DB>>).collect())
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::future::Future;

    use diesel::sqlite::Sqlite;
    use diesel::SqliteConnection;
    use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};

    use super::{AsyncMigrationTarget, AsyncSet, RecordedMigration};
    use crate::exec::block_on;
    use crate::index::registry::{self, RegistryError};
    use crate::index::IndexSpec;
    use crate::migrations::{
        redo_last, revert_last, run_pending, sealed, status, AppliedMigration, MigrationError, MigrationStatus,
    };

    /// Runs `job` (the sync runner) on the wrapper's blocking thread.
    async fn blocking<S, T>(
        conn: &mut SyncConnectionWrapper<SqliteConnection, S>,
        set: AsyncSet<Sqlite>,
        job: impl AsyncFnOnce(&mut SqliteConnection, &AsyncSet<Sqlite>) -> Result<T, MigrationError> + Send + 'static,
    ) -> Result<T, MigrationError>
    where
        S: SpawnBlocking + Send,
        T: Send + 'static,
    {
        conn.spawn_blocking(move |conn| Ok(block_on(job(conn, &set)))).await?
    }

    impl<S> sealed::Sealed for SyncConnectionWrapper<SqliteConnection, S> {}

    impl<S: SpawnBlocking + Send> AsyncMigrationTarget for SyncConnectionWrapper<SqliteConnection, S> {
        type Db = Sqlite;

        fn run_pending(
            &mut self,
            set: AsyncSet<Sqlite>,
        ) -> impl Future<Output = Result<Vec<AppliedMigration>, MigrationError>> + Send + '_ {
            blocking(self, set, async |conn, set| with_set!(set, conn, run_pending))
        }

        fn revert_last(
            &mut self,
            set: AsyncSet<Sqlite>,
        ) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + '_ {
            blocking(self, set, async |conn, set| with_set!(set, conn, revert_last))
        }

        fn redo_last(
            &mut self,
            set: AsyncSet<Sqlite>,
        ) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + '_ {
            blocking(self, set, async |conn, set| with_set!(set, conn, redo_last))
        }

        fn status(
            &mut self,
            set: AsyncSet<Sqlite>,
        ) -> impl Future<Output = Result<Vec<MigrationStatus>, MigrationError>> + Send + '_ {
            blocking(self, set, async |conn, set| with_set!(set, conn, status))
        }

        fn registry(&mut self) -> impl Future<Output = Result<Vec<IndexSpec>, RegistryError>> + Send + '_ {
            let future = self.spawn_blocking(|conn| Ok(registry::load(conn)));
            async move { future.await? }
        }
    }
}

/// [`run_pending_migrations`](super::run_pending_migrations) on an async connection: the crate's own set,
/// with the same checks, lock, adoption and telemetry.
///
/// ```
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel_vector::{migrations, sqlite};
///
/// # let runtime = tokio::runtime::Runtime::new()?;
/// # runtime.block_on(async {
/// let mut conn = sqlite::establish_async(":memory:").await?; // or an AsyncPgConnection
/// let applied = migrations::run_pending_migrations_async(&mut conn).await?;
/// assert_eq!(applied.len(), 4);
/// assert!(migrations::run_pending_migrations_async(&mut conn).await?.is_empty(), "a second run does nothing");
/// assert!(migrations::migration_status_async(&mut conn).await?.iter().all(|m| m.applied));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # })
/// # }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
///
/// # Errors
///
/// As [`run_pending_migrations_from`](super::run_pending_migrations_from).
pub fn run_pending_migrations_async<C: AsyncMigrationTarget>(
    conn: &mut C,
) -> impl Future<Output = Result<Vec<AppliedMigration>, MigrationError>> + Send + '_ {
    conn.run_pending(AsyncSet::own())
}

/// [`run_pending_migrations_from`](super::run_pending_migrations_from) on an async connection: an
/// application's migrations, read from `source` when this function is called (the future borrows only
/// the connection, and can be spawned).
///
/// ```
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel_migrations::FileBasedMigrations;
/// use diesel_vector::index::{generate, registry, IndexSpec};
/// use diesel_vector::{migrations, sqlite};
///
/// let dir = tempfile::tempdir()?;
/// let (pg_dir, sqlite_dir) = (dir.path().join("migrations_pg"), dir.path().join("migrations_sqlite"));
/// std::fs::create_dir_all(sqlite_dir.join("2026-01-01-000000_create_documents"))?;
/// std::fs::write(
///     sqlite_dir.join("2026-01-01-000000_create_documents/up.sql"),
///     "CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL);",
/// )?;
/// std::fs::write(sqlite_dir.join("2026-01-01-000000_create_documents/down.sql"), "DROP TABLE documents;")?;
/// let spec = IndexSpec::builder("documents", "embedding", 768).partition_by(["lang"]).build()?;
/// generate::write(&generate::render(&spec, &generate::Options::default().add_column(true)), "20260101000001", &pg_dir, &sqlite_dir)?;
///
/// # let runtime = tokio::runtime::Runtime::new()?;
/// # runtime.block_on(async {
/// let mut conn = sqlite::establish_async(":memory:").await?;
/// let source = FileBasedMigrations::from_path(&sqlite_dir)?;
/// assert_eq!(migrations::run_pending_migrations_from_async(&mut conn, &source).await?.len(), 2);
/// assert_eq!(registry::load_async(&mut conn).await?, [spec.clone()]);
/// assert!(sqlite::sync_async(&mut conn, &spec).await?.rebuilt);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # })
/// # }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
///
/// # Errors
///
/// As [`run_pending_migrations_from`](super::run_pending_migrations_from); a migration of a type of one's
/// own that runs queries other than SQL batches fails as [`MigrationError::Migration`] before any of it
/// runs.
pub fn run_pending_migrations_from_async<'c, C: AsyncMigrationTarget>(
    conn: &'c mut C,
    source: &dyn MigrationSource<C::Db>,
) -> impl Future<Output = Result<Vec<AppliedMigration>, MigrationError>> + Send + 'c {
    let set = AsyncSet::record(source);
    async move { conn.run_pending(set?).await }
}

/// [`revert_last_migration`](super::revert_last_migration) on an async connection.
///
/// # Errors
///
/// As [`revert_last_migration_from`](super::revert_last_migration_from).
pub fn revert_last_migration_async<C: AsyncMigrationTarget>(
    conn: &mut C,
) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + '_ {
    conn.revert_last(AsyncSet::own())
}

/// [`revert_last_migration_from`](super::revert_last_migration_from) on an async connection.
///
/// # Errors
///
/// As [`revert_last_migration_from`](super::revert_last_migration_from).
pub fn revert_last_migration_from_async<'c, C: AsyncMigrationTarget>(
    conn: &'c mut C,
    source: &dyn MigrationSource<C::Db>,
) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + 'c {
    let set = AsyncSet::record(source);
    async move { conn.revert_last(set?).await }
}

/// [`redo_last_migration`](super::redo_last_migration) on an async connection.
///
/// # Errors
///
/// As [`redo_last_migration_from`](super::redo_last_migration_from).
pub fn redo_last_migration_async<C: AsyncMigrationTarget>(
    conn: &mut C,
) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + '_ {
    conn.redo_last(AsyncSet::own())
}

/// [`redo_last_migration_from`](super::redo_last_migration_from) on an async connection.
///
/// # Errors
///
/// As [`redo_last_migration_from`](super::redo_last_migration_from).
pub fn redo_last_migration_from_async<'c, C: AsyncMigrationTarget>(
    conn: &'c mut C,
    source: &dyn MigrationSource<C::Db>,
) -> impl Future<Output = Result<Option<String>, MigrationError>> + Send + 'c {
    let set = AsyncSet::record(source);
    async move { conn.redo_last(set?).await }
}

/// [`migration_status`](super::migration_status) on an async connection.
///
/// # Errors
///
/// As [`migration_status_from`](super::migration_status_from).
pub fn migration_status_async<C: AsyncMigrationTarget>(
    conn: &mut C,
) -> impl Future<Output = Result<Vec<MigrationStatus>, MigrationError>> + Send + '_ {
    conn.status(AsyncSet::own())
}

/// [`migration_status_from`](super::migration_status_from) on an async connection.
///
/// # Errors
///
/// As [`migration_status_from`](super::migration_status_from).
pub fn migration_status_from_async<'c, C: AsyncMigrationTarget>(
    conn: &'c mut C,
    source: &dyn MigrationSource<C::Db>,
) -> impl Future<Output = Result<Vec<MigrationStatus>, MigrationError>> + Send + 'c {
    let set = AsyncSet::record(source);
    async move { conn.status(set?).await }
}
