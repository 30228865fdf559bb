//! The schema's migrations, embedded per backend, and the runner that applies them, or any
//! application's own migrations, safely.
//!
//! | | PostgreSQL | SQLite |
//! |---|---|---|
//! | the crate's own set | [`PG_MIGRATIONS`] (`migrations_pg/`) | [`SQLITE_MIGRATIONS`] (`migrations_sqlite/`) |
//! | before anything changes | a rehearsal in a scratch schema, rolled back: pgvector usable? objects there already? | a rehearsal in an in-memory database: objects there already? |
//! | lock | advisory lock for the whole run | one `BEGIN IMMEDIATE` transaction (with the busy timeout) |
//! | each migration | its own transaction | its own savepoint |
//!
//! [`run_pending_migrations`] runs the crate's own set (`fragments` and `fragment_embeddings`);
//! [`run_pending_migrations_from`] runs any Diesel [`MigrationSource`] (an application's
//! `embed_migrations!` set, or a folder read with `FileBasedMigrations::from_path`) with the same
//! checks, lock, adoption and telemetry. [`revert_last_migration`], [`redo_last_migration`] and
//! [`migration_status`] have `_from` twins the same way.
//!
//! # Adoption
//!
//! A database may hold a pending migration's objects already (made by the application's original SQL,
//! by hand, or by another migration tool). Before anything changes, the runner **rehearses** the
//! migrations: on PostgreSQL inside a transaction that is always rolled back, in a scratch schema put
//! first on the `search_path` (with empty copies of the tables already on the `search_path` behind it,
//! so that nothing touches the application's rows or locks them against writes); on SQLite in an
//! in-memory database with the same functions. Each pending migration runs there, and the catalog is
//! read after each: tables (columns, types, nullability, unique keys), indexes, triggers, views,
//! sequences, types, functions. Then, for each pending migration, the objects it creates, changes or
//! drops are compared with the real database's:
//!
//! - all there as the migration leaves them: the migration is **adopted** (recorded as applied; the
//!   vector indexes it registers are added to the registry when missing), and no row changes;
//! - none there (or all as before it): it **runs**;
//! - otherwise nothing changes and the run stops with [`MigrationError::IncompatibleTable`] or
//!   [`MigrationError::PartiallyPresent`], naming the differences.
//!
//! A table a migration creates is compared whole (extra columns and unique keys tolerated); a table it
//! changes is compared on what it changes (the columns it adds, drops or alters), so that a table that
//! drifted from its history elsewhere still takes a new migration. The first rehearsal runs the pending
//! migrations on the database as it is; when they would all simply run (the usual deploy), that is
//! the answer. Otherwise a second rehearsal replays the applied migrations first, so that what a
//! pending migration changes is compared with the state its history gives (a column added by hand to
//! a table an earlier migration made is then adopted).
//!
//! A migration the rehearsal cannot run (one that is not run in a transaction, or one that builds on
//! objects the rehearsal does not have, such as an SQLite table made outside the migrations) and the
//! ones after it are run without this check; so are all of them when the rehearsal cannot start (on
//! PostgreSQL it needs the right to create schemas in the database, and to read the tables it copies).
//! A telemetry event says so. A database with no objects at all is not rehearsed.
//!
//! # pgvector
//!
//! pgvector may be unusable as things stand: not installed on the server, not created in the database
//! and this role may not create it, or created in a schema missing from the `search_path` (its types
//! then do not resolve: `to_regtype('vector')` is NULL). The crate's own set always needs it: the run
//! then stops before anything changes with [`MigrationError::PgvectorNotInstalled`],
//! [`MigrationError::PgvectorNotCreated`] or [`MigrationError::PgvectorNotOnSearchPath`]. An
//! application's set gets the same errors, before anything changes, when a migration's rehearsal fails
//! on pgvector's names; a set that does not use pgvector runs on any server.
//!
//! # Telemetry
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
//! assert_eq!(applied.len(), 4);
//! assert!(migrations::run_pending_migrations(&mut conn)?.is_empty(), "a second run does nothing");
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```
//!
//! An application's own migrations, for example a folder written by `index::generate::write`:
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_migrations::FileBasedMigrations;
//! use diesel_vector::index::{generate, IndexSpec};
//! use diesel_vector::migrations;
//!
//! let dir = tempfile::tempdir()?;
//! let (pg_dir, sqlite_dir) = (dir.path().join("migrations_pg"), dir.path().join("migrations_sqlite"));
//! std::fs::create_dir_all(sqlite_dir.join("2026-01-01-000000_create_documents"))?;
//! std::fs::write(
//!     sqlite_dir.join("2026-01-01-000000_create_documents/up.sql"),
//!     "CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, body TEXT NOT NULL);",
//! )?;
//! std::fs::write(sqlite_dir.join("2026-01-01-000000_create_documents/down.sql"), "DROP TABLE documents;")?;
//! let spec = IndexSpec::builder("documents", "embedding", 768).partition_by(["lang"]).build()?;
//! let migration = generate::render(&spec, &generate::Options::default().add_column(true));
//! generate::write(&migration, "20260101000001", &pg_dir, &sqlite_dir)?;
//!
//! let mut conn = diesel_vector::sqlite::establish(":memory:")?;
//! let source = FileBasedMigrations::from_path(&sqlite_dir)?;
//! assert_eq!(migrations::run_pending_migrations_from(&mut conn, &source)?.len(), 2);
//! assert!(diesel_vector::index::registry::load(&mut conn)?.contains(&spec));
//! assert_eq!(
//!     migrations::redo_last_migration_from(&mut conn, &source)?.as_deref(),
//!     Some("2026-01-01-000001_create_vector_index_documents_embedding")
//! );
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

#[cfg(feature = "async")]
mod asynchronous;
#[doc(hidden)]
pub mod backend;
mod error;
mod plan;
#[cfg(feature = "async")]
pub(crate) mod recorded;
#[doc(hidden)]
pub mod shape;

use std::sync::OnceLock;
use std::time::Instant;

use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use diesel::Connection;
use tracing::{error, info, info_span, Instrument};

#[cfg(feature = "async")]
pub use asynchronous::{
    migration_status_async, migration_status_from_async, redo_last_migration_async, redo_last_migration_from_async,
    revert_last_migration_async, revert_last_migration_from_async, run_pending_migrations_async,
    run_pending_migrations_from_async, AsyncMigrationTarget,
};
use backend::{Listed, Runner};
pub use error::MigrationError;
use plan::Step;
use shape::{Rehearsal, RehearsalFailure};

use crate::exec::block_on;

/// The PostgreSQL migrations (`migrations_pg/`), embedded at compile time.
#[cfg(feature = "pg-backend")]
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
    /// Its objects already existed with the shape it gives them; it was recorded without running.
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

/// Whether the migrations may use pgvector as things stand (found before anything changes). Anything
/// but `Ready` turns a rehearsal failure that names pgvector into its error.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorSupport {
    /// Nothing to check: SQLite; pgvector created and resolvable; or creatable by this superuser.
    Ready,
    /// pgvector is not installed on the server.
    NotInstalled,
    /// Not created in the database, and this role is not a superuser.
    MayNotCreate { database: String, role: String },
    /// Created in a schema that is not on the `search_path`.
    NotOnSearchPath { database: String, schema: String, search_path: String },
}

impl VectorSupport {
    /// The error a rehearsal failure means, when it is pgvector's: the database names pgvector's types,
    /// index methods or extension in its message (in any language: names are not translated).
    fn error_for(&self, failure: &RehearsalFailure) -> Option<MigrationError> {
        let message = failure.message.to_ascii_lowercase();
        if !["vector", "halfvec", "sparsevec", "hnsw", "ivfflat"].iter().any(|w| message.contains(w)) {
            return None;
        }
        self.error(&failure.message)
    }

    /// The error that pgvector's state is for a migration that needs it (`None` when it is usable);
    /// `reason` is the database's message.
    fn error(&self, reason: &str) -> Option<MigrationError> {
        match self {
            Self::Ready => None,
            Self::NotInstalled => Some(MigrationError::PgvectorNotInstalled),
            Self::MayNotCreate { database, role } => Some(MigrationError::PgvectorNotCreated {
                database: database.clone(),
                role: role.clone(),
                reason: reason.to_owned(),
            }),
            Self::NotOnSearchPath { database, schema, search_path } => Some(MigrationError::PgvectorNotOnSearchPath {
                database: database.clone(),
                schema: schema.clone(),
                search_path: search_path.clone(),
            }),
        }
    }
}

/// A sync connection the runner can migrate: [`diesel::PgConnection`] (feature `pg`) and
/// [`diesel::SqliteConnection`] (feature `sqlite`). Sealed. The async connections have their own
/// (`AsyncMigrationTarget`, feature `async`).
pub trait MigrationTarget:
    sealed::Sealed
    + Sized
    + Connection<Backend = <Self as Runner>::Db>
    + Runner<Migration = dyn Migration<<Self as Runner>::Db>>
    + shape::Catalog
{
}

/// Diesel's bookkeeping table.
pub(crate) const BOOKKEEPING_TABLE: &str = "__diesel_schema_migrations";

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Which migrations a call works on: the crate's own (versions listed once per process), or a source.
enum Set<'a, S: ?Sized> {
    Own,
    From(&'a S),
}

impl<S: ?Sized> Set<'_, S> {
    fn migrations<R: Runner>(&self) -> Result<Vec<Box<R::Migration>>, MigrationError>
    where
        S: Listed<R::Migration>,
    {
        match self {
            Self::Own => R::own_migrations(),
            Self::From(source) => source.list(),
        }
    }

    /// Whether every migration of the set is among `recorded`.
    fn all_recorded<R: Runner>(&self, recorded: &[String]) -> Result<bool, MigrationError>
    where
        S: Listed<R::Migration>,
    {
        Ok(match self {
            Self::Own => R::own_versions()?.iter().all(|v| recorded.contains(v)),
            Self::From(source) => source.list()?.iter().all(|m| recorded.contains(&version(&**m))),
        })
    }

    fn is_own(&self) -> bool {
        matches!(self, Self::Own)
    }
}

impl<'s, DB: Backend> Listed<dyn Migration<DB>> for dyn MigrationSource<DB> + 's {
    fn list(&self) -> Result<Vec<Box<dyn Migration<DB>>>, MigrationError> {
        sorted(self)
    }
}

fn version<DB: Backend, M: ?Sized + Migration<DB>>(migration: &M) -> String {
    migration.name().version().to_string()
}

/// Applies (or adopts) every pending migration of the crate's own set for the connection's backend
/// ([`PG_MIGRATIONS`] or [`SQLITE_MIGRATIONS`]): [`run_pending_migrations_from`] with that set.
///
/// # Errors
///
/// As [`run_pending_migrations_from`].
pub fn run_pending_migrations<C: MigrationTarget>(conn: &mut C) -> Result<Vec<AppliedMigration>, MigrationError> {
    block_on(run_pending(conn, &Set::<dyn MigrationSource<C::Db>>::Own))
}

/// Applies (or adopts, see the [module docs](self)) every pending migration of `source`, holding the
/// backend's migration lock, and returns what it did, oldest first. Concurrent runners on the same
/// database wait for each other; each migration is applied once. When every migration of `source` is
/// already recorded as applied, it only reads that (no lock, no checks) and returns an empty list.
///
/// `source` is any Diesel [`MigrationSource`] for the connection's backend: an application's
/// `embed_migrations!` set, or `diesel_migrations::FileBasedMigrations::from_path(dir)`.
///
/// # Errors
///
/// Before anything changes: pgvector needed but not usable ([`MigrationError::PgvectorNotInstalled`],
/// [`MigrationError::PgvectorNotCreated`], [`MigrationError::PgvectorNotOnSearchPath`]), objects there
/// with another shape or only in part ([`MigrationError::IncompatibleTable`],
/// [`MigrationError::PartiallyPresent`], [`MigrationError::RegisteredDifferently`]). While migrating:
/// [`MigrationError::Migration`] naming the migration that failed; it was rolled back and the ones
/// before it stay applied.
pub fn run_pending_migrations_from<C: MigrationTarget>(
    conn: &mut C,
    source: &dyn MigrationSource<C::Db>,
) -> Result<Vec<AppliedMigration>, MigrationError> {
    block_on(run_pending(conn, &Set::From(source)))
}

async fn run_pending<R, S>(conn: &mut R, set: &Set<'_, S>) -> Result<Vec<AppliedMigration>, MigrationError>
where
    R: Runner,
    S: ?Sized + Listed<R::Migration>,
{
    let span = info_span!(target: "diesel_vector::migrations", "run_pending_migrations", backend = R::BACKEND);
    async {
        let started = Instant::now();
        let result = run_pending_inner(conn, set).await;
        match &result {
            Ok(done) => info!(
                target: "diesel_vector::migrations",
                backend = R::BACKEND,
                count = done.len(),
                duration_ms = elapsed_ms(started),
                outcome = "ok",
                "migrations up to date"
            ),
            Err(e) => error!(
                target: "diesel_vector::migrations",
                backend = R::BACKEND,
                duration_ms = elapsed_ms(started),
                outcome = "failed",
                error = %e,
                "migration run failed"
            ),
        }
        result
    }
    .instrument(span)
    .await
}

async fn run_pending_inner<R, S>(conn: &mut R, set: &Set<'_, S>) -> Result<Vec<AppliedMigration>, MigrationError>
where
    R: Runner,
    S: ?Sized + Listed<R::Migration>,
{
    // Nothing pending, as at most start-ups: one read of the bookkeeping, without the lock and the
    // checks, which only guard changes. A version is recorded in the same transaction as its
    // migration's changes (or after its objects were found), so a database that records every version
    // has nothing left to do, whatever other runners are doing.
    let recorded = conn.applied_versions().await?;
    if set.all_recorded::<R>(&recorded)? {
        return Ok(Vec::new());
    }
    let migrations = set.migrations::<R>()?;
    let own = set.is_own();
    locked(conn, async |conn: &mut R| {
        let applied = conn.applied_versions().await?;
        let (mut done, mut pending): (Vec<&R::Migration>, Vec<&R::Migration>) = (Vec::new(), Vec::new());
        for migration in &migrations {
            if applied.contains(&version(&**migration)) {
                done.push(&**migration);
            } else {
                pending.push(&**migration);
            }
        }
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        // Everything is decided before the first change, so a refusal leaves the database as it was.
        let steps = plan_steps(conn, &done, &pending, own).await?;
        let mut out = Vec::with_capacity(pending.len());
        for (migration, step) in pending.into_iter().zip(steps) {
            out.push(apply(conn, migration, step).await?);
        }
        conn.after_run().await?;
        Ok(out)
    })
    .await
}

/// Runs `body` holding the backend's migration lock; the lock's release is awaited even when `body`
/// fails (an error releasing it is returned after `body`'s own).
async fn locked<R: Runner, T>(
    conn: &mut R,
    body: impl AsyncFnOnce(&mut R) -> Result<T, MigrationError>,
) -> Result<T, MigrationError> {
    conn.lock().await?;
    let result = body(conn).await;
    let unlocked = conn.unlock().await;
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Rehearses the pending migrations (when the database could hold any of their objects, or pgvector
/// needs checking) and decides what to do with each.
async fn plan_steps<R: Runner>(
    conn: &mut R,
    applied: &[&R::Migration],
    pending: &[&R::Migration],
    needs_vector: bool,
) -> Result<Vec<Step>, MigrationError> {
    let mut support = conn.vector_support().await?;
    if needs_vector {
        // The crate's own set always needs pgvector: checked whether or not the rehearsal can run.
        if let VectorSupport::MayNotCreate { .. } = support {
            if let Err(reason) = conn.try_create_vector().await {
                return Err(support.error(&reason).unwrap_or(MigrationError::PgvectorNotInstalled));
            }
        } else if let Some(e) = support.error("") {
            return Err(e);
        }
        support = VectorSupport::Ready;
    }
    if support == VectorSupport::Ready && !conn.has_objects().await? {
        return Ok(vec![Step::Run; pending.len()]);
    }
    let names: Vec<String> = pending.iter().map(|m| m.name().to_string()).collect();
    let real = conn.real_state().await?;
    // First the pending migrations alone, on the database as it is: when every one of them runs (the
    // usual deploy), that is the answer, without replaying the history.
    let quick = conn
        .rehearse(&[], pending)
        .instrument(info_span!(target: "diesel_vector::migrations", "rehearsal", backend = R::BACKEND, replayed = 0))
        .await?;
    if let Some(e) = quick.failure.as_ref().and_then(|f| support.error_for(f)) {
        return Err(e);
    }
    if applied.is_empty() {
        note_failure::<R>(&quick);
        return plan::plan(&names, &quick, real);
    }
    if quick.failure.is_none() {
        if let Ok(steps) = plan::plan(&names, &quick, real.clone()) {
            if steps.iter().all(|s| *s == Step::Run) {
                return Ok(steps);
            }
        }
    }
    // Something may exist already: compare with the state the applied migrations themselves give.
    let full = conn
        .rehearse(applied, pending)
        .instrument(info_span!(
            target: "diesel_vector::migrations",
            "rehearsal",
            backend = R::BACKEND,
            replayed = applied.len()
        ))
        .await?;
    if let Some(e) = full.failure.as_ref().and_then(|f| support.error_for(f)) {
        return Err(e);
    }
    note_failure::<R>(&full);
    plan::plan(&names, &full, real)
}

/// The telemetry event for a rehearsal that stopped early.
fn note_failure<R: Runner>(rehearsal: &Rehearsal) {
    if let Some(failure) = &rehearsal.failure {
        info!(
            target: "diesel_vector::migrations",
            backend = R::BACKEND,
            migration = %failure.migration,
            error = %failure.message,
            "the rehearsal stopped at migration {} ({}): {} run without the adoption check",
            failure.migration,
            failure.message,
            if failure.replayed { "the pending migrations" } else { "it and the ones after it" }
        );
    }
}

/// Runs or adopts one migration, with its span and event.
async fn apply<R: Runner>(
    conn: &mut R,
    migration: &R::Migration,
    step: Step,
) -> Result<AppliedMigration, MigrationError> {
    let (name, version) = (migration.name().to_string(), version(migration));
    let span = info_span!(target: "diesel_vector::migrations", "migration", backend = R::BACKEND, version = %version, name = %name);
    async {
        let started = Instant::now();
        let (outcome, result) = match step {
            Step::Adopt(register) => (Outcome::Adopted, conn.adopt(&version, &register).await),
            Step::Run => (
                Outcome::Applied,
                conn.run_one(migration)
                    .await
                    .map_err(|source| MigrationError::Migration { migration: name.clone(), source }),
            ),
        };
        match result {
            Ok(()) => {
                let outcome_name = if outcome == Outcome::Applied { "applied" } else { "adopted" };
                info!(
                    target: "diesel_vector::migrations",
                    backend = R::BACKEND,
                    version = %version,
                    outcome = outcome_name,
                    duration_ms = elapsed_ms(started),
                    "migration {name} {outcome_name}"
                );
                Ok(AppliedMigration { version: version.clone(), name: name.clone(), outcome })
            }
            Err(e) => {
                error!(
                    target: "diesel_vector::migrations",
                    backend = R::BACKEND,
                    version = %version,
                    outcome = "failed",
                    duration_ms = elapsed_ms(started),
                    error = %e,
                    "migration {name} failed"
                );
                Err(e)
            }
        }
    }
    .instrument(span)
    .await
}

/// Reverts the most recently applied migration of the crate's own set: [`revert_last_migration_from`]
/// with that set. On PostgreSQL the pgvector extension is never dropped; on SQLite the vec0 index table
/// is dropped with `fragment_embeddings` when sqlite-vec is loaded (otherwise it is rebuilt on the next
/// migration up).
///
/// # Errors
///
/// As [`revert_last_migration_from`].
pub fn revert_last_migration<C: MigrationTarget>(conn: &mut C) -> Result<Option<String>, MigrationError> {
    block_on(revert_last(conn, &Set::<dyn MigrationSource<C::Db>>::Own))
}

/// Reverts the most recently applied migration of `source` (the last in version order among those the
/// database records) and returns its name, or `None` when none is applied. The vector indexes its down
/// migration takes out of the registry lose what SQL cannot drop (SQLite: their vec0 tables, when
/// sqlite-vec is loaded).
///
/// # Errors
///
/// [`MigrationError::Migration`] when the down migration fails; it was rolled back.
pub fn revert_last_migration_from<C: MigrationTarget>(
    conn: &mut C,
    source: &dyn MigrationSource<C::Db>,
) -> Result<Option<String>, MigrationError> {
    block_on(revert_last(conn, &Set::From(source)))
}

async fn revert_last<R, S>(conn: &mut R, set: &Set<'_, S>) -> Result<Option<String>, MigrationError>
where
    R: Runner,
    S: ?Sized + Listed<R::Migration>,
{
    let span = info_span!(target: "diesel_vector::migrations", "revert_last_migration", backend = R::BACKEND);
    async {
        let migrations = set.migrations::<R>()?;
        locked(conn, async |conn: &mut R| Ok(revert_locked(conn, &migrations).await?.map(|m| m.name().to_string())))
            .await
    }
    .instrument(span)
    .await
}

/// Reverts the last applied migration among `migrations`, under the caller's lock, and returns it.
async fn revert_locked<'m, R: Runner>(
    conn: &mut R,
    migrations: &'m [Box<R::Migration>],
) -> Result<Option<&'m R::Migration>, MigrationError> {
    let applied = conn.applied_versions().await?;
    let Some(last) = migrations.iter().rev().find(|m| applied.contains(&version(&***m))) else {
        return Ok(None);
    };
    let (name, version) = (last.name().to_string(), version(&**last));
    let started = Instant::now();
    let before = conn.registered_indexes().await?;
    let mut result =
        conn.revert_one(last).await.map_err(|source| MigrationError::Migration { migration: name.clone(), source });
    if result.is_ok() {
        result = async {
            let after = conn.registered_indexes().await?;
            let removed: Vec<_> = before.into_iter().filter(|s| !after.contains(s)).collect();
            conn.after_revert(&removed).await
        }
        .await;
    }
    match &result {
        Ok(()) => info!(
            target: "diesel_vector::migrations",
            backend = R::BACKEND,
            version = %version,
            outcome = "reverted",
            duration_ms = elapsed_ms(started),
            "migration {name} reverted"
        ),
        Err(e) => error!(
            target: "diesel_vector::migrations",
            backend = R::BACKEND,
            version = %version,
            outcome = "failed",
            duration_ms = elapsed_ms(started),
            error = %e,
            "reverting migration {name} failed"
        ),
    }
    result.map(|()| Some(&**last))
}

/// Reverts the most recent migration of the crate's own set and applies it again:
/// [`redo_last_migration_from`] with that set.
///
/// # Errors
///
/// As [`redo_last_migration_from`].
pub fn redo_last_migration<C: MigrationTarget>(conn: &mut C) -> Result<Option<String>, MigrationError> {
    block_on(redo_last(conn, &Set::<dyn MigrationSource<C::Db>>::Own))
}

/// Reverts the most recently applied migration of `source` and applies that same migration again, as
/// one operation under the migration lock (a concurrent redo, run or revert waits, then sees either the
/// state before or the state after); returns its name, or `None` when none is applied.
///
/// # Errors
///
/// As [`revert_last_migration_from`]; when the migration fails to apply again it stays reverted and
/// the error is [`MigrationError::Migration`].
pub fn redo_last_migration_from<C: MigrationTarget>(
    conn: &mut C,
    source: &dyn MigrationSource<C::Db>,
) -> Result<Option<String>, MigrationError> {
    block_on(redo_last(conn, &Set::From(source)))
}

async fn redo_last<R, S>(conn: &mut R, set: &Set<'_, S>) -> Result<Option<String>, MigrationError>
where
    R: Runner,
    S: ?Sized + Listed<R::Migration>,
{
    let span = info_span!(target: "diesel_vector::migrations", "redo_last_migration", backend = R::BACKEND);
    async {
        let migrations = set.migrations::<R>()?;
        locked(conn, async |conn: &mut R| {
            let Some(migration) = revert_locked(conn, &migrations).await? else {
                return Ok(None);
            };
            apply(conn, migration, Step::Run).await.map(|m| Some(m.name))
        })
        .await
    }
    .instrument(span)
    .await
}

/// Every migration of the crate's own set with whether it is applied: [`migration_status_from`] with
/// that set.
///
/// # Errors
///
/// As [`migration_status_from`].
pub fn migration_status<C: MigrationTarget>(conn: &mut C) -> Result<Vec<MigrationStatus>, MigrationError> {
    block_on(status(conn, &Set::<dyn MigrationSource<C::Db>>::Own))
}

/// Every migration of `source` with whether the database records it as applied, oldest first. Changes
/// nothing (works on read-only connections).
///
/// # Errors
///
/// A failing catalog query, or a source that cannot be read.
pub fn migration_status_from<C: MigrationTarget>(
    conn: &mut C,
    source: &dyn MigrationSource<C::Db>,
) -> Result<Vec<MigrationStatus>, MigrationError> {
    block_on(status(conn, &Set::From(source)))
}

async fn status<R, S>(conn: &mut R, set: &Set<'_, S>) -> Result<Vec<MigrationStatus>, MigrationError>
where
    R: Runner,
    S: ?Sized + Listed<R::Migration>,
{
    let applied = conn.applied_versions().await?;
    Ok(set
        .migrations::<R>()?
        .iter()
        .map(|m| {
            let version = version(&**m);
            MigrationStatus { applied: applied.contains(&version), version, name: m.name().to_string() }
        })
        .collect())
}

/// A source's migrations as a list, oldest first (Diesel's `MigrationSource` returns them unsorted).
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
