//! The exact path on SQLite: every matching row's distance, computed in Rust with the SIMD kernels on the
//! vectors where SQLite holds them (no copy per row, no SQL function call per row), top `k` by
//! `(distance, id)`. Used for exact searches, and wherever the quantized codes cannot answer.
//!
//! Reading 100k rows of 1536 dimensions means walking some 300k pages of the table (each row's vector
//! spills into overflow pages). Through SQLite's ordinary reads that costs a system call per page; with
//! memory-mapped I/O it is a memory read. So the scan raises the connection's `PRAGMA mmap_size` to cover
//! the database file for its duration, when it was lower, and puts it back afterwards (BENCHMARKS.md,
//! "Exact path", measures both). Vectors are not copied into process memory: the scan holds one row at a
//! time and the `k` best.
//!
//! Rows whose stored value is not a vector of the query's dimensions with finite elements are skipped, as
//! they are by the index; under cosine a zero vector has no distance and is skipped too.

use std::cell::RefCell;

use diesel::connection::{DefaultLoadingMode, SimpleConnection};
use diesel::deserialize::{self, QueryableByName};
use diesel::prelude::*;
use diesel::query_dsl::methods::LoadQuery;
use diesel::row::{Field, NamedRow, Row};
use diesel::sql_types::BigInt;
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

use crate::ann::{AnnError, ExactScan, Metric, Neighbour};

/// Upper end of the memory map the scan asks for (SQLite caps it at its compile-time limit, 2 GB by
/// default on 64-bit Linux; the rest of a larger file is read as usual).
const MMAP_BYTES: i64 = 1 << 40;

thread_local! {
    /// The scan in progress on this thread: rows hand their vectors to it as SQLite reads them.
    static SCAN: RefCell<Option<Scanning>> = const { RefCell::new(None) };
}

#[derive(Debug)]
struct Scanning {
    scan: ExactScan<'static>,
    dims: usize,
    cosine: bool,
    /// For vectors SQLite holds at an address not aligned for `f32`.
    scratch: Vec<f32>,
    skipped: u64,
}

/// A row as the scan reads it: column 0 the id, column 1 the vector. Building it scores the vector.
#[derive(Debug)]
pub(crate) struct Scored;

impl QueryableByName<Sqlite> for Scored {
    fn build<'a>(row: &impl NamedRow<'a, Sqlite>) -> deserialize::Result<Self> {
        let id = Row::get_value::<BigInt, i64, usize>(row, 0)?;
        let field = Row::get(row, 1usize).ok_or_else(|| Box::new(diesel::result::UnexpectedEndOfRow))?;
        let Some(mut value) = field.value() else {
            return SCAN.with(|s| {
                if let Some(s) = s.borrow_mut().as_mut() {
                    s.skipped += 1;
                }
                Ok(Scored)
            });
        };
        let is_blob = value.value_type() == Some(diesel::sqlite::SqliteType::Binary);
        let bytes = if is_blob { value.read_blob() } else { &[] };
        SCAN.with(|s| {
            let mut guard = s.borrow_mut();
            let Some(s) = guard.as_mut() else { return Err("no exact scan in progress on this thread".into()) };
            if bytes.len() != 4 * s.dims {
                s.skipped += 1;
                return Ok(Scored);
            }
            let vector: &[f32] = match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                Ok(v) if cfg!(target_endian = "little") => v,
                _ => {
                    s.scratch.clear();
                    s.scratch.extend(bytes.chunks_exact(4).map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])));
                    &s.scratch
                }
            };
            if !vector.iter().all(|x| x.is_finite()) || (s.cosine && vector.iter().all(|x| *x == 0.0)) {
                s.skipped += 1;
                return Ok(Scored);
            }
            // The dimensions were checked just above.
            s.scan.push(&[id], vector).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Scored)
        })
    }
}

/// Why the exact scan failed.
#[derive(Debug)]
pub(crate) enum ExactError {
    Query(diesel::result::Error),
    Ann(AnnError),
}

impl From<diesel::result::Error> for ExactError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

impl From<AnnError> for ExactError {
    fn from(e: AnnError) -> Self {
        Self::Ann(e)
    }
}

#[derive(QueryableByName)]
struct MmapSize {
    #[diesel(sql_type = BigInt)]
    mmap_size: i64,
}

/// What the scan found: the `k` nearest, and how many rows it read and skipped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exact {
    pub(crate) neighbours: Vec<Neighbour>,
    pub(crate) rows: u64,
    pub(crate) skipped: u64,
}

/// Runs `f` with the connection's memory map raised to cover the database file (when it was lower), and
/// puts it back afterwards.
pub(crate) fn with_mmap<T, E: From<diesel::result::Error>>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<T, E>,
) -> Result<T, E> {
    // No row for a database without a file (in memory): nothing to map.
    let previous: Option<MmapSize> = diesel::sql_query("PRAGMA mmap_size").get_result(conn).optional()?;
    let raise = previous.as_ref().is_some_and(|p| p.mmap_size < MMAP_BYTES);
    if raise {
        conn.batch_execute(&format!("PRAGMA mmap_size = {MMAP_BYTES}"))?;
    }
    let result = f(conn);
    if let (true, Some(previous)) = (raise, previous) {
        conn.batch_execute(&format!("PRAGMA mmap_size = {}", previous.mmap_size.max(0)))?;
    }
    result
}

/// The `k` rows nearest to `query` by `metric` among those `rows` selects (a query whose column 0 is the
/// id and column 1 the vector BLOB, filters applied), nearest first, ties by id.
pub(crate) fn top_k<'q, Q>(
    conn: &mut SqliteConnection,
    rows: Q,
    query: &[f32],
    metric: Metric,
    k: usize,
) -> Result<Exact, ExactError>
where
    Q: RunQueryDsl<SqliteConnection> + LoadQuery<'q, SqliteConnection, Scored, DefaultLoadingMode> + 'q,
{
    let scan = ExactScan::owned(metric, query.to_vec(), k)?;
    let state = Scanning { scan, dims: query.len(), cosine: metric == Metric::Cosine, scratch: Vec::new(), skipped: 0 };
    let outer = SCAN.with(|s| s.borrow_mut().replace(state));
    let mut read = 0u64;
    let result = with_mmap(conn, |conn| -> Result<(), ExactError> {
        for row in rows.load_iter::<Scored, DefaultLoadingMode>(conn)? {
            row?;
            read += 1;
        }
        Ok(())
    });
    let state = SCAN.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    result?;
    let state = state.ok_or_else(|| ExactError::Query(diesel::result::Error::NotFound))?;
    Ok(Exact { rows: read, skipped: state.skipped, neighbours: state.scan.finish() })
}
