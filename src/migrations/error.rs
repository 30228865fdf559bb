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
            Self::IncompatibleTable { table, differences } => write!(
                f,
                "table \"{table}\" exists but differs from the schema diesel-vector manages ({}); nothing was \
                 changed: rename or fix the table, then run the migrations again",
                differences.join("; ")
            ),
            Self::PartiallyPresent { migration, present, missing } => write!(
                f,
                "migration {migration} looks half applied by hand: {} exist but {} do not; nothing was changed",
                present.join(", "),
                missing.join(", ")
            ),
            Self::Migration { migration, source } => {
                write!(f, "migration {migration} failed and was rolled back: {source}")
            }
            Self::Query(e) => write!(f, "migration bookkeeping failed: {e}"),
            Self::Harness(e) => write!(f, "migration harness failed: {e}"),
            Self::Registry(e) => write!(f, "{e}"),
        }
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
