//! The runner's backend side: what [the runner](super) asks of a connection, written once per backend as
//! `async` code (see `src/exec.rs`). The sync connections' futures complete at once; `AsyncPgConnection`'s
//! await tokio-postgres. Internals, public only because [`super::MigrationTarget`] builds on them.

use diesel::backend::Backend;
use diesel::migration::Migration;

use super::shape::{Real, Rehearsal};
use super::{MigrationError, VectorSupport};
use crate::index::IndexSpec;

/// What the runner asks of a connection. Sealed (through [`super::MigrationTarget`] and the crate's
/// async connection wrappers).
#[allow(async_fn_in_trait)]
pub trait Runner {
    /// The backend.
    type Db: Backend;
    /// How this connection holds a migration (Diesel's `dyn Migration`, or one read beforehand).
    type Migration: ?Sized + Migration<Self::Db>;
    /// The backend's name in telemetry.
    const BACKEND: &'static str;

    /// The crate's own migrations for this backend, oldest first.
    fn own_migrations() -> Result<Vec<Box<Self::Migration>>, MigrationError>;
    /// The crate's own migrations' versions, oldest first, listed once per process.
    fn own_versions() -> Result<&'static [String], MigrationError>;

    /// Whether pgvector is usable; changes nothing.
    async fn vector_support(&mut self) -> Result<VectorSupport, MigrationError>;
    /// Tries `CREATE EXTENSION IF NOT EXISTS vector` and rolls it back: `Err` with the database's message
    /// when this role may not create it. Changes nothing.
    async fn try_create_vector(&mut self) -> Result<(), String>;
    /// Whether the database holds any object a migration could have made (Diesel's bookkeeping and the
    /// vector index registry aside): without any, nothing can be adopted and nothing is rehearsed.
    async fn has_objects(&mut self) -> Result<bool, MigrationError>;
    /// Replays `applied` and runs `pending` in a scratch space that is thrown away, reading the catalog
    /// before the first pending migration and after each. Changes nothing.
    async fn rehearse(
        &mut self,
        applied: &[&Self::Migration],
        pending: &[&Self::Migration],
    ) -> Result<Rehearsal, MigrationError>;
    /// The real database's objects and registry, to compare with a rehearsal.
    async fn real_state(&mut self) -> Result<Real, MigrationError>;
    /// Takes the backend's migration lock (waiting for it).
    async fn lock(&mut self) -> Result<(), MigrationError>;
    /// Releases the lock [`Runner::lock`] took (SQLite: commits what ran under it).
    async fn unlock(&mut self) -> Result<(), MigrationError>;
    /// The versions recorded as applied, without creating Diesel's bookkeeping table.
    async fn applied_versions(&mut self) -> Result<Vec<String>, MigrationError>;
    /// Records an adopted migration and registers the indexes it would have registered, in one
    /// transaction.
    async fn adopt(&mut self, version: &str, register: &[IndexSpec]) -> Result<(), MigrationError>;
    /// Runs one migration in its transaction (unless it runs without one) and records it, creating
    /// Diesel's bookkeeping table first when missing (only now, after every check passed).
    async fn run_one(&mut self, migration: &Self::Migration) -> diesel::migration::Result<()>;
    /// Reverts one migration in its transaction (unless it runs without one) and forgets it.
    async fn revert_one(&mut self, migration: &Self::Migration) -> diesel::migration::Result<()>;
    /// The vector indexes the database's registry records.
    async fn registered_indexes(&mut self) -> Result<Vec<IndexSpec>, MigrationError>;
    /// Clean-up after a revert that SQL alone cannot do: `removed` are the vector indexes the revert took
    /// out of the registry (SQLite: drop their vec0 tables, which no plain SQL can).
    async fn after_revert(&mut self, removed: &[IndexSpec]) -> Result<(), MigrationError>;
    /// After migrations ran: warnings about what the connection lacks for what is now registered.
    async fn after_run(&mut self) -> Result<(), MigrationError> {
        Ok(())
    }
}

/// A set of migrations the runner can list, oldest first, as `M`s: a Diesel `MigrationSource`, or
/// migrations read beforehand.
pub trait Listed<M: ?Sized> {
    /// The migrations, oldest first.
    fn list(&self) -> Result<Vec<Box<M>>, MigrationError>;
}

#[cfg(feature = "async")]
impl<DB: Backend> Listed<super::recorded::RecordedMigration<DB>> for [super::recorded::RecordedMigration<DB>] {
    fn list(&self) -> Result<Vec<Box<super::recorded::RecordedMigration<DB>>>, MigrationError> {
        Ok(self.iter().cloned().map(Box::new).collect())
    }
}
