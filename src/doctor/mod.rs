//! What a database runs and whether it needs attention ([`diagnose`]), and the repair of its vector
//! indexes ([`reindex()`]). Both work through a [`DatabaseConnection`], so on either backend, on any
//! application's database.
//!
//! [`diagnose`] reads and never writes:
//!
//! - the backend and its version, pgvector (available and created versions, its schema, whether `vector`
//!   resolves on the `search_path`) or sqlite-vec;
//! - every vector index of the [registry](crate::index::registry), checked against the catalog: the table
//!   and column (a type or dimensions changed by hand), the rows, and the index as it stands
//!   (PostgreSQL: its method against the registered one, its validity, its operator class, ivfflat lists
//!   against the rows; SQLite: the change queue, a pending rebuild, the vec0 table, rows whose stored value
//!   is not a vector of the index's dimensions, named by id);
//! - the vector columns and indexes the registry does not know: pgvector columns and HNSW or ivfflat
//!   indexes on PostgreSQL (checked the same way), vec0 tables no index owns on SQLite;
//! - the application's migrations from Diesel's bookkeeping (applied; pending ones when their folder is
//!   given, [`DiagnoseOptions::migration_dir`]);
//! - diesel-vector's own `fragments` schema, only in a database that uses it (its migrations, foreign key
//!   and rows).
//!
//! Each problem is a [`Finding`]: a [`Level::Action`] (wrong results, errors or a stall ahead until
//! someone acts), a [`Level::Warning`] (works, but worse than it could) or a [`Level::Info`]; each says
//! what to do, and carries a [`Remedy`] a tool can turn into its own command. [`Report::needs_action`] is
//! the verdict.
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel::connection::SimpleConnection;
//! use diesel_vector::database::DatabaseConnection;
//! use diesel_vector::doctor;
//! use diesel_vector::index::{generate, IndexSpec};
//!
//! let mut conn = DatabaseConnection::establish(":memory:")?;
//! let report = doctor::diagnose(&mut conn)?;
//! assert!(!report.needs_action(), "an empty database is not told to create anything");
//!
//! let spec = IndexSpec::builder("documents", "embedding", 3).build()?;
//! let DatabaseConnection::Sqlite(sqlite) = &mut conn else { unreachable!() };
//! sqlite.batch_execute("CREATE TABLE documents (id INTEGER PRIMARY KEY)")?;
//! sqlite.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up)?;
//! let report = doctor::diagnose(&mut conn)?;
//! assert_eq!(report.indexes.len(), 1);
//! assert_eq!(report.indexes[0].spec.table(), "documents");
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

mod reindex;
mod versions;

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::database::{BackendKind, DatabaseConnection};
use crate::index::{shown, shown_column, IndexSpec};
use crate::migrations::{MigrationError, MigrationStatus};

pub use reindex::{reindex, Built, ReindexOptions, Reindexed};

/// What [`diagnose_with`] looks at besides the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiagnoseOptions {
    /// The application's migration folder: its migrations that Diesel's bookkeeping does not record are
    /// reported as pending. Without it only the applied ones are known.
    pub migration_dir: Option<PathBuf>,
}

impl DiagnoseOptions {
    /// Sets [`DiagnoseOptions::migration_dir`].
    #[must_use]
    pub fn migration_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.migration_dir = Some(dir.into());
        self
    }
}

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
    /// The application's migrations, from Diesel's bookkeeping.
    pub migrations: AppMigrations,
    /// Every registered vector index, as it stands.
    pub indexes: Vec<IndexReport>,
    /// Vector columns and indexes the registry does not know.
    pub unregistered: Vec<Unregistered>,
    /// diesel-vector's own `fragments` schema, when the database uses it.
    pub fragments: Option<FragmentsSchema>,
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
        } else if self.findings.iter().any(|f| f.level == Level::Warning) {
            "healthy, with warnings"
        } else {
            "healthy"
        }
    }
}

/// The verdict, then each finding on a line of its own (`  action: ...`), most serious first: what an
/// application logs. (The command line's `doctor` prints the whole state.) Control characters in names
/// that come from the database are escaped, so that they cannot forge or hide lines.
///
/// ```
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel::connection::SimpleConnection;
/// use diesel_vector::database::DatabaseConnection;
/// use diesel_vector::index::{generate, IndexSpec};
///
/// let mut conn = DatabaseConnection::establish(":memory:")?;
/// let DatabaseConnection::Sqlite(sqlite) = &mut conn else { unreachable!() };
/// let spec = IndexSpec::builder("notes", "embedding", 3).build()?;
/// sqlite.batch_execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, embedding BLOB)")?;
/// sqlite.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up)?;
/// // A writer that bypassed the index's triggers leaves a value that is not a vector of 3 dimensions.
/// sqlite.batch_execute(
///     "DROP TRIGGER __dv_notes_embedding_check_insert; INSERT INTO notes VALUES (1, x'00');",
/// )?;
/// let report = diesel_vector::doctor::diagnose(&mut conn)?;
/// let text = report.to_string();
/// assert!(text.starts_with(report.verdict()), "{text}");
/// assert_eq!(text.lines().count(), 1 + report.findings.len());
/// assert!(text.contains("ids 1"), "{text}");
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verdict())?;
        for finding in &self.findings {
            write!(f, "\n  {finding}")?;
        }
        Ok(())
    }
}

/// `action: <message>` (or `warning:`, `info:`), control characters in the message escaped.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.level)?;
        for c in self.message.chars() {
            if c.is_control() || matches!(c, '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
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

/// The application's migrations as Diesel's bookkeeping (`__diesel_schema_migrations`) records them;
/// diesel-vector's own are left out (see [`FragmentsSchema`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppMigrations {
    /// Whether the bookkeeping table exists (no migration ever ran when it does not).
    pub recorded: bool,
    /// The versions applied, oldest first.
    pub applied: Vec<String>,
    /// The folder compared with, when given.
    pub directory: Option<PathBuf>,
    /// The folder's migrations not applied, by name, oldest first; `None` without a folder.
    pub pending: Option<Vec<String>>,
}

/// diesel-vector's own schema (`fragments`, `fragment_embeddings`), in a database that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FragmentsSchema {
    /// The crate's migrations, applied or pending.
    pub migrations: Vec<MigrationStatus>,
    /// The foreign key from `fragment_embeddings` to `fragments` (`None` before the tables exist).
    pub foreign_keys: Option<ForeignKeys>,
    /// Row counts (`None` before the tables exist).
    pub rows: Option<RowCounts>,
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

/// Row counts of the `fragments` schema.
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

/// A registered index as the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexReport {
    /// The index as registered.
    pub spec: IndexSpec,
    /// The vector column's type in the catalog (PostgreSQL: `vector(768)`; SQLite: its declared type),
    /// `None` when the table or the column does not exist.
    pub column_type: Option<String>,
    /// How the index stands, when its table and column exist.
    pub state: Option<IndexState>,
    /// Whether the id column identifies one row (the primary key alone, or the one column of a unique
    /// index), when the table exists; the generated migrations refuse any other, but an index registered
    /// by an older migration or by hand may have one.
    pub id_unique: Option<bool>,
    /// The id and partition columns the table lacks (renamed or dropped since the index's migration ran),
    /// when the table and the vector column exist: searches and syncs of the index fail on them.
    pub missing_columns: Vec<String>,
}

impl IndexReport {
    /// The report of an index whose table or vector column does not exist.
    pub(crate) fn missing(spec: &IndexSpec) -> IndexReport {
        IndexReport { spec: spec.clone(), column_type: None, state: None, id_unique: None, missing_columns: Vec::new() }
    }

    /// Rows with a vector (not NULL), when known.
    pub fn rows(&self) -> Option<i64> {
        match self.state.as_ref()? {
            #[cfg(feature = "sqlite")]
            IndexState::Sqlite { status, .. } => Some(status.embedded_rows),
            #[cfg(feature = "pg")]
            IndexState::Pg { status, .. } => Some(status.rows),
            IndexState::NotSetUp => None,
        }
    }
}

/// How a registered index stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexState {
    /// SQLite: the change queue, state and vec0 table, and the rows the index leaves out.
    #[cfg(feature = "sqlite")]
    Sqlite {
        /// The queue, state and structures.
        status: crate::sqlite::IndexStatus,
        /// Stored values that are not vectors of the index's dimensions.
        invalid: crate::sqlite::InvalidRows,
    },
    /// PostgreSQL: pgvector's index.
    #[cfg(feature = "pg")]
    Pg {
        /// Its method, lists, validity and the rows.
        status: crate::pg::PgIndexStatus,
        /// `CREATE INDEX ...` as PostgreSQL prints it, when the index exists.
        definition: Option<String>,
        /// Whether its operator class is the registered metric's (`None` when there is no index).
        operator_class_matches: Option<bool>,
        /// Its partition indexes (`pg::create_partition_index`), by name.
        partition_indexes: Vec<PgIndexInfo>,
    },
    /// SQLite: the index's queue and state are missing (its migration did not create them).
    NotSetUp,
}

/// A vector column or index the registry does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unregistered {
    /// PostgreSQL: a column of a pgvector type, or a column with a pgvector index.
    PgColumn {
        /// The table's schema.
        schema: String,
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its type, such as `vector(768)`.
        column_type: String,
        /// The table's row estimate (PostgreSQL's statistics).
        rows_estimate: i64,
        /// pgvector's indexes on it.
        indexes: Vec<PgIndexInfo>,
    },
    /// PostgreSQL: a pgvector index on a registered column that the registry does not name.
    PgIndex {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The registered index of the column.
        registered_as: String,
        /// The index.
        index: PgIndexInfo,
    },
    /// SQLite: a vec0 table that no registered index owns (left behind by a revert without sqlite-vec, or
    /// made by hand).
    Vec0Table {
        /// Its name.
        name: String,
    },
}

/// A pgvector index found in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgIndexInfo {
    /// Its name.
    pub name: String,
    /// `hnsw` or `ivfflat`.
    pub method: String,
    /// Whether PostgreSQL can use it.
    pub valid: bool,
    /// ivfflat's lists.
    pub lists: Option<i32>,
    /// `CREATE INDEX ...`.
    pub definition: String,
    /// ivfflat: the rows with a vector, counted.
    pub rows: Option<i64>,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Level {
    /// Someone must act: errors, wrong results or a stall ahead.
    Action,
    /// Works, but slower or less safe than it could.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

impl Level {
    /// `action`, `warning` or `info`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Action => "action",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// [`Level::name`].
impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What would resolve a finding, for a tool to offer as its own command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Rebuild the registered indexes of `table` ([`reindex()`]).
    Reindex {
        /// The table.
        table: String,
    },
    /// Apply diesel-vector's own migrations ([`crate::migrations::run_pending_migrations`]).
    RunCrateMigrations,
    /// Apply the application's pending migrations of `dir`.
    RunAppMigrations {
        /// The folder.
        dir: PathBuf,
    },
    /// Register the column's index: generate its migration ([`crate::index::generate`]) and apply it.
    Register {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
}

/// One thing that needs attention, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// What, and what to do.
    pub message: String,
    /// The fix, when a tool can run it.
    pub remedy: Option<Remedy>,
}

impl Finding {
    fn new(level: Level, message: impl Into<String>) -> Self {
        Self { level, message: message.into(), remedy: None }
    }

    fn remedy(mut self, remedy: Remedy) -> Self {
        self.remedy = Some(remedy);
        self
    }
}

/// Why [`diagnose`] or [`reindex()`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoctorError {
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Reading the migrations failed.
    #[error(transparent)]
    Migration(MigrationError),
    /// The migration folder could not be read.
    #[error("cannot read the migration folder {}: {reason}", .dir.display())]
    MigrationDir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The registry could not be read, or names no such index.
    #[error(transparent)]
    Registry(#[from] crate::index::RegistryError),
    /// An SQLite index could not be rebuilt.
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Index(crate::sqlite::IndexError),
    /// HNSW was asked for on SQLite, which keeps sqlite-vec's vec0 and the crate's codes.
    #[error("HNSW is a pgvector index: SQLite keeps sqlite-vec's vec0 table (or the crate's codes) instead")]
    HnswNeedsPostgres,
}

impl From<MigrationError> for DoctorError {
    fn from(e: MigrationError) -> Self {
        match e {
            MigrationError::Query(e) => Self::Query(e),
            e => Self::Migration(e),
        }
    }
}

/// What a backend reads about itself; [`judge`] draws the findings.
pub(crate) struct Facts {
    pub(crate) server_version: String,
    pub(crate) extension: Extension,
    pub(crate) indexes: Vec<IndexReport>,
    /// Registry rows that do not describe a valid index: (name, why).
    pub(crate) invalid_registry_rows: Vec<(String, String)>,
    pub(crate) unregistered: Vec<Unregistered>,
    /// Whether the crate's `fragments` tables exist, and their foreign key and rows.
    pub(crate) fragments: Option<(ForeignKeys, RowCounts)>,
}

/// Row counts of the `fragments` schema, in SQL both backends run.
pub(crate) const ROW_COUNTS: &str = "SELECT (SELECT count(*) FROM fragments) AS fragments, \
     (SELECT count(*) FROM fragment_embeddings) AS embeddings, \
     (SELECT count(*) FROM fragment_embeddings WHERE embedding IS NOT NULL) AS with_vector, \
     (SELECT count(*) FROM fragment_embeddings e \
      WHERE NOT EXISTS (SELECT 1 FROM fragments f WHERE f.id = e.fragment_id)) AS orphans";

/// Whether an index's id column identifies one row, by the backend's condition: the one its generated
/// migrations check (`generate::sqlite_id_unique`, `generate::pg_id_unique`).
pub(crate) fn id_unique<C>(conn: &mut C, condition: &str) -> Result<bool, DoctorError>
where
    for<'a> diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'a, C, IdUniqueRow>,
{
    use diesel::RunQueryDsl;
    let row: IdUniqueRow = diesel::sql_query(format!("SELECT {condition} AS unique_id")).get_result(conn)?;
    Ok(row.unique_id)
}

#[derive(diesel::QueryableByName)]
pub(crate) struct IdUniqueRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    unique_id: bool,
}

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

/// How many ids a finding names.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const NAMED_IDS: usize = 5;

/// [`diagnose_with`] with the default options (no migration folder).
///
/// # Errors
///
/// As [`diagnose_with`].
pub fn diagnose(conn: &mut DatabaseConnection) -> Result<Report, DoctorError> {
    diagnose_with(conn, &DiagnoseOptions::default())
}

/// Reads the state of the database behind `conn` and judges it; changes nothing. Open SQLite databases
/// with [`DatabaseConnection::establish_read_only`] to be sure no file is created or altered.
///
/// # Errors
///
/// A failing catalog query, or a migration folder that cannot be read.
pub fn diagnose_with(conn: &mut DatabaseConnection, options: &DiagnoseOptions) -> Result<Report, DoctorError> {
    use crate::migrations::shape::Catalog as _;
    let crate_migrations = conn.migration_status()?;
    let (facts, recorded, applied, uses_fragments) = match conn {
        #[cfg(feature = "pg")]
        DatabaseConnection::Pg(c) => {
            let (recorded, applied) = bookkeeping(c)?;
            (crate::pg::doctor::facts(c)?, recorded, applied, c.has_crate_tables()?)
        }
        #[cfg(feature = "sqlite")]
        DatabaseConnection::Sqlite(c) => {
            let (recorded, applied) = bookkeeping(c)?;
            (crate::sqlite::doctor::facts(c)?, recorded, applied, c.has_crate_tables()?)
        }
    };
    // The crate's schema is in use where its tables are; without them, versions it shares with the
    // application's migrations are the application's (see `Catalog::has_crate_tables`).
    let crate_versions: Vec<&str> =
        if uses_fragments { crate_migrations.iter().map(|m| m.version.as_str()).collect() } else { Vec::new() };
    let app_applied: Vec<String> = applied.into_iter().filter(|v| !crate_versions.contains(&v.as_str())).collect();
    let pending = match &options.migration_dir {
        Some(dir) => {
            let folder = match conn.kind() {
                #[cfg(feature = "pg")]
                BackendKind::Postgres => folder_migrations::<diesel::pg::Pg>(dir)?,
                #[cfg(feature = "sqlite")]
                BackendKind::Sqlite => folder_migrations::<diesel::sqlite::Sqlite>(dir)?,
                #[allow(unreachable_patterns)]
                _ => Vec::new(),
            };
            Some(folder.into_iter().filter(|(v, _)| !app_applied.contains(v)).map(|(_, name)| name).collect())
        }
        None => None,
    };
    let migrations =
        AppMigrations { recorded, applied: app_applied, directory: options.migration_dir.clone(), pending };
    let fragments = uses_fragments.then(|| FragmentsSchema {
        migrations: crate_migrations,
        foreign_keys: facts.fragments.map(|(fk, _)| fk),
        rows: facts.fragments.map(|(_, rows)| rows),
    });
    let findings = judge(&facts, &migrations, fragments.as_ref());
    Ok(Report {
        backend: conn.kind(),
        server_version: facts.server_version,
        extension: facts.extension,
        migrations,
        indexes: facts.indexes,
        unregistered: facts.unregistered,
        fragments,
        findings,
    })
}

/// Registry rows that do not describe a valid index: (name, why).
pub(crate) type InvalidRegistryRows = Vec<(String, String)>;

/// The registry's rows as specs, and the rows that do not describe a valid index: one bad row does not
/// hide the others.
pub(crate) fn registry_rows<C>(conn: &mut C) -> Result<(Vec<IndexSpec>, InvalidRegistryRows), DoctorError>
where
    C: crate::migrations::shape::Catalog,
    for<'a> diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'a, C, crate::index::registry::RegistryRow>,
{
    use diesel::RunQueryDsl;
    if !conn.exists(crate::index::REGISTRY_TABLE)? {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<crate::index::registry::RegistryRow> =
        diesel::sql_query(crate::index::registry::SELECT_ROWS).load(conn)?;
    let (mut specs, mut invalid) = (Vec::new(), Vec::new());
    for row in rows {
        match row.to_spec() {
            Ok(spec) => specs.push(spec),
            Err(e) => invalid.push((row.name.clone(), e.to_string())),
        }
    }
    Ok((specs, invalid))
}

/// Whether Diesel's bookkeeping exists, and the versions it records.
fn bookkeeping<C: crate::migrations::shape::Catalog>(conn: &mut C) -> Result<(bool, Vec<String>), DoctorError> {
    if !conn.exists("__diesel_schema_migrations")? {
        return Ok((false, Vec::new()));
    }
    Ok((true, conn.recorded_versions()?))
}

/// The migrations of a folder: (version, name), oldest first.
fn folder_migrations<DB: diesel::backend::Backend>(dir: &Path) -> Result<Vec<(String, String)>, DoctorError> {
    use diesel::migration::MigrationSource;
    let error = |reason: String| DoctorError::MigrationDir { dir: dir.to_owned(), reason };
    if !dir.is_dir() {
        return Err(error("it is not a folder".into()));
    }
    let source = diesel_migrations::FileBasedMigrations::from_path(dir).map_err(|e| error(e.to_string()))?;
    let migrations = MigrationSource::<DB>::migrations(&source).map_err(|e| error(e.to_string()))?;
    let mut out: Vec<(String, String)> =
        migrations.iter().map(|m| (m.name().version().to_string(), m.name().to_string())).collect();
    out.sort();
    Ok(out)
}

fn judge(facts: &Facts, migrations: &AppMigrations, fragments: Option<&FragmentsSchema>) -> Vec<Finding> {
    let mut out = Vec::new();
    let uses_vectors = !facts.indexes.is_empty() || fragments.is_some() || !facts.unregistered.is_empty();
    extension_findings(facts, uses_vectors, &mut out);
    for (name, reason) in &facts.invalid_registry_rows {
        out.push(Finding::new(
            Level::Action,
            format!(
                "the registry row {name} does not describe a valid index ({reason}): searches and repairs cannot \
                 use it; correct the row, or apply the migration that recorded it again"
            ),
        ));
    }
    if let Some(pending) = &migrations.pending {
        if !pending.is_empty() {
            let dir = migrations.directory.clone().unwrap_or_default();
            out.push(
                Finding::new(
                    Level::Action,
                    format!(
                        "{} pending migration(s) in {} ({}): apply them",
                        pending.len(),
                        dir.display(),
                        pending.join(", ")
                    ),
                )
                .remedy(Remedy::RunAppMigrations { dir }),
            );
        }
    }
    if let Some(fragments) = fragments {
        fragments_findings(fragments, &mut out);
    }
    for index in &facts.indexes {
        index_findings(index, &mut out);
    }
    for unregistered in &facts.unregistered {
        unregistered_findings(unregistered, &mut out);
    }
    if facts.indexes.is_empty() && fragments.is_none() && facts.unregistered.is_empty() {
        out.push(Finding::new(
            Level::Info,
            "no vector index is registered and no vector column was found: nothing to search yet",
        ));
    }
    out.extend(version_findings(facts));
    out.sort_by_key(|f| f.level);
    out
}

fn extension_findings(facts: &Facts, uses_vectors: bool, out: &mut Vec<Finding>) {
    // Missing pgvector is a problem only for a database that holds vectors, or is meant to.
    let level = if uses_vectors { Level::Action } else { Level::Info };
    match &facts.extension {
        Extension::Pgvector { available: None, .. } => out.push(Finding::new(
            level,
            "pgvector is not installed on the PostgreSQL server: install it on the database host (Debian/Ubuntu: \
             postgresql-NN-pgvector) before creating vector columns",
        )),
        Extension::Pgvector { available: Some(v), installed: None, .. } => out.push(Finding::new(
            level,
            format!(
                "pgvector {v} is available but not created in this database: a superuser must run `CREATE \
                 EXTENSION vector` once (a migration that creates a vector index does it)"
            ),
        )),
        Extension::Pgvector { on_search_path: false, schema, .. } => out.push(Finding::new(
            Level::Action,
            format!(
                "pgvector's type `vector` is in schema {} which is not on this connection's search_path: add it \
                 (ALTER ROLE ... SET search_path)",
                schema.as_deref().unwrap_or("?")
            ),
        )),
        Extension::Pgvector { available: Some(a), installed: Some(i), .. } if a != i => out.push(Finding::new(
            Level::Warning,
            format!("pgvector {i} is created but the server has {a}: `ALTER EXTENSION vector UPDATE`"),
        )),
        Extension::SqliteVec { version: None } if facts.indexes.iter().any(|i| i.spec.sqlite_index().vec0) => {
            out.push(Finding::new(
                Level::Warning,
                "sqlite-vec is not in this build: searches scan every row exactly and vec0 indexes are not \
                 maintained (build with the `sqlite-vec` feature)",
            ))
        }
        _ => {}
    }
}

fn fragments_findings(fragments: &FragmentsSchema, out: &mut Vec<Finding>) {
    let pending: Vec<&str> = fragments.migrations.iter().filter(|m| !m.applied).map(|m| m.name.as_str()).collect();
    if !pending.is_empty() {
        out.push(
            Finding::new(
                Level::Action,
                format!(
                    "{} pending migration(s) of diesel-vector's fragments schema ({}): apply them",
                    pending.len(),
                    pending.join(", ")
                ),
            )
            .remedy(Remedy::RunCrateMigrations),
        );
    }
    if let Some(fk) = fragments.foreign_keys {
        if !fk.declared {
            out.push(Finding::new(
                Level::Action,
                "fragment_embeddings has no foreign key to fragments: the table was not made by the migrations",
            ));
        } else if !fk.enforced {
            out.push(Finding::new(
                Level::Warning,
                "the foreign key to fragments is not enforced (PostgreSQL: NOT VALID; SQLite: PRAGMA foreign_keys off)",
            ));
        }
    }
    if let Some(rows) = fragments.rows {
        if rows.orphans > 0 {
            out.push(Finding::new(
                Level::Action,
                format!(
                    "{} embedding(s) refer to fragments that do not exist (written with foreign keys off): delete \
                     them, or copy without them (diesel_vector::copy skips invalid rows when told to)",
                    rows.orphans
                ),
            ));
        }
    }
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
fn ids_text(ids: &[i64], count: i64) -> String {
    let listed: Vec<String> = ids.iter().map(i64::to_string).collect();
    let more = if count > ids.len() as i64 { ", ..." } else { "" };
    format!("{}{more}", listed.join(", "))
}

fn index_findings(index: &IndexReport, out: &mut Vec<Finding>) {
    let spec = &index.spec;
    let on = shown_column(spec.table(), spec.column());
    let Some(column_type) = &index.column_type else {
        out.push(Finding::new(
            Level::Action,
            format!(
                "the vector index {} is registered on {on}, which does not exist: searches on it fail; restore the \
                 table or column, or revert the migration that registered the index",
                spec.name()
            ),
        ));
        return;
    };
    if !index.missing_columns.is_empty() {
        out.push(Finding::new(
            Level::Action,
            format!(
                "the vector index {} reads {} of table {}, which it does not have (renamed or dropped): its searches \
                 and updates fail; restore the column, or revert the migration that registered the index and \
                 generate one for the table as it is now",
                spec.name(),
                index.missing_columns.iter().map(|c| shown(c)).collect::<Vec<_>>().join(", "),
                shown(spec.table())
            ),
        ));
        return;
    }
    if index.id_unique == Some(false) {
        out.push(Finding::new(
            Level::Action,
            format!(
                "{}, the id column of the vector index {}, is not unique by itself: searches return ids that \
                 stand for several rows, and may return a row twice or miss rows; make it the primary key or give \
                 it a unique index of its own, or register the index on a column that is",
                shown_column(spec.table(), spec.id_column()),
                spec.name()
            ),
        ));
    }
    match &index.state {
        #[cfg(feature = "sqlite")]
        Some(IndexState::Sqlite { status, invalid }) => {
            if !matches!(column_type.to_ascii_uppercase().as_str(), "BLOB" | "") {
                out.push(Finding::new(
                    Level::Warning,
                    format!("{on} is declared {column_type}, not BLOB: vectors stored in it may not be BLOBs"),
                ));
            }
            sqlite_index_findings(spec, status, invalid, &on, out);
        }
        #[cfg(feature = "pg")]
        Some(IndexState::Pg { status, definition, operator_class_matches, partition_indexes }) => {
            let expected = spec.element().pg_type(spec.dims());
            if *column_type != expected {
                out.push(Finding::new(
                    Level::Action,
                    format!(
                        "{on} is {column_type} but the vector index {} is registered for {expected}: searches with \
                         {}-dimensional queries fail; change the column back, or register the index again with \
                         the column's dimensions",
                        spec.name(),
                        spec.dims()
                    ),
                ));
            }
            pg_index_findings(spec, status, definition.as_deref(), *operator_class_matches, &on, out);
            for p in partition_indexes.iter().filter(|p| !p.valid) {
                out.push(Finding::new(
                    Level::Action,
                    format!(
                        "the partition index {} of {on} is not valid (its build failed or was interrupted): \
                         searches do not use it and writes still maintain it; drop it and build it again",
                        p.name
                    ),
                ));
            }
        }
        Some(IndexState::NotSetUp) => out.push(Finding::new(
            Level::Action,
            format!(
                "the vector index {} on {on} is registered but its change queue and state are missing: apply the \
                 migration that creates it again",
                spec.name()
            ),
        )),
        None => {}
    }
}

#[cfg(feature = "sqlite")]
fn sqlite_index_findings(
    spec: &IndexSpec,
    status: &crate::sqlite::IndexStatus,
    invalid: &crate::sqlite::InvalidRows,
    on: &str,
    out: &mut Vec<Finding>,
) {
    let reindex = || Remedy::Reindex { table: spec.table().to_owned() };
    if invalid.count > 0 {
        // What can be wrong besides the length and type, per element type.
        let contents = match spec.element() {
            crate::index::Element::Bit => "",
            crate::index::Element::SparseVector => {
                ", indices out of order or beyond the dimensions, or a NaN, infinite or zero value"
            }
            _ => ", or a NaN or infinite element",
        };
        out.push(Finding::new(
            Level::Action,
            format!(
                "{} row(s) of {} hold a value in {} that is not a {} of {} dimensions (another length or type{contents}; \
                 ids {}): every search skips them and the index leaves them out; correct or delete them",
                invalid.count,
                spec.table(),
                spec.column(),
                spec.element(),
                spec.dims(),
                ids_text(&invalid.ids, invalid.count)
            ),
        ));
    }
    let codes = spec.sqlite_keeps_codes();
    if codes && (status.needs_rebuild || !status.codes_current) && status.embedded_rows > 0 {
        // The crate's codes are kept on any connection: no extension needed.
        let state = match (status.needs_rebuild, status.codes_rows) {
            (true, _) => "marked for rebuild",
            (false, None) => "not built",
            (false, Some(_)) => "stale",
        };
        out.push(
            Finding::new(
                Level::Action,
                format!(
                    "the quantized codes of the vector index {} are {state} for {} row(s) of {on}: the next search \
                     would stall rebuilding them; rebuild them now",
                    spec.name(),
                    status.embedded_rows
                ),
            )
            .remedy(reindex()),
        );
        return;
    }
    if codes && status.pending_changes > 0 && !(spec.sqlite_index().vec0 && status.sqlite_vec.is_some()) {
        out.push(
            Finding::new(
                Level::Warning,
                format!(
                    "{} change(s) to {on} are not in the vector index {} yet: the next search applies them, or \
                     rebuild the index",
                    status.pending_changes,
                    spec.name()
                ),
            )
            .remedy(reindex()),
        );
        return;
    }
    if codes && status.codes_rank_neighbours == Some(false) && !spec.sqlite_index().vectors {
        out.push(Finding::new(
            Level::Info,
            format!(
                "the quantized codes of the vector index {} do not rank {on}'s nearest rows (its vectors have no \
                 structure the codes follow, as random ones): searches scan every row exactly; keeping the \
                 contiguous copy of the vectors (SQLite structures codes,vectors) makes that scan faster",
                spec.name()
            ),
        ));
    }
    if !spec.sqlite_index().vec0 || status.sqlite_vec.is_none() {
        return;
    }
    if (status.needs_rebuild || !status.vec0_table_exists) && status.embedded_rows > 0 {
        out.push(
            Finding::new(
                Level::Action,
                format!(
                    "the vec0 index {} is {} for {} row(s) of {on}: the next search would stall rebuilding it; \
                     rebuild it now",
                    spec.name(),
                    if status.vec0_table_exists { "marked for rebuild" } else { "missing" },
                    status.embedded_rows
                ),
            )
            .remedy(reindex()),
        );
    } else if status.pending_changes > 0 {
        out.push(
            Finding::new(
                Level::Warning,
                format!(
                    "{} change(s) to {on} are not in the vec0 table of the index {} yet: the next search applies \
                     them, or rebuild the index",
                    status.pending_changes,
                    spec.name()
                ),
            )
            .remedy(reindex()),
        );
    }
}

#[cfg(feature = "pg")]
fn pg_index_findings(
    spec: &IndexSpec,
    status: &crate::pg::PgIndexStatus,
    definition: Option<&str>,
    operator_class_matches: Option<bool>,
    on: &str,
    out: &mut Vec<Finding>,
) {
    let reindex = || Remedy::Reindex { table: spec.table().to_owned() };
    let Some(name) = spec.pg_index_name() else { return };
    let registered = spec.pg_index();
    let Some(method) = status.method.as_deref() else {
        out.push(
            Finding::new(
                Level::Warning,
                format!(
                    "the {registered} index {name} of {on} does not exist: searches scan every row; build it again"
                ),
            )
            .remedy(reindex()),
        );
        return;
    };
    if !status.valid {
        out.push(
            Finding::new(
                Level::Action,
                format!(
                    "the index {name} of {on} is not valid (a CREATE INDEX CONCURRENTLY that failed?): PostgreSQL \
                     does not use it, searches scan every row; rebuild it"
                ),
            )
            .remedy(reindex()),
        );
    }
    if Some(method) != registered.method() {
        out.push(Finding::new(
            Level::Info,
            format!(
                "the index {name} of {on} is {method} where the registry records {registered} (rebuilt by hand, \
                 or as HNSW on request); searches use it as it is, a plain rebuild makes it {registered} again"
            ),
        ));
    }
    if operator_class_matches == Some(false) {
        out.push(
            Finding::new(
                Level::Warning,
                if spec.pg_index() == crate::index::PgIndex::BinaryQuantized {
                    format!(
                        "the index {name} of {on} is not the binary-quantized index declared, HNSW on \
                         `(binary_quantize({})::bit({})) bit_hamming_ops` ({}): searches cannot use it and scan every \
                         row; rebuild it",
                        spec.column(),
                        spec.dims(),
                        definition.unwrap_or("?")
                    )
                } else {
                    format!(
                        "the index {name} of {on} does not use the {} operator class ({}): {} searches cannot use \
                         it and scan every row; rebuild it",
                        spec.metric(),
                        definition.unwrap_or("?"),
                        spec.metric()
                    )
                },
            )
            .remedy(reindex()),
        );
    }
    if let Some(lists) = status.lists {
        let recommended = status.recommended_lists();
        if status.rows > 0 && status.needs_rebuild() {
            out.push(
                Finding::new(
                    Level::Action,
                    format!(
                        "the ivfflat index {name} has {lists} lists for {} rows of {on} (recommended {recommended}): \
                         it was built with little data and recalls poorly (searches pass it over and scan every \
                         row); rebuild it",
                        status.rows
                    ),
                )
                .remedy(reindex()),
            );
        } else if lists.saturating_mul(4) < recommended {
            out.push(
                Finding::new(
                    Level::Warning,
                    format!(
                        "the ivfflat index {name} has {lists} lists for {} rows of {on} (recommended \
                         {recommended}): the data outgrew it and searches probe more rows than needed; rebuild it",
                        status.rows
                    ),
                )
                .remedy(reindex()),
            );
        }
    }
}

fn unregistered_findings(unregistered: &Unregistered, out: &mut Vec<Finding>) {
    match unregistered {
        Unregistered::PgColumn { table, column, column_type, indexes, .. } => {
            let on = shown_column(table, column);
            out.push(
                Finding::new(
                    Level::Info,
                    format!(
                        "{on} ({column_type}) is not in diesel-vector's registry: its search and reindex \
                         do not know it; register its index to use them"
                    ),
                )
                .remedy(Remedy::Register { table: table.clone(), column: column.clone() }),
            );
            for index in indexes {
                pg_index_info_findings(table, column, index, out);
            }
        }
        Unregistered::PgIndex { table, column, registered_as, index } => {
            let on = shown_column(table, column);
            out.push(Finding::new(
                Level::Info,
                format!(
                    "the {} index {} on {on} is not the one the registry records for {registered_as}: \
                     PostgreSQL may use either for searches",
                    index.method, index.name
                ),
            ));
            pg_index_info_findings(table, column, index, out);
        }
        Unregistered::Vec0Table { name } => out.push(Finding::new(
            Level::Info,
            format!(
                "the vec0 table {name} belongs to no registered index (left by a revert run without sqlite-vec?): \
                 searches never read it; drop it (DROP TABLE on a connection with sqlite-vec)"
            ),
        )),
    }
}

/// Validity and, for ivfflat, lists against the counted rows, of an index the registry does not know.
fn pg_index_info_findings(table: &str, column: &str, index: &PgIndexInfo, out: &mut Vec<Finding>) {
    let on = shown_column(table, column);
    if !index.valid {
        out.push(Finding::new(
            Level::Action,
            format!(
                "the {} index {} on {on} is not valid: PostgreSQL does not use it; `REINDEX INDEX` it, \
                 or drop and create it again",
                index.method, index.name
            ),
        ));
    }
    #[cfg(feature = "pg")]
    if let (Some(lists), Some(rows)) = (index.lists, index.rows) {
        let recommended = crate::pg::recommended_lists(rows);
        if rows > 0 && lists > 2 * recommended {
            out.push(Finding::new(
                Level::Action,
                format!(
                    "the ivfflat index {} on {on} has {lists} lists for {rows} rows (recommended \
                     {recommended}): it was built with little data and recalls poorly; create it again WITH (lists \
                     = {recommended})",
                    index.name
                ),
            ));
        }
    }
}

/// Findings that follow from the versions of pgvector, sqlite-vec and SQLite ([`versions`]).
fn version_findings(facts: &Facts) -> Vec<Finding> {
    let (pgvector, sqlite_vec) = match &facts.extension {
        Extension::Pgvector { installed, .. } => (installed.as_deref(), None),
        Extension::SqliteVec { version } => (None, version.as_deref()),
    };
    #[cfg_attr(not(feature = "pg"), allow(unused_mut))]
    let mut methods: Vec<&str> = Vec::new();
    for index in &facts.indexes {
        #[cfg(feature = "pg")]
        if let Some(IndexState::Pg { status, .. }) = &index.state {
            methods.extend(status.method.as_deref());
        }
        #[cfg(not(feature = "pg"))]
        let _ = index;
    }
    for unregistered in &facts.unregistered {
        match unregistered {
            Unregistered::PgColumn { indexes, .. } => methods.extend(indexes.iter().map(|i| i.method.as_str())),
            Unregistered::PgIndex { index, .. } => methods.push(&index.method),
            _ => {}
        }
    }
    versions::findings(&versions::VersionFacts {
        pgvector,
        hnsw_index: methods.contains(&"hnsw"),
        ann_index: methods.iter().any(|m| matches!(*m, "hnsw" | "ivfflat")),
        sqlite: facts.server_version.strip_prefix("SQLite "),
        sqlite_vec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_findings_text_cannot_forge_a_line_or_drive_a_terminal() {
        let finding = Finding::new(Level::Warning, "table \"x\nACTION: drop it\" has \u{1b}[31mred\u{202e} text");
        let text = finding.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("warning: table \"x\\u{a}ACTION: drop it\""), "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'), "{text}");
        let report = Report {
            backend: BackendKind::Sqlite,
            server_version: "SQLite 3".into(),
            extension: Extension::SqliteVec { version: None },
            migrations: AppMigrations { recorded: false, applied: Vec::new(), pending: None, directory: None },
            indexes: Vec::new(),
            unregistered: Vec::new(),
            fragments: None,
            findings: vec![Finding::new(Level::Action, "rebuild it"), finding],
        };
        assert_eq!(report.to_string().lines().collect::<Vec<_>>()[..2], ["needs action", "  action: rebuild it"]);
    }
}
