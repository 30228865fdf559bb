//! The crate's quantized codes of a vector index on SQLite: stored in the database file, kept in memory once
//! per process, searched with the [`ann`](crate::ann) engine.
//!
//! # Storage
//!
//! One table, `<index>_codes (chunk INTEGER PRIMARY KEY, generation INTEGER NOT NULL, data BLOB NOT NULL)`:
//! row `-1` holds the training parameters ([`Params::to_bytes`]), row `-2` a small checksummed record of the
//! codes as a whole (a build id drawn at each rebuild, a fingerprint of the index's shape, the chunk and row
//! counts, whether vec0 missed changes), and rows `0..` the chunks of codes
//! ([`QuantizedIndex::chunk_bytes`], 256 rows each). `generation` is the index state's generation after the
//! sync that wrote the row.
//!
//! # Kept current, never served stale
//!
//! [`super::sync`] applies the index's change queue to the codes in the same immediate transaction that
//! drains it (an insert, replace or removal per queued id; the changed chunks and the record are written
//! back) and moves the state's generation on; every write of the codes carries that generation, and the
//! record is rewritten by every sync. So **the record's generation equals the state's exactly when the codes
//! are current**: when they differ, something drained the queue without updating the codes (an older
//! diesel-vector, a hand-written `DELETE`), and the codes are rebuilt, not used.
//!
//! In memory, a process keeps one copy per database file and index ([`Cached`]), shared by its connections
//! and tagged with the generation it reflects. A search reads the state's generation (one query); if the
//! copy is behind, it reads the chunks written since (incrementally, checking that every row is in one
//! place and the counts match the record) or everything again (another build, a damaged record), all in one
//! read transaction, so the copy always equals the codes of one committed state. A sync in this process
//! updates the copy in place while it holds the database's write lock, and drops it if the transaction
//! does not commit. In-memory databases (`:memory:`) are private to their connection and have no file to
//! key a shared copy by: their codes are read from the database for each search and sync.
//!
//! Anything that does not load (a truncated or damaged BLOB, a chunk missing, parameters of another
//! format, counts that disagree with the record) is never trusted: the codes are rebuilt from the table.
//!
//! # Partitions
//!
//! Each row's partition key is a hash of its partition columns' values as `CAST(value AS TEXT)` (NULL
//! apart), one field of `64 / n` bits per column for `n` columns, so that a search filtering on some of
//! them matches those fields in the scan ([`crate::ann::Filter::partition_masked`]). Hash collisions let a
//! row of another partition through the scan; the search's rerank checks the real values in SQL and leaves
//! it out, and the engine fetches more candidates until `k` rows qualify.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use diesel::connection::{DefaultLoadingMode, SimpleConnection};
use diesel::deserialize::{self, QueryableByName};
use diesel::prelude::*;
use diesel::row::{Field, NamedRow, Row};
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

use super::cached::CachedSql;
use super::exact::Stored;
use super::index::IndexError;
use crate::ann::bytes::{Reader, Writer};
use crate::ann::{AnnError, Filter, Params, Partition, QuantizedIndex, SearchOptions, SearchOutcome};
use crate::index::{quote, IndexSpec, Metric};
use crate::migrations::shape::Catalog;

mod vectors;

pub(crate) use vectors::{exact as exact_from_vectors, ScanFilter};

#[cfg(test)]
mod tests;

/// The row holding the training parameters.
const PARAMS_ROW: i64 = -1;
/// The row holding the [`Record`].
const RECORD_ROW: i64 = -2;

/// Rows a rebuild trains on at most, and the memory their vectors may take.
const SAMPLE_ROWS: usize = 10_000;
const SAMPLE_BYTES: usize = 64 << 20;
/// Codes trained on fewer rows than this are trained again once the index holds [`RETRAIN_GROWTH`] times
/// as many: with fewer rows the error bounds are measured on fewer pairs (the calibration uses up to 2000
/// rows), and the centre of a few early rows need not be the data's. When the larger sample's centre is
/// near the old one, only the bounds are measured again ([`Params::recalibrated`]: the codes stay, every
/// chunk is stored again with the new parameters' fingerprint); otherwise the codes are rebuilt. Above it,
/// the training stays until the index is rebuilt ([`super::rebuild`]): growth alone rarely moves the
/// centre of thousands of rows, and a rebuild reads the whole table.
const RETRAIN_BELOW: u64 = 2000;
const RETRAIN_GROWTH: u64 = 4;

const RECORD_MAGIC: &[u8; 4] = b"DVQR";
/// Version of the record and of the partition-key scheme.
const RECORD_VERSION: u16 = 1;

/// How `spec`'s column stores its elements, for the specs that keep codes
/// ([`IndexSpec::sqlite_keeps_codes`]: `vector` and `halfvec` columns); `f32` for the others, which nothing
/// here reads.
fn stored(spec: &IndexSpec) -> Stored {
    Stored::of(spec.element()).unwrap_or(Stored::F32)
}

/// The codes as a whole: what every sync rewrites, and what a load checks the chunks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    /// Drawn at each rebuild: a copy in memory from another build is never patched, only reloaded.
    build: u64,
    /// [`layout`] of the spec the codes were made for.
    layout: u64,
    /// Chunks `0..chunks` (each stored, possibly empty).
    chunks: u32,
    rows: u64,
    /// Whether parameters were trained (none while the table has no valid vector).
    trained: bool,
    /// The index also keeps vec0, and a sync on a connection without sqlite-vec applied changes that vec0
    /// did not get: the next sync with sqlite-vec rebuilds it.
    vec0_stale: bool,
}

impl Record {
    fn to_bytes(self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48);
        w.bytes(RECORD_MAGIC);
        w.u16(RECORD_VERSION);
        w.u16(u16::from(self.trained) | u16::from(self.vec0_stale) << 1);
        w.u64(self.build);
        w.u64(self.layout);
        w.u32(self.chunks);
        w.u64(self.rows);
        w.finish()
    }

    fn from_bytes(blob: &[u8]) -> Result<Record, AnnError> {
        let what = "index codes record";
        let mut r = Reader::open(blob, what, RECORD_MAGIC)?;
        let version = r.u16()?;
        if version != RECORD_VERSION {
            return Err(AnnError::corrupt(format!("{what}: format version {version}")));
        }
        let flags = r.u16()?;
        if flags > 3 {
            return Err(AnnError::corrupt(format!("{what}: flags {flags}")));
        }
        let record = Record {
            build: r.u64()?,
            layout: r.u64()?,
            chunks: r.u32()?,
            rows: r.u64()?,
            trained: flags & 1 == 1,
            vec0_stale: flags & 2 == 2,
        };
        r.end()?;
        Ok(record)
    }
}

/// A fingerprint of what the codes depend on in the spec: a registry edited by hand (another column,
/// metric, dimensions or partition columns) makes the stored codes another index's.
fn layout(spec: &IndexSpec) -> u64 {
    let mut text = format!(
        "{RECORD_VERSION}\0{}\0{}\0{}\0{}\0{}\0{}",
        spec.table(),
        spec.id_column(),
        spec.column(),
        spec.element(),
        spec.dims(),
        spec.metric()
    );
    for p in spec.partition_by() {
        text.push('\0');
        text.push_str(p);
    }
    if spec.sqlite_index().vectors {
        text.push_str("\0vectors");
    }
    crate::index::splitmix_finish(crate::index::fnv1a(text.as_bytes()))
}

/// The bits of partition field `i` of `n`: `64 / n` bits each (the first 64 columns; further ones are
/// only checked at rerank).
fn field_mask(i: usize, n: usize) -> u64 {
    let fields = n.min(64);
    if i >= fields {
        return 0;
    }
    let bits = 64 / fields;
    let low = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    low << (i * bits)
}

fn field_hash(value: Option<&str>) -> u64 {
    match value {
        None => crate::index::splitmix_finish(0x6e75_6c6c),
        Some(text) => {
            let mut bytes = Vec::with_capacity(text.len() + 1);
            bytes.push(1);
            bytes.extend_from_slice(text.as_bytes());
            crate::index::splitmix_finish(crate::index::fnv1a(&bytes))
        }
    }
}

/// A row's partition key from its partition columns' values (as text, in the spec's order).
fn partition_key(values: &[Option<String>]) -> u64 {
    let n = values.len();
    values.iter().enumerate().fold(0, |key, (i, v)| key | (field_hash(v.as_deref()) & field_mask(i, n)))
}

/// The scan filter for equality filters on some of `spec`'s partition columns: `(position among the
/// partition columns, value as text or NULL)`. `None` when there is nothing to filter on.
pub(crate) fn partition_filter(spec: &IndexSpec, values: &[(usize, Option<&str>)]) -> Option<Partition> {
    let n = spec.partition_by().len();
    let (mut key, mut mask) = (0, 0);
    for (i, value) in values {
        let m = field_mask(*i, n);
        key |= field_hash(*value) & m;
        mask |= m;
    }
    (mask != 0).then_some(Partition { key, mask })
}

/// The process's copy of one index's codes, as of one generation of the index's state.
#[derive(Debug)]
struct Cached {
    generation: i64,
    record: Record,
    /// `None` while nothing was trained. Shared so that an exact scan can hold it while SQLite hands it
    /// rows (changed only under the entry's write lock, copied if a scan still holds it).
    index: Option<Arc<QuantizedIndex>>,
}

/// One index of one database file in this process: its copy of the codes, if loaded.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    cached: Option<Cached>,
}

type Shared = Arc<RwLock<Entry>>;

/// Every loaded index, by database file and index name.
static CACHE: LazyLock<Mutex<HashMap<(String, String), Shared>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

#[derive(QueryableByName)]
struct DatabaseFile {
    #[diesel(sql_type = Text)]
    file: String,
}

/// The file of `conn`'s main database; empty for a database in memory or a temporary one.
pub(in crate::sqlite) fn database_file(conn: &mut SqliteConnection) -> QueryResult<String> {
    let file: Option<DatabaseFile> = CachedSql::sql("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .rows()
        .get_result(conn)
        .optional()?;
    Ok(file.map(|f| f.file).unwrap_or_default())
}

/// The shared entry of `spec`'s index in `conn`'s database file, or a private one for a database with no
/// file (in memory, temporary).
fn entry(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<Shared> {
    let file = database_file(conn)?;
    if file.is_empty() {
        return Ok(Shared::default());
    }
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(Arc::clone(cache.entry((file, spec.name().to_owned())).or_default()))
}

/// Forgets every copy of codes this process holds (they are read again at the next search): for tests,
/// and for a long-running process that is done with a database.
pub fn clear_codes_cache() {
    CACHE.lock().unwrap_or_else(PoisonError::into_inner).clear();
}

fn read(shared: &Shared) -> RwLockReadGuard<'_, Entry> {
    shared.read().unwrap_or_else(|poisoned| {
        // A panic while the copy was being changed: it cannot be trusted.
        let mut guard = shared.write().unwrap_or_else(PoisonError::into_inner);
        guard.cached = None;
        shared.clear_poison();
        drop(guard);
        poisoned.into_inner()
    })
}

fn write(shared: &Shared) -> RwLockWriteGuard<'_, Entry> {
    shared.write().unwrap_or_else(|poisoned| {
        let mut guard = poisoned.into_inner();
        guard.cached = None;
        shared.clear_poison();
        guard
    })
}

/// The index's generation and the codes record's, read together.
#[derive(QueryableByName, Debug, Clone, Copy)]
struct Generations {
    #[diesel(sql_type = BigInt)]
    generation: i64,
    #[diesel(sql_type = BigInt)]
    needs_rebuild: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    codes_generation: Option<i64>,
}

fn generations(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<Generations> {
    CachedSql::sql(format!(
        "SELECT s.generation AS generation, s.needs_rebuild AS needs_rebuild, \
                (SELECT c.generation FROM {codes} c WHERE c.chunk = {RECORD_ROW}) AS codes_generation \
         FROM {state} s",
        codes = quote(&spec.codes_table()),
        state = quote(&spec.state_table()),
    ))
    .rows()
    .get_result(conn)
}

#[derive(QueryableByName)]
struct StoredRow {
    #[diesel(sql_type = BigInt)]
    chunk: i64,
    #[diesel(sql_type = Binary)]
    data: Vec<u8>,
}

/// Why the stored codes cannot be used as they are.
#[derive(Debug)]
enum Unusable {
    /// Missing, damaged, stale or another index's: rebuild them.
    Rebuild(String),
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for Unusable {
    fn from(e: diesel::result::Error) -> Self {
        Unusable::Query(e)
    }
}

impl From<AnnError> for Unusable {
    fn from(e: AnnError) -> Self {
        Unusable::Rebuild(e.to_string())
    }
}

/// Loads the codes in full, or patches `previous` with the chunks written since it, checking either
/// against the record.
fn load(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    previous: Option<Cached>,
    generation: i64,
) -> Result<Cached, Unusable> {
    let codes = quote(&spec.codes_table());
    let since = previous.as_ref().map_or(i64::MIN, |p| p.generation);
    // A first load reads the record and the parameters here and the chunks below, one at a time; a later
    // one what changed since the copy it patches.
    let rows: Vec<StoredRow> = if previous.is_none() {
        CachedSql::sql(format!("SELECT chunk, data FROM {codes} WHERE chunk < 0 ORDER BY chunk")).rows().load(conn)?
    } else {
        CachedSql::sql(format!("SELECT chunk, data FROM {codes} WHERE generation > "))
            .bind_i64(since, " ORDER BY chunk")
            .rows()
            .load(conn)?
    };
    let record_row =
        rows.iter().find(|r| r.chunk == RECORD_ROW).ok_or_else(|| Unusable::Rebuild("no record".into()))?;
    let record = Record::from_bytes(&record_row.data)?;
    if record.layout != layout(spec) {
        return Err(Unusable::Rebuild("codes made for another shape of the index".into()));
    }
    let check = |index: &Option<Arc<QuantizedIndex>>| -> Result<(), Unusable> {
        let (chunks, rows) = index.as_ref().map_or((0, 0), |i| (i.chunk_count(), i.len()));
        let consistent = index.as_ref().is_none_or(|i| i.is_consistent());
        if chunks as u64 != u64::from(record.chunks) || rows as u64 != record.rows || !consistent {
            return Err(Unusable::Rebuild(format!(
                "the chunks hold {rows} rows in {chunks} chunks, the record says {} in {}",
                record.rows, record.chunks
            )));
        }
        Ok(())
    };
    // Patch a copy of the same build whose parameters did not change.
    if let Some(mut previous) = previous {
        if previous.record.build == record.build && !rows.iter().any(|r| r.chunk == PARAMS_ROW) {
            let patched = (|| -> Result<Option<Arc<QuantizedIndex>>, Unusable> {
                let mut index = previous.index.take();
                if let Some(index) = &mut index {
                    let index = Arc::make_mut(index);
                    for row in rows.iter().filter(|r| r.chunk >= 0) {
                        let number = index.replace_chunk(&row.data)?;
                        if i64::from(number) != row.chunk {
                            return Err(Unusable::Rebuild(format!("chunk {} stored as {number}", row.chunk)));
                        }
                    }
                }
                check(&index)?;
                Ok(index)
            })();
            if let Ok(index) = patched {
                return Ok(Cached { generation, record, index });
            }
        }
    }
    // Everything again: the parameters, then the chunks parsed as SQLite steps to each, so that a copy of
    // every stored chunk is never held at once (a new process would fault in its 22 MB at 100k rows).
    let negatives: Vec<StoredRow> = if since == i64::MIN {
        rows
    } else {
        CachedSql::sql(format!("SELECT chunk, data FROM {codes} WHERE chunk < 0 ORDER BY chunk")).rows().load(conn)?
    };
    let index = match negatives.iter().find(|r| r.chunk == PARAMS_ROW) {
        None if !record.trained => None,
        None => return Err(Unusable::Rebuild("no parameters".into())),
        Some(params) => {
            let params = Params::from_bytes(&params.data)?;
            if params.metric() != spec.metric() || params.dims() != spec.dims() as usize {
                return Err(Unusable::Rebuild("parameters of another index".into()));
            }
            let mut failed = None;
            let chunks = diesel::sql_query(format!("SELECT chunk, data FROM {codes} WHERE chunk >= 0 ORDER BY chunk"))
                .load_iter::<StoredRow, DefaultLoadingMode>(conn)?
                .map_while(|row| row.map_err(|e| failed = Some(e)).ok())
                .map(|row| row.data);
            let index = QuantizedIndex::from_chunks(params, chunks);
            if let Some(e) = failed {
                return Err(e.into());
            }
            Some(Arc::new(index?))
        }
    };
    check(&index)?;
    Ok(Cached { generation, record, index })
}

/// A row of the indexed table as the codes need it: the id, where its vector lies in the thread's decoding
/// buffer ([`for_each_row`]) when it is a valid one (a BLOB of the index's dimensions, every element
/// finite), and the partition columns' values as text.
#[derive(Debug)]
struct SourceRow {
    id: i64,
    vector: Option<std::ops::Range<usize>>,
    partitions: Vec<Option<String>>,
}

thread_local! {
    /// Where [`SourceRow::build`] decodes the vector of the row [`for_each_row`] is reading on this thread
    /// (it swaps this buffer with its own after each row). Decoding each row into its own `Vec` spent about
    /// a third of a sync's reading in `malloc`, `free` and the first touch of fresh pages.
    static DECODED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// How the query running on this thread stores its vectors.
    static STORED: std::cell::Cell<Stored> = const { std::cell::Cell::new(Stored::F32) };
}

impl QueryableByName<Sqlite> for SourceRow {
    /// Columns by position: the id, the vector (NULL unless a BLOB of the right length), then the partition
    /// values. The vector is decoded where SQLite holds it, straight into the batch's buffer.
    fn build<'a>(row: &impl NamedRow<'a, Sqlite>) -> deserialize::Result<Self> {
        let id = Row::get_value::<BigInt, i64, usize>(row, 0)?;
        let field = Row::get(row, 1usize).ok_or_else(|| Box::new(diesel::result::UnexpectedEndOfRow))?;
        let vector = match field.value() {
            None => None,
            Some(mut value) => {
                let bytes = value.read_blob();
                let stored = STORED.get();
                if bytes.len() % stored.bytes(1) != 0 {
                    return Err(
                        format!("a vector BLOB of {} bytes is not whole {stored:?} elements", bytes.len()).into()
                    );
                }
                DECODED.with(|decoded| {
                    let mut out = decoded.borrow_mut();
                    let start = out.len();
                    stored.extend_f32(bytes, &mut out).then(|| start..out.len())
                })
            }
        };
        let partitions = (2..row.field_count())
            .map(|i| Row::get_value::<Nullable<Text>, Option<String>, usize>(row, i))
            .collect::<deserialize::Result<_>>()?;
        Ok(SourceRow { id, vector, partitions })
    }
}

/// Runs `query` (built by [`select_rows`]) and hands each row to `each` as SQLite steps to it, with its
/// vector if the index holds it (zero vectors have no cosine distance); returns the last row's id. Nothing
/// is kept: the vectors are decoded into two buffers of one vector each, swapped row by row, so a sync
/// touches no fresh memory however many rows it reads (a batch's buffer of a few MB, allocated per sync,
/// cost a sixth of the sync in page faults).
fn for_each_row<'q, Q>(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    query: Q,
    mut each: impl FnMut(&SourceRow, Option<&[f32]>) -> Result<(), IndexError>,
) -> Result<Option<i64>, IndexError>
where
    Q: diesel::query_dsl::LoadQuery<'q, SqliteConnection, SourceRow, DefaultLoadingMode>,
{
    STORED.set(stored(spec));
    DECODED.with(|decoded| decoded.borrow_mut().clear());
    let metric = spec.metric();
    let mut vector = Vec::new();
    let mut last = None;
    for row in query.load_iter::<SourceRow, DefaultLoadingMode>(conn)? {
        let row = row?;
        // The row's vector is the thread's buffer now: take it, and leave the other one, emptied, for the
        // next row.
        vector.clear();
        DECODED.with(|decoded| std::mem::swap(&mut vector, &mut *decoded.borrow_mut()));
        let v = row
            .vector
            .clone()
            .and_then(|range| vector.get(range))
            .filter(|v| metric != Metric::Cosine || v.iter().any(|x| *x != 0.0));
        each(&row, v)?;
        last = Some(row.id);
    }
    Ok(last)
}

/// `SELECT <id> AS id, <vector if valid> AS v, CAST(<partition> AS TEXT) AS p<i>... <from>`, the table
/// aliased `t`.
fn select_rows(spec: &IndexSpec, id: &str, from: &str) -> String {
    let v = format!("t.{}", quote(spec.column()));
    let bytes = stored(spec).bytes(spec.dims() as usize);
    let mut columns = vec![
        format!("{id} AS id"),
        format!("CASE WHEN typeof({v}) = 'blob' AND length({v}) = {bytes} THEN {v} END AS v"),
    ];
    columns.extend(spec.partition_by().enumerate().map(|(i, p)| format!("CAST(t.{} AS TEXT) AS p{i}", quote(p))));
    format!("SELECT {} {from}", columns.join(", "))
}

#[derive(QueryableByName)]
struct Span {
    #[diesel(sql_type = Nullable<BigInt>)]
    low: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    high: Option<i64>,
}

/// Up to [`SAMPLE_ROWS`] valid vectors spread over the table, to train on: the rows at evenly spaced ids
/// between the smallest and the largest (one indexed lookup each), topped up with the first rows when the
/// ids are too sparse for that.
fn sample(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<Vec<Vec<f32>>, IndexError> {
    let want = SAMPLE_ROWS.min(SAMPLE_BYTES / (4 * spec.dims() as usize)).max(1);
    let table = quote(spec.table());
    let id = format!("t.{}", quote(spec.id_column()));
    let span: Span =
        diesel::sql_query(format!("SELECT min({id}) AS low, max({id}) AS high FROM {table} t")).get_result(conn)?;
    let (Some(low), Some(high)) = (span.low, span.high) else { return Ok(Vec::new()) };
    let width = i128::from(high) - i128::from(low) + 1;
    let mut found = if width <= (2 * want) as i128 {
        vectors_of(conn, spec, diesel::sql_query(select_rows(spec, &id, &format!("FROM {table} t"))))?
    } else {
        let targets: Vec<i64> = (0..want as i128)
            .map(|i| i64::try_from(i128::from(low) + i * width / want as i128).unwrap_or(high))
            .collect();
        vectors_of(
            conn,
            spec,
            diesel::sql_query(select_rows(
                spec,
                &id,
                &format!("FROM {table} t WHERE {id} IN (SELECT value FROM json_each(?))"),
            ))
            .bind::<Text, _>(super::json_ids(&targets)),
        )?
    };
    if found.len() < want / 4 {
        found = vectors_of(
            conn,
            spec,
            diesel::sql_query(select_rows(spec, &id, &format!("FROM {table} t ORDER BY {id} LIMIT ?")))
                .bind::<BigInt, _>(i64::try_from(want).unwrap_or(i64::MAX)),
        )?;
    }
    Ok(found)
}

/// The vectors the index holds among the rows of `query` (built by [`select_rows`]).
fn vectors_of<'q, Q>(conn: &mut SqliteConnection, spec: &IndexSpec, query: Q) -> Result<Vec<Vec<f32>>, IndexError>
where
    Q: diesel::query_dsl::LoadQuery<'q, SqliteConnection, SourceRow, DefaultLoadingMode>,
{
    let mut found = Vec::new();
    for_each_row(conn, spec, query, |_, v| {
        found.extend(v.map(<[f32]>::to_vec));
        Ok(())
    })?;
    Ok(found)
}

fn corrupt(e: AnnError) -> IndexError {
    IndexError::Codes(e)
}

/// Rows read from the table per query when building or syncing: the rows stream through one vector's
/// buffer, but a rebuild that keeps the contiguous copy holds a batch's vectors until its statement ends
/// (a few tens of MB at most).
const BATCH_ROWS: usize = 4096;

/// Hands the rows of `from` (a FROM clause with no WHERE) whose `key` is above `after` (`None`: from the
/// start), at most [`BATCH_ROWS`] in `key` order, each with `key` as its id, to `each` ([`for_each_row`]);
/// returns the last one's id. Each of the two texts is prepared once per connection.
fn each_row_after(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    key: &str,
    from: &str,
    after: Option<i64>,
    each: impl FnMut(&SourceRow, Option<&[f32]>) -> Result<(), IndexError>,
) -> Result<Option<i64>, IndexError> {
    let order = format!(" ORDER BY {key} LIMIT {BATCH_ROWS}");
    let query = match after {
        Some(after) => CachedSql::sql(select_rows(spec, key, &format!("{from} WHERE {key} > "))).bind_i64(after, order),
        None => CachedSql::sql(select_rows(spec, key, &format!("{from}{order}"))),
    };
    for_each_row(conn, spec, query.rows(), each)
}

/// Hands the table's rows with ids above `after` (`None`: from the start), at most [`BATCH_ROWS`], by id, to
/// `each` ([`for_each_row`]); returns the last one's id.
fn each_table_row(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    after: Option<i64>,
    each: impl FnMut(&SourceRow, Option<&[f32]>) -> Result<(), IndexError>,
) -> Result<Option<i64>, IndexError> {
    let from = format!("FROM {} t", quote(spec.table()));
    each_row_after(conn, spec, &format!("t.{}", quote(spec.id_column())), &from, after, each)
}

/// Builds the codes from the table and stores them (the tables dropped and made again): trained on a
/// sample, every valid row encoded, read in batches by id. Writes the contiguous copy of the vectors too
/// when the index keeps it. Returns the new copy for memory.
fn rebuild(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    generation: i64,
    vec0_stale: bool,
) -> Result<Cached, IndexError> {
    let sample = sample(conn, spec)?;
    let mut index = match Params::train(spec.metric(), spec.dims() as usize, sample.iter().map(Vec::as_slice)) {
        Ok(params) => Some(QuantizedIndex::new(params)),
        // No valid vector, or none whose arithmetic stays within `f32` to train on: nothing is coded, as for
        // an empty table.
        Err(AnnError::EmptySample) => None,
        Err(e) => return Err(corrupt(e)),
    };
    drop(sample);
    let codes = quote(&spec.codes_table());
    conn.batch_execute(&format!(
        "DROP TABLE IF EXISTS {codes}; \
         CREATE TABLE {codes} (chunk INTEGER PRIMARY KEY, generation INTEGER NOT NULL, data BLOB NOT NULL);"
    ))?;
    let mut copy = vectors::Writer::create(conn, spec, generation)?;
    if let Some(index) = &mut index {
        let dims = spec.dims() as usize;
        // The contiguous copy is written between batches (the statement reading the table is open while a
        // batch's rows arrive).
        let mut pending: Vec<f32> = Vec::new();
        let mut after = None;
        loop {
            let last = each_table_row(conn, spec, after, |row, v| {
                if let Some(v) = v {
                    index.insert(row.id, partition_key(&row.partitions), v).map_err(corrupt)?;
                    if copy.is_some() {
                        pending.extend_from_slice(v);
                    }
                }
                Ok(())
            })?;
            if let Some(copy) = &mut copy {
                // A fresh index fills its slots in order.
                let first = index.len() - pending.len() / dims.max(1);
                for (i, v) in pending.chunks_exact(dims.max(1)).enumerate() {
                    copy.push(conn, spec, first + i, v)?;
                }
                pending.clear();
            }
            let Some(last) = last else { break };
            after = Some(last);
        }
        index.take_dirty_slots();
    }
    if let Some(copy) = copy {
        copy.finish(conn, spec)?;
    }
    #[derive(QueryableByName)]
    struct Random {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }
    let build: Random = diesel::sql_query("SELECT random() AS value").get_result(conn)?;
    let mut record = Record {
        build: build.value as u64,
        layout: layout(spec),
        chunks: 0,
        rows: 0,
        trained: index.is_some(),
        vec0_stale,
    };
    if let Some(index) = &mut index {
        write_row(conn, spec, PARAMS_ROW, generation, &index.params().to_bytes())?;
        index.take_dirty();
        for n in 0..index.chunk_count() {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            if let Some(bytes) = index.chunk_bytes(n) {
                write_row(conn, spec, i64::from(n), generation, &bytes)?;
            }
        }
        record.chunks = u32::try_from(index.chunk_count()).unwrap_or(u32::MAX);
        record.rows = index.len() as u64;
    }
    write_row(conn, spec, RECORD_ROW, generation, &record.to_bytes())?;
    Ok(Cached { generation, record, index: index.map(Arc::new) })
}

fn write_row(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    chunk: i64,
    generation: i64,
    data: &[u8],
) -> QueryResult<()> {
    CachedSql::sql(format!("INSERT OR REPLACE INTO {} (chunk, generation, data) VALUES (", quote(&spec.codes_table())))
        .bind_i64(chunk, ", ")
        .bind_i64(generation, ", ")
        .bind_blob(data, ")")
        .rows()
        .execute(conn)?;
    Ok(())
}

/// The generations, or `None` when the codes table does not exist.
fn generations_if_stored(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<Option<Generations>> {
    match generations(conn, spec) {
        Ok(g) => Ok(Some(g)),
        Err(e) => {
            if conn.exists(&spec.codes_table())? {
                Err(e)
            } else {
                Ok(None)
            }
        }
    }
}

/// Makes `entry` hold the stored codes of `now` (loading what changed), or says why they cannot be used.
fn ensure_loaded(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    entry: &mut Entry,
    now: &Generations,
) -> Result<(), Unusable> {
    if now.codes_generation != Some(now.generation) {
        entry.cached = None;
        return Err(Unusable::Rebuild(match now.codes_generation {
            None => "no codes record".to_owned(),
            Some(g) => format!("codes of generation {g}, the index is at {}", now.generation),
        }));
    }
    if entry.cached.as_ref().is_some_and(|c| c.generation == now.generation) {
        return Ok(());
    }
    let previous = entry.cached.take();
    entry.cached = Some(load(conn, spec, previous, now.generation)?);
    Ok(())
}

/// The stored record, if the codes exist and their record loads.
fn stored_record(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<Option<Record>> {
    if !conn.exists(&spec.codes_table())? {
        return Ok(None);
    }
    let rows: Vec<StoredRow> =
        CachedSql::sql(format!("SELECT chunk, data FROM {} WHERE chunk = {RECORD_ROW}", quote(&spec.codes_table())))
            .rows()
            .load(conn)?;
    Ok(rows.first().and_then(|r| Record::from_bytes(&r.data).ok()))
}

/// The stored training parameters, if the codes exist and their parameters load.
pub(crate) fn stored_params(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<Option<Params>> {
    if !conn.exists(&spec.codes_table())? {
        return Ok(None);
    }
    let rows: Vec<StoredRow> =
        CachedSql::sql(format!("SELECT chunk, data FROM {} WHERE chunk = {PARAMS_ROW}", quote(&spec.codes_table())))
            .rows()
            .load(conn)?;
    Ok(rows.first().and_then(|r| Params::from_bytes(&r.data).ok()))
}

/// Whether the stored record says vec0 missed changes (false when there are no codes).
pub(crate) fn vec0_stale(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<bool> {
    Ok(stored_record(conn, spec)?.is_some_and(|r| r.vec0_stale))
}

/// Rows the stored record counts, if the codes exist and their record loads.
pub(crate) fn stored_rows(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<Option<u64>> {
    Ok(stored_record(conn, spec)?.map(|r| r.rows))
}

/// Whether the stored codes are those of the index's current generation (a sync leaves them so).
pub(crate) fn is_current(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<bool> {
    Ok(generations_if_stored(conn, spec)?.is_some_and(|g| g.codes_generation == Some(g.generation)))
}

/// The shared entry of `spec`'s index, for [`sync_in_transaction`] (lock it once the write lock is held).
pub(crate) fn shared_entry(conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<Shared> {
    entry(conn, spec)
}

/// Locks an entry for a sync.
pub(crate) fn lock(shared: &Shared) -> RwLockWriteGuard<'_, Entry> {
    write(shared)
}

/// Drops the copy in memory (the transaction that changed it did not commit).
pub(crate) fn forget(entry: &mut Entry) {
    entry.cached = None;
}

/// What a sync did to the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodesSync {
    /// Whether they were built from the table.
    pub(crate) rebuilt: bool,
    /// Rows indexed (after a rebuild) or queued changes applied.
    pub(crate) applied: u64,
}

/// What a sync has to bring into the codes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Due {
    /// Build them from the table whatever they look like (the state's flag, or damaged codes).
    pub(crate) rebuild: bool,
    /// The state's `indexed_through`: the rows above it were inserted since the last sync and are not
    /// queued. `None` for a state without it (every change is queued).
    pub(crate) appended_after: Option<i64>,
}

/// Brings the codes up to date inside the sync's immediate transaction: the queue and the rows above
/// `indexed_through` applied, or everything rebuilt when `due.rebuild`, when the stored codes do not check
/// out, or when the index outgrew its training sample; written with generation `next`, and `entry`
/// (locked by the caller until the transaction ends; the caller forgets it if the transaction fails)
/// updated to match. `vec0_stale` is the record's flag after this sync.
pub(crate) fn sync_in_transaction(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    entry: &mut Entry,
    due: Due,
    next: i64,
    vec0_stale: bool,
) -> Result<CodesSync, IndexError> {
    let reason = if due.rebuild {
        Some("the index is marked for rebuild".to_owned())
    } else {
        match generations_if_stored(conn, spec)? {
            None => Some("no codes stored yet".to_owned()),
            Some(now) => match ensure_loaded(conn, spec, entry, &now) {
                Ok(()) => None,
                Err(Unusable::Rebuild(reason)) => Some(reason),
                Err(Unusable::Query(e)) => return Err(e.into()),
            },
        }
    };
    if let Some(reason) = reason {
        return rebuild_into(conn, spec, entry, next, vec0_stale, &reason);
    }
    if entry.cached.as_ref().is_none_or(|c| c.index.is_none()) {
        // Nothing trained yet (the table had no valid vector): train once one arrives.
        let mut applied = 0u64;
        let arrived = std::cell::Cell::new(false);
        let loaded = entry.cached.is_some();
        let read_all = each_changed_row(
            conn,
            spec,
            due.appended_after,
            |_, v| {
                applied += 1;
                arrived.set(arrived.get() || v.is_some());
                Ok(())
            },
            // Stop at the first batch with a vector (or at once when nothing is loaded): everything is
            // rebuilt then.
            || loaded && !arrived.get(),
        )?;
        if !read_all || arrived.get() {
            return rebuild_into(conn, spec, entry, next, vec0_stale, "the first vectors arrived");
        }
        let Some(cached) = entry.cached.as_mut() else {
            return rebuild_into(conn, spec, entry, next, vec0_stale, "nothing loaded");
        };
        cached.record.vec0_stale = vec0_stale;
        write_row(conn, spec, RECORD_ROW, next, &cached.record.to_bytes())?;
        cached.generation = next;
        return Ok(CodesSync { rebuilt: false, applied });
    }
    let outcome = apply_queue(conn, spec, entry, due.appended_after, next, vec0_stale)?;
    match outcome {
        Ok(applied) => Ok(CodesSync { rebuilt: false, applied }),
        Err(reason) => rebuild_into(conn, spec, entry, next, vec0_stale, &reason),
    }
}

/// Applies the queue and the rows above `appended_after` to the loaded, trained codes and writes what
/// changed; `Err(reason)` when they should be rebuilt instead (the index outgrew its training, the copy of
/// the vectors does not check out).
fn apply_queue(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    entry: &mut Entry,
    appended_after: Option<i64>,
    next: i64,
    vec0_stale: bool,
) -> Result<Result<u64, String>, IndexError> {
    let Some(cached) = entry.cached.as_mut() else { return Ok(Err("nothing loaded".into())) };
    let Some(shared) = cached.index.as_mut() else { return Ok(Err("nothing trained".into())) };
    let index = Arc::make_mut(shared);
    let mut applied = 0u64;
    each_changed_row(
        conn,
        spec,
        appended_after,
        |row, v| {
            applied += 1;
            match v {
                Some(v) => index.insert(row.id, partition_key(&row.partitions), v).map_err(corrupt)?,
                None => {
                    index.remove(row.id);
                }
            }
            Ok(())
        },
        || true,
    )?;
    let trained = index.params().sample_rows();
    if trained < RETRAIN_BELOW && index.len() as u64 >= RETRAIN_GROWTH * trained.max(1) {
        // Measured again on a sample of the table; kept around the same centre when it still holds, so that
        // no row is read or encoded again.
        let sample = sample(conn, spec)?;
        let Ok(Some(params)) = index.params().recalibrated(sample.iter().map(Vec::as_slice)) else {
            return Ok(Err("the index outgrew its training sample, and its centre moved".into()));
        };
        drop(sample);
        index.recalibrate(params).map_err(corrupt)?;
        write_row(conn, spec, PARAMS_ROW, next, &index.params().to_bytes())?;
        tracing::debug!(
            target: "diesel_vector::index",
            index = spec.name(),
            trained,
            sample_rows = index.params().sample_rows(),
            "quantized codes recalibrated on a larger sample"
        );
    }
    for n in index.take_dirty() {
        if let Some(bytes) = index.chunk_bytes(n) {
            write_row(conn, spec, i64::from(n), next, &bytes)?;
        }
    }
    let slots = index.take_dirty_slots();
    if spec.sqlite_index().vectors {
        if let Err(reason) = vectors::rewrite(conn, spec, index, &slots, next)? {
            return Ok(Err(reason));
        }
    }
    cached.record.chunks = u32::try_from(index.chunk_count()).unwrap_or(u32::MAX);
    cached.record.rows = index.len() as u64;
    cached.record.vec0_stale = vec0_stale;
    write_row(conn, spec, RECORD_ROW, next, &cached.record.to_bytes())?;
    cached.generation = next;
    Ok(Ok(applied))
}

/// Hands every row changed since the last sync to `each` ([`for_each_row`]), a batch at a time: the queued
/// ids (a removed row has no vector), then the rows above `appended_after` (inserted since, not queued;
/// one queued since too is handed twice, its last state both times). `between` runs after each batch;
/// false stops the reading. Returns whether every row was read.
fn each_changed_row(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    appended_after: Option<i64>,
    mut each: impl FnMut(&SourceRow, Option<&[f32]>) -> Result<(), IndexError>,
    mut between: impl FnMut() -> bool,
) -> Result<bool, IndexError> {
    let mut after = None;
    while let Some(last) = each_queued_row(conn, spec, after, &mut each)? {
        if !between() {
            return Ok(false);
        }
        after = Some(last);
    }
    if let Some(mark) = appended_after {
        let mut after = Some(mark);
        while let Some(last) = each_table_row(conn, spec, after, &mut each)? {
            if !between() {
                return Ok(false);
            }
            after = Some(last);
        }
    }
    Ok(true)
}

/// Hands the queued ids above `after`, at most [`BATCH_ROWS`], each with its row (a removed row has no
/// vector), to `each` ([`for_each_row`]); returns the last id.
fn each_queued_row(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    after: Option<i64>,
    each: impl FnMut(&SourceRow, Option<&[f32]>) -> Result<(), IndexError>,
) -> Result<Option<i64>, IndexError> {
    let from = format!(
        "FROM {} q LEFT JOIN {} t ON t.{} = q.id",
        quote(&spec.queue_table()),
        quote(spec.table()),
        quote(spec.id_column())
    );
    each_row_after(conn, spec, "q.id", &from, after, each)
}

fn rebuild_into(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    entry: &mut Entry,
    next: i64,
    vec0_stale: bool,
    reason: &str,
) -> Result<CodesSync, IndexError> {
    entry.cached = None;
    let started = std::time::Instant::now();
    let cached = rebuild(conn, spec, next, vec0_stale)?;
    let rows = cached.record.rows;
    tracing::info!(
        target: "diesel_vector::index",
        index = spec.name(),
        reason,
        rows,
        chunks = cached.record.chunks,
        duration_ms = started.elapsed().as_secs_f64() * 1e3,
        "quantized codes rebuilt"
    );
    entry.cached = Some(cached);
    Ok(CodesSync { rebuilt: true, applied: rows })
}

/// The candidates' exact distances, from the caller: `fetch(conn, ids, sink)` calls `sink(id, distance)`
/// for each of `ids` that still exists and passes every filter.
pub(crate) type Fetch<'f, E> = dyn FnMut(&mut SqliteConnection, &[i64], &mut dyn FnMut(i64, f64)) -> Result<(), E> + 'f;

/// What a search of the codes came to.
#[derive(Debug)]
pub(crate) enum Searched {
    /// The codes answered.
    Found(SearchOutcome),
    /// The codes hold no trained rows (the table has no valid vector): nothing to answer from.
    Empty,
    /// Not built yet, marked for rebuild, or behind the state: sync the index, then ask again.
    NotCurrent,
    /// The stored codes do not load (damaged, truncated, inconsistent): rebuild them
    /// ([`super::index::rebuild_codes`]), then ask again.
    Damaged,
}

/// A search of the codes (see [`Searched`] for when they cannot answer).
///
/// The copy in memory is brought to the stored codes of the state's current generation first (a read
/// transaction). Changes still in the queue are not in the codes: the caller syncs first, or adds the
/// queued rows' exact distances itself.
pub(crate) fn search<E>(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    query: &[f32],
    k: usize,
    filter: &Filter<'_>,
    options: &SearchOptions,
    fetch: &mut Fetch<'_, E>,
) -> Result<Searched, E>
where
    E: From<AnnError> + From<diesel::result::Error>,
{
    if !spec.sqlite_keeps_codes() {
        return Ok(Searched::NotCurrent);
    }
    let shared = entry(conn, spec)?;
    for _ in 0..3 {
        let Some(now) = generations_if_stored(conn, spec)? else { return Ok(Searched::NotCurrent) };
        if now.needs_rebuild != 0 || now.codes_generation != Some(now.generation) {
            return Ok(Searched::NotCurrent);
        }
        {
            let guard = read(&shared);
            if let Some(cached) = guard.cached.as_ref().filter(|c| c.generation == now.generation) {
                let Some(index) = cached.index.as_deref() else { return Ok(Searched::Empty) };
                return index
                    .search_distances(query, k, filter, options, |ids, sink| fetch(conn, ids, sink))
                    .map(Searched::Found);
            }
        }
        let mut guard = write(&shared);
        let loaded = super::transaction::deferred::<_, diesel::result::Error>(conn, |conn| {
            let Some(now) = generations_if_stored(conn, spec)? else { return Ok(Ok(false)) };
            if now.needs_rebuild != 0 || now.codes_generation != Some(now.generation) {
                return Ok(Ok(false));
            }
            Ok(ensure_loaded(conn, spec, &mut guard, &now).map(|()| true))
        })?;
        match loaded {
            Ok(true) => continue,
            Ok(false) => return Ok(Searched::NotCurrent),
            Err(Unusable::Rebuild(reason)) => {
                tracing::warn!(
                    target: "diesel_vector::index",
                    index = spec.name(),
                    reason,
                    "the stored quantized codes do not load; they are rebuilt"
                );
                return Ok(Searched::Damaged);
            }
            Err(Unusable::Query(e)) => return Err(e.into()),
        }
    }
    // The generation moved on three times while loading: another process writes fast.
    Ok(Searched::NotCurrent)
}
