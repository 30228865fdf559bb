//! The exact path on SQLite: every matching row's distance, computed in Rust with the SIMD kernels on the
//! vectors where SQLite holds them (no copy per row, no SQL function call per row), top `k` by
//! `(distance, id)`. Used for exact searches, and wherever the quantized codes cannot answer.
//!
//! Reading 100k rows of 1536 dimensions means walking some 200k pages of the table (each row's vector
//! spills into overflow pages). Through SQLite's ordinary reads that costs a system call per page; with
//! memory-mapped reads, which [`super::ConnectionOptions`] turns on by default, it is a memory read
//! (BENCHMARKS.md, "SQLite index", measures both). Vectors are not copied into process memory: the scan
//! holds one row at a time and the `k` best.
//!
//! Rows whose stored value is not a vector of the query's dimensions with finite elements are skipped, as
//! they are by the index; under cosine a zero vector has no distance and is skipped too.

use std::cell::RefCell;

use diesel::connection::DefaultLoadingMode;
use diesel::deserialize::{self, QueryableByName};
use diesel::prelude::*;
use diesel::query_dsl::methods::LoadQuery;
use diesel::row::{Field, NamedRow, Row};
use diesel::sql_types::BigInt;
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

use crate::ann::{AnnError, ExactScan, Metric, Neighbour, TopK};

thread_local! {
    /// The scan in progress on this thread: rows hand their vectors to it as SQLite reads them.
    static SCAN: RefCell<Option<Scanning>> = const { RefCell::new(None) };
}

/// How a column stores its vectors' elements in a BLOB: what the scans read and convert to `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// `vector`: little-endian `f32`.
    F32,
    /// `halfvec`: little-endian `f16`, converted exactly.
    F16,
}

impl Stored {
    /// The format of `element`'s BLOBs, for the element types the crate's kernels read.
    pub(crate) fn of(element: crate::index::Element) -> Option<Stored> {
        match element {
            crate::index::Element::Vector => Some(Stored::F32),
            crate::index::Element::HalfVector => Some(Stored::F16),
            _ => None,
        }
    }

    /// The length of a BLOB of `dims` elements.
    pub(crate) fn bytes(self, dims: usize) -> usize {
        match self {
            Stored::F32 => 4 * dims,
            Stored::F16 => 2 * dims,
        }
    }

    /// Appends the elements of `bytes` (a BLOB of this format) to `out` as `f32`; false, with `out` as it
    /// was, when one is NaN or infinite.
    pub(crate) fn extend_f32(self, bytes: &[u8], out: &mut Vec<f32>) -> bool {
        let start = out.len();
        let ok = match self {
            Stored::F32 => match bytemuck::try_cast_slice::<u8, [u8; 4]>(bytes) {
                Ok(words) => crate::simd::Simd::detect().extend_f32(words, cfg!(target_endian = "big"), out),
                Err(_) => false,
            },
            Stored::F16 => {
                out.resize(start + bytes.len() / 2, 0.0);
                f16_into(bytes, &mut out[start..]) && crate::vector::all_finite(&out[start..])
            }
        };
        if !ok {
            out.truncate(start);
        }
        ok
    }
}

/// Converts the little-endian `f16` words of `bytes` into `out` (of half their length), exactly: one
/// branchless conversion per element over two slices of the same length, which the compiler vectorises
/// (converting through `extend` and an iterator of chunks took nearly twice as long for a whole exact
/// scan). False, with `out` untouched, when `bytes` is not `out`'s length in whole words.
fn f16_into(bytes: &[u8], out: &mut [f32]) -> bool {
    let Ok(words) = bytemuck::try_cast_slice::<u8, [u8; 2]>(bytes) else { return false };
    if words.len() != out.len() {
        return false;
    }
    for (o, w) in out.iter_mut().zip(words) {
        *o = super::functions::f16_to_f32(*w);
    }
    true
}

/// What an exact scan compares each row with.
#[derive(Debug, Clone)]
pub(crate) enum ScanQuery<'a> {
    /// A `vector` or `halfvec` column: the query as `f32`, and how the column stores its elements (cosine,
    /// L2, L1 or the inner product).
    Floats(std::borrow::Cow<'a, [f32]>, Stored),
    /// A `bit` or `sparsevec` column: the query's BLOB as SQLite stores the type, and the kernel of the
    /// crate's SQL function for the metric ([`super::functions::blob_kernel`]), so that the distances are
    /// the function's.
    Encoded(std::borrow::Cow<'a, [u8]>, super::functions::BlobKernel),
}

#[derive(Debug)]
enum Scorer {
    Floats {
        scan: ExactScan<'static>,
        stored: Stored,
        dims: usize,
        /// For vectors SQLite holds at an address not aligned for `f32`, or in `f16`.
        scratch: Vec<f32>,
    },
    Encoded {
        query: Vec<u8>,
        kernel: super::functions::BlobKernel,
        top: TopK,
    },
}

#[derive(Debug)]
struct Scanning {
    scorer: Scorer,
    skipped: u64,
}

impl Scanning {
    /// Scores one row's BLOB; false when it is not a value of the query's shape with a finite distance.
    fn push(&mut self, id: i64, bytes: &[u8]) -> bool {
        match &mut self.scorer {
            Scorer::Floats { scan, stored, dims, scratch } => {
                if bytes.len() != stored.bytes(*dims) {
                    return false;
                }
                let vector: &[f32] = match stored {
                    Stored::F16 => {
                        scratch.resize(*dims, 0.0);
                        if !f16_into(bytes, scratch) {
                            return false;
                        }
                        scratch
                    }
                    Stored::F32 => match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                        Ok(v) if cfg!(target_endian = "little") => v,
                        _ => {
                            scratch.clear();
                            scratch.extend(bytes.chunks_exact(4).map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])));
                            scratch
                        }
                    },
                };
                // NaN or infinite elements, or a zero vector under cosine, give no finite distance.
                scan.push_if_finite(id, vector)
            }
            Scorer::Encoded { query, kernel, top } => {
                let Some(distance) = kernel(bytes, query) else { return false };
                top.offer(Neighbour { id, distance });
                true
            }
        }
    }

    fn finish(self) -> Vec<Neighbour> {
        match self.scorer {
            Scorer::Floats { scan, .. } => scan.finish(),
            Scorer::Encoded { top, .. } => top.into_sorted(),
        }
    }
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
            if !s.push(id, bytes) {
                s.skipped += 1;
            }
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

/// What the scan found: the `k` nearest, and how many rows it read and skipped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exact {
    pub(crate) neighbours: Vec<Neighbour>,
    pub(crate) rows: u64,
    pub(crate) skipped: u64,
}

/// The `k` rows nearest to `query` by `metric` among those `rows` selects (a query whose column 0 is the
/// id and column 1 the vector BLOB, filters applied), nearest first, ties by id.
pub(crate) fn top_k<'q, Q>(
    conn: &mut SqliteConnection,
    rows: Q,
    query: &ScanQuery<'_>,
    metric: Metric,
    k: usize,
) -> Result<Exact, ExactError>
where
    Q: RunQueryDsl<SqliteConnection> + LoadQuery<'q, SqliteConnection, Scored, DefaultLoadingMode> + 'q,
{
    let scorer = match query {
        ScanQuery::Floats(values, stored) => Scorer::Floats {
            scan: ExactScan::owned(metric, values.to_vec(), k)?,
            stored: *stored,
            dims: values.len(),
            scratch: Vec::new(),
        },
        ScanQuery::Encoded(bytes, kernel) => {
            Scorer::Encoded { query: bytes.to_vec(), kernel: *kernel, top: TopK::new(k) }
        }
    };
    let state = Scanning { scorer, skipped: 0 };
    let outer = SCAN.with(|s| s.borrow_mut().replace(state));
    let mut read = 0u64;
    let result = (|| -> Result<(), ExactError> {
        for row in rows.load_iter::<Scored, DefaultLoadingMode>(conn)? {
            row?;
            read += 1;
        }
        Ok(())
    })();
    let state = SCAN.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    result?;
    let state = state.ok_or_else(|| ExactError::Query(diesel::result::Error::NotFound))?;
    let skipped = state.skipped;
    Ok(Exact { rows: read, skipped, neighbours: state.finish() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn halves(values: &[f16]) -> Vec<u8> {
        values.iter().flat_map(|h| h.to_bits().to_le_bytes()).collect()
    }

    #[test]
    fn f16_blobs_read_as_the_f32_they_convert_to_or_not_at_all() {
        // Every finite f16, subnormals and both zeros included, converts exactly.
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).filter(|h| h.is_finite()).collect();
        let mut out = vec![7.0];
        assert!(Stored::F16.extend_f32(&halves(&all), &mut out));
        assert_eq!(out.len(), 1 + all.len());
        for (h, x) in all.iter().zip(&out[1..]) {
            assert_eq!(x.to_bits(), h.to_f32().to_bits(), "{h:?}");
        }
        // An infinity or a NaN, an odd length: false, and what was there stays.
        for bad in [halves(&[f16::ONE, f16::INFINITY]), halves(&[f16::NAN, f16::ONE]), vec![0, 60, 0]] {
            let mut out = vec![7.0];
            assert!(!Stored::F16.extend_f32(&bad, &mut out), "{bad:?}");
            assert_eq!(out, [7.0]);
        }
        let mut out = vec![0.0; 2];
        assert!(!f16_into(&halves(&[f16::ONE]), &mut out), "a BLOB of another length");
        assert_eq!((Stored::F16.bytes(384), Stored::F32.bytes(384)), (768, 1536));
        let mut out = Vec::new();
        assert!(Stored::F32.extend_f32(&1.5f32.to_le_bytes(), &mut out));
        assert_eq!(out, [1.5]);
        assert!(!Stored::F32.extend_f32(&[0, 0, 0], &mut out), "not whole f32 words");
        assert_eq!(out, [1.5]);
    }

    /// `IndexSpec::sqlite_keeps_codes` (backend-neutral) names the element types whose BLOBs `Stored` reads:
    /// the two lists must not drift apart.
    #[test]
    fn the_types_that_keep_codes_are_the_types_the_scans_read_as_floats() {
        use crate::index::{Element, IndexSpec, SqliteIndex};
        for element in [Element::Vector, Element::HalfVector, Element::Bit, Element::SparseVector] {
            let metric = if element == Element::Bit { Metric::Hamming } else { Metric::Cosine };
            let spec =
                IndexSpec::builder("t", "v", 64).element(element).metric(metric).sqlite_index(SqliteIndex::CODES);
            // Declaring codes on another type is refused.
            assert_eq!(spec.build().map(|s| s.sqlite_keeps_codes()).unwrap_or(false), Stored::of(element).is_some());
        }
    }
}
