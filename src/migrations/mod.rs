//! The schema's migrations, embedded per backend, and the runner that applies them safely.
//!
//! | | PostgreSQL | SQLite |
//! |---|---|---|
//! | embedded set | [`PG_MIGRATIONS`] (`migrations_pg/`) | [`SQLITE_MIGRATIONS`] (`migrations_sqlite/`) |
//! | before anything changes | pgvector installed? creatable by this role? | sqlite-vec loaded? (a warning if not) |
//! | lock | advisory lock for the whole run | one `BEGIN IMMEDIATE` transaction (with the busy timeout) |
//! | each migration | its own transaction | its own savepoint |
//!
//! [`run_pending_migrations`] also **adopts** tables that exist without Diesel's bookkeeping (a
//! database made by the application's original SQL): when every table a pending migration creates is
//! already there with the expected shape, the migration is recorded as applied and nothing else changes.
//! A table of the same name with another shape is an [`MigrationError::IncompatibleTable`] naming the
//! differences, and nothing is changed.
//!
//! Every run and every migration is a `tracing` span (`diesel_vector::migrations`), with an event per
//! migration carrying `backend`, `version`, `outcome` (`applied`, `adopted`, `reverted`, `failed`),
//! `duration_ms` and, on failure, `error`.
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_vector::migrations;
//!
//! let mut conn = diesel_vector::sqlite::establish(":memory:")?;
//! let applied = migrations::run_pending_migrations(&mut conn)?;
//! assert_eq!(applied.len(), 3);
//! assert!(migrations::run_pending_migrations(&mut conn)?.is_empty(), "a second run does nothing");
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

mod error;
#[doc(hidden)]
pub mod shape;

use std::sync::OnceLock;
use std::time::Instant;

use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::MigrationHarness;
use tracing::{error, info, info_span};

pub use error::MigrationError;

/// The PostgreSQL migrations (`migrations_pg/`), embedded at compile time.
#[cfg(feature = "pg")]
pub const PG_MIGRATIONS: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations_pg");

/// The SQLite migrations (`migrations_sqlite/`), embedded at compile time.
#[cfg(feature = "sqlite")]
pub const SQLITE_MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations_sqlite");

/// How a migration came to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Its SQL ran.
    Applied,
    /// Its tables already existed with the expected shape; it was recorded without running.
    Adopted,
}

/// A migration that [`run_pending_migrations`] applied or adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Diesel's version, such as `20250101000002`.
    pub version: String,
    /// The folder name, such as `2025-01-01-000002_create_fragment_embeddings`.
    pub name: String,
    /// Whether it ran or was adopted.
    pub outcome: Outcome,
}

/// One line of [`migration_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Diesel's version, such as `20250101000002`.
    pub version: String,
    /// The folder name.
    pub name: String,
    /// Whether the database records it as applied.
    pub applied: bool,
}

/// Whether the objects a migration creates exist already (found before anything changes).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// None of them: run the migration.
    Absent,
    /// All of them, with the expected shape: record the migration as applied.
    Present,
}

/// A connection the runner can migrate: [`diesel::PgConnection`] (feature `pg`) and
/// [`diesel::SqliteConnection`] (feature `sqlite`). Sealed; the methods are the runner's internals.
pub trait MigrationTarget: sealed::Sealed + Sized + MigrationHarness<Self::Db> + shape::Catalog {
    #[doc(hidden)]
    type Db: Backend;
    #[doc(hidden)]
    const BACKEND: &'static str;
    /// What each of the backend's migrations creates, for adoption.
    #[doc(hidden)]
    const CREATES: &'static [shape::Creates];
    #[doc(hidden)]
    fn migrations() -> Result<Vec<Box<dyn Migration<Self::Db>>>, MigrationError>;
    /// The embedded migrations' versions, oldest first, listed once per process.
    #[doc(hidden)]
    fn versions() -> Result<&'static [String], MigrationError>;
    /// Checks the vector extension; changes nothing.
    #[doc(hidden)]
    fn preflight(&mut self) -> Result<(), MigrationError>;
    /// Runs `f` holding the backend's migration lock.
    #[doc(hidden)]
    fn locked<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, MigrationError>) -> Result<R, MigrationError>;
    /// Records `version` as applied without running it.
    #[doc(hidden)]
    fn record_applied(&mut self, version: &str) -> Result<(), MigrationError>;
    /// The vector indexes the database's registry records.
    #[doc(hidden)]
    fn registered_indexes(&mut self) -> Result<Vec<crate::index::IndexSpec>, MigrationError>;

    /// Clean-up after a revert that SQL alone cannot do: `removed` are the vector indexes the revert
    /// took out of the registry (SQLite: drop their vec0 tables, which no plain SQL can).
    #[doc(hidden)]
    fn after_revert(&mut self, removed: &[crate::index::IndexSpec]) -> Result<(), MigrationError>;

    /// The versions recorded as applied, without creating Diesel's bookkeeping table.
    #[doc(hidden)]
    fn applied_versions(&mut self) -> Result<Vec<String>, MigrationError> {
        if !self.exists(BOOKKEEPING_TABLE)? {
            return Ok(Vec::new());
        }
        Ok(self.recorded_versions()?)
    }

    /// Whether the objects migration `name` creates already exist, and are compatible.
    #[doc(hidden)]
    fn probe(&mut self, name: &str) -> Result<Presence, MigrationError> {
        match shape::creates_for(Self::CREATES, name) {
            Some(creates) => shape::probe(self, name, creates),
            None => Ok(Presence::Absent),
        }
    }

    /// Runs one migration in its transaction, creating Diesel's bookkeeping table first when missing
    /// (only now, after every check passed).
    #[doc(hidden)]
    fn run_one(&mut self, migration: &dyn Migration<Self::Db>) -> diesel::migration::Result<()> {
        MigrationHarness::applied_migrations(self)?;
        MigrationHarness::run_migration(self, migration).map(|_| ())
    }

    #[doc(hidden)]
    fn revert_one(&mut self, migration: &dyn Migration<Self::Db>) -> diesel::migration::Result<()> {
        MigrationHarness::revert_migration(self, migration).map(|_| ())
    }
}

/// Diesel's bookkeeping table.
const BOOKKEEPING_TABLE: &str = "__diesel_schema_migrations";

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Applies (or adopts) every pending migration of the connection's backend, holding the backend's
/// migration lock, and returns what it did, oldest first. Concurrent runners on the same database wait
/// for each other; each migration is applied once. When every migration is already recorded as applied,
/// it only reads that (no lock, no extension check) and returns an empty list.
///
/// # Errors
///
/// Before anything changes: pgvector missing or not creatable ([`MigrationError::PgvectorNotInstalled`],
/// [`MigrationError::PgvectorNotCreated`]), an existing table of another shape
/// ([`MigrationError::IncompatibleTable`]). While migrating: [`MigrationError::Migration`] naming the
/// migration that failed; it was rolled back and the ones before it stay applied.
pub fn run_pending_migrations<C: MigrationTarget>(conn: &mut C) -> Result<Vec<AppliedMigration>, MigrationError> {
    let span = info_span!(target: "diesel_vector::migrations", "run_pending_migrations", backend = C::BACKEND);
    let _enter = span.enter();
    let started = Instant::now();
    let result = run_pending_inner(conn);
    match &result {
        Ok(done) => info!(
            target: "diesel_vector::migrations",
            backend = C::BACKEND,
            count = done.len(),
            duration_ms = elapsed_ms(started),
            outcome = "ok",
            "migrations up to date"
        ),
        Err(e) => error!(
            target: "diesel_vector::migrations",
            backend = C::BACKEND,
            duration_ms = elapsed_ms(started),
            outcome = "failed",
            error = %e,
            "migration run failed"
        ),
    }
    result
}

fn run_pending_inner<C: MigrationTarget>(conn: &mut C) -> Result<Vec<AppliedMigration>, MigrationError> {
    // Nothing pending, as at most start-ups: one read of the bookkeeping, without the lock and the
    // extension checks, which only guard changes. A version is recorded in the same transaction as its
    // migration's changes (or after its objects were found), so a database that records every version
    // has nothing left to do, whatever other runners are doing.
    let recorded = conn.applied_versions()?;
    if C::versions()?.iter().all(|v| recorded.contains(v)) {
        return Ok(Vec::new());
    }
    let migrations = C::migrations()?;
    conn.locked(|conn| {
        // Under the lock: concurrent runners must not race each other's trial CREATE EXTENSION.
        conn.preflight()?;
        let applied = conn.applied_versions()?;
        let pending: Vec<&dyn Migration<C::Db>> =
            migrations.iter().map(|m| &**m).filter(|m| !applied.contains(&m.name().version().to_string())).collect();
        // Probe everything first, so an incompatible table stops the run before anything changes.
        let mut plan = Vec::with_capacity(pending.len());
        for m in pending {
            let (name, version) = (m.name().to_string(), m.name().version().to_string());
            let presence = conn.probe(&name)?;
            plan.push((m, name, version, presence));
        }
        let mut done = Vec::with_capacity(plan.len());
        for (migration, name, version, presence) in plan {
            let span = info_span!(
                target: "diesel_vector::migrations",
                "migration",
                backend = C::BACKEND,
                version = %version,
                name = %name
            );
            let _enter = span.enter();
            let started = Instant::now();
            let (outcome, result) = match presence {
                Presence::Present => (Outcome::Adopted, conn.record_applied(&version)),
                Presence::Absent => (
                    Outcome::Applied,
                    conn.run_one(migration)
                        .map_err(|source| MigrationError::Migration { migration: name.clone(), source }),
                ),
            };
            match result {
                Ok(()) => {
                    let outcome_name = if outcome == Outcome::Applied { "applied" } else { "adopted" };
                    info!(
                        target: "diesel_vector::migrations",
                        backend = C::BACKEND,
                        version = %version,
                        outcome = outcome_name,
                        duration_ms = elapsed_ms(started),
                        "migration {name} {outcome_name}"
                    );
                    done.push(AppliedMigration { version, name, outcome });
                }
                Err(e) => {
                    error!(
                        target: "diesel_vector::migrations",
                        backend = C::BACKEND,
                        version = %version,
                        outcome = "failed",
                        duration_ms = elapsed_ms(started),
                        error = %e,
                        "migration {name} failed"
                    );
                    return Err(e);
                }
            }
        }
        Ok(done)
    })
}

/// Reverts the most recently applied migration and returns its name, or `None` when none is applied.
/// On PostgreSQL the pgvector extension is never dropped; on SQLite the vec0 index table is dropped with
/// `fragment_embeddings` when sqlite-vec is loaded (otherwise it is rebuilt on the next migration up).
///
/// # Errors
///
/// [`MigrationError::Migration`] when the down migration fails; it was rolled back.
pub fn revert_last_migration<C: MigrationTarget>(conn: &mut C) -> Result<Option<String>, MigrationError> {
    let span = info_span!(target: "diesel_vector::migrations", "revert_last_migration", backend = C::BACKEND);
    let _enter = span.enter();
    let migrations = C::migrations()?;
    conn.locked(|conn| {
        let applied = conn.applied_versions()?;
        let Some(last) = migrations.iter().rev().find(|m| applied.contains(&m.name().version().to_string())) else {
            return Ok(None);
        };
        let (name, version) = (last.name().to_string(), last.name().version().to_string());
        let started = Instant::now();
        let before = conn.registered_indexes()?;
        let result = conn
            .revert_one(&**last)
            .map_err(|source| MigrationError::Migration { migration: name.clone(), source })
            .and_then(|()| {
                let after = conn.registered_indexes()?;
                let removed: Vec<_> = before.into_iter().filter(|s| !after.contains(s)).collect();
                conn.after_revert(&removed)
            });
        match &result {
            Ok(()) => info!(
                target: "diesel_vector::migrations",
                backend = C::BACKEND,
                version = %version,
                outcome = "reverted",
                duration_ms = elapsed_ms(started),
                "migration {name} reverted"
            ),
            Err(e) => error!(
                target: "diesel_vector::migrations",
                backend = C::BACKEND,
                version = %version,
                outcome = "failed",
                duration_ms = elapsed_ms(started),
                error = %e,
                "reverting migration {name} failed"
            ),
        }
        result.map(|()| Some(name))
    })
}

/// Reverts the most recent migration and applies it again; returns its name, or `None` when none is
/// applied.
///
/// # Errors
///
/// As [`revert_last_migration`] and [`run_pending_migrations`].
pub fn redo_last_migration<C: MigrationTarget>(conn: &mut C) -> Result<Option<String>, MigrationError> {
    let Some(name) = revert_last_migration(conn)? else {
        return Ok(None);
    };
    let migrations = C::migrations()?;
    let migration = migrations.iter().find(|m| m.name().to_string() == name).map(|m| &**m);
    if let Some(migration) = migration {
        conn.locked(|conn| {
            conn.run_one(migration).map_err(|source| MigrationError::Migration { migration: name.clone(), source })
        })?;
        info!(target: "diesel_vector::migrations", backend = C::BACKEND, outcome = "applied", "migration {name} redone");
    }
    Ok(Some(name))
}

/// Every migration of the backend with whether it is applied, oldest first. Changes nothing.
///
/// # Errors
///
/// A failing catalog query.
pub fn migration_status<C: MigrationTarget>(conn: &mut C) -> Result<Vec<MigrationStatus>, MigrationError> {
    let applied = conn.applied_versions()?;
    Ok(C::migrations()?
        .iter()
        .map(|m| {
            let version = m.name().version().to_string();
            MigrationStatus { applied: applied.contains(&version), version, name: m.name().to_string() }
        })
        .collect())
}

/// The embedded set as a list, oldest first (Diesel's `MigrationSource` returns them unsorted).
pub(crate) fn sorted<DB: Backend>(
    source: &dyn MigrationSource<DB>,
) -> Result<Vec<Box<dyn Migration<DB>>>, MigrationError> {
    let mut migrations = source.migrations().map_err(MigrationError::Harness)?;
    migrations.sort_by_key(|m| m.name().version().to_string());
    Ok(migrations)
}

/// The versions of `source`'s migrations, oldest first, from `cache` once they have been listed.
pub(crate) fn embedded_versions<DB: Backend>(
    source: &dyn MigrationSource<DB>,
    cache: &'static OnceLock<Vec<String>>,
) -> Result<&'static [String], MigrationError> {
    if let Some(versions) = cache.get() {
        return Ok(versions);
    }
    let versions = sorted(source)?.iter().map(|m| m.name().version().to_string()).collect();
    Ok(cache.get_or_init(|| versions))
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}
