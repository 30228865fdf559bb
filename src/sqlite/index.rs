//! The SQLite side of a vector index ([`IndexSpec`]), on any table.
//!
//! The migration that creates an index (generated, or the crate's own for `fragment_embeddings`)
//! installs a one-row state (`<name>_state`: a rebuild flag, set by the migration; a generation that
//! changes with every update; `indexed_through`, the table's largest id at the last update) and plain
//! triggers that record in the index's change queue (`<name>_queue`) the id of every updated or deleted
//! row, and of every row inserted with an id at or below `indexed_through`. A row appended above it is
//! not queued: the sync reads the rows above it by id, so the common insert costs no queue write. The
//! triggers work on any connection, so no write ever fails for want of an extension, and no writer can
//! leave the index silently stale: [`sync`] applies the queue and the appended rows (or rebuilds from the
//! table when the flag is set or an index structure is missing or damaged) in one immediate transaction;
//! searches call it first. An index migrated before `indexed_through` existed keeps working as it was:
//! its triggers queue every insert.
//!
//! What is kept from the changes is the index's [`SqliteIndex`] choice: the crate's quantized codes
//! (`<name>_codes`, see the `codes` module; the default, kept on any connection), optionally the contiguous
//! copy of the vectors for exact scans (`<name>_vectors`), and optionally sqlite-vec's `vec0` table (named
//! as the index, `chunk_size=64`, the metric's `distance_metric`, the partition columns as partition keys),
//! maintained on connections that have sqlite-vec. The queue is one for every structure: a sync without
//! sqlite-vec applies it to the codes and records that vec0 missed changes, and the next sync with
//! sqlite-vec rebuilds vec0.
//!
//! Rows whose stored vector is not a valid BLOB of the index's dimensions (NULL, another storage class,
//! another length, NaN or infinite elements), and zero vectors under cosine, are left out of the index;
//! [`IndexStatus::codes_rows`] (or [`IndexStatus::vec0_rows`]) against [`IndexStatus::embedded_rows`] shows
//! how many.
//!
//! ```
//! # #[cfg(feature = "sqlite-vec")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_vector::{migrations, sqlite};
//!
//! let mut conn = sqlite::establish(":memory:")?;
//! migrations::run_pending_migrations(&mut conn)?;
//! let spec = diesel_vector::schema::fragment_embeddings_index();
//! let report = sqlite::sync(&mut conn, spec)?;
//! assert!(report.rebuilt, "the first sync builds the index's codes");
//! assert!(sqlite::status(&mut conn, spec)?.is_up_to_date());
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite-vec"))] fn main() {}
//! ```

use std::fmt;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable};
use diesel::SqliteConnection;
use tracing::info;

use super::migrations::count;
use super::transaction::{self, SavepointError};
use crate::index::{quote, IndexSpec, Metric, SqliteIndex};
use crate::migrations::shape::Catalog;

/// The seed's vec0 table's name.
pub const INDEX_TABLE: &str = "fragment_embeddings_idx";

/// The dimensions the seed's vec0 index holds (the schema's `vector(1536)`).
pub const INDEX_DIMS: usize = 1536;

/// vec0 keeps vectors in chunks, one BLOB per chunk, and writes each new vector into its chunk's BLOB in
/// place. A row's cost grows with the chunk's size: SQLite reaches an offset in a large BLOB by walking its
/// chain of overflow pages, and a chunk larger than the page cache (2 MB by default) is read back from the
/// file for every row. sqlite-vec's default of 1024 vectors of 1536 dims is a 6 MB BLOB; 64 vectors build
/// the index over ten times faster and answer KNN queries as fast (BENCHMARKS.md). A multiple of 8, as
/// sqlite-vec requires.
const VEC0_CHUNK_SIZE: usize = 64;

/// Why an index could not be brought up to date.
#[derive(Debug)]
#[non_exhaustive]
pub enum IndexError {
    /// The index keeps only sqlite-vec's vec0 table and sqlite-vec is not loaded on this connection
    /// (searches fall back to an exact scan).
    ExtensionMissing,
    /// The index's change queue and state do not exist: the migration that creates the index has not run.
    NotMigrated {
        /// The index.
        index: String,
        /// The table it indexes.
        table: String,
    },
    /// The declaration given is not the one the registry records for this index's name: the index's
    /// structures were built for the registered one, and another would read or write them wrongly.
    Declaration {
        /// The index.
        index: String,
        /// How the declaration given differs, field by field.
        differences: Vec<String>,
    },
    /// Columns the index reads are not in its table (renamed or dropped since its migration ran).
    ColumnsMissing {
        /// The index.
        index: String,
        /// Its table.
        table: String,
        /// The registered columns the table lacks.
        columns: Vec<String>,
    },
    /// The quantized codes could not be built (a bug: every vector is checked before it is coded).
    Codes(crate::ann::AnnError),
    /// A query failed.
    Query(diesel::result::Error),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExtensionMissing => f.write_str(
                "sqlite-vec is not loaded on this connection: open it with diesel_vector::sqlite::establish in a \
                 build with the `sqlite-vec` feature",
            ),
            Self::NotMigrated { index, table } => write!(
                f,
                "the vector index {index} on {table} is not set up in this database (its change queue and state \
                 are missing): apply the migration that creates it"
            ),
            Self::Declaration { index, differences } => write!(
                f,
                "the vector index {index} is declared here otherwise than the registry records it ({}): its \
                 structures were built for the registered declaration; declare it as registered, or generate and \
                 apply a migration for the new declaration",
                differences.join(", ")
            ),
            Self::ColumnsMissing { index, table, columns } => write!(
                f,
                "the vector index {index} reads {} of table {}, which it does not have (renamed or dropped \
                 since the index's migration ran): restore the column, or revert that migration and generate one \
                 for the table as it is now",
                columns.iter().map(|c| crate::index::shown(c)).collect::<Vec<_>>().join(", "),
                crate::index::shown(table)
            ),
            Self::Codes(e) => write!(f, "building the vector index's quantized codes failed: {e}"),
            Self::Query(e) => write!(f, "updating the vector index failed: {e}"),
        }
    }
}

impl std::error::Error for IndexError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Query(e) => Some(e),
            Self::Codes(e) => Some(e),
            _ => None,
        }
    }
}

impl From<diesel::result::Error> for IndexError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

/// What [`sync`] or [`rebuild`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether the index was (re)built from the table.
    pub rebuilt: bool,
    /// How many changes (queued ids and appended rows) were applied, or rows indexed on a rebuild; for an
    /// index that keeps no structure (`SqliteIndex::NONE`), the queued ids dropped.
    pub applied: i64,
}

/// The state of an index, readable with or without sqlite-vec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexStatus {
    /// The index's name.
    pub index: String,
    /// What the index keeps.
    pub structures: SqliteIndex,
    /// sqlite-vec's version on this connection, if loaded.
    pub sqlite_vec: Option<String>,
    /// Whether the index's vec0 table exists (false for an index that keeps none).
    pub vec0_table_exists: bool,
    /// Whether the next sync rebuilds it from scratch.
    pub needs_rebuild: bool,
    /// Changes not yet applied: the ids the triggers queued, plus the rows appended above the last
    /// indexed id (counting those reads each one; an id both queued and appended counts twice).
    pub pending_changes: i64,
    /// Rows in the vec0 table (only countable with sqlite-vec; `None` for an index that keeps none).
    pub vec0_rows: Option<i64>,
    /// Rows in the quantized codes, when they are stored.
    pub codes_rows: Option<u64>,
    /// Whether the index's quantized codes are current: true when the stored codes are those of the
    /// current generation, or the index keeps none ([`IndexSpec::sqlite_keeps_codes`]: only `vector` and
    /// `halfvec` columns are coded); false when they are not built yet or something drained the queue
    /// without updating them (the next sync rebuilds them).
    pub codes_current: bool,
    /// Whether the codes rank the data's nearest rows, as their training measured it
    /// ([`Params::ranks_neighbours`](crate::ann::Params::ranks_neighbours)): when not, searches scan every row
    /// exactly (path `codes_unfit_exact`). `None` when no codes are stored or their training did not measure
    /// it (fewer than 2000 rows).
    pub codes_rank_neighbours: Option<bool>,
    /// Rows of the table that have a vector (not NULL).
    pub embedded_rows: i64,
    /// The state's generation: changes with every update of the index.
    pub generation: i64,
}

impl IndexStatus {
    /// True when nothing is pending, no rebuild is due, the codes are current and, for an index that keeps
    /// a vec0 table, the table exists.
    pub fn is_up_to_date(&self) -> bool {
        (self.vec0_table_exists || !self.structures.vec0)
            && self.codes_current
            && !self.needs_rebuild
            && self.pending_changes == 0
    }
}

/// The index's state row and what is pending.
#[derive(QueryableByName)]
pub(crate) struct State {
    #[diesel(sql_type = BigInt)]
    pub(crate) needs_rebuild: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) generation: i64,
    /// Queued ids.
    #[diesel(sql_type = BigInt)]
    pub(crate) queued: i64,
    /// Whether the table has rows above `indexed_through` (counting them would read each one).
    #[diesel(sql_type = Bool)]
    pub(crate) appended: bool,
    /// The table's largest id at the last sync: rows inserted above it are not queued, the sync reads
    /// them by id. `None` for an index whose migration predates it (its triggers queue every insert).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) indexed_through: Option<i64>,
}

impl State {
    /// Whether the index has changes to apply (queued or appended rows).
    pub(crate) fn pending(&self) -> bool {
        self.queued > 0 || self.appended
    }

    /// Whether the index is behind its table: changes to apply, or a rebuild due.
    pub(crate) fn behind(&self) -> bool {
        self.needs_rebuild != 0 || self.pending()
    }
}

/// The smallest id, as SQL: an empty table's `indexed_through` (`-9223372036854775808` would be read as a
/// real number).
const SMALLEST_ID: &str = "(-9223372036854775807 - 1)";

/// Whether `spec`'s state has `indexed_through` (migrations written before it do not): a read of the
/// schema SQLite holds in memory.
fn has_indexed_through(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<bool> {
    let sql = format!(
        "SELECT count(*) AS count FROM pragma_table_info({}) WHERE name = 'indexed_through'",
        crate::index::literal(&spec.state_table())
    );
    Ok(count(conn, &sql)? > 0)
}

/// The rows above the state's `indexed_through`, as SQL over `t` (the indexed table), for the SQL of an
/// index whose state has it.
pub(crate) fn appended(spec: &IndexSpec) -> String {
    format!("t.{} > (SELECT s.indexed_through FROM {} s)", quote(spec.id_column()), quote(&spec.state_table()))
}

/// How many rows lie above `indexed_through` (0 without it): a read of each.
fn appended_rows(conn: &mut SqliteConnection, spec: &IndexSpec, state: &State) -> QueryResult<i64> {
    if !state.appended {
        return Ok(0);
    }
    count(conn, &format!("SELECT count(*) AS count FROM {} t WHERE {}", quote(spec.table()), appended(spec)))
}

/// One read of the index's state; [`IndexError::NotMigrated`] when its tables are missing.
pub(crate) fn state(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<State, IndexError> {
    // One statement, prepared once per connection, in the common case. It names the indexed table and
    // `indexed_through`, so it fails without either; the catalog is read only then, to say which table is
    // missing or to read a state migrated before `indexed_through` existed.
    let (state, queue, table) = (quote(&spec.state_table()), quote(&spec.queue_table()), quote(spec.table()));
    let read = super::cached::CachedSql::sql(format!(
        "SELECT (SELECT s.needs_rebuild FROM {state} s) AS needs_rebuild, \
                (SELECT s.generation FROM {state} s) AS generation, \
                (SELECT s.indexed_through FROM {state} s) AS indexed_through, \
                (SELECT count(*) FROM {queue}) AS queued, \
                EXISTS (SELECT 1 FROM {table} t WHERE {appended}) AS appended",
        appended = appended(spec),
    ))
    .rows()
    .get_result(conn);
    let e = match read {
        Ok(state) => return Ok(state),
        Err(e) => e,
    };
    if !conn.exists(&spec.state_table())? || !conn.exists(&spec.queue_table())? || !conn.exists(spec.table())? {
        return Err(IndexError::NotMigrated { index: spec.name().to_owned(), table: spec.table().to_owned() });
    }
    if has_indexed_through(conn, spec)? {
        return Err(e.into());
    }
    // Migrated before `indexed_through`: every insert is queued.
    Ok(super::cached::CachedSql::sql(format!(
        "SELECT (SELECT s.needs_rebuild FROM {state} s) AS needs_rebuild, \
                (SELECT s.generation FROM {state} s) AS generation, \
                NULL AS indexed_through, \
                (SELECT count(*) FROM {queue}) AS queued, 0 AS appended",
    ))
    .rows()
    .get_result(conn)?)
}

/// The SQL condition (over `t`, the indexed table's alias) a row must meet to be indexed: a BLOB of the
/// index's dimensions, every element finite (sqlite-vec's L2 distance of a vector to itself is NULL for
/// NaN and infinite elements, which SQLite turns into NULL), and under cosine not the zero vector.
fn indexable(spec: &IndexSpec) -> String {
    let v = format!("t.{}", quote(spec.column()));
    let mut sql = valid_value(spec, &v);
    if spec.metric() == Metric::Cosine {
        let bytes = 4 * u64::from(spec.dims());
        sql.push_str(&format!(" AND vec_distance_l2({v}, zeroblob({bytes})) > 0"));
    }
    sql
}

/// Stored values the index cannot hold, besides NULL: counted, and the first few ids named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct InvalidRows {
    /// How many rows hold a value that is not a vector of the index's dimensions: a BLOB of another
    /// length, TEXT, a number, NaN or infinite elements, or for `sparsevec` indices out of order or
    /// beyond the dimensions, or a zero stored as a non-zero element. Zero vectors are not counted: they are
    /// valid data, only left out of a cosine index (they have no direction).
    pub count: i64,
    /// The ids of the first of them, in id order.
    pub ids: Vec<i64>,
}

/// The SQL condition (over `t`) for a stored value that is not NULL and not a vector of the index's
/// dimensions with finite elements. `CASE` fixes the order: the distance function only sees BLOBs of the
/// right length (sqlite-vec would read TEXT as JSON).
fn invalid(spec: &IndexSpec) -> String {
    let v = format!("t.{}", quote(spec.column()));
    format!("{v} IS NOT NULL AND NOT {}", valid_value(spec, &v))
}

/// The SQL condition that `v` holds a value of the index's type and dimensions (see
/// [`SqliteBlobShape`](crate::codec::SqliteBlobShape)): a BLOB of the type's length with finite elements
/// (a distance of the value to itself is NULL for NaN and infinite ones) for `vector` and `halfvec`, of
/// the right length for `bit`, and for `sparsevec` its dimensions prefix and whole items, then what the
/// scans check ([`SPARSEVEC_VALID`](super::functions::SPARSEVEC_VALID): indices in order and within the
/// dimensions, finite values, none zero). Only integers from the spec are written into it.
fn valid_value(spec: &IndexSpec, v: &str) -> String {
    use crate::codec::SqliteBlobShape;
    use crate::index::Element;
    use std::fmt::Write as _;
    // A spec's dimensions always have a shape; nothing would be valid otherwise.
    let Ok(shape) = spec.element().sqlite_blob_shape(spec.dims() as usize) else { return "0".to_owned() };
    let (min, max) = shape.len_range();
    match &shape {
        SqliteBlobShape::Exact { len } => {
            let contents = match spec.element() {
                Element::Vector => format!("vec_distance_l2({v}, {v}) IS NOT NULL"),
                Element::HalfVector => format!("diesel_vector_halfvec_l2_distance({v}, {v}) IS NOT NULL"),
                _ => "1".to_owned(),
            };
            format!("CASE WHEN typeof({v}) = 'blob' AND length({v}) = {len} THEN {contents} ELSE 0 END")
        }
        SqliteBlobShape::Prefixed { prefix, stride, .. } => {
            let hex = prefix.iter().fold(String::new(), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            });
            // The shape in SQL first (cheap, and the function only sees BLOBs of the right vocabulary); then
            // what the scans check: indices in order and within the dimensions, finite values.
            let contents = match spec.element() {
                Element::SparseVector => format!("{}({v})", super::functions::SPARSEVEC_VALID),
                _ => "1".to_owned(),
            };
            format!(
                "CASE WHEN typeof({v}) = 'blob' AND substr({v}, 1, {min}) = x'{hex}' AND length({v}) <= {max} \
                 AND (length({v}) - {min}) % {stride} = 0 THEN {contents} ELSE 0 END"
            )
        }
    }
}

/// The rows of `spec`'s table whose stored value the index leaves out because it is not a vector of
/// its dimensions (see [`InvalidRows`]); names at most `max_ids` of them. Works without sqlite-vec (the
/// crate's own distance function checks the elements). A full scan of the table.
///
/// # Errors
///
/// A failing query (the table or column missing).
pub fn invalid_rows(conn: &mut SqliteConnection, spec: &IndexSpec, max_ids: usize) -> Result<InvalidRows, IndexError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let from = format!("FROM {} t WHERE {}", quote(spec.table()), invalid(spec));
    let count = count(conn, &format!("SELECT count(*) AS count {from}"))?;
    if count == 0 {
        return Ok(InvalidRows::default());
    }
    let ids: Vec<Id> = diesel::sql_query(format!(
        "SELECT CAST(t.{id} AS BIGINT) AS id {from} ORDER BY t.{id} LIMIT ?",
        id = quote(spec.id_column())
    ))
    .bind::<BigInt, _>(i64::try_from(max_ids).unwrap_or(i64::MAX))
    .load(conn)?;
    Ok(InvalidRows { count, ids: ids.into_iter().map(|r| r.id).collect() })
}

/// vec0's name for partition column `i`: the column's own name when vec0's parser takes it (it reads no
/// quoted names), otherwise `p<i>`. Statements on the vec0 table quote it like any other name.
pub(crate) fn vec0_partition_column(i: usize, name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !["embedding", "distance", "k", "rowid"].contains(&name.to_ascii_lowercase().as_str());
    if plain {
        name.to_owned()
    } else {
        format!("p{i}")
    }
}

fn vec0_metric(metric: Metric) -> &'static str {
    match metric {
        Metric::L2 => "l2",
        Metric::L1 => "l1",
        // IndexSpec refuses vec0 for any other metric.
        _ => "cosine",
    }
}

fn create_vec0(spec: &IndexSpec) -> String {
    let mut columns: Vec<String> = spec
        .partition_by()
        .enumerate()
        .map(|(i, p)| format!("{} text partition key", vec0_partition_column(i, p)))
        .collect();
    columns.push(if spec.element() == crate::index::Element::Bit {
        // sqlite-vec's bit vectors: Hamming distance, the only one it has for them.
        format!("embedding bit[{}]", spec.dims())
    } else {
        format!("embedding float[{}] distance_metric={}", spec.dims(), vec0_metric(spec.metric()))
    });
    columns.push(format!("chunk_size={VEC0_CHUNK_SIZE}"));
    format!("CREATE VIRTUAL TABLE {} USING vec0({})", quote(spec.vec0_table()), columns.join(", "))
}

/// `INSERT INTO vec0 (rowid, partitions..., embedding) SELECT ... FROM table t` plus `rest` (a join or a
/// filter).
fn fill_vec0(spec: &IndexSpec, from: &str) -> String {
    let mut targets = vec!["rowid".to_owned()];
    let mut values = vec![format!("t.{}", quote(spec.id_column()))];
    for (i, p) in spec.partition_by().enumerate() {
        targets.push(quote(&vec0_partition_column(i, p)));
        values.push(format!("CAST(t.{} AS TEXT)", quote(p)));
    }
    targets.push("embedding".to_owned());
    values.push(if spec.element() == crate::index::Element::Bit {
        // A plain BLOB is read as f32s: `vec_bit` says it holds bits.
        format!("vec_bit(t.{})", quote(spec.column()))
    } else {
        format!("t.{}", quote(spec.column()))
    });
    format!(
        "INSERT INTO {} ({}) SELECT {} {from} AND {}",
        quote(spec.vec0_table()),
        targets.join(", "),
        values.join(", "),
        indexable(spec),
    )
}

fn has_extension(conn: &mut SqliteConnection) -> Result<bool, IndexError> {
    Ok(super::sqlite_vec_version(conn)?.is_some())
}

/// Brings `spec`'s index up to date: applies the queued changes to each structure the index keeps, or
/// rebuilds a structure from the table when it is missing, marked for rebuild, or cannot be updated. One
/// immediate transaction; a few reads when nothing is pending.
///
/// An index that keeps the quantized codes is synced on any connection. One that also keeps vec0 has its
/// vec0 table updated only where sqlite-vec is loaded; a sync without it records that vec0 missed changes,
/// and the next sync with sqlite-vec rebuilds vec0 (the queue is one for every structure). A vec0 table
/// the index no longer keeps (the seed kept one until its registry row said `codes`) is dropped where
/// sqlite-vec is loaded.
///
/// # Errors
///
/// [`IndexError::ExtensionMissing`] for an index that keeps only vec0, on a connection without sqlite-vec;
/// [`IndexError::NotMigrated`] before the index's migration, or a failing query (nothing of the sync is
/// kept). Inside a transaction, which the sync's own would have to nest in, `IndexError::Query` with
/// Diesel's `AlreadyInTransaction` (or SQLite's refusal, for one opened by hand): sync once it has
/// committed. A search inside it needs no sync: it computes the rows changed since exactly.
/// [`IndexError::Declaration`] when `spec` is not the registry's declaration of the index.
pub fn sync(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<SyncReport, IndexError> {
    check_declaration(conn, spec)?;
    run(conn, spec, Rebuild::Nothing)
}

/// [`sync`] for a caller that checked `spec` against the registry already (the search, once per search).
pub(crate) fn sync_declared(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<SyncReport, IndexError> {
    run(conn, spec, Rebuild::Nothing)
}

/// Rebuilds every structure of `spec`'s index from the table, in one immediate transaction (vec0 only where
/// sqlite-vec is loaded; see [`sync`]).
///
/// # Errors
///
/// As [`sync`].
pub fn rebuild(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<SyncReport, IndexError> {
    check_declaration(conn, spec)?;
    run(conn, spec, Rebuild::All)
}

/// Syncs `spec`'s index and rebuilds its codes whatever they look like: for a search that found the stored
/// codes damaged (and checked `spec` against the registry).
pub(crate) fn rebuild_codes(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<SyncReport, IndexError> {
    run(conn, spec, Rebuild::Codes)
}

/// What a sync rebuilds whatever the state says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rebuild {
    Nothing,
    Codes,
    All,
}

/// The structures a connection maintains for `spec`.
struct Plan {
    /// The quantized codes.
    codes: bool,
    /// vec0, on this connection.
    vec0: bool,
    /// The index keeps vec0 but this connection cannot update it.
    vec0_elsewhere: bool,
    /// A vec0 table the index does not keep, to drop.
    leftover_vec0: bool,
}

fn plan(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<Plan, IndexError> {
    let kept = spec.sqlite_index();
    let codes = spec.sqlite_keeps_codes();
    let extension = has_extension(conn)?;
    if kept.vec0 && !extension && !codes {
        return Err(IndexError::ExtensionMissing);
    }
    Ok(Plan {
        codes,
        vec0: kept.vec0 && extension,
        vec0_elsewhere: kept.vec0 && !extension,
        leftover_vec0: !kept.vec0 && extension && is_vec0_table(conn, spec)?,
    })
}

/// Whether `spec`'s vec0 name is a vec0 table (and not, say, a table of the application's).
fn is_vec0_table(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<bool> {
    count(
        conn,
        &format!(
            "SELECT count(*) AS count FROM sqlite_master WHERE type = 'table' AND name = {} \
             AND lower(sql) LIKE '%using vec0%'",
            crate::index::literal(spec.vec0_table())
        ),
    )
    .map(|n| n > 0)
}

/// The registry's declaration of `spec`'s index: `None` when the registry has no row of its name, or there
/// is no registry (an index made before it existed); `Some(Err(text))` for a row that does not parse.
pub(crate) fn registered(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
) -> QueryResult<Option<Result<IndexSpec, String>>> {
    let read = super::cached::CachedSql::sql(crate::index::registry::SELECT_ROW_NAMED)
        .bind_text(spec.name(), "")
        .rows()
        .load::<crate::index::registry::RegistryRow>(conn);
    let rows = match read {
        Ok(rows) => rows,
        Err(_) if !conn.exists(crate::index::registry::REGISTRY_TABLE)? => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(rows.first().map(|row| row.to_spec().map_err(|e| e.to_string())))
}

/// How `spec` differs from its index's registered declaration ([`registered`]): empty when it does not or
/// nothing is registered; a row that does not parse differs in full.
pub(crate) fn differences(spec: &IndexSpec, registered: Option<&Result<IndexSpec, String>>) -> Vec<String> {
    match registered {
        None => Vec::new(),
        Some(Ok(registered)) => crate::index::differences(spec, registered),
        Some(Err(e)) => vec![e.clone()],
    }
}

/// [`IndexError::Declaration`] when `spec` is not the registry's declaration of its index.
fn check_declaration(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<(), IndexError> {
    let differences = differences(spec, registered(conn, spec)?.as_ref());
    if differences.is_empty() {
        Ok(())
    } else {
        Err(IndexError::Declaration { index: spec.name().to_owned(), differences })
    }
}

fn run(conn: &mut SqliteConnection, spec: &IndexSpec, forced: Rebuild) -> Result<SyncReport, IndexError> {
    run_checked(conn, spec, forced).map_err(|e| explained(conn, spec, e))
}

/// `e`, or [`IndexError::ColumnsMissing`] when it is SQLite's "no such column" and the table lacks columns
/// the index reads (looked up only then: a sync that succeeds pays nothing for it).
fn explained(conn: &mut SqliteConnection, spec: &IndexSpec, e: IndexError) -> IndexError {
    let IndexError::Query(diesel::result::Error::DatabaseError(_, info)) = &e else { return e };
    if !info.message().starts_with("no such column") {
        return e;
    }
    let Ok(found) = crate::migrations::shape::Catalog::columns(conn, spec.table()) else { return e };
    let columns = spec.columns_missing(|c| found.iter().any(|f| f.name == c));
    if columns.is_empty() {
        return e;
    }
    IndexError::ColumnsMissing { index: spec.name().to_owned(), table: spec.table().to_owned(), columns }
}

fn run_checked(conn: &mut SqliteConnection, spec: &IndexSpec, forced: Rebuild) -> Result<SyncReport, IndexError> {
    let plan = plan(conn, spec)?;
    let before = state(conn, spec)?;
    if forced == Rebuild::Nothing && !before.behind() && !plan.leftover_vec0 {
        let vec0_ready =
            !plan.vec0 || (conn.exists(spec.vec0_table())? && !(plan.codes && super::codes::vec0_stale(conn, spec)?));
        let codes_ready = !plan.codes || super::codes::is_current(conn, spec)?;
        if vec0_ready && codes_ready {
            return Ok(SyncReport { rebuilt: false, applied: 0 });
        }
    }
    let shared = if plan.codes { Some(super::codes::shared_entry(conn, spec)?) } else { None };
    let mut locked = None;
    let result = transaction::immediate::<_, IndexError>(conn, |conn| {
        let now = state(conn, spec)?;
        let rebuild_all = forced == Rebuild::All || now.needs_rebuild != 0;
        let next = if now.generation == i64::MAX { 0 } else { now.generation + 1 };
        let vec0_stale = plan.codes && super::codes::vec0_stale(conn, spec)?;
        let mut report = SyncReport { rebuilt: false, applied: 0 };
        if plan.vec0 {
            let part = if rebuild_all || vec0_stale || !conn.exists(spec.vec0_table())? {
                rebuild_vec0(conn, spec)?
            } else {
                match transaction::savepoint(conn, |conn| apply_queue(conn, spec, now.indexed_through.is_some())) {
                    Ok(applied) => SyncReport { rebuilt: false, applied },
                    // A damaged vec0 table, or one of another shape: start again from the table.
                    Err(SavepointError::RolledBack(_)) => rebuild_vec0(conn, spec)?,
                    // SQLite ended the transaction (a full disk): nothing more may run in it.
                    Err(SavepointError::TransactionEnded(e)) => return Err(e),
                }
            };
            report = part;
        }
        if plan.leftover_vec0 {
            conn.batch_execute(&format!("DROP TABLE IF EXISTS {}", quote(spec.vec0_table())))?;
        }
        if let Some(shared) = &shared {
            let entry = locked.insert(super::codes::lock(shared));
            let vec0_missed = plan.vec0_elsewhere && (vec0_stale || rebuild_all || now.pending());
            let rebuild_codes = rebuild_all || forced == Rebuild::Codes;
            let codes = super::codes::sync_in_transaction(
                conn,
                spec,
                entry,
                super::codes::Due { rebuild: rebuild_codes, appended_after: now.indexed_through },
                next,
                vec0_missed,
            )?;
            report.rebuilt |= codes.rebuilt;
            report.applied = report.applied.max(i64::try_from(codes.applied).unwrap_or(i64::MAX));
        }
        if !plan.vec0 && !plan.codes {
            // Nothing to apply: the queued ids are dropped (appended rows are not counted, which would read
            // each one).
            report.applied = now.queued;
        }
        finish(conn, spec, next, now.indexed_through.is_some())?;
        Ok(report)
    });
    if let (Err(_), Some(entry)) = (&result, locked.as_mut()) {
        super::codes::forget(entry);
    }
    drop(locked);
    let report = result?;
    info!(
        target: "diesel_vector::index",
        index = spec.name(),
        rebuilt = report.rebuilt,
        applied = report.applied,
        "sqlite vector index synced"
    );
    Ok(report)
}

/// `spec`'s index's state. Works without sqlite-vec (then `vec0_rows` is `None`).
///
/// # Errors
///
/// [`IndexError::NotMigrated`] before the index's migration, or a failing query.
pub fn status(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<IndexStatus, IndexError> {
    let state = state(conn, spec)?;
    let sqlite_vec = super::sqlite_vec_version(conn)?;
    let vec0_table_exists = conn.exists(spec.vec0_table())?;
    let vec0_rows = match (&sqlite_vec, vec0_table_exists) {
        (Some(_), true) => Some(count(conn, &format!("SELECT count(*) AS count FROM {}", quote(spec.vec0_table())))?),
        _ => None,
    };
    let embedded_rows = count(
        conn,
        &format!(
            "SELECT count(*) AS count FROM {} t WHERE t.{} IS NOT NULL",
            quote(spec.table()),
            quote(spec.column())
        ),
    )?;
    let codes = spec.sqlite_keeps_codes();
    // An index that keeps no structure has nothing to rebuild and no rows to add: only ids queued by the
    // triggers of a migration generated by an earlier diesel-vector are pending (a sync drops them).
    let kept = spec.sqlite_keeps_a_structure();
    let appended = if kept { appended_rows(conn, spec, &state)? } else { 0 };
    Ok(IndexStatus {
        index: spec.name().to_owned(),
        structures: spec.sqlite_index(),
        sqlite_vec,
        vec0_table_exists,
        needs_rebuild: kept && state.needs_rebuild != 0,
        pending_changes: state.queued + appended,
        vec0_rows,
        codes_rows: super::codes::stored_rows(conn, spec)?,
        codes_current: !codes || super::codes::is_current(conn, spec)?,
        codes_rank_neighbours: super::codes::stored_params(conn, spec)?
            .filter(|p| p.neighbour_share().is_some())
            .map(|p| p.ranks_neighbours()),
        embedded_rows,
        generation: state.generation,
    })
}

/// Applies the queue, and the rows above `indexed_through` when the state has it (`appended`), to the vec0
/// table; returns how many changes that was.
fn apply_queue(conn: &mut SqliteConnection, spec: &IndexSpec, appended: bool) -> Result<i64, IndexError> {
    let queue = quote(&spec.queue_table());
    let pending = count(conn, &format!("SELECT count(*) AS count FROM {queue}"))?;
    let mut added = 0;
    if spec.sqlite_index().vec0 {
        // vec0 has no working upsert: delete every queued id, then insert the rows that still exist.
        let from =
            format!("FROM {queue} q JOIN {} t ON t.{} = q.id WHERE 1", quote(spec.table()), quote(spec.id_column()));
        conn.batch_execute(&format!(
            "DELETE FROM {vec0} WHERE rowid IN (SELECT q.id FROM {queue} q); {fill};",
            vec0 = quote(spec.vec0_table()),
            fill = fill_vec0(spec, &from),
        ))?;
        if appended {
            // Rows inserted above the mark since the last sync (never in vec0), less those queued since.
            let from = format!(
                "FROM {} t WHERE {} AND t.{id} NOT IN (SELECT q.id FROM {queue} q)",
                quote(spec.table()),
                self::appended(spec),
                id = quote(spec.id_column()),
            );
            added = i64::try_from(diesel::sql_query(fill_vec0(spec, &from)).execute(conn)?).unwrap_or(i64::MAX);
        }
    }
    Ok(pending + added)
}

fn rebuild_vec0(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<SyncReport, IndexError> {
    let vec0 = quote(spec.vec0_table());
    let from = format!("FROM {} t WHERE 1", quote(spec.table()));
    conn.batch_execute(&format!("DROP TABLE IF EXISTS {vec0}; {}; {};", create_vec0(spec), fill_vec0(spec, &from)))?;
    let applied = count(conn, &format!("SELECT count(*) AS count FROM {vec0}"))?;
    Ok(SyncReport { rebuilt: true, applied })
}

/// Empties the queue, clears the rebuild flag, sets the generation to `next` and, when the state has it
/// (`appended`), `indexed_through` to the table's largest id.
fn finish(conn: &mut SqliteConnection, spec: &IndexSpec, next: i64, appended: bool) -> Result<(), IndexError> {
    // Two statements prepared once per connection (a batch is parsed on every call).
    super::cached::CachedSql::sql(format!("DELETE FROM {}", quote(&spec.queue_table()))).rows().execute(conn)?;
    let through = if appended {
        format!(
            ", indexed_through = coalesce((SELECT max(t.{}) FROM {} t), {SMALLEST_ID})",
            quote(spec.id_column()),
            quote(spec.table())
        )
    } else {
        String::new()
    };
    super::cached::CachedSql::sql(format!(
        "UPDATE {} SET needs_rebuild = 0, generation = ",
        quote(&spec.state_table())
    ))
    .bind_i64(next, through)
    .rows()
    .execute(conn)?;
    Ok(())
}

/// Drops `spec`'s vec0 table if sqlite-vec is loaded; returns whether it could.
pub(super) fn drop_vec0(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<bool> {
    if super::sqlite_vec_version(conn)?.is_none() {
        return Ok(false);
    }
    conn.batch_execute(&format!("DROP TABLE IF EXISTS {}", quote(spec.vec0_table())))?;
    Ok(true)
}

fn seed() -> &'static IndexSpec {
    crate::schema::fragment_embeddings_index()
}

/// [`sync`] for the crate's own `fragment_embeddings` index.
///
/// # Errors
///
/// As [`sync`].
pub fn sync_index(conn: &mut SqliteConnection) -> Result<SyncReport, IndexError> {
    sync(conn, seed())
}

/// [`rebuild`] for the crate's own `fragment_embeddings` index.
///
/// # Errors
///
/// As [`sync`].
pub fn rebuild_index(conn: &mut SqliteConnection) -> Result<SyncReport, IndexError> {
    rebuild(conn, seed())
}

/// [`status`] of the crate's own `fragment_embeddings` index.
///
/// # Errors
///
/// As [`status`].
pub fn index_status(conn: &mut SqliteConnection) -> Result<IndexStatus, IndexError> {
    status(conn, seed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec0_columns_keep_plain_names_only() {
        assert_eq!(vec0_partition_column(0, "provider"), "provider");
        assert_eq!(vec0_partition_column(1, "my lang"), "p1");
        assert_eq!(vec0_partition_column(2, "Embedding"), "p2");
        assert_eq!(vec0_partition_column(3, "1st"), "p3");
        assert_eq!(vec0_partition_column(4, "é"), "p4");
    }

    #[test]
    fn the_seeds_vec0_keeps_its_shape() {
        assert_eq!(
            create_vec0(seed()),
            "CREATE VIRTUAL TABLE \"fragment_embeddings_idx\" USING vec0(provider text partition key, model text \
             partition key, embedding float[1536] distance_metric=cosine, chunk_size=64)"
        );
    }
}
