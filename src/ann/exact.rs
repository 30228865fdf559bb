//! The exact path: every row's distance, from vectors laid out contiguously, top `k` by `(distance, id)`.

use std::borrow::Cow;

use super::{exact_distance, AnnError, Metric, Neighbour, TopK};
use crate::simd::Simd;

/// The exact top `k` over vectors given in contiguous chunks, which the caller may read one at a time
/// (from a file, a memory map, a BLOB) without holding them all.
///
/// Distances are computed like the crate's SQL functions (the same sums in the same order, with SIMD), so
/// the result equals an exact scan in SQL; ties are broken by id and NaN distances (cosine with a zero
/// vector) come last.
///
/// ```
/// use diesel_vector::ann::{ExactScan, Metric};
///
/// let mut scan = ExactScan::new(Metric::L2, &[0.0, 0.0], 2)?;
/// scan.push(&[7, 8], &[3.0, 4.0, 1.0, 0.0])?; // row 7 = [3, 4], row 8 = [1, 0]
/// scan.push(&[9], &[0.0, 2.0])?;
/// let ids: Vec<i64> = scan.finish().iter().map(|n| n.id).collect();
/// assert_eq!(ids, [8, 9]);
/// # Ok::<(), diesel_vector::ann::AnnError>(())
/// ```
#[derive(Debug)]
pub struct ExactScan<'q> {
    simd: Simd,
    metric: Metric,
    query: Cow<'q, [f32]>,
    query_norm_sq: f32,
    top: TopK,
    rows: usize,
}

impl<'q> ExactScan<'q> {
    /// A scan for the `k` rows nearest to `query` (non-empty and finite) by `metric`.
    ///
    /// Errors: [`AnnError::UnsupportedMetric`] for a bit metric, [`AnnError::DimensionMismatch`] for an empty
    /// query, [`AnnError::NotFinite`].
    pub fn new(metric: Metric, query: &'q [f32], k: usize) -> Result<ExactScan<'q>, AnnError> {
        Self::with_query(metric, Cow::Borrowed(query), k)
    }

    /// [`ExactScan::new`] with a query of its own (a scan that outlives the query's owner).
    pub fn owned(metric: Metric, query: Vec<f32>, k: usize) -> Result<ExactScan<'static>, AnnError> {
        ExactScan::with_query(metric, Cow::Owned(query), k)
    }

    fn with_query(metric: Metric, query: Cow<'q, [f32]>, k: usize) -> Result<ExactScan<'q>, AnnError> {
        if !super::supports(metric) {
            return Err(AnnError::UnsupportedMetric { metric });
        }
        if query.is_empty() {
            return Err(AnnError::DimensionMismatch { expected: 1, found: 0 });
        }
        if let Some(index) = query.iter().position(|x| !x.is_finite()) {
            return Err(AnnError::NotFinite { index });
        }
        let simd = Simd::detect();
        Ok(ExactScan { simd, metric, query_norm_sq: simd.norm_squared(&query), query, top: TopK::new(k), rows: 0 })
    }

    /// Uses the kernels of `simd` (tests and benchmarks force a level this way).
    pub fn with_simd(mut self, simd: Simd) -> ExactScan<'q> {
        self.simd = simd;
        self.query_norm_sq = simd.norm_squared(&self.query);
        self
    }

    /// Scans one chunk: `vectors` holds `ids.len()` vectors of the query's dimensions, one after the other.
    /// A chunk of another length is an [`AnnError::DimensionMismatch`] and nothing of it is used.
    pub fn push(&mut self, ids: &[i64], vectors: &[f32]) -> Result<(), AnnError> {
        let dims = self.query.len();
        if Some(vectors.len()) != ids.len().checked_mul(dims) {
            let found = if ids.is_empty() { vectors.len() } else { vectors.len() / ids.len() };
            return Err(AnnError::DimensionMismatch { expected: dims, found });
        }
        if self.top.k() == 0 {
            self.rows += ids.len();
            return Ok(());
        }
        for (id, row) in ids.iter().zip(vectors.chunks_exact(dims)) {
            self.top.offer(Neighbour {
                id: *id,
                distance: exact_distance(self.simd, self.metric, &self.query, self.query_norm_sq, row),
            });
        }
        self.rows += ids.len();
        Ok(())
    }

    /// Scans one row, and keeps it only if its distance is a finite number: a row with NaN or infinite
    /// elements, or a zero vector under cosine, has none. Returns whether it was kept (considered; it may
    /// not be among the `k` nearest). The row must have the query's dimensions (checked in debug builds
    /// only: callers check lengths before).
    pub fn push_if_finite(&mut self, id: i64, row: &[f32]) -> bool {
        debug_assert_eq!(row.len(), self.query.len());
        self.rows += 1;
        let distance = exact_distance(self.simd, self.metric, &self.query, self.query_norm_sq, row);
        if !distance.is_finite() {
            return false;
        }
        self.top.offer(Neighbour { id, distance });
        true
    }

    /// Rows scanned so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The `k` nearest rows (fewer if fewer were scanned), nearest first.
    pub fn finish(self) -> Vec<Neighbour> {
        self.top.into_sorted()
    }
}
