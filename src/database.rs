//! A connection to either backend, chosen from a database URL at run time.
//!
//! Three ways to open one, by what the caller needs: [`DatabaseConnection::establish`] creates an
//! SQLite file that does not exist (migrating a new database, the target of a copy);
//! [`DatabaseConnection::establish_existing`] opens only a database that exists, for reading and writing
//! (searching, reindexing, importing: a mistyped path is [`MigrationError::NoDatabase`], not a new empty
//! file); [`DatabaseConnection::establish_read_only`] opens an existing database without writing anything,
//! also a WAL database in a read-only directory. An empty URL is [`MigrationError::EmptyUrl`] for all three:
//! SQLite would open a private temporary database that vanishes with the connection.

#[cfg(feature = "sqlite")]
mod read_only;
mod url;

use std::fmt;
use std::path::{Path, PathBuf};

use diesel_migrations::{EmbeddedMigrations, FileBasedMigrations};

use crate::index::{registry, IndexSpec, RegistryError};
use crate::migrations::{self, AppliedMigration, MigrationError, MigrationStatus};
use crate::models::Fragment;
use crate::search::{Hit, IndexSearch, Neighbor, Search, SearchError};

#[cfg(feature = "sqlite")]
pub(crate) use url::is_empty_location;
pub use url::{sqlite_file, sqlite_path, sqlite_read_only_uri};

/// The backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite://PATH`, a `file:` URI, a plain path or `:memory:`.
    Sqlite,
}

impl BackendKind {
    /// Picks the backend from a URL, the way the diesel CLI does; `mysql://` and any other scheme are
    /// [`MigrationError::UnsupportedDriver`].
    ///
    /// ```
    /// use diesel_vector::database::BackendKind;
    ///
    /// assert_eq!(BackendKind::from_url("postgres://localhost/app")?, BackendKind::Postgres);
    /// assert_eq!(BackendKind::from_url("app.db")?, BackendKind::Sqlite);
    /// assert_eq!(BackendKind::from_url("sqlite:///tmp/app.db")?, BackendKind::Sqlite);
    /// assert_eq!(
    ///     BackendKind::from_url("mysql://localhost/app").unwrap_err().to_string(),
    ///     "Unsupported driver: mysql (diesel-vector supports postgres://, postgresql:// and SQLite paths)"
    /// );
    /// # Ok::<(), diesel_vector::migrations::MigrationError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`MigrationError::UnsupportedDriver`] for any other `scheme://`; [`MigrationError::EmptyUrl`] for an
    /// empty URL, `sqlite://` alone, or a `file:` URI without a path.
    pub fn from_url(url: &str) -> Result<Self, MigrationError> {
        if url::is_empty_location(url::sqlite_path(url)) {
            return Err(MigrationError::EmptyUrl);
        }
        match url.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(Self::Postgres),
            Some(("sqlite", _)) => Ok(Self::Sqlite),
            Some((scheme, _))
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                Err(MigrationError::UnsupportedDriver { driver: scheme.to_owned() })
            }
            _ => Ok(Self::Sqlite),
        }
    }
}

/// An application's own migrations, one set per backend: a [`DatabaseConnection`] runs the set of its
/// backend. Folders are read when a method runs (as the diesel CLI reads them); embedded sets are
/// `embed_migrations!` constants.
///
/// ```
/// use diesel_vector::database::{AppMigrations, BackendKind};
///
/// // The two folders `diesel-vector generate vector-index` writes, under the project's root:
/// let migrations = AppMigrations::under(".");
/// assert!(migrations.dir_for(BackendKind::Sqlite).unwrap().ends_with("migrations_sqlite"));
/// // One folder, whatever the backend (the CLI's `--migration-dir`):
/// let single = AppMigrations::dir("db/migrations");
/// assert_eq!(single.dir_for(BackendKind::Postgres), single.dir_for(BackendKind::Sqlite));
/// ```
#[derive(Clone)]
pub struct AppMigrations<'a> {
    pg: AppSet<'a>,
    sqlite: AppSet<'a>,
}

#[derive(Clone)]
enum AppSet<'a> {
    Dir(PathBuf),
    Embedded(&'a EmbeddedMigrations),
}

impl<'a> AppMigrations<'a> {
    /// The folder `pg` for PostgreSQL and `sqlite` for SQLite.
    pub fn dirs(pg: impl Into<PathBuf>, sqlite: impl Into<PathBuf>) -> Self {
        Self { pg: AppSet::Dir(pg.into()), sqlite: AppSet::Dir(sqlite.into()) }
    }

    /// `root/migrations_pg` and `root/migrations_sqlite`, the folders `diesel-vector generate
    /// vector-index` writes (and `index::generate::write` is usually given).
    pub fn under(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        Self::dirs(root.join("migrations_pg"), root.join("migrations_sqlite"))
    }

    /// One folder for whichever backend the connection has.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self::dirs(dir.clone(), dir)
    }

    /// Two sets embedded at compile time:
    /// `const PG: EmbeddedMigrations = embed_migrations!("migrations_pg");` and the same for SQLite.
    pub fn embedded(pg: &'a EmbeddedMigrations, sqlite: &'a EmbeddedMigrations) -> Self {
        Self { pg: AppSet::Embedded(pg), sqlite: AppSet::Embedded(sqlite) }
    }

    /// The folder for `kind`, or `None` for an embedded set.
    pub fn dir_for(&self, kind: BackendKind) -> Option<&Path> {
        match self.set(kind) {
            AppSet::Dir(dir) => Some(dir),
            AppSet::Embedded(_) => None,
        }
    }

    fn set(&self, kind: BackendKind) -> &AppSet<'a> {
        match kind {
            BackendKind::Postgres => &self.pg,
            BackendKind::Sqlite => &self.sqlite,
        }
    }

    /// Runs `f` on the migration source for `kind`.
    #[cfg_attr(not(all(feature = "pg", feature = "sqlite")), allow(dead_code))]
    fn with_source<DB: diesel::backend::Backend, R>(
        &self,
        kind: BackendKind,
        f: impl FnOnce(&dyn diesel::migration::MigrationSource<DB>) -> Result<R, MigrationError>,
    ) -> Result<R, MigrationError> {
        match self.set(kind) {
            AppSet::Dir(dir) => {
                let source = FileBasedMigrations::from_path(dir).map_err(|e| MigrationError::Harness(Box::new(e)))?;
                f(&source)
            }
            AppSet::Embedded(set) => f(*set),
        }
    }
}

impl fmt::Debug for AppMigrations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &AppSet<'_>| match s {
            AppSet::Dir(dir) => format!("{}", dir.display()),
            AppSet::Embedded(_) => "(embedded)".to_owned(),
        };
        f.debug_struct("AppMigrations").field("pg", &set(&self.pg)).field("sqlite", &set(&self.sqlite)).finish()
    }
}

/// A connection to whichever backend a URL names.
#[allow(missing_debug_implementations)] // Diesel's connections are not Debug.
#[non_exhaustive]
pub enum DatabaseConnection {
    /// PostgreSQL with pgvector.
    #[cfg(feature = "pg")]
    Pg(diesel::PgConnection),
    /// SQLite, set up by [`crate::sqlite::establish`].
    #[cfg(feature = "sqlite")]
    Sqlite(diesel::SqliteConnection),
}

impl DatabaseConnection {
    /// Opens `url` with the backend it names; a missing SQLite file is created.
    ///
    /// # Errors
    ///
    /// [`MigrationError::EmptyUrl`], [`MigrationError::UnsupportedDriver`], [`MigrationError::FeatureDisabled`]
    /// when this build lacks the backend, or [`MigrationError::Connection`] with the backend's own error.
    pub fn establish(url: &str) -> Result<Self, MigrationError> {
        match BackendKind::from_url(url)? {
            #[cfg(feature = "pg")]
            BackendKind::Postgres => Ok(Self::Pg(<diesel::PgConnection as diesel::Connection>::establish(url)?)),
            #[cfg(not(feature = "pg"))]
            BackendKind::Postgres => Err(MigrationError::FeatureDisabled { backend: "PostgreSQL", feature: "pg" }),
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => Ok(Self::Sqlite(crate::sqlite::establish(sqlite_path(url))?)),
            #[cfg(not(feature = "sqlite"))]
            BackendKind::Sqlite => Err(MigrationError::FeatureDisabled { backend: "SQLite", feature: "sqlite" }),
        }
    }

    /// Opens the existing database of `url` for reading and writing, as [`DatabaseConnection::establish`]
    /// does, except that SQLite never creates a file (`mode=rw`): for work on a database that must already
    /// be there, where a mistyped path should not leave an empty database behind.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() {
    /// use diesel_vector::database::DatabaseConnection;
    /// use diesel_vector::migrations::MigrationError;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("tpyo.db");
    /// let err = DatabaseConnection::establish_existing(path.to_str().unwrap()).err().unwrap();
    /// assert!(matches!(err, MigrationError::NoDatabase { .. }));
    /// assert!(!path.exists());
    /// # }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    ///
    /// # Errors
    ///
    /// [`MigrationError::NoDatabase`] when the SQLite file does not exist, or as
    /// [`DatabaseConnection::establish`].
    pub fn establish_existing(url: &str) -> Result<Self, MigrationError> {
        match BackendKind::from_url(url)? {
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => match sqlite_file(url) {
                Some(path) => {
                    require_file(&path)?;
                    Ok(Self::Sqlite(crate::sqlite::establish(&url::sqlite_uri(url, "rw", &[]))?))
                }
                None => Self::establish(url),
            },
            _ => Self::establish(url),
        }
    }

    /// Opens the existing database of `url` for reading: SQLite read-only through [`sqlite_read_only_uri`]
    /// (nothing is written, not even the journal mode), and with `immutable=1` when it is a WAL database
    /// whose shared-memory file is missing and cannot be created (a read-only directory) and whose
    /// write-ahead log is empty; PostgreSQL as [`DatabaseConnection::establish`] does.
    ///
    /// # Errors
    ///
    /// [`MigrationError::NoDatabase`] when the SQLite file does not exist,
    /// [`MigrationError::WalUnreadable`] for a WAL database in a read-only directory whose log holds
    /// changes, or as [`DatabaseConnection::establish`].
    pub fn establish_read_only(url: &str) -> Result<Self, MigrationError> {
        match BackendKind::from_url(url)? {
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => Ok(Self::Sqlite(open_sqlite_read_only(url)?)),
            _ => Self::establish(url),
        }
    }

    /// Turns SQLite's memory map off for this connection (`PRAGMA mmap_size = 0`; nothing on PostgreSQL), for
    /// work that reads or writes a whole large file once, as copy, export and import do. Pages read through the
    /// map (on by default, see [`crate::sqlite::ConnectionOptions::mmap_size`]) count in the process's resident
    /// memory: a 100k-row copy of 1536-dim vectors peaked at 756-811 MiB with it, 30-32 MiB without.
    ///
    /// # Errors
    ///
    /// The pragma's error.
    pub fn without_memory_map(&mut self) -> diesel::QueryResult<()> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => diesel::connection::SimpleConnection::batch_execute(c, "PRAGMA mmap_size = 0"),
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    }

    /// The backend of this connection.
    pub fn kind(&self) -> BackendKind {
        match self {
            #[cfg(feature = "pg")]
            Self::Pg(_) => BackendKind::Postgres,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// [`migrations::run_pending_migrations`] on this connection: diesel-vector's own migrations (`fragments` and
    /// `fragment_embeddings`); for the application's, [`DatabaseConnection::run_pending_migrations_from`].
    ///
    /// # Errors
    ///
    /// As [`migrations::run_pending_migrations`].
    pub fn run_pending_migrations(&mut self) -> Result<Vec<AppliedMigration>, MigrationError> {
        dispatch!(self, c => migrations::run_pending_migrations(c))
    }

    /// [`migrations::revert_last_migration`] on this connection: diesel-vector's own migrations (`fragments` and
    /// `fragment_embeddings`); for the application's, [`DatabaseConnection::revert_last_migration_from`].
    ///
    /// # Errors
    ///
    /// As [`migrations::revert_last_migration`].
    pub fn revert_last_migration(&mut self) -> Result<Option<String>, MigrationError> {
        dispatch!(self, c => migrations::revert_last_migration(c))
    }

    /// [`migrations::redo_last_migration`] on this connection: diesel-vector's own migrations (`fragments` and
    /// `fragment_embeddings`); for the application's, [`DatabaseConnection::redo_last_migration_from`].
    ///
    /// # Errors
    ///
    /// As [`migrations::redo_last_migration`].
    pub fn redo_last_migration(&mut self) -> Result<Option<String>, MigrationError> {
        dispatch!(self, c => migrations::redo_last_migration(c))
    }

    /// [`migrations::migration_status`] on this connection: diesel-vector's own migrations (`fragments` and
    /// `fragment_embeddings`); for the application's, [`DatabaseConnection::migration_status_from`].
    ///
    /// # Errors
    ///
    /// As [`migrations::migration_status`].
    pub fn migration_status(&mut self) -> Result<Vec<MigrationStatus>, MigrationError> {
        dispatch!(self, c => migrations::migration_status(c))
    }

    /// [`migrations::run_pending_migrations_from`] with the application's migrations for this
    /// connection's backend.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_vector::database::{AppMigrations, DatabaseConnection};
    ///
    /// let root = tempfile::tempdir()?;
    /// let up = root.path().join("migrations_sqlite/2026-01-01-000000_create_notes");
    /// std::fs::create_dir_all(&up)?;
    /// std::fs::write(up.join("up.sql"), "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")?;
    /// std::fs::write(up.join("down.sql"), "DROP TABLE notes;")?;
    ///
    /// let mut conn = DatabaseConnection::establish(":memory:")?;
    /// let migrations = AppMigrations::under(root.path());
    /// assert_eq!(conn.run_pending_migrations_from(&migrations)?.len(), 1);
    /// assert!(conn.migration_status_from(&migrations)?.iter().all(|m| m.applied));
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    ///
    /// # Errors
    ///
    /// As [`migrations::run_pending_migrations_from`], or [`MigrationError::Harness`] when the folder
    /// cannot be read.
    pub fn run_pending_migrations_from(
        &mut self,
        migrations: &AppMigrations<'_>,
    ) -> Result<Vec<AppliedMigration>, MigrationError> {
        let kind = self.kind();
        dispatch!(self, c => migrations.with_source(kind, |s| migrations::run_pending_migrations_from(c, s)))
    }

    /// [`migrations::revert_last_migration_from`] with the application's migrations for this
    /// connection's backend.
    ///
    /// # Errors
    ///
    /// As [`migrations::revert_last_migration_from`], or [`MigrationError::Harness`] when the folder
    /// cannot be read.
    pub fn revert_last_migration_from(
        &mut self,
        migrations: &AppMigrations<'_>,
    ) -> Result<Option<String>, MigrationError> {
        let kind = self.kind();
        dispatch!(self, c => migrations.with_source(kind, |s| migrations::revert_last_migration_from(c, s)))
    }

    /// [`migrations::redo_last_migration_from`] with the application's migrations for this
    /// connection's backend.
    ///
    /// # Errors
    ///
    /// As [`migrations::redo_last_migration_from`], or [`MigrationError::Harness`] when the folder
    /// cannot be read.
    pub fn redo_last_migration_from(
        &mut self,
        migrations: &AppMigrations<'_>,
    ) -> Result<Option<String>, MigrationError> {
        let kind = self.kind();
        dispatch!(self, c => migrations.with_source(kind, |s| migrations::redo_last_migration_from(c, s)))
    }

    /// [`migrations::migration_status_from`] with the application's migrations for this connection's
    /// backend.
    ///
    /// # Errors
    ///
    /// As [`migrations::migration_status_from`], or [`MigrationError::Harness`] when the folder cannot
    /// be read.
    pub fn migration_status_from(
        &mut self,
        migrations: &AppMigrations<'_>,
    ) -> Result<Vec<MigrationStatus>, MigrationError> {
        let kind = self.kind();
        dispatch!(self, c => migrations.with_source(kind, |s| migrations::migration_status_from(c, s)))
    }

    /// Runs `search` ([`Search::run`]) on this connection.
    ///
    /// # Errors
    ///
    /// As [`Search::run`].
    pub fn search(&mut self, search: &Search<'_>) -> Result<Vec<Neighbor>, SearchError> {
        dispatch!(self, c => search.run(c))
    }

    /// Runs `search` ([`IndexSearch::run`]) on this connection: a search over any registered index.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_vector::database::DatabaseConnection;
    /// use diesel_vector::index::registry;
    /// use diesel_vector::Vector;
    ///
    /// let mut conn = DatabaseConnection::establish(":memory:")?;
    /// conn.run_pending_migrations()?;
    /// let specs = conn.indexes()?; // the crate's own fragment_embeddings index, here
    /// let spec = registry::find(&specs, "fragment_embeddings", None)?;
    /// let q = Vector::new(vec![0.5; 1536])?;
    /// let hits = conn.search_index(&spec.search(&q).k(3).filter_eq("model", "small"))?;
    /// assert!(hits.is_empty());
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    ///
    /// # Errors
    ///
    /// As [`IndexSearch::run`].
    pub fn search_index(&mut self, search: &IndexSearch<'_>) -> Result<Vec<Hit>, SearchError> {
        dispatch!(self, c => search.run(c))
    }

    /// Every vector index the database's registry records ([`registry::load`]).
    ///
    /// # Errors
    ///
    /// As [`registry::load`].
    pub fn indexes(&mut self) -> Result<Vec<IndexSpec>, RegistryError> {
        dispatch!(self, c => registry::load(c))
    }

    /// Whether a table (or view) named exactly `name` exists (on PostgreSQL: on the `search_path`).
    ///
    /// # Errors
    ///
    /// A failing catalog query.
    pub fn has_table(&mut self, name: &str) -> diesel::QueryResult<bool> {
        use crate::migrations::shape::Catalog;
        match self {
            #[cfg(feature = "pg")]
            Self::Pg(c) => c.exists(&crate::index::quote(name)),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => c.exists(name),
        }
    }

    /// The fragments with these ids, in id order (missing ids are left out).
    ///
    /// # Errors
    ///
    /// The database's error.
    pub fn fragments(&mut self, ids: &[i64]) -> diesel::QueryResult<Vec<Fragment>> {
        use crate::schema::fragments::dsl as f;
        use diesel::prelude::*;
        dispatch!(self, c => f::fragments.filter(f::id.eq_any(ids)).order(f::id).select(Fragment::as_select()).load(c))
    }
}

/// [`MigrationError::NoDatabase`] unless `path` is an existing file (or something SQLite may open).
#[cfg(feature = "sqlite")]
fn require_file(path: &Path) -> Result<(), MigrationError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(MigrationError::NoDatabase { path: path.to_path_buf() })
        }
        // Other errors (permissions) are SQLite's to report.
        _ => Ok(()),
    }
}

#[cfg(feature = "sqlite")]
fn open_sqlite_read_only(url: &str) -> Result<diesel::SqliteConnection, MigrationError> {
    use diesel::connection::SimpleConnection;
    let open = |uri: &str| -> Result<diesel::SqliteConnection, diesel::ConnectionError> {
        let mut conn = crate::sqlite::ConnectionOptions::default().wal(false).establish(uri)?;
        // Opening is lazy: read the schema now, so that a file SQLite cannot read fails here.
        conn.batch_execute("SELECT count(*) FROM sqlite_master")
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    };
    let Some(path) = sqlite_file(url) else { return Ok(open(&sqlite_read_only_uri(url))?) };
    require_file(&path)?;
    match open(&sqlite_read_only_uri(url)) {
        Err(e) if read_only::is_cant_open(&e) => match read_only::fallback(read_only::WalFacts::of(&path)) {
            read_only::Fallback::Immutable => Ok(open(&url::sqlite_uri(url, "ro", &["immutable=1"]))?),
            read_only::Fallback::WalUnreadable => Err(MigrationError::WalUnreadable { path }),
            read_only::Fallback::None => Err(e.into()),
        },
        result => Ok(result?),
    }
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            #[cfg(feature = "pg")]
            DatabaseConnection::Pg($c) => $e,
            #[cfg(feature = "sqlite")]
            DatabaseConnection::Sqlite($c) => $e,
        }
    };
}
pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_backend() {
        for url in ["postgres://u@h/db", "postgresql://h/db"] {
            assert_eq!(BackendKind::from_url(url).unwrap(), BackendKind::Postgres);
        }
        for url in ["app.db", "/tmp/app.db", ":memory:", "file:app.db?mode=ro", "sqlite:///tmp/app.db"] {
            assert_eq!(BackendKind::from_url(url).unwrap(), BackendKind::Sqlite, "{url}");
        }
        assert_eq!(sqlite_path("sqlite:///tmp/app.db"), "/tmp/app.db");
        for url in ["", "  ", "sqlite://", "file:", "file:?mode=ro"] {
            assert!(matches!(BackendKind::from_url(url), Err(MigrationError::EmptyUrl)), "{url:?}");
        }
        assert_eq!(sqlite_path("file:app.db?mode=ro"), "file:app.db?mode=ro");
        let err = BackendKind::from_url("mysql://localhost/app").unwrap_err();
        assert!(matches!(&err, MigrationError::UnsupportedDriver { driver } if driver == "mysql"));
        assert!(err.to_string().starts_with("Unsupported driver: mysql"));
    }

    #[cfg(not(feature = "pg"))]
    #[test]
    fn a_build_without_pg_names_the_missing_feature() {
        let err = DatabaseConnection::establish("postgres://localhost/app").err().unwrap();
        assert_eq!(
            err.to_string(),
            "this build of diesel-vector has no PostgreSQL support: enable the `pg` cargo feature"
        );
    }

    #[cfg(not(feature = "sqlite"))]
    #[test]
    fn a_build_without_sqlite_names_the_missing_feature() {
        let err = DatabaseConnection::establish("app.db").err().unwrap();
        assert_eq!(
            err.to_string(),
            "this build of diesel-vector has no SQLite support: enable the `sqlite` cargo feature"
        );
    }
}
