//! Errors of the migration runner.

use std::fmt;

/// What can go wrong while connecting, migrating or adopting a database. Each message says what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrationError {
    /// The database URL names a backend this crate does not support (`mysql://...`).
    UnsupportedDriver {
        /// The URL's scheme, such as `mysql`.
        driver: String,
    },
    /// The URL names a backend whose cargo feature is off in this build.
    FeatureDisabled {
        /// The backend, `PostgreSQL` or `SQLite`.
        backend: &'static str,
        /// The feature that would enable it, `pg` or `sqlite`.
        feature: &'static str,
    },
    /// The database URL is empty (or `sqlite://` alone, or a `file:` URI without a path): SQLite would
    /// open a private temporary database that vanishes when the connection closes.
    EmptyUrl,
    /// No SQLite database exists at this path, and the operation needs one (it is never created).
    NoDatabase {
        /// The path.
        path: std::path::PathBuf,
    },
    /// The SQLite database is in WAL mode with changes in its write-ahead log, and SQLite cannot create
    /// the log's index (`PATH-shm`) to read them: its directory is read-only.
    WalUnreadable {
        /// The database's path.
        path: std::path::PathBuf,
    },
    /// Opening the connection failed.
    Connection(diesel::ConnectionError),
    /// pgvector is not installed on the PostgreSQL server at all.
    PgvectorNotInstalled,
    /// pgvector is installed on the server but not created in this database, and this role may not
    /// create it (it is not a trusted extension).
    PgvectorNotCreated {
        /// The database it must be created in.
        database: String,
        /// The role that tried.
        role: String,
        /// PostgreSQL's own message.
        reason: String,
    },
    /// pgvector is created in this database, but in a schema that is not on this connection's
    /// `search_path`, so its types do not resolve (`to_regtype('vector')` is NULL); nothing was changed.
    PgvectorNotOnSearchPath {
        /// The database.
        database: String,
        /// The schema pgvector is in.
        schema: String,
        /// The connection's `search_path`.
        search_path: String,
    },
    /// An existing table has a shape the migrations do not produce; nothing was changed.
    IncompatibleTable {
        /// The table.
        table: String,
        /// Each difference, one per entry (`embedding is text, expected vector(1536)`).
        differences: Vec<String>,
    },
    /// Some, but not all, of the objects a migration creates already exist; nothing was changed.
    PartiallyPresent {
        /// The migration.
        migration: String,
        /// The objects that exist.
        present: Vec<String>,
        /// The objects that do not.
        missing: Vec<String>,
    },
    /// A vector index the migration registers is registered already with another definition; nothing
    /// was changed.
    RegisteredDifferently {
        /// The migration.
        migration: String,
        /// The index's name.
        index: String,
        /// What the registry records.
        registered: String,
        /// What the migration registers.
        expected: String,
    },
    /// A migration failed; its transaction was rolled back, migrations before it stay applied.
    Migration {
        /// The migration's version and name, such as `2025-01-01-000002_create_fragment_embeddings`.
        migration: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query of the runner itself failed.
    Query(diesel::result::Error),
    /// Diesel's migration harness failed outside any one migration.
    Harness(Box<dyn std::error::Error + Send + Sync>),
    /// The vector index registry could not be read.
    Registry(crate::index::RegistryError),
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedDriver { driver } => write!(
                f,
                "Unsupported driver: {driver} (diesel-vector supports postgres://, postgresql:// and SQLite paths)"
            ),
            Self::FeatureDisabled { backend, feature } => {
                write!(f, "this build of diesel-vector has no {backend} support: enable the `{feature}` cargo feature")
            }
            Self::EmptyUrl => f.write_str(
                "the database URL is empty: give a PostgreSQL URL (postgres://...) or an SQLite path (:memory: for \
                 a temporary in-memory database)",
            ),
            Self::NoDatabase { path } => write!(
                f,
                "no database at {}: check the path, or create the database by running the migrations on it",
                path.display()
            ),
            Self::WalUnreadable { path } => write!(
                f,
                "the SQLite database at {0} has changes in its write-ahead log ({0}-wal) that SQLite cannot read \
                 here: the directory is read-only, so the log's index ({0}-shm) cannot be created. Open the \
                 database once where its directory is writable (that checkpoints the log), or copy it with its \
                 -wal file to a writable directory",
                path.display()
            ),
            Self::Connection(e) => write!(f, "could not connect: {e}"),
            Self::PgvectorNotInstalled => f.write_str(
                "pgvector is not installed on the PostgreSQL server: install it on the database host \
                 (Debian/Ubuntu: the postgresql-NN-pgvector package, or build it from source), then run the \
                 migrations again",
            ),
            Self::PgvectorNotCreated { database, role, reason } => write!(
                f,
                "pgvector is installed on the server but not created in database \"{database}\", and role \
                 \"{role}\" may not create it ({reason}): ask a superuser to run `CREATE EXTENSION vector;` in \
                 \"{database}\", then run the migrations again"
            ),
            Self::PgvectorNotOnSearchPath { database, schema, search_path } => write!(
                f,
                "pgvector is created in schema \"{schema}\", which is not on this connection's search_path \
                 ({search_path}), so its types do not resolve; nothing was changed: add the schema to the \
                 search_path (for example `ALTER DATABASE \"{database}\" SET search_path TO {search_path}, \
                 \"{schema}\";` and reconnect), then run the migrations again"
            ),
            Self::IncompatibleTable { table, differences } => write!(
                f,
                "table \"{table}\" exists but differs from the schema the migrations create ({}); nothing was \
                 changed: rename or fix the table, then run the migrations again",
                differences.join("; ")
            ),
            Self::RegisteredDifferently { migration, index, registered, expected } => write!(
                f,
                "migration {migration} registers the vector index {index} as {expected}, but the registry \
                 records it as {registered}; nothing was changed: remove the registry row or rename the index, \
                 then run the migrations again"
            ),
            Self::PartiallyPresent { migration, present, missing } => write!(
                f,
                "migration {migration} looks half applied by hand: {} exist but {} do not; nothing was changed",
                present.join(", "),
                missing.join(", ")
            ),
            Self::Migration { migration, source } => {
                write!(f, "migration {migration} failed and was rolled back: {source}")?;
                match migration_hint(&source.to_string()) {
                    Some(hint) => write!(f, "; {hint}"),
                    None => Ok(()),
                }
            }
            Self::Query(e) => write!(f, "migration bookkeeping failed: {e}"),
            Self::Harness(e) => write!(f, "migration harness failed: {e}"),
            Self::Registry(e) => write!(f, "{e}"),
        }
    }
}

/// What a migration's error most likely means, for the errors a first migration commonly meets.
fn migration_hint(error: &str) -> Option<&'static str> {
    let pgvector_type =
        ["vector", "halfvec", "sparsevec"].iter().any(|t| error.contains(&format!("type \"{t}\" does not exist")));
    if pgvector_type {
        Some(
            "pgvector's types exist in a database once its extension is created there: put `CREATE EXTENSION IF NOT \
             EXISTS vector;` before the migration's first use of them",
        )
    } else if error.contains("near \"DO\": syntax error") || error.contains("near \"EXTENSION\": syntax error") {
        Some("this is PostgreSQL's SQL: is this the PostgreSQL migration folder, run on an SQLite database?")
    } else {
        None
    }
}

impl std::error::Error for MigrationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connection(e) => Some(e),
            Self::Query(e) => Some(e),
            Self::Migration { source, .. } | Self::Harness(source) => Some(&**source),
            Self::Registry(e) => Some(e),
            _ => None,
        }
    }
}

impl From<diesel::result::Error> for MigrationError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

impl From<diesel::ConnectionError> for MigrationError {
    fn from(e: diesel::ConnectionError) -> Self {
        Self::Connection(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let missing = MigrationError::PgvectorNotInstalled.to_string();
        assert!(
            missing.starts_with("pgvector is not installed on the PostgreSQL server: install it on the database host")
        );
        let partial = MigrationError::PartiallyPresent {
            migration: "2025-01-01-000002_create_fragment_embeddings".into(),
            present: vec!["fragment_embeddings".into()],
            missing: vec!["fragment_embeddings_idx_queue".into()],
        };
        assert_eq!(
            partial.to_string(),
            "migration 2025-01-01-000002_create_fragment_embeddings looks half applied by hand: fragment_embeddings \
             exist but fragment_embeddings_idx_queue do not; nothing was changed"
        );
    }
}
