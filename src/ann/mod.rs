//! Nearest-neighbour search in memory, with no database: a quantized index over binary codes, and the exact
//! scan over contiguous `f32` vectors. The SQLite integration keeps a [`QuantizedIndex`] per indexed column
//! in memory, stores its [`Params`] and chunks of codes as BLOBs, and hands [`QuantizedIndex::search`] a
//! callback that reads candidate vectors by row id.
//!
//! # How a search works
//!
//! 1. **Training** ([`Params::train`]) takes a sample of the vectors and computes their centre (mean; of the
//!    normalised vectors for cosine), then measures on the sample how far the code-based estimate of a
//!    distance can be from the exact one (the error bound stage 3 relies on).
//! 2. **Codes.** Each vector becomes one bit per dimension, the sign of `x - centre` (192 bytes at 1536
//!    dimensions), plus three `f32` that turn code arithmetic into distance estimates (the RaBitQ estimator:
//!    `<x - c, q - c> ≈ ‖x - c‖² / Σ|x_i - c_i| · Σ_i sign_i · (q_i - c_i)`). Codes live in chunks of
//!    [`CHUNK_ROWS`] rows with their row ids and partition keys.
//! 3. **Search** ([`QuantizedIndex::search`]): the query's sign code is compared with every code that passes
//!    the [`Filter`] by Hamming distance (SIMD, [`crate::simd`]). From 512 dimensions up this takes two
//!    passes: the first third of every code (kept contiguous, a third of the bytes to read) first, then the
//!    rest of the code for the rows nearest by that prefix only (twice as many as are rescored,
//!    [`SearchOptions::first_pass_keep`]; when those are at most an eighth of the rows passing and at most
//!    2^18 rows pass); the others are compared whole only if the search widens (below).
//!    The nearest 1% by whole Hamming distance (1000 to 2000 for `k` = 10)
//!    are rescored with the query quantised to 4 bits per dimension (bit-plane sums, a far better estimate); candidates are then
//!    fetched in order of their estimate and their exact distances computed, until the `k`-th exact distance
//!    is below the lowest distance any unfetched candidate's estimate allows (its lower bound), or a cap is
//!    reached. If the outermost rescored rows by Hamming distance could still belong to the top `k` (the
//!    Hamming distance does not part near rows from far ones, as when a filter leaves only rows far from the
//!    query), the next rows by Hamming distance are rescored and the search goes on. Exact distances are
//!    computed like the crate's SQL functions, so results and their order match the exact scan.
//! 4. **Exact path** ([`ExactScan`]): every vector's distance, from contiguous chunks that the caller may
//!    stream from a file, top-`k` by `(distance, id)`.
//!
//! Filters are applied during the Hamming scan: a row that does not pass never becomes a candidate, so `k`
//! passing rows always give `k` results.
//!
//! ```
//! use diesel_vector::ann::{Filter, Metric, Params, QuantizedIndex, SearchOptions};
//!
//! // Three stored rows; a real index is trained on a sample of thousands.
//! let rows: Vec<(i64, Vec<f32>)> = vec![(1, vec![1.0, 0.0, 0.2]), (2, vec![0.0, 1.0, 0.1]), (3, vec![0.7, 0.7, 0.0])];
//! let params = Params::train(Metric::Cosine, 3, rows.iter().map(|(_, v)| v.as_slice()))?;
//! let mut index = QuantizedIndex::new(params);
//! for (id, v) in &rows {
//!     index.insert(*id, 0, v)?;
//! }
//! // The callback fetches candidates' vectors by id (from SQLite in the real thing).
//! let found = index.search(&[0.9, 0.1, 0.2], 2, &Filter::all(), &SearchOptions::default(), |ids, sink| {
//!     for id in ids {
//!         if let Some((_, v)) = rows.iter().find(|(r, _)| r == id) {
//!             sink(*id, v);
//!         }
//!     }
//!     Ok::<(), diesel_vector::ann::AnnError>(())
//! })?;
//! assert_eq!(found.neighbours.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 3]);
//! # Ok::<(), diesel_vector::ann::AnnError>(())
//! ```

use std::cmp::Ordering;

pub(crate) mod bytes;
mod error;
mod exact;
mod index;
mod params;
mod search;

pub use error::AnnError;
pub use exact::ExactScan;
pub use index::{QuantizedIndex, CHUNK_ROWS};
pub use params::Params;
pub use search::{Filter, Partition, SearchOptions, SearchOutcome, SearchStats};

/// The metric of an index: the crate's one [`crate::index::Metric`]. The engine computes [`Metric::Cosine`],
/// [`Metric::L2`], [`Metric::L1`] and [`Metric::InnerProduct`] over `f32` vectors, each like the crate's SQL
/// function of the same metric; the bit metrics are refused with [`AnnError::UnsupportedMetric`].
pub use crate::index::Metric;

/// The metric's code in the stored parameters, or `None` for a metric the engine does not compute.
fn metric_code(metric: Metric) -> Option<u8> {
    match metric {
        Metric::Cosine => Some(1),
        Metric::L2 => Some(2),
        Metric::L1 => Some(3),
        Metric::InnerProduct => Some(4),
        _ => None,
    }
}

fn metric_from_code(code: u8) -> Option<Metric> {
    Metric::ALL.into_iter().find(|m| metric_code(*m) == Some(code))
}

/// Whether the engine computes `metric` (over `f32` vectors).
pub fn supports(metric: Metric) -> bool {
    metric_code(metric).is_some()
}

/// One result: a row id and its exact distance to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// The row id.
    pub id: i64,
    /// The exact distance, as the SQL function of the metric computes it (NaN for a cosine distance to a
    /// zero vector).
    pub distance: f64,
}

impl Neighbour {
    /// The result order: by distance, NaN last, then by id.
    pub fn order(&self, other: &Neighbour) -> Ordering {
        self.distance
            .is_nan()
            .cmp(&other.distance.is_nan())
            .then(self.distance.total_cmp(&other.distance))
            .then(self.id.cmp(&other.id))
    }
}

/// An exact result in a top-`k` heap: the largest (farthest) on top.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ranked(pub(crate) Neighbour);

/// The `k` nearest of the neighbours offered, in [`Neighbour::order`].
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    /// The `k` best so far, the worst on top.
    heap: std::collections::BinaryHeap<Ranked>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> TopK {
        TopK { k, heap: std::collections::BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)) }
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Keeps `candidate` if it is among the `k` nearest so far.
    pub(crate) fn offer(&mut self, candidate: Neighbour) {
        if self.heap.len() < self.k {
            self.heap.push(Ranked(candidate));
        } else if self.heap.peek().is_some_and(|worst| candidate.order(&worst.0).is_lt()) {
            self.heap.pop();
            self.heap.push(Ranked(candidate));
        }
    }

    /// The neighbours kept, nearest first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbour> {
        let mut out: Vec<Neighbour> = self.heap.into_iter().map(|r| r.0).collect();
        out.sort_by(Neighbour::order);
        out
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.order(&other.0)
    }
}

/// The exact distance between `query` and `row`, computed like the crate's SQL functions
/// (`src/sqlite/functions/kernels.rs`): the same partial sums in the same order, the same rounding.
/// `query_norm_sq` is `simd.norm_squared(query)` (used by cosine only).
#[inline]
pub(crate) fn exact_distance(
    simd: crate::simd::Simd,
    metric: Metric,
    query: &[f32],
    query_norm_sq: f32,
    row: &[f32],
) -> f64 {
    match metric {
        Metric::Cosine => {
            let (dot, row_norm_sq) = simd.dot_and_norm(query, row);
            // Clamped like the SQL function (and pgvector): `f32` sums can leave [-1, 1]; NaN stays NaN.
            let similarity = f64::from(dot) / (f64::from(query_norm_sq).sqrt() * f64::from(row_norm_sq).sqrt());
            round_f32(1.0 - similarity.clamp(-1.0, 1.0))
        }
        Metric::L2 => round_f32(f64::from(simd.l2_squared(query, row)).sqrt()),
        Metric::L1 => simd.l1(query, row),
        Metric::InnerProduct => -f64::from(simd.dot(query, row)),
        // Refused by `Params::train` and `ExactScan::new`: no index or scan of another metric exists.
        _ => f64::NAN,
    }
}

/// Rounds to `f32` and back, as sqlite-vec does by returning `f32` from its L2 and cosine kernels.
#[inline]
#[allow(clippy::cast_possible_truncation)] // the rounding is the point
fn round_f32(x: f64) -> f64 {
    f64::from(x as f32)
}

#[cfg(test)]
mod tests;
