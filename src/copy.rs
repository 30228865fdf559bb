//! Copying an application's tables from one database to another (PostgreSQL or SQLite, in any
//! direction), converting each column to the target's type, resumable and verified.
//!
//! [`copy`] reads the source's catalog, migrates the target (the application's migrations from a folder,
//! and the crate's own when the source uses its `fragments` schema), matches the two schemas, then copies
//! every table (or the ones named) parents first, `batch_size` rows per transaction on the target, keeping
//! every key and every bit of every value. Then it reads both sides again and compares them row by row.
//!
//! - **Which tables**: every table of the source, except Diesel's bookkeeping and anything else whose name
//!   starts with `__`, SQLite's own `sqlite_*`, views, virtual tables and their shadow tables, and the
//!   SQLite structures of every registered vector index (its queue, state, codes and vec0 tables).
//!   [`CopyOptions::tables`] narrows it. A table the target lacks, a column it lacks, a target column that
//!   needs a value the source does not have, a column whose type cannot be converted without loss, a
//!   table without a primary key, and foreign keys that form a cycle between tables are all
//!   [`CopyError::Schema`], before anything is written.
//! - **Types** are converted per target column through one table (`transfer/value.rs`): integers (kept
//!   only when they fit the target column), text, floats, booleans (SQLite's 0/1), timestamps, dates and
//!   times (on SQLite in Diesel's text form, microseconds kept), bytes, `vector`/`halfvec`/`sparsevec`/`bit`
//!   through their codecs, NULLs.
//! - **Snapshot**: the source is read in one read-only transaction (PostgreSQL: `REPEATABLE READ`), so
//!   the copy and its verification see one consistent state. An SQLite source is opened read-only
//!   (`file:PATH?mode=ro`): a mistyped path is an error, never a new empty database. The source is read
//!   and checked in full before the target is opened.
//! - **Ids reserved first**: for tables whose key is one integer column with an id generator on the
//!   target (PostgreSQL sequences and identities, SQLite `AUTOINCREMENT`), the generator is moved past the
//!   source's largest id before anything is written. An application that inserts into the target during
//!   (or after) the copy gets ids above the source's range and never collides with a row still to come.
//!   (An SQLite `INTEGER PRIMARY KEY` without `AUTOINCREMENT` always hands out the largest id plus one:
//!   after the copy that is above the source's; during it, stop the application's writes.)
//! - **Resumable**: each batch commits atomically and batches go in key order. A new run first compares
//!   the target's rows up to its largest key *within the source's range* with the source's: if the target
//!   holds a row the source does not, or one with other contents, the copy stops
//!   ([`CopyError::TargetDiffers`], naming the first such key) before writing anything: the target is not
//!   an earlier copy of this source. Otherwise it resumes after the last row both hold before the first
//!   one the target lacks. Rows are inserted with `ON CONFLICT (key) DO NOTHING`: a run never overwrites a
//!   row on the target.
//! - **Verified**: both sides are streamed in key order (keyset pagination: memory does not grow with
//!   the table), every source row converted to the target's types, every row hashed in one
//!   backend-neutral form, and the streams merged by key. The report holds each side's row count and
//!   order-independent [`Checksum`] and the first keys that differ. Any difference is
//!   [`CopyError::Verification`].
//! - **Strict**: a source row that cannot be copied as it is (a value of another type than its column's,
//!   an integer out of the target column's range, text that is not UTF-8 or holds a NUL for PostgreSQL, a
//!   malformed vector, a reference to a missing parent on an SQLite source) stops the copy with
//!   [`CopyError::InvalidRows`] naming every such row of the batch (table, key, column, reason), before
//!   anything of that batch is written; so does a row the target's constraints refuse.
//!   [`CopyOptions::skip_invalid`] copies the rest and reports them instead.
//! - **Indexes**: an SQLite target's vector indexes are brought up to date at the end; on PostgreSQL the
//!   report says, per registered index, whether an ivfflat index should be rebuilt for the data
//!   ([`crate::pg::rebuild_ivfflat_index`]): built on an empty table, it recalls nothing useful.
//!
//! Stop writers on the *source* while copying: rows it gains after the copy started are not copied.
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel::connection::SimpleConnection;
//! use diesel_vector::copy::{copy, CopyOptions};
//! # let dir = tempfile::tempdir()?;
//! # let (from, to) = (dir.path().join("a.db"), dir.path().join("b.db"));
//! # let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());
//! let mut app = diesel_vector::sqlite::establish(from)?;
//! app.batch_execute(
//!     "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, done BOOLEAN NOT NULL);
//!      INSERT INTO notes (body, done) VALUES ('milk', 0), ('bread', 1);",
//! )?;
//! # diesel_vector::sqlite::establish(to)?.batch_execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, done BOOLEAN NOT NULL)")?;
//!
//! let report = copy(from, to, &CopyOptions::default().batch_size(1000), &mut |_event| {})?;
//! assert!(report.is_verified());
//! assert_eq!(report.tables[0].source.rows, 2);
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::database::{dispatch, BackendKind, DatabaseConnection};
use crate::migrations::{MigrationError, MigrationTarget};
use crate::transfer::sql::KeyRange;
use crate::transfer::table::{self, Catalog, Side, TablePlan};
use crate::transfer::verify::{self, CompareError, Comparison, Scope};
use crate::transfer::{check, keep_reported, key_of, CatalogError, IndexUpdateError, Store};

pub use crate::transfer::checksum::Checksum;
pub use crate::transfer::table::{SchemaError, Unconvertible};
pub use crate::transfer::value::{Key, KeyPart};
pub use crate::transfer::verify::Sums;
pub use crate::transfer::{IndexReport, InvalidRow, TargetIndex};

/// How [`copy`] (and JSON lines) run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub(crate) batch_size: usize,
    pub(crate) skip_invalid: bool,
    pub(crate) tables: Vec<String>,
    pub(crate) pg_migrations: Option<PathBuf>,
    pub(crate) sqlite_migrations: Option<PathBuf>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self { batch_size: 500, skip_invalid: false, tables: Vec::new(), pg_migrations: None, sqlite_migrations: None }
    }
}

impl CopyOptions {
    /// Rows per batch: per read, per transaction on the target, per progress event (default 500; at
    /// least 1).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Skip invalid source rows (and rows the target refuses) and report them, instead of stopping
    /// (default `false`).
    pub fn skip_invalid(mut self, skip: bool) -> Self {
        self.skip_invalid = skip;
        self
    }

    /// Move only these tables (default: every application table of the source).
    pub fn tables<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tables = tables.into_iter().map(Into::into).collect();
        self
    }

    /// The application's Diesel migrations for a PostgreSQL target: run on the target before the copy.
    pub fn pg_migrations(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pg_migrations = Some(dir.into());
        self
    }

    /// The application's Diesel migrations for an SQLite target: run on the target before the copy.
    pub fn sqlite_migrations(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sqlite_migrations = Some(dir.into());
        self
    }

    pub(crate) fn limit(&self) -> i64 {
        i64::try_from(self.batch_size).unwrap_or(i64::MAX)
    }

    pub(crate) fn migrations_for(&self, backend: BackendKind) -> Option<&Path> {
        match backend {
            BackendKind::Postgres => self.pg_migrations.as_deref(),
            _ => self.sqlite_migrations.as_deref(),
        }
    }
}

/// What [`copy`] is doing, for progress displays.
#[derive(Debug)]
#[non_exhaustive]
pub enum CopyEvent<'a> {
    /// The target's migrations ran (`applied` were pending).
    Migrated {
        /// How many migrations were applied or adopted.
        applied: usize,
    },
    /// A table starts.
    Table {
        /// Its name.
        table: &'a str,
        /// Its rows on the source.
        source_rows: u64,
        /// The key an earlier run copied up to (`None`: from the start).
        resume_after: Option<&'a Key>,
        /// Source rows after that key.
        to_copy: u64,
    },
    /// A batch was committed on the target.
    Batch {
        /// The table.
        table: &'a str,
        /// Source rows read so far in this run.
        done: u64,
        /// Source rows this run has to read.
        to_copy: u64,
        /// The batch's last key.
        last_key: &'a Key,
    },
    /// Invalid rows were skipped ([`CopyOptions::skip_invalid`]).
    Skipped {
        /// The rows and why.
        rows: &'a [InvalidRow],
    },
    /// Both sides of a table are being compared.
    Verifying {
        /// The table.
        table: &'a str,
    },
    /// The rows are copied and verified; the target's vector indexes are being brought up to date
    /// (SQLite: the vec0 index built or synced, which takes a while for many rows; PostgreSQL: `ANALYZE`
    /// and the ivfflat check).
    UpdatingIndex,
}

/// One table's copy and verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// The table.
    pub table: String,
    /// Its primary key's column (`id`) or columns (`(a, b)`).
    pub key_column: String,
    /// The key an earlier run had copied up to (`None`: this run started from the beginning).
    pub resumed_after: Option<Key>,
    /// Source rows read by this run.
    pub read: u64,
    /// Rows this run inserted into the target.
    pub inserted: u64,
    /// The source's valid rows, counted and checksummed (converted to the target's types).
    pub source: Sums,
    /// The target's rows in the source's key range, counted and checksummed.
    pub target: Sums,
    /// How many keys differ between the sides (missing, extra or different).
    pub differing: u64,
    /// The first of them.
    pub differing_keys: Vec<Key>,
}

impl TableReport {
    /// True when both sides hold the same rows.
    pub fn is_verified(&self) -> bool {
        self.differing == 0 && self.source == self.target
    }

    fn new(plan: &TablePlan) -> Self {
        Self {
            table: plan.name.clone(),
            key_column: plan.key_label.clone(),
            resumed_after: None,
            read: 0,
            inserted: 0,
            source: Sums::default(),
            target: Sums::default(),
            differing: 0,
            differing_keys: Vec::new(),
        }
    }
}

/// What [`copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Migrations the target needed.
    pub migrations_applied: usize,
    /// Every table copied, parents first.
    pub tables: Vec<TableReport>,
    /// Source rows left out as invalid or refused by the target ([`CopyOptions::skip_invalid`]), the
    /// first 1000.
    pub skipped: Vec<InvalidRow>,
    /// How many source rows were left out in all.
    pub skipped_count: u64,
    /// The target's registered vector indexes on the copied tables, after the copy.
    pub indexes: Vec<IndexReport>,
}

impl CopyReport {
    /// True when every table verified.
    pub fn is_verified(&self) -> bool {
        self.tables.iter().all(TableReport::is_verified)
    }
}

/// Why a copy failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CopyError {
    /// The source and target URLs are the same.
    SameDatabase,
    /// The source could not be opened.
    Source(MigrationError),
    /// The target could not be opened or migrated (the crate's migrations).
    Target(MigrationError),
    /// A database's catalog or vector index registry could not be read.
    Catalog {
        /// `source` or `target`.
        side: &'static str,
        /// What failed.
        message: String,
    },
    /// The application's migrations failed on the target.
    Migrations {
        /// Their folder.
        dir: PathBuf,
        /// Diesel's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The schemas do not fit (nothing was written).
    Schema(SchemaError),
    /// The target holds rows in the source's key range that the source does not, or with other contents:
    /// it is not an earlier copy of this source (nothing was written).
    TargetDiffers {
        /// The table.
        table: String,
        /// Its key column(s).
        key_column: String,
        /// The first such key.
        key: Key,
    },
    /// Invalid source rows, or rows the target refused (strict mode): nothing of their batch was written.
    InvalidRows(Vec<InvalidRow>),
    /// A query failed.
    Query {
        /// What was being done.
        context: String,
        /// The database's error.
        source: DieselError,
    },
    /// An SQLite target's vector index could not be brought up to date (the rows are copied).
    Index(Box<dyn std::error::Error + Send + Sync>),
    /// The copy finished but the two sides differ; the report says where.
    Verification(Box<CopyReport>),
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SameDatabase => f.write_str("the source and the target are the same database"),
            Self::Source(e) => write!(f, "source: {e}"),
            Self::Target(e) => write!(f, "target: {e}"),
            Self::Catalog { side, message } => write!(f, "{side}: {message}"),
            Self::Migrations { dir, source } => {
                write!(f, "target: the migrations in {} failed: {source}", dir.display())
            }
            Self::Schema(e) => write!(f, "{e}"),
            Self::TargetDiffers { table, key_column, key } => write!(
                f,
                "the target's {table} already holds rows that differ from the source's (first: {key_column} {key}): it \
                 is not an earlier copy of this source, and nothing was written (copy into an empty table, or remove \
                 those rows)"
            ),
            Self::InvalidRows(rows) => {
                write!(f, "{} invalid source row(s); nothing of their batch was written:", rows.len())?;
                for row in rows {
                    write!(f, "\n  {row}")?;
                }
                Ok(())
            }
            Self::Query { context, source } => write!(f, "{context}: {source}"),
            Self::Index(e) => write!(f, "the rows were copied but the target's vector index was not updated: {e}"),
            Self::Verification(report) => {
                f.write_str("verification failed: the target differs from the source")?;
                for t in report.tables.iter().filter(|t| !t.is_verified()) {
                    let keys: Vec<String> = t.differing_keys.iter().map(ToString::to_string).collect();
                    write!(
                        f,
                        "\n  {}: source {} rows, checksum {}; target {} rows, checksum {}; {} {}(s) differ, first: [{}]",
                        t.table,
                        t.source.rows,
                        t.source.checksum,
                        t.target.rows,
                        t.target.checksum,
                        t.differing,
                        t.key_column,
                        keys.join(", ")
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CopyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Source(e) | Self::Target(e) => Some(e),
            Self::Migrations { source, .. } => Some(&**source),
            Self::Schema(e) => Some(e),
            Self::Query { source, .. } => Some(source),
            Self::Index(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<DieselError> for CopyError {
    fn from(source: DieselError) -> Self {
        Self::Query { context: "transaction".into(), source }
    }
}

impl From<CompareError> for CopyError {
    fn from(e: CompareError) -> Self {
        match e {
            CompareError::Source(source) => Self::Query { context: "verifying: reading the source".into(), source },
            CompareError::Target(source) => Self::Query { context: "verifying: reading the target".into(), source },
            CompareError::Invalid(rows) => Self::InvalidRows(rows),
        }
    }
}

impl From<IndexUpdateError> for CopyError {
    fn from(e: IndexUpdateError) -> Self {
        match e {
            IndexUpdateError::Query(source) => Self::Query { context: "updating the target's index".into(), source },
            #[cfg(feature = "sqlite")]
            IndexUpdateError::Index(e) => Self::Index(Box::new(e)),
        }
    }
}

pub(crate) fn catalog_error(side: &'static str, e: CatalogError) -> CopyError {
    match e {
        CatalogError::Migrations(e) if side == "source" => CopyError::Source(e),
        CatalogError::Migrations(e) => CopyError::Target(e),
        e => CopyError::Catalog { side, message: e.to_string() },
    }
}

/// Copies the application's tables from `from` to `to` (database URLs, as
/// [`DatabaseConnection::establish`] takes them), migrating `to` first; see the [module](self) docs.
/// `on_event` hears about each table and each committed batch.
///
/// Running it again after an interruption resumes where it stopped; running it again after success
/// copies nothing and verifies again.
///
/// # Errors
///
/// Before anything is written: [`CopyError::Schema`], [`CopyError::TargetDiffers`], a source that cannot
/// be opened or read. Then [`CopyError::InvalidRows`] for invalid source rows (unless skipped),
/// [`CopyError::Verification`] when the sides differ at the end, or the failure of a connection,
/// migration or query.
pub fn copy(
    from: &str,
    to: &str,
    options: &CopyOptions,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<CopyReport, CopyError> {
    if crate::database::sqlite_path(from) == crate::database::sqlite_path(to) {
        return Err(CopyError::SameDatabase);
    }
    // Both URLs name a backend this build has, before anything is opened.
    BackendKind::from_url(from).map_err(CopyError::Source)?;
    BackendKind::from_url(to).map_err(CopyError::Target)?;
    let mut source = DatabaseConnection::establish_read_only(from).map_err(CopyError::Source)?;
    source.without_memory_map().map_err(|e| CopyError::Source(e.into()))?;
    let source = &mut source;
    dispatch!(source, s => with_source(s, to, options, on_event))
}

fn with_source<S: Store>(
    source: &mut S,
    to: &str,
    options: &CopyOptions,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<CopyReport, CopyError> {
    source.snapshot(|source| {
        // Before the target is touched: the source's schema, and one row of each table read.
        let catalog = source.catalog().map_err(|e| catalog_error("source", e))?;
        let alone = table::plan(&catalog, None, &options.tables).map_err(CopyError::Schema)?;
        for plan in &alone {
            source
                .read(plan, Side::Source, &KeyRange { limit: Some(1), ..KeyRange::default() })
                .map_err(|e| read_source(&plan.name, e))?;
        }
        let mut target = DatabaseConnection::establish(to).map_err(CopyError::Target)?;
        target.without_memory_map().map_err(|e| CopyError::Target(e.into()))?;
        let target = &mut target;
        dispatch!(target, t => run(source, &catalog, t, options, on_event))
    })
}

/// Runs the crate's own migrations (when the source uses its schema) and the application's on the
/// target; returns how many were applied.
pub(crate) fn migrate<T: Store>(target: &mut T, crate_schema: bool, options: &CopyOptions) -> Result<usize, CopyError> {
    let mut applied = 0;
    if crate_schema {
        applied += crate::migrations::run_pending_migrations(target).map_err(CopyError::Target)?.len();
    }
    if let Some(dir) = options.migrations_for(T::KIND) {
        applied += run_app_migrations(target, dir)?;
    }
    Ok(applied)
}

/// The application's migrations from `dir`, with the crate's runner (the same checks, lock and adoption as
/// its own set).
fn run_app_migrations<T: MigrationTarget>(target: &mut T, dir: &Path) -> Result<usize, CopyError> {
    use diesel_migrations::FileBasedMigrations;
    let failed =
        |source: Box<dyn std::error::Error + Send + Sync>| CopyError::Migrations { dir: dir.to_owned(), source };
    let migrations = FileBasedMigrations::from_path(dir).map_err(|e| failed(Box::new(e)))?;
    crate::migrations::run_pending_migrations_from(target, &migrations)
        .map(|applied| applied.len())
        .map_err(|e| failed(Box::new(e)))
}

/// One table as the copy goes: its plan, the source's largest key, and the resume check's outcome.
struct Table {
    plan: TablePlan,
    upto: Option<crate::transfer::value::Key>,
    report: TableReport,
    /// The resume check, when it covered the whole source range (then it is the verification too, if
    /// this run writes nothing).
    checked_all: Option<Comparison>,
    /// The keys of this table's rows the target refused ([`CopyOptions::skip_invalid`]): not expected on
    /// the target. A table's own, since another table's row of the same key is a different row.
    refused: HashSet<Key>,
}

fn run<S: Store, T: Store>(
    source: &mut S,
    source_catalog: &Catalog,
    target: &mut T,
    options: &CopyOptions,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<CopyReport, CopyError> {
    let applied = migrate(target, source_catalog.uses_crate_schema, options)?;
    on_event(CopyEvent::Migrated { applied });
    let target_catalog = target.catalog().map_err(|e| catalog_error("target", e))?;
    let plans = table::plan(source_catalog, Some(&target_catalog), &options.tables).map_err(CopyError::Schema)?;
    // Every table is checked before any is written.
    let mut tables = Vec::with_capacity(plans.len());
    for plan in plans {
        let upto =
            source.last_key(&plan, Side::Source, &KeyRange::default()).map_err(|e| read_source(&plan.name, e))?;
        let mut report = TableReport::new(&plan);
        let mut checked_all = None;
        if let Some(max) = &upto {
            let range = KeyRange { upto: Some(max), ..KeyRange::default() };
            if let Some(last) = target.last_key(&plan, Side::Target, &range).map_err(|e| read_target(&plan.name, e))? {
                let scope = Scope {
                    plan: &plan,
                    upto: Some(&last),
                    batch: options.limit(),
                    skip_invalid: options.skip_invalid,
                    refused: &HashSet::new(),
                };
                let c = verify::compare(source, target, &scope)?;
                if let Some(key) = c.first_foreign.clone() {
                    return Err(CopyError::TargetDiffers {
                        table: plan.name.clone(),
                        key_column: plan.key_label.clone(),
                        key,
                    });
                }
                report.resumed_after =
                    if c.first_missing.is_none() { Some(last.clone()) } else { c.matched_until.clone() };
                if last == *max && c.first_missing.is_none() {
                    checked_all = Some(c);
                }
            }
        }
        tables.push(Table { plan, upto, report, checked_all, refused: HashSet::new() });
    }
    // Before anything is written: the application's inserts into the target get ids above the source's
    // from now on, so they can neither collide with rows still to come nor be taken for copied rows when
    // a later run looks for where to resume.
    reserve(target, &tables)?;
    target.begin_load().map_err(|source| CopyError::Query { context: "preparing the target".into(), source })?;
    let (mut skipped, mut skipped_count) = (Vec::new(), 0u64);
    for t in &mut tables {
        let Some(upto) = &t.upto else { continue };
        copy_table(
            source,
            target,
            &t.plan,
            upto,
            &mut t.report,
            options,
            &mut t.refused,
            &mut skipped,
            &mut skipped_count,
            on_event,
        )?;
    }
    reserve(target, &tables)?;
    for t in &mut tables {
        let Some(upto) = &t.upto else { continue };
        on_event(CopyEvent::Verifying { table: &t.plan.name });
        let c = match t.checked_all.take() {
            Some(c) if t.report.read == 0 => c,
            _ => {
                let scope = Scope {
                    plan: &t.plan,
                    upto: Some(upto),
                    batch: options.limit(),
                    skip_invalid: options.skip_invalid,
                    refused: &t.refused,
                };
                verify::compare(source, target, &scope)?
            }
        };
        t.report.source = c.source;
        t.report.target = c.target;
        t.report.differing = c.differing;
        t.report.differing_keys = c.differing_keys;
        // The comparison met every invalid source row of the table (the copy only those after where it
        // resumed); the rows the target refused are the copy's.
        skipped_count += c.skipped_count;
        keep_reported(&mut skipped, c.skipped);
    }
    on_event(CopyEvent::UpdatingIndex);
    let plans: Vec<TablePlan> = tables.iter().map(|t| t.plan.clone()).collect();
    let indexes = target.after_load(&plans, &target_catalog.indexes)?;
    let report = CopyReport {
        migrations_applied: applied,
        tables: tables.into_iter().map(|t| t.report).collect(),
        skipped,
        skipped_count,
        indexes,
    };
    if !report.is_verified() {
        return Err(CopyError::Verification(Box::new(report)));
    }
    Ok(report)
}

fn read_source(table: &str, source: DieselError) -> CopyError {
    CopyError::Query { context: format!("reading {table} on the source"), source }
}

fn read_target(table: &str, source: DieselError) -> CopyError {
    CopyError::Query { context: format!("reading {table} on the target"), source }
}

fn reserve<T: Store>(target: &mut T, tables: &[Table]) -> Result<(), CopyError> {
    for t in tables {
        if let (Some(_), Some(max)) = (t.plan.reserve, t.upto.as_ref().and_then(|k| k.as_int())) {
            target.reserve_ids(&t.plan, max).map_err(|source| CopyError::Query {
                context: format!("reserving ids of {} on the target", t.plan.name),
                source,
            })?;
        }
    }
    Ok(())
}

/// Checked batches that may wait between the reading thread and the writing one.
const BATCHES_IN_FLIGHT: usize = 1;

/// A batch as read from the source and checked: the valid rows converted to the target's types, the
/// invalid ones, the rows read and the last key read.
struct CheckedBatch {
    rows: Vec<Vec<crate::transfer::value::Value>>,
    invalid: Vec<InvalidRow>,
    read: u64,
    last_key: Key,
}

/// Copies the rows of the plan's table after the report's resume key up to `upto`.
///
/// The source is read (and its rows checked and converted) on a second thread while this one writes the
/// previous batch, so the copy runs at about the speed of its slower side rather than the sum of both.
/// At most [`BATCHES_IN_FLIGHT`] checked batches wait between the two, so memory stays bounded by the
/// batch size.
#[allow(clippy::too_many_arguments)]
fn copy_table<S: Store, T: Store>(
    source: &mut S,
    target: &mut T,
    plan: &TablePlan,
    upto: &Key,
    report: &mut TableReport,
    options: &CopyOptions,
    refused: &mut HashSet<Key>,
    skipped: &mut Vec<InvalidRow>,
    skipped_count: &mut u64,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<(), CopyError> {
    let all = KeyRange { upto: Some(upto), ..KeyRange::default() };
    let source_rows = source.count(plan, &all).map_err(|e| read_source(&plan.name, e))?;
    let rest = KeyRange { after: report.resumed_after.as_ref(), upto: Some(upto), limit: None };
    let to_copy = source.count(plan, &rest).map_err(|e| read_source(&plan.name, e))?;
    on_event(CopyEvent::Table { table: &plan.name, source_rows, resume_after: report.resumed_after.as_ref(), to_copy });
    let start = report.resumed_after.clone();
    let limit = options.limit();
    let (done, inserted) = std::thread::scope(|scope| {
        let (sender, batches) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
        scope.spawn(move || read_batches(source, plan, start, upto, limit, &sender));
        // Returning early (an error) drops `batches`: the reader's next send fails and it stops.
        let mut writer = Writer { target, plan, options, refused, skipped, skipped_count };
        writer.write_batches(&batches, to_copy, on_event)
    })?;
    report.read = done;
    report.inserted = inserted;
    Ok(())
}

/// The reading side: reads the table batch by batch in key order, checks and converts each row, and
/// sends the batches until the source is exhausted, a read fails (the error is sent), or the writer hangs
/// up.
fn read_batches<S: Store>(
    source: &mut S,
    plan: &TablePlan,
    mut after: Option<Key>,
    upto: &Key,
    limit: i64,
    sender: &std::sync::mpsc::SyncSender<Result<CheckedBatch, CopyError>>,
) {
    loop {
        let batch = (|| -> Result<Option<CheckedBatch>, CopyError> {
            let range = KeyRange { after: after.as_ref(), upto: Some(upto), limit: Some(limit) };
            let rows = source.read(plan, Side::Source, &range).map_err(|e| read_source(&plan.name, e))?;
            let read = rows.len() as u64;
            let (mut valid, mut invalid) = (Vec::with_capacity(rows.len()), Vec::new());
            let mut last_key = None;
            for cells in rows {
                let key = key_of(&cells, plan).map_err(|e| read_source(&plan.name, e))?;
                match check(plan, &key, cells) {
                    Ok(values) => valid.push(values),
                    Err(bad) => invalid.push(bad),
                }
                last_key = Some(key);
            }
            Ok(last_key.map(|last_key| CheckedBatch { rows: valid, invalid, read, last_key }))
        })();
        match batch {
            Ok(Some(batch)) => {
                after = Some(batch.last_key.clone());
                if sender.send(Ok(batch)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        }
    }
}

/// The writing side of one table.
struct Writer<'a, T> {
    target: &'a mut T,
    plan: &'a TablePlan,
    options: &'a CopyOptions,
    refused: &'a mut HashSet<Key>,
    skipped: &'a mut Vec<InvalidRow>,
    skipped_count: &'a mut u64,
}

impl<T: Store> Writer<'_, T> {
    /// Writes each batch in its own transaction, in order. Returns the rows read and inserted.
    fn write_batches(
        &mut self,
        batches: &std::sync::mpsc::Receiver<Result<CheckedBatch, CopyError>>,
        to_copy: u64,
        on_event: &mut dyn FnMut(CopyEvent<'_>),
    ) -> Result<(u64, u64), CopyError> {
        let (mut done, mut inserted) = (0u64, 0u64);
        // The reader hangs up when the source is exhausted.
        for batch in batches {
            let CheckedBatch { rows, invalid, read, last_key } = batch?;
            done += read;
            if !invalid.is_empty() {
                if !self.options.skip_invalid {
                    return Err(CopyError::InvalidRows(invalid));
                }
                // Reported with the verification, which meets them again.
                on_event(CopyEvent::Skipped { rows: &invalid });
            }
            if !rows.is_empty() {
                let (n, refused) = write_rows(self.target, self.plan, &rows, self.options.skip_invalid)?;
                inserted += n as u64;
                if !refused.is_empty() {
                    self.refused.extend(refused.iter().map(|r| r.key.clone()));
                    self.skip(refused, on_event);
                }
            }
            on_event(CopyEvent::Batch { table: &self.plan.name, done, to_copy, last_key: &last_key });
        }
        Ok((done, inserted))
    }

    fn skip(&mut self, rows: Vec<InvalidRow>, on_event: &mut dyn FnMut(CopyEvent<'_>)) {
        on_event(CopyEvent::Skipped { rows: &rows });
        *self.skipped_count += rows.len() as u64;
        keep_reported(self.skipped, rows);
    }
}

/// Whether the database refused a row for what it holds (a constraint), rather than failing as a whole.
pub(crate) fn is_refusal(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation,
            _
        )
    )
}

/// Writes one batch in one transaction. When the target refuses it for a constraint, the rows are tried
/// one at a time (each in a savepoint of one transaction) to name the rows refused: in strict mode they
/// are the error and nothing of the batch is written; with `skip_invalid` the others are written and the
/// refused ones returned.
pub(crate) fn write_rows<T: Store>(
    target: &mut T,
    plan: &TablePlan,
    rows: &[Vec<crate::transfer::value::Value>],
    skip_invalid: bool,
) -> Result<(usize, Vec<InvalidRow>), CopyError> {
    let failed = |source: DieselError| {
        let span = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => match (crate::transfer::key_of_row(plan, a), crate::transfer::key_of_row(plan, b)) {
                (Ok(a), Ok(b)) => format!(" ({} {a} to {b})", plan.key_label),
                _ => String::new(),
            },
            _ => String::new(),
        };
        CopyError::Query { context: format!("writing {}{span} to the target", plan.name), source }
    };
    // Diesel answers a rollback that fails (a connection that died) with the rollback's error: keep the
    // insert's own.
    let mut cause = None;
    let written = target.write_batch(true, |t| {
        t.insert(plan, rows).map_err(|e| {
            cause = Some(e);
            DieselError::RollbackTransaction
        })
    });
    match written.map_err(|e| cause.take().unwrap_or(e)) {
        Ok(n) => return Ok((n, Vec::new())),
        Err(e) if is_refusal(&e) => {}
        Err(e) => return Err(failed(e)),
    }
    let result = target.write_batch(false, |t| -> Result<(usize, Vec<InvalidRow>), RowByRow> {
        let (mut inserted, mut refused) = (0, Vec::new());
        for row in rows {
            match t.savepoint(|t| t.insert_one(plan, row)) {
                Ok(n) => inserted += n,
                Err(e) if is_refusal(&e) => refused.push(InvalidRow {
                    table: plan.name.clone(),
                    key_column: plan.key_label.clone(),
                    key: crate::transfer::key_of_row(plan, row)?,
                    reason: format!("the target refused it: {e}"),
                }),
                Err(e) => return Err(e.into()),
            }
        }
        if !refused.is_empty() && !skip_invalid {
            return Err(RowByRow::Refused(refused));
        }
        Ok((inserted, refused))
    });
    result.map_err(|e| match e {
        RowByRow::Failed(source) => failed(source),
        RowByRow::Refused(rows) => CopyError::InvalidRows(rows),
    })
}

/// How writing a batch row by row ends when it does not commit.
enum RowByRow {
    Failed(DieselError),
    /// Rows the target refused, in strict mode: the batch is rolled back.
    Refused(Vec<InvalidRow>),
}

impl From<DieselError> for RowByRow {
    fn from(e: DieselError) -> Self {
        Self::Failed(e)
    }
}
