//! What an installation runs and whether it needs attention ([`diagnose`]), and the repair of its vector
//! index ([`reindex`]). Both work through a [`DatabaseConnection`], so on either backend.
//!
//! [`diagnose`] reads and never writes: the backend and its version, pgvector (available and installed
//! versions, its schema, whether `vector` resolves on the `search_path`) or sqlite-vec, the migrations,
//! the foreign key from embeddings to fragments, row counts, and the vector index (SQLite: the vec0 table
//! and its change queue; PostgreSQL: the ivfflat lists against the rows). Each problem is a [`Finding`]:
//! a [`Level::Warning`] (works, but worse than it could) or a [`Level::Action`] (wrong results, errors or
//! a stall ahead until someone acts); [`Report::needs_action`] is the verdict.
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_vector::database::DatabaseConnection;
//! use diesel_vector::doctor;
//!
//! let mut conn = DatabaseConnection::establish(":memory:")?;
//! assert!(doctor::diagnose(&mut conn)?.needs_action(), "not migrated yet");
//! conn.run_pending_migrations()?;
//! assert!(!doctor::diagnose(&mut conn)?.needs_action());
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

mod versions;

use std::fmt;

use crate::database::{BackendKind, DatabaseConnection};
use crate::migrations::{MigrationError, MigrationStatus};

/// Everything [`diagnose`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The backend.
    pub backend: BackendKind,
    /// The server's (PostgreSQL) or library's (SQLite) version.
    pub server_version: String,
    /// The vector extension.
    pub extension: Extension,
    /// Every migration, applied or pending.
    pub migrations: Vec<MigrationStatus>,
    /// The foreign key from `fragment_embeddings` to `fragments` (`None` before the migrations).
    pub foreign_keys: Option<ForeignKeys>,
    /// Row counts (`None` before the migrations).
    pub rows: Option<RowCounts>,
    /// The vector index (`None` before the migrations).
    pub index: Option<IndexState>,
    /// What needs attention, most serious first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when some finding is a [`Level::Action`].
    pub fn needs_action(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Action)
    }

    /// `healthy`, `healthy, with warnings` or `needs action`.
    pub fn verdict(&self) -> &'static str {
        if self.needs_action() {
            "needs action"
        } else if self.findings.is_empty() {
            "healthy"
        } else {
            "healthy, with warnings"
        }
    }
}

/// The vector extension a database has.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Extension {
    /// PostgreSQL's pgvector.
    Pgvector {
        /// The version the server offers, if pgvector is installed on the server.
        available: Option<String>,
        /// The version created in this database.
        installed: Option<String>,
        /// The schema it was created in.
        schema: Option<String>,
        /// Whether the `vector` type resolves on this connection's `search_path` (Diesel looks it up by name).
        on_search_path: bool,
    },
    /// SQLite's sqlite-vec.
    SqliteVec {
        /// Its version on diesel-vector's connections, `None` when this build lacks it.
        version: Option<String>,
    },
}

/// The foreign key from `fragment_embeddings.fragment_id` to `fragments`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignKeys {
    /// Declared on the table.
    pub declared: bool,
    /// Enforced: PostgreSQL: the constraint is validated; SQLite: `PRAGMA foreign_keys` is on, as on every
    /// connection diesel-vector opens (other writers may leave it off).
    pub enforced: bool,
}

/// Row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows of `fragments`.
    pub fragments: i64,
    /// Rows of `fragment_embeddings`.
    pub embeddings: i64,
    /// Embeddings with a vector (not NULL).
    pub with_vector: i64,
    /// Embeddings whose fragment does not exist.
    pub orphans: i64,
}

/// The vector index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexState {
    /// SQLite: the vec0 table and its change queue.
    #[cfg(feature = "sqlite")]
    Vec0(crate::sqlite::IndexStatus),
    /// PostgreSQL: an ivfflat index.
    #[cfg(feature = "pg")]
    Ivfflat(crate::pg::IvfflatStatus),
    /// PostgreSQL: an index of another method, such as `hnsw`.
    Other {
        /// The access method.
        method: String,
    },
    /// PostgreSQL: no vector index.
    Missing,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Level {
    /// Someone must act: errors, wrong results or a stall ahead.
    Action,
    /// Works, but slower or less safe than it could.
    Warning,
}

/// One thing that needs attention, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// What, and what to do.
    pub message: String,
}

/// Why [`diagnose`] or [`reindex`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DoctorError {
    /// A query failed.
    Query(diesel::result::Error),
    /// Reading the migrations failed.
    Migration(MigrationError),
    /// The SQLite index could not be rebuilt.
    #[cfg(feature = "sqlite")]
    Index(crate::sqlite::IndexError),
    /// `hnsw` was asked for on SQLite, whose index is sqlite-vec's vec0.
    HnswNeedsPostgres,
}

impl fmt::Display for DoctorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Query(e) => write!(f, "query failed: {e}"),
            Self::Migration(e) => write!(f, "{e}"),
            #[cfg(feature = "sqlite")]
            Self::Index(e) => write!(f, "{e}"),
            Self::HnswNeedsPostgres => {
                f.write_str("hnsw is a pgvector index: on SQLite the vector index is sqlite-vec's vec0 (drop --hnsw)")
            }
        }
    }
}

impl std::error::Error for DoctorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Query(e) => Some(e),
            Self::Migration(e) => Some(e),
            #[cfg(feature = "sqlite")]
            Self::Index(e) => Some(e),
            Self::HnswNeedsPostgres => None,
        }
    }
}

impl From<diesel::result::Error> for DoctorError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

impl From<MigrationError> for DoctorError {
    fn from(e: MigrationError) -> Self {
        match e {
            MigrationError::Query(e) => Self::Query(e),
            e => Self::Migration(e),
        }
    }
}

/// What a backend reports about itself, before the findings are drawn.
pub(crate) struct Facts {
    pub(crate) server_version: String,
    pub(crate) extension: Extension,
    pub(crate) foreign_keys: Option<ForeignKeys>,
    pub(crate) rows: Option<RowCounts>,
    pub(crate) index: Option<IndexState>,
}

/// Row counts, in SQL both backends run.
pub(crate) const ROW_COUNTS: &str = "SELECT (SELECT count(*) FROM fragments) AS fragments, \
     (SELECT count(*) FROM fragment_embeddings) AS embeddings, \
     (SELECT count(*) FROM fragment_embeddings WHERE embedding IS NOT NULL) AS with_vector, \
     (SELECT count(*) FROM fragment_embeddings e \
      WHERE NOT EXISTS (SELECT 1 FROM fragments f WHERE f.id = e.fragment_id)) AS orphans";

#[derive(diesel::QueryableByName)]
pub(crate) struct RowCountsRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    fragments: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    embeddings: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    with_vector: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    orphans: i64,
}

impl From<RowCountsRow> for RowCounts {
    fn from(r: RowCountsRow) -> Self {
        Self { fragments: r.fragments, embeddings: r.embeddings, with_vector: r.with_vector, orphans: r.orphans }
    }
}

/// Reads the state of the database behind `conn` and judges it; changes nothing. Open SQLite databases
/// with [`DatabaseConnection::establish_read_only`] to be sure no file is created or altered.
///
/// # Errors
///
/// A failing catalog query.
pub fn diagnose(conn: &mut DatabaseConnection) -> Result<Report, DoctorError> {
    let migrations = conn.migration_status()?;
    let facts = match conn {
        #[cfg(feature = "pg")]
        DatabaseConnection::Pg(c) => crate::pg::doctor::facts(c)?,
        #[cfg(feature = "sqlite")]
        DatabaseConnection::Sqlite(c) => crate::sqlite::doctor::facts(c)?,
    };
    let findings = judge(&migrations, &facts);
    Ok(Report {
        backend: conn.kind(),
        server_version: facts.server_version,
        extension: facts.extension,
        migrations,
        foreign_keys: facts.foreign_keys,
        rows: facts.rows,
        index: facts.index,
        findings,
    })
}

fn judge(migrations: &[MigrationStatus], facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut action = |message: String| out.push(Finding { level: Level::Action, message });
    match &facts.extension {
        Extension::Pgvector { available: None, .. } => action(
            "pgvector is not installed on the PostgreSQL server: install it on the database host (Debian/Ubuntu: \
             postgresql-NN-pgvector), then run `diesel-vector migration run`"
                .into(),
        ),
        Extension::Pgvector { available: Some(v), installed: None, .. } => action(format!(
            "pgvector {v} is available but not created in this database: run `diesel-vector migration run` as a \
             superuser, or have one run `CREATE EXTENSION vector`"
        )),
        Extension::Pgvector { on_search_path: false, schema, .. } => action(format!(
            "pgvector's type `vector` is in schema {} which is not on this connection's search_path: add it \
             (ALTER ROLE ... SET search_path)",
            schema.as_deref().unwrap_or("?")
        )),
        _ => {}
    }
    let pending: Vec<&str> = migrations.iter().filter(|m| !m.applied).map(|m| m.name.as_str()).collect();
    if !pending.is_empty() {
        action(format!(
            "{} pending migration(s) ({}): run `diesel-vector migration run`",
            pending.len(),
            pending.join(", ")
        ));
    }
    if let Some(fk) = facts.foreign_keys {
        if !fk.declared {
            action(
                "fragment_embeddings has no foreign key to fragments: the table was not made by the migrations".into(),
            );
        }
    }
    if let Some(rows) = facts.rows {
        if rows.orphans > 0 {
            action(format!(
                "{} embedding(s) refer to fragments that do not exist (written with foreign keys off): delete them, \
                 or `diesel-vector copy --skip-invalid` leaves them behind",
                rows.orphans
            ));
        }
    }
    index_findings(facts, &mut out);
    let mut warn = |message: String| out.push(Finding { level: Level::Warning, message });
    match &facts.extension {
        Extension::SqliteVec { version: None } => warn(
            "sqlite-vec is not in this build: searches scan every row exactly and the vec0 index is not maintained \
             (build with the `sqlite-vec` feature)"
                .into(),
        ),
        Extension::Pgvector { available: Some(a), installed: Some(i), .. } if a != i => {
            warn(format!("pgvector {i} is created but the server has {a}: `ALTER EXTENSION vector UPDATE`"))
        }
        _ => {}
    }
    if let Some(fk) = facts.foreign_keys {
        if fk.declared && !fk.enforced {
            warn(
                "the foreign key to fragments is not enforced (PostgreSQL: NOT VALID; SQLite: PRAGMA foreign_keys off)"
                    .into(),
            );
        }
    }
    out.extend(versions::findings(&version_facts(facts)));
    out.sort_by_key(|f| f.level);
    out
}

/// What the version findings ([`versions`]) need from a backend's facts.
fn version_facts(facts: &Facts) -> versions::VersionFacts<'_> {
    let (pgvector, sqlite_vec) = match &facts.extension {
        Extension::Pgvector { installed, .. } => (installed.as_deref(), None),
        Extension::SqliteVec { version } => (None, version.as_deref()),
    };
    let method = match &facts.index {
        Some(IndexState::Other { method }) => Some(method.as_str()),
        #[cfg(feature = "pg")]
        Some(IndexState::Ivfflat(_)) => Some("ivfflat"),
        _ => None,
    };
    versions::VersionFacts {
        pgvector,
        hnsw_index: method == Some("hnsw"),
        ann_index: matches!(method, Some("hnsw" | "ivfflat")),
        sqlite: facts.server_version.strip_prefix("SQLite "),
        sqlite_vec,
    }
}

fn index_findings(facts: &Facts, out: &mut Vec<Finding>) {
    let Some(index) = &facts.index else { return };
    let mut push = |level, message: String| out.push(Finding { level, message });
    match index {
        #[cfg(feature = "sqlite")]
        IndexState::Vec0(s) if s.structures.codes => {
            // The crate's codes: kept on any connection, no extension needed.
            if (s.needs_rebuild || !s.codes_current) && s.embedded_rows > 0 {
                let state = match (s.needs_rebuild, s.codes_rows) {
                    (true, _) => "marked for rebuild",
                    (false, None) => "not built",
                    (false, Some(_)) => "stale",
                };
                push(
                    Level::Action,
                    format!(
                        "the vector index's codes are {state} for {} embedding(s): the next search would stall \
                         rebuilding them; run `diesel-vector reindex`",
                        s.embedded_rows
                    ),
                );
            } else if s.pending_changes > 0 {
                push(
                    Level::Warning,
                    format!(
                        "{} change(s) wait in the vector index queue: the next search applies them, or run \
                         `diesel-vector reindex`",
                        s.pending_changes
                    ),
                );
            }
        }
        #[cfg(feature = "sqlite")]
        IndexState::Vec0(s) => {
            if s.sqlite_vec.is_none() {
                return;
            }
            if (s.needs_rebuild || !s.table_exists) && s.embedded_rows > 0 {
                push(
                    Level::Action,
                    format!(
                        "the vec0 index is {} for {} embedding(s): the next search would stall rebuilding it; run \
                         `diesel-vector reindex`",
                        if s.table_exists { "marked for rebuild" } else { "missing" },
                        s.embedded_rows
                    ),
                );
            } else if s.pending_changes > 0 {
                push(
                    Level::Warning,
                    format!(
                        "{} change(s) wait in the vec0 index queue: the next search applies them, or run \
                         `diesel-vector reindex`",
                        s.pending_changes
                    ),
                );
            }
        }
        #[cfg(feature = "pg")]
        IndexState::Ivfflat(s) => {
            if s.rows > 0 && s.needs_rebuild() {
                push(
                    Level::Action,
                    format!(
                        "the ivfflat index has {} lists for {} rows (recommended {}): it was built with little data \
                         and recalls poorly; run `diesel-vector reindex`",
                        s.lists,
                        s.rows,
                        s.recommended_lists()
                    ),
                );
            } else if s.lists.saturating_mul(4) < s.recommended_lists() {
                push(
                    Level::Warning,
                    format!(
                        "the ivfflat index has {} lists for {} rows (recommended {}): the data outgrew it; \
                         `diesel-vector reindex` resizes it",
                        s.lists,
                        s.rows,
                        s.recommended_lists()
                    ),
                );
            }
        }
        IndexState::Missing => push(
            Level::Warning,
            "no vector index fragment_embeddings_cosine_idx: searches scan every row; `diesel-vector reindex` \
             creates one (ivfflat, or hnsw with --hnsw)"
                .into(),
        ),
        IndexState::Other { .. } => {}
    }
}

/// What [`reindex`] built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reindexed {
    /// SQLite: the vec0 table, with this many rows.
    Vec0 {
        /// Rows indexed.
        rows: i64,
    },
    /// SQLite: the index's structures (the crate's codes, and vec0 where kept and sqlite-vec is loaded).
    Sqlite {
        /// What the index keeps.
        structures: crate::index::SqliteIndex,
        /// Rows indexed.
        rows: i64,
    },
    /// PostgreSQL: ivfflat with this many lists (pgvector's advice for the row count).
    Ivfflat {
        /// The lists.
        lists: i32,
    },
    /// PostgreSQL: hnsw (`vector_cosine_ops`, pgvector's default parameters).
    Hnsw,
}

/// Rebuilds the vector index: SQLite's structures (the crate's codes) from `fragment_embeddings`
/// ([`crate::sqlite::rebuild_index`]); on PostgreSQL `fragment_embeddings_cosine_idx` as ivfflat sized
/// for the rows ([`crate::pg::rebuild_ivfflat_index`]) or, with `hnsw`, as hnsw under the same name
/// ([`crate::pg::rebuild_hnsw_index`]).
///
/// # Errors
///
/// [`DoctorError::HnswNeedsPostgres`] for `hnsw` on SQLite, [`DoctorError::Index`] without sqlite-vec or
/// before the migrations, or a failing query (the old index stays).
pub fn reindex(conn: &mut DatabaseConnection, hnsw: bool) -> Result<Reindexed, DoctorError> {
    match conn {
        #[cfg(feature = "pg")]
        DatabaseConnection::Pg(c) if hnsw => {
            crate::pg::rebuild_hnsw_index(c)?;
            Ok(Reindexed::Hnsw)
        }
        #[cfg(feature = "pg")]
        DatabaseConnection::Pg(c) => Ok(Reindexed::Ivfflat { lists: crate::pg::rebuild_ivfflat_index(c)? }),
        #[cfg(feature = "sqlite")]
        DatabaseConnection::Sqlite(_) if hnsw => Err(DoctorError::HnswNeedsPostgres),
        #[cfg(feature = "sqlite")]
        DatabaseConnection::Sqlite(c) => {
            let report = crate::sqlite::rebuild_index(c).map_err(DoctorError::Index)?;
            let structures = crate::schema::fragment_embeddings_index().sqlite_index();
            if structures == crate::index::SqliteIndex::VEC0 {
                Ok(Reindexed::Vec0 { rows: report.applied })
            } else {
                Ok(Reindexed::Sqlite { structures, rows: report.applied })
            }
        }
    }
}
