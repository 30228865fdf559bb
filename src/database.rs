//! A connection to either backend, chosen from a database URL at run time.

use crate::index::{registry, IndexSpec, RegistryError};
use crate::migrations::{self, AppliedMigration, MigrationError, MigrationStatus};
use crate::models::Fragment;
use crate::search::{Hit, IndexSearch, Neighbor, Search, SearchError};

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
    /// [`MigrationError::UnsupportedDriver`] for any other `scheme://`.
    pub fn from_url(url: &str) -> Result<Self, MigrationError> {
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

/// The SQLite path or URI in a URL: `sqlite://` is stripped; `file:` URIs, paths and `:memory:` pass.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// The SQLite URI that opens the database of `url` read-only: `file:PATH?mode=ro`, with the characters
/// URIs reserve (`?`, `#`, `%`) percent-encoded; a `file:` URI keeps its parameters and gets `mode=ro`.
///
/// ```
/// use diesel_vector::database::sqlite_read_only_uri;
///
/// assert_eq!(sqlite_read_only_uri("sqlite:///var/app.db"), "file:/var/app.db?mode=ro");
/// assert_eq!(sqlite_read_only_uri("data/what?.db"), "file:data/what%3F.db?mode=ro");
/// assert_eq!(sqlite_read_only_uri("file:app.db?cache=shared&mode=rwc"), "file:app.db?cache=shared&mode=ro");
/// ```
pub fn sqlite_read_only_uri(url: &str) -> String {
    let path = sqlite_path(url);
    if let Some(rest) = path.strip_prefix("file:") {
        let (base, query) = rest.split_once('?').map_or((rest, ""), |(b, q)| (b, q));
        let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode=")).collect();
        params.push("mode=ro");
        return format!("file:{base}?{}", params.join("&"));
    }
    let mut uri = String::with_capacity(path.len() + 16);
    uri.push_str("file:");
    for c in path.chars() {
        match c {
            '?' => uri.push_str("%3F"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    uri
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
    /// Opens `url` with the backend it names.
    ///
    /// # Errors
    ///
    /// [`MigrationError::UnsupportedDriver`], [`MigrationError::FeatureDisabled`] when this build lacks
    /// the backend, or [`MigrationError::Connection`] with the backend's own error.
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

    /// Opens `url` for reading: SQLite read-only through [`sqlite_read_only_uri`] (a missing file is an
    /// error rather than a new database, and nothing is written, not even the journal mode); PostgreSQL
    /// as [`DatabaseConnection::establish`] does.
    ///
    /// # Errors
    ///
    /// As [`DatabaseConnection::establish`].
    pub fn establish_read_only(url: &str) -> Result<Self, MigrationError> {
        match BackendKind::from_url(url)? {
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => Ok(Self::Sqlite(
                crate::sqlite::ConnectionOptions::default().wal(false).establish(&sqlite_read_only_uri(url))?,
            )),
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
