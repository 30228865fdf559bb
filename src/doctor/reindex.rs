//! [`reindex`]: rebuilds one table's registered indexes, or every one, on the connection's backend.

use super::DoctorError;
use crate::database::DatabaseConnection;
use crate::index::registry::NotFound;
use crate::index::{IndexSpec, RegistryError};

/// Which indexes [`reindex`] rebuilds, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReindexOptions {
    /// Only the indexes of this table (default: every registered index).
    pub table: Option<String>,
    /// Only the index of this name (with [`table`](Self::table), it must be on that table).
    pub index: Option<String>,
    /// PostgreSQL: build HNSW whatever the registry records (default: the registered kind).
    pub hnsw: bool,
}

impl ReindexOptions {
    /// Sets [`ReindexOptions::table`].
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// Sets [`ReindexOptions::index`].
    #[must_use]
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// Sets [`ReindexOptions::hnsw`].
    #[must_use]
    pub fn hnsw(mut self, hnsw: bool) -> Self {
        self.hnsw = hnsw;
        self
    }
}

/// One index [`reindex`] rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reindexed {
    /// The index's registered name.
    pub index: String,
    /// Its table.
    pub table: String,
    /// Its vector column.
    pub column: String,
    /// The column's type.
    pub element: crate::index::Element,
    /// What was built.
    pub built: Built,
}

/// What [`reindex`] built for one index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Built {
    /// SQLite: the vec0 table, with `rows` rows; the rows left out (not vectors of the index's dimensions).
    #[cfg(feature = "sqlite")]
    Vec0 {
        /// Rows indexed.
        rows: i64,
        /// Rows left out.
        left_out: crate::sqlite::InvalidRows,
    },
    /// SQLite: the crate's quantized codes (and the vec0 table, where the index keeps one), with `rows`
    /// rows; the rows left out.
    #[cfg(feature = "sqlite")]
    Codes {
        /// What the index keeps.
        structures: crate::index::SqliteIndex,
        /// Rows indexed.
        rows: i64,
        /// Rows left out.
        left_out: crate::sqlite::InvalidRows,
    },
    /// SQLite: an index that keeps no structure (or none for its column's type): its queue was cleared;
    /// searches scan exactly. The rows a structure would leave out.
    #[cfg(feature = "sqlite")]
    Queue {
        /// Rows left out.
        left_out: crate::sqlite::InvalidRows,
    },
    /// PostgreSQL: pgvector's index as built.
    #[cfg(feature = "pg")]
    Pg(crate::pg::PgIndexStatus),
    /// PostgreSQL: the index declares no PostgreSQL index; nothing to build.
    NoPgIndex,
}

/// Rebuilds the registered vector indexes of the database behind `conn`, or those of one table: on
/// SQLite from the table ([`crate::sqlite::rebuild`]: the vec0 table, the queue emptied), reporting the
/// rows left out; on PostgreSQL as the registered kind ([`crate::pg::rebuild`]: ivfflat with the lists
/// pgvector advises for the rows, or HNSW), or HNSW for every one with [`ReindexOptions::hnsw`]. Each index
/// is rebuilt in its own transaction: the old one stays if its rebuild fails.
///
/// # Errors
///
/// [`DoctorError::Registry`] when no index is registered (on that table), [`DoctorError::HnswNeedsPostgres`]
/// for HNSW on SQLite, [`DoctorError::Index`] for a vec0 index without sqlite-vec, or a failing query.
pub fn reindex(conn: &mut DatabaseConnection, options: &ReindexOptions) -> Result<Vec<Reindexed>, DoctorError> {
    let specs = conn.indexes()?;
    let chosen: Vec<&IndexSpec> = match (&options.table, &options.index) {
        (table, Some(index)) => vec![crate::index::registry::named(&specs, index, table.as_deref())?],
        (Some(table), None) => {
            let on_table: Vec<&IndexSpec> = specs.iter().filter(|s| s.table() == table).collect();
            if on_table.is_empty() {
                let registered = crate::index::registry::registered_names(&specs);
                return Err(RegistryError::NotFound(NotFound {
                    wanted: format!("table {}", crate::index::shown(table)),
                    registered,
                })
                .into());
            }
            on_table
        }
        (None, None) if specs.is_empty() => {
            return Err(RegistryError::NotFound(NotFound { wanted: "any table".into(), registered: Vec::new() }).into())
        }
        (None, None) => specs.iter().collect(),
    };
    let mut out = Vec::with_capacity(chosen.len());
    for spec in chosen {
        let built = match conn {
            #[cfg(feature = "sqlite")]
            DatabaseConnection::Sqlite(c) => {
                if options.hnsw {
                    return Err(DoctorError::HnswNeedsPostgres);
                }
                let report = crate::sqlite::rebuild(c, spec).map_err(DoctorError::Index)?;
                let left_out = crate::sqlite::invalid_rows(c, spec, super::NAMED_IDS).map_err(DoctorError::Index)?;
                let kept = spec.sqlite_index();
                if spec.sqlite_keeps_codes() {
                    Built::Codes { structures: kept, rows: report.applied, left_out }
                } else if kept.vec0 {
                    Built::Vec0 { rows: report.applied, left_out }
                } else {
                    Built::Queue { left_out }
                }
            }
            #[cfg(feature = "pg")]
            DatabaseConnection::Pg(c) => {
                use crate::index::PgIndex;
                use crate::pg::Rebuild;
                let how = match (options.hnsw, spec.pg_index()) {
                    (_, PgIndex::None) => None,
                    (true, _) | (false, PgIndex::Hnsw | PgIndex::BinaryQuantized) => Some(Rebuild::Hnsw),
                    (false, _) => Some(Rebuild::Ivfflat { lists: None }),
                };
                match how {
                    Some(how) => Built::Pg(crate::pg::rebuild(c, spec, how)?),
                    None => Built::NoPgIndex,
                }
            }
        };
        out.push(Reindexed {
            index: spec.name().to_owned(),
            table: spec.table().to_owned(),
            column: spec.column().to_owned(),
            element: spec.element(),
            built,
        });
    }
    Ok(out)
}
