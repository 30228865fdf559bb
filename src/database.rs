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

#[cfg(feature = "sqlite")]
use std::path::Path;

use crate::migrations::{self, AppliedMigration, MigrationError, MigrationStatus};
use crate::models::Fragment;
use crate::search::{Neighbor, Search, SearchError};

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

    /// The backend of this connection.
    pub fn kind(&self) -> BackendKind {
        match self {
            #[cfg(feature = "pg")]
            Self::Pg(_) => BackendKind::Postgres,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// [`migrations::run_pending_migrations`] on this connection.
    ///
    /// # Errors
    ///
    /// As [`migrations::run_pending_migrations`].
    pub fn run_pending_migrations(&mut self) -> Result<Vec<AppliedMigration>, MigrationError> {
        dispatch!(self, c => migrations::run_pending_migrations(c))
    }

    /// [`migrations::revert_last_migration`] on this connection.
    ///
    /// # Errors
    ///
    /// As [`migrations::revert_last_migration`].
    pub fn revert_last_migration(&mut self) -> Result<Option<String>, MigrationError> {
        dispatch!(self, c => migrations::revert_last_migration(c))
    }

    /// [`migrations::redo_last_migration`] on this connection.
    ///
    /// # Errors
    ///
    /// As [`migrations::redo_last_migration`].
    pub fn redo_last_migration(&mut self) -> Result<Option<String>, MigrationError> {
        dispatch!(self, c => migrations::redo_last_migration(c))
    }

    /// [`migrations::migration_status`] on this connection.
    ///
    /// # Errors
    ///
    /// As [`migrations::migration_status`].
    pub fn migration_status(&mut self) -> Result<Vec<MigrationStatus>, MigrationError> {
        dispatch!(self, c => migrations::migration_status(c))
    }

    /// Runs `search` ([`Search::run`]) on this connection.
    ///
    /// # Errors
    ///
    /// As [`Search::run`].
    pub fn search(&mut self, search: &Search<'_>) -> Result<Vec<Neighbor>, SearchError> {
        dispatch!(self, c => search.run(c))
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
