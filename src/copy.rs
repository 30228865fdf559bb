//! Copying `fragments` and `fragment_embeddings` from one database to another (PostgreSQL or SQLite, in
//! any direction), converting the vector format, resumable and verified.
//!
//! [`copy`] migrates the target, then copies each table in id order, `batch_size` rows per transaction
//! on the target, keeping every id and every bit of every vector. Then it reads both sides again and
//! compares them row by row.
//!
//! - **Snapshot**: the source is read in one read-only transaction (PostgreSQL: `REPEATABLE READ`), so
//!   the copy and its verification see one consistent state. An SQLite source is opened read-only
//!   (`file:PATH?mode=ro`): a mistyped path is an error, never a new empty database.
//! - **Ids reserved first**: before writing, the target's id generators (PostgreSQL sequences, SQLite's
//!   `sqlite_sequence`) are moved past the source's largest ids. An application that inserts into the
//!   target during (or after) the copy gets ids above the source's range and never collides with a row
//!   still to be copied.
//! - **Resumable**: each batch commits atomically and batches go in id order, so after a crash or a
//!   `kill -9` every source row up to the target's largest id *within the source's id range* is there.
//!   A new run resumes after that id (ids the application took are above the range and do not count),
//!   once it has checked that the target holds as many rows up to it as the source; otherwise (rows that
//!   did not come from this source, or skipped invalid rows) it starts from the beginning. Rows are
//!   inserted with `ON CONFLICT (id) DO NOTHING`: a run never overwrites a row on the target, and rows
//!   already there are simply passed over.
//! - **Verified**: both sides are streamed in id order (keyset pagination: memory does not grow with
//!   the table), every row is hashed in one backend-neutral form (ids, text, timestamps, the vector's
//!   exact bits as little-endian `f32`), and the streams are merged by id. The report holds each side's
//!   row count and order-independent [`Checksum`] (the wrapping sum of the row hashes) and the first
//!   ids that differ. Any difference is [`CopyError::Verification`].
//! - **Strict**: a source row that cannot be copied as it is (a NaN or infinite element, a BLOB that is
//!   not whole floats, `dims` not matching the vector, not 1536 dimensions, a vector stored as TEXT, an
//!   embedding whose fragment is missing) stops the copy with [`CopyError::InvalidRows`] naming every
//!   such row of the batch, before anything of that batch is written.
//!   [`CopyOptions::skip_invalid`] copies the rest and reports them instead.
//! - **Index**: an SQLite target's vec0 index is brought up to date at the end; on PostgreSQL the
//!   report says whether the ivfflat index should be rebuilt for the data
//!   ([`crate::pg::rebuild_ivfflat_index`]).
//!
//! Stop writers on the *source* while copying: rows it gains after the copy started are not copied.
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_vector::copy::{copy, CopyOptions};
//! # let dir = tempfile::tempdir()?;
//! # let (from, to) = (dir.path().join("a.db"), dir.path().join("b.db"));
//! # let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());
//! # diesel_vector::database::DatabaseConnection::establish(from)?.run_pending_migrations()?;
//!
//! let report = copy(from, to, &CopyOptions::default().batch_size(1000), &mut |_event| {})?;
//! assert!(report.is_verified());
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

use std::fmt;

use diesel::result::Error as DieselError;

use crate::database::{dispatch, DatabaseConnection};
use crate::migrations::MigrationError;
use crate::transfer::verify::{self, CompareError, Comparison};
use crate::transfer::{
    keep_reported, partition_checked, Embeddings, Fragments, IndexUpdateError, Range, Rows, Store, BEFORE_ALL,
};

pub use crate::transfer::checksum::Checksum;
pub use crate::transfer::verify::Sums;
pub use crate::transfer::{InvalidRow, TargetIndex};

/// How [`copy`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub(crate) batch_size: usize,
    pub(crate) skip_invalid: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self { batch_size: 500, skip_invalid: false }
    }
}

impl CopyOptions {
    /// Rows per batch: per read, per transaction on the target, per progress event (default 500; at
    /// least 1).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Skip invalid source rows and report them, instead of stopping (default `false`).
    pub fn skip_invalid(mut self, skip: bool) -> Self {
        self.skip_invalid = skip;
        self
    }

    pub(crate) fn limit(&self) -> i64 {
        i64::try_from(self.batch_size).unwrap_or(i64::MAX)
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
        /// `fragments` or `fragment_embeddings`.
        table: &'static str,
        /// Its rows on the source.
        source_rows: u64,
        /// The id an earlier run copied up to (`None`: from the start).
        resume_after: Option<i64>,
        /// Source rows after that id.
        to_copy: u64,
    },
    /// A batch was committed on the target.
    Batch {
        /// The table.
        table: &'static str,
        /// Source rows read so far in this run.
        done: u64,
        /// Source rows this run has to read.
        to_copy: u64,
        /// The batch's last id.
        last_id: i64,
    },
    /// Invalid rows were skipped ([`CopyOptions::skip_invalid`]).
    Skipped {
        /// The rows and why.
        rows: &'a [InvalidRow],
    },
    /// Both sides of a table are being compared.
    Verifying {
        /// The table.
        table: &'static str,
    },
    /// The rows are copied and verified; the target's vector index is being brought up to date (SQLite:
    /// the vec0 index built or synced, which takes a while for many rows; PostgreSQL: `ANALYZE` and the
    /// ivfflat check).
    UpdatingIndex,
}

/// One table's copy and verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// `fragments` or `fragment_embeddings`.
    pub table: &'static str,
    /// The id an earlier run had copied up to (`None`: this run started from the beginning).
    pub resumed_after: Option<i64>,
    /// Source rows read by this run.
    pub read: u64,
    /// Rows this run inserted into the target.
    pub inserted: u64,
    /// The source's valid rows, counted and checksummed.
    pub source: Sums,
    /// The target's rows in the source's id range, counted and checksummed.
    pub target: Sums,
    /// How many ids differ between the sides (missing, extra or different).
    pub differing: u64,
    /// The first of them.
    pub differing_ids: Vec<i64>,
}

impl TableReport {
    /// True when both sides hold the same rows.
    pub fn is_verified(&self) -> bool {
        self.differing == 0 && self.source == self.target
    }
}

/// What [`copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Migrations the target needed.
    pub migrations_applied: usize,
    /// `fragments`, then `fragment_embeddings`.
    pub tables: Vec<TableReport>,
    /// Source rows left out as invalid ([`CopyOptions::skip_invalid`]), the first 1000.
    pub skipped: Vec<InvalidRow>,
    /// How many source rows were left out in all.
    pub skipped_count: u64,
    /// The target's vector index after the copy.
    pub index: TargetIndex,
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
    /// The target could not be opened or migrated.
    Target(MigrationError),
    /// The source has no `fragments` / `fragment_embeddings` tables.
    SourceNotMigrated,
    /// Invalid source rows (strict mode): nothing of their batch was written.
    InvalidRows(Vec<InvalidRow>),
    /// A query failed.
    Query {
        /// What was being done.
        context: &'static str,
        /// The database's error.
        source: DieselError,
    },
    /// The SQLite target's vector index could not be brought up to date (the rows are copied).
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
            Self::SourceNotMigrated => f.write_str(
                "the source has no fragments and fragment_embeddings tables: is it a diesel-vector database?",
            ),
            Self::InvalidRows(rows) => {
                write!(
                    f,
                    "{} invalid source row(s); nothing of their batch was written (--skip-invalid copies the rest \
                     and reports them):",
                    rows.len()
                )?;
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
                    write!(
                        f,
                        "\n  {}: source {} rows, checksum {}; target {} rows, checksum {}; {} id(s) differ, first: {:?}",
                        t.table, t.source.rows, t.source.checksum, t.target.rows, t.target.checksum, t.differing, t.differing_ids
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
            Self::Query { source, .. } => Some(source),
            Self::Index(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<DieselError> for CopyError {
    fn from(source: DieselError) -> Self {
        Self::Query { context: "transaction", source }
    }
}

impl From<CompareError> for CopyError {
    fn from(e: CompareError) -> Self {
        match e {
            CompareError::Source(source) => Self::Query { context: "verifying: reading the source", source },
            CompareError::Target(source) => Self::Query { context: "verifying: reading the target", source },
            CompareError::Invalid(rows) => Self::InvalidRows(rows),
        }
    }
}

impl From<IndexUpdateError> for CopyError {
    fn from(e: IndexUpdateError) -> Self {
        match e {
            IndexUpdateError::Query(source) => Self::Query { context: "reading the target's index", source },
            #[cfg(feature = "sqlite")]
            IndexUpdateError::Index(e) => Self::Index(Box::new(e)),
        }
    }
}

/// Copies `fragments` and `fragment_embeddings` from `from` to `to` (database URLs, as
/// [`DatabaseConnection::establish`] takes them), migrating `to` first; see the [module](self) docs.
/// `on_event` hears about each table and each committed batch.
///
/// Running it again after an interruption resumes where it stopped; running it again after success
/// copies nothing and verifies again.
///
/// # Errors
///
/// [`CopyError::InvalidRows`] for invalid source rows (unless skipped), [`CopyError::Verification`] when
/// the sides differ at the end, or the failure of a connection, migration or query.
pub fn copy(
    from: &str,
    to: &str,
    options: &CopyOptions,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<CopyReport, CopyError> {
    if crate::database::sqlite_path(from) == crate::database::sqlite_path(to) {
        return Err(CopyError::SameDatabase);
    }
    let mut source = DatabaseConnection::establish_read_only(from).map_err(CopyError::Source)?;
    let source = &mut source;
    // Before the target is touched.
    if !dispatch!(source, s => s.tables_exist()).map_err(CopyError::Source)? {
        return Err(CopyError::SourceNotMigrated);
    }
    let mut target = DatabaseConnection::establish(to).map_err(CopyError::Target)?;
    let applied = target.run_pending_migrations().map_err(CopyError::Target)?.len();
    on_event(CopyEvent::Migrated { applied });
    let target = &mut target;
    dispatch!(source, s => dispatch!(target, t => run(s, t, applied, options, on_event)))
}

fn run<S: Store, T: Store>(
    source: &mut S,
    target: &mut T,
    migrations_applied: usize,
    options: &CopyOptions,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<CopyReport, CopyError> {
    let (tables, comparisons) = source.snapshot(|source| -> Result<_, CopyError> {
        // Empty tables: every range below is empty.
        let fragments_max = source.max_id(Fragments::TABLE, i64::MAX).map_err(read_source)?.unwrap_or(BEFORE_ALL);
        let embeddings_max = source.max_id(Embeddings::TABLE, i64::MAX).map_err(read_source)?.unwrap_or(BEFORE_ALL);
        // Before anything is written: the application's inserts into the target get ids above the
        // source's from now on, so they can neither collide with rows still to come nor be taken for
        // copied rows when a later run looks for where to resume.
        reserve(target, fragments_max, embeddings_max)?;
        let fragments = copy_table::<Fragments, _, _>(source, target, fragments_max, options, on_event)?;
        let embeddings = copy_table::<Embeddings, _, _>(source, target, embeddings_max, options, on_event)?;
        reserve(target, fragments_max, embeddings_max)?;
        on_event(CopyEvent::Verifying { table: Fragments::TABLE.name() });
        let f =
            verify::compare::<Fragments, _, _>(source, target, fragments_max, options.limit(), options.skip_invalid)?;
        on_event(CopyEvent::Verifying { table: Embeddings::TABLE.name() });
        let e =
            verify::compare::<Embeddings, _, _>(source, target, embeddings_max, options.limit(), options.skip_invalid)?;
        Ok(([fragments, embeddings], [f, e]))
    })?;
    on_event(CopyEvent::UpdatingIndex);
    let index = target.after_load()?;
    let mut skipped = Vec::new();
    let mut skipped_count = 0;
    let tables = tables
        .into_iter()
        .zip(comparisons)
        .map(|(mut t, c): (TableReport, Comparison)| {
            skipped_count += c.skipped_count;
            keep_reported(&mut skipped, c.skipped);
            t.source = c.source;
            t.target = c.target;
            t.differing = c.differing;
            t.differing_ids = c.differing_ids;
            t
        })
        .collect();
    let report = CopyReport { migrations_applied, tables, skipped, skipped_count, index };
    if !report.is_verified() {
        return Err(CopyError::Verification(Box::new(report)));
    }
    Ok(report)
}

fn read_source(source: DieselError) -> CopyError {
    CopyError::Query { context: "reading the source", source }
}

fn write_target(source: DieselError) -> CopyError {
    CopyError::Query { context: "writing the target", source }
}

fn reserve<T: Store>(target: &mut T, fragments_max: i64, embeddings_max: i64) -> Result<(), CopyError> {
    let reserve = |t: &mut T| {
        t.reserve_ids(Fragments::TABLE, fragments_max)?;
        t.reserve_ids(Embeddings::TABLE, embeddings_max)
    };
    reserve(target).map_err(|source| CopyError::Query { context: "reserving ids on the target", source })
}

/// Copies the rows of `R`'s table with `id <= upto` that the target lacks. Resumes after the largest id
/// the target holds in that range when the target holds as many rows up to it as the source (what an
/// interrupted copy leaves); otherwise (rows that did not come from the source, skipped invalid rows)
/// starts from the beginning, which `ON CONFLICT (id) DO NOTHING` makes harmless.
///
/// The source is read (and its rows checked) on a second thread while this one writes the previous
/// batch, so the copy runs at about the speed of its slower side rather than the sum of both. At most
/// [`BATCHES_IN_FLIGHT`] checked batches wait between the two, so memory stays bounded by the batch size.
fn copy_table<R: Rows, S: Store, T: Store>(
    source: &mut S,
    target: &mut T,
    upto: i64,
    options: &CopyOptions,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<TableReport, CopyError> {
    let table = R::TABLE.name();
    let resume_after = match target.max_id(R::TABLE, upto).map_err(write_target)? {
        Some(last) => {
            let held = target.count(R::TABLE, BEFORE_ALL, last).map_err(write_target)?;
            let expected = source.count(R::TABLE, BEFORE_ALL, last).map_err(read_source)?;
            (held == expected).then_some(last)
        }
        None => None,
    };
    let start = resume_after.unwrap_or(BEFORE_ALL);
    let source_rows = count(source.count(R::TABLE, BEFORE_ALL, upto).map_err(read_source)?);
    let to_copy = count(source.count(R::TABLE, start, upto).map_err(read_source)?);
    on_event(CopyEvent::Table { table, source_rows, resume_after, to_copy });
    let range = Range { after: start, upto, limit: options.limit() };
    let (done, inserted) = std::thread::scope(|scope| {
        let (sender, batches) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
        scope.spawn(move || read_batches::<R, S>(source, range, &sender));
        // Returning early (an error) drops `batches`: the reader's next send fails and it stops.
        write_batches::<R, T>(target, &batches, to_copy, options, on_event)
    })?;
    Ok(TableReport {
        table,
        resumed_after: resume_after,
        read: done,
        inserted,
        source: Sums::default(),
        target: Sums::default(),
        differing: 0,
        differing_ids: Vec::new(),
    })
}

/// Checked batches that may wait between the reading thread and the writing one.
const BATCHES_IN_FLIGHT: usize = 1;

/// A batch as read from the source and checked: the valid rows, the invalid ones, and the last id read.
struct CheckedBatch<R: Rows> {
    rows: Vec<R::Row>,
    invalid: Vec<InvalidRow>,
    read: u64,
    last_id: i64,
}

/// The reading side: reads `range` batch by batch in id order, checks each row, and sends the batches
/// until the source is exhausted, a read fails (the error is sent), or the writer hangs up.
fn read_batches<R: Rows, S: Store>(
    source: &mut S,
    mut range: Range,
    sender: &std::sync::mpsc::SyncSender<Result<CheckedBatch<R>, DieselError>>,
) {
    loop {
        let raws = match R::read(source, range) {
            Ok(raws) => raws,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        };
        let Some(last_id) = raws.last().map(R::id) else { return };
        let read = raws.len() as u64;
        let (rows, invalid) = partition_checked(raws, R::check);
        if sender.send(Ok(CheckedBatch { rows, invalid, read, last_id })).is_err() {
            return;
        }
        range.after = last_id;
    }
}

/// The writing side: writes each batch in its own transaction, in order. Returns the rows read and
/// inserted.
fn write_batches<R: Rows, T: Store>(
    target: &mut T,
    batches: &std::sync::mpsc::Receiver<Result<CheckedBatch<R>, DieselError>>,
    to_copy: u64,
    options: &CopyOptions,
    on_event: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<(u64, u64), CopyError> {
    let table = R::TABLE.name();
    let (mut done, mut inserted) = (0u64, 0u64);
    // The reader hangs up when the source is exhausted.
    for batch in batches {
        let CheckedBatch { rows, invalid, read, last_id } = batch.map_err(read_source)?;
        done += read;
        if !invalid.is_empty() {
            if !options.skip_invalid {
                return Err(CopyError::InvalidRows(invalid));
            }
            on_event(CopyEvent::Skipped { rows: &invalid });
        }
        if !rows.is_empty() {
            let n = target.write_batch(|t| R::write(t, &rows)).map_err(write_target)?;
            inserted += n as u64;
        }
        on_event(CopyEvent::Batch { table, done, to_copy, last_id });
    }
    Ok((done, inserted))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
