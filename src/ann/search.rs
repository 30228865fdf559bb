//! The search: Hamming scan with the filter, rescoring with the 4-bit query, then exact reranking until
//! the error bound proves no unfetched candidate can enter the top `k`.

use std::cell::RefCell;
use std::collections::BinaryHeap;

use super::index::{QuantizedIndex, CHUNK_ROWS};
use super::params::Query;
use super::{exact_distance, AnnError, Neighbour, Ranked};
use crate::simd::Level;

/// Which rows a search may return. Applied during the scan, so `k` passing rows always give `k` results.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// Only rows whose partition key equals this one.
    pub partition: Option<u64>,
    /// Only these row ids (any other condition the caller evaluated, e.g. in SQL). Ids the index does not
    /// hold are ignored.
    pub allow: Option<&'a [i64]>,
}

impl<'a> Filter<'a> {
    /// Every row.
    pub fn all() -> Filter<'static> {
        Filter { partition: None, allow: None }
    }

    /// Rows of one partition.
    pub fn partition(key: u64) -> Filter<'static> {
        Filter { partition: Some(key), allow: None }
    }

    /// Rows whose id is in `ids`.
    pub fn allow(ids: &'a [i64]) -> Filter<'a> {
        Filter { partition: None, allow: Some(ids) }
    }
}

/// How much work a search may do. The defaults were chosen by measurement (BENCHMARKS.md, "Quantized
/// index engine"): reranking 200 candidates reached recall@10 1.000 on both of its generators at 100k rows
/// (the clustered one needs that many: its near-ties fill a subtopic of 200 rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOptions {
    /// Rows kept by the Hamming scan for rescoring: `max(rescore_min, rescore_per_k * k)`.
    pub rescore_min: usize,
    /// See `rescore_min`.
    pub rescore_per_k: usize,
    /// Most candidates whose exact distance is computed (fetched): the search stops earlier when the error
    /// bound proves the top `k` complete.
    pub max_rerank: usize,
    /// Candidates fetched in the first call to the callback (at least `k`); each later call fetches half as
    /// many again as were fetched so far (at least `k`).
    pub first_fetch: usize,
    /// Multiplies the calibrated error bound: below 1 stops earlier (faster, lower recall), above 1 later.
    pub bound_scale: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { rescore_min: 2000, rescore_per_k: 100, max_rerank: 200, first_fetch: 20, bound_scale: 1.0 }
    }
}

/// What a search found, and what it did to find it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOutcome {
    /// At most `k` rows, nearest first (by distance, NaN last, then id).
    pub neighbours: Vec<Neighbour>,
    /// Counters for telemetry.
    pub stats: SearchStats,
}

/// Counters of one search, for its tracing span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchStats {
    /// Rows in the index.
    pub rows: usize,
    /// Rows that passed the filter (and were compared by Hamming distance).
    pub passed: usize,
    /// Rows rescored with the 4-bit query.
    pub rescored: usize,
    /// Candidates whose vectors were asked for.
    pub fetched: usize,
    /// Of those, the vectors the callback returned (rows deleted meanwhile are missing).
    pub returned: usize,
    /// Calls to the callback.
    pub fetch_calls: usize,
    /// Whether the error bound proved the top `k` complete (otherwise `max_rerank` or the candidates ran out).
    pub bounded: bool,
    /// The SIMD level of the scan.
    pub level: Level,
}

/// A rescored candidate.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    estimate: f64,
    lower: f64,
    id: i64,
}

thread_local! {
    /// The Hamming scan's output, one `u16` per row slot: kept between searches so that a query does not
    /// allocate (and fault in) a fresh buffer of a few hundred KB.
    static DISTANCES: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

impl QuantizedIndex {
    /// The `k` rows nearest to `query` among those `filter` passes, by exact distance.
    ///
    /// `fetch(ids, sink)` must call `sink(id, vector)` for each of `ids` it finds (rows deleted since they
    /// were indexed may simply be skipped); the distances are computed from those vectors like the crate's
    /// SQL functions, so they match an exact scan. A vector with other dimensions is an error.
    ///
    /// Errors: [`AnnError::DimensionMismatch`] or [`AnnError::NotFinite`] for the query,
    /// [`AnnError::ZeroQuery`] for a zero query under cosine, or whatever `fetch` returns.
    pub fn search<E, F>(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
        options: &SearchOptions,
        mut fetch: F,
    ) -> Result<SearchOutcome, E>
    where
        E: From<AnnError>,
        F: FnMut(&[i64], &mut dyn FnMut(i64, &[f32])) -> Result<(), E>,
    {
        self.params.check(query)?;
        let prepared = self.params.prepare_query(query)?;
        let mut stats = SearchStats {
            rows: self.len(),
            passed: 0,
            rescored: 0,
            fetched: 0,
            returned: 0,
            fetch_calls: 0,
            bounded: false,
            level: self.simd.level(),
        };
        if k == 0 || self.is_empty() {
            return Ok(SearchOutcome { neighbours: Vec::new(), stats });
        }
        let bound = f64::from(self.params.error_bound()) * options.bound_scale;
        let wanted = options.rescore_min.max(options.rescore_per_k.saturating_mul(k));
        let (mut candidates, rest_threshold) = DISTANCES.with(|cell| {
            let mut distances = cell.borrow_mut();
            stats.passed = self.scan(&prepared, filter, &mut distances);
            let threshold = threshold(&distances, wanted, self.params.dims());
            (self.rescore(&prepared, &distances, bound, |d| d <= threshold), threshold)
        });
        stats.rescored = candidates.len();
        sort_candidates(&mut candidates);

        let metric = self.params.metric();
        let query_norm_sq = self.simd.norm_squared(query);
        let dims = self.params.dims();
        let mut top: BinaryHeap<Ranked> = BinaryHeap::with_capacity(k + 1);
        let mut bad_dims = None;
        let mut next = 0;
        let mut batch = options.first_fetch.max(k).max(1);
        let mut suffix_min = suffix_minima(&candidates);
        let mut widened = false;
        let mut ids = Vec::with_capacity(batch);
        loop {
            if next == candidates.len() {
                // Every rescored candidate was fetched and still fewer than `k` rows came back (rows deleted
                // since they were indexed): widen to every row that passes the filter, once.
                if top.len() < k && !widened && stats.rescored < stats.passed {
                    widened = true;
                    let mut more = DISTANCES.with(|cell| {
                        let distances = cell.borrow();
                        self.rescore(&prepared, &distances, bound, |d| d > rest_threshold && d != u16::MAX)
                    });
                    stats.rescored += more.len();
                    sort_candidates(&mut more);
                    candidates.extend(more);
                    suffix_min = suffix_minima(&candidates);
                    continue;
                }
                break;
            }
            if top.len() == k {
                let kth = top.peek().map_or(f64::INFINITY, |r| r.0.distance);
                if kth <= suffix_min[next] {
                    stats.bounded = true;
                    break;
                }
            }
            if stats.fetched >= options.max_rerank && top.len() == k {
                break;
            }
            // Within the cap while the top `k` is full (rows missing from the store may take it further).
            let room = if top.len() == k { options.max_rerank.saturating_sub(stats.fetched).max(1) } else { batch };
            let end = candidates.len().min(next + batch.min(room));
            ids.clear();
            ids.extend(candidates[next..end].iter().map(|c| c.id));
            next = end;
            // Each later call asks for half as many again as were fetched so far (at least `k`): few calls
            // (each is a query for the caller), at most 50% fetched beyond what the bound needed.
            batch = k.max(1).max((stats.fetched + ids.len()) / 2);
            stats.fetched += ids.len();
            stats.fetch_calls += 1;
            let mut sink = |id: i64, vector: &[f32]| {
                if vector.len() != dims {
                    bad_dims.get_or_insert(vector.len());
                    return;
                }
                stats.returned += 1;
                let distance = exact_distance(self.simd, metric, query, query_norm_sq, vector);
                top.push(Ranked(Neighbour { id, distance }));
                if top.len() > k {
                    top.pop();
                }
            };
            fetch(&ids, &mut sink)?;
            if let Some(found) = bad_dims {
                return Err(AnnError::DimensionMismatch { expected: dims, found }.into());
            }
        }
        let mut neighbours: Vec<Neighbour> = top.into_iter().map(|r| r.0).collect();
        neighbours.sort_by(Neighbour::order);
        Ok(SearchOutcome { neighbours, stats })
    }

    /// Hamming distances of every row slot that passes `filter` (others `u16::MAX`); returns how many passed.
    fn scan(&self, query: &Query, filter: &Filter<'_>, distances: &mut Vec<u16>) -> usize {
        let slots = self.chunks.len() * CHUNK_ROWS;
        distances.clear();
        distances.resize(slots, u16::MAX);
        let allowed = filter.allow.map(|ids| self.allowed_masks(ids));
        let mut passed = 0;
        for (n, chunk) in self.chunks.iter().enumerate() {
            let mut keep = [0u64; CHUNK_ROWS / 64];
            for (slot, p) in chunk.partitions.iter().enumerate() {
                let ok = filter.partition.is_none_or(|want| *p == want);
                keep[slot / 64] |= u64::from(ok) << (slot % 64);
            }
            if let Some(masks) = &allowed {
                for (k, a) in keep.iter_mut().zip(&masks[n * (CHUNK_ROWS / 64)..]) {
                    *k &= a;
                }
            }
            passed += keep.iter().map(|w| w.count_ones() as usize).sum::<usize>();
            let out = &mut distances[n * CHUNK_ROWS..n * CHUNK_ROWS + chunk.len()];
            self.simd.hamming_scan(&query.code, &chunk.codes, &keep, out);
        }
        passed
    }

    /// A bit per row slot: set for the rows in `ids`.
    fn allowed_masks(&self, ids: &[i64]) -> Vec<u64> {
        let mut masks = vec![0u64; self.chunks.len() * (CHUNK_ROWS / 64)];
        for id in ids {
            if let Some((chunk, slot)) = self.location(*id) {
                let bit = chunk * CHUNK_ROWS + slot;
                masks[bit / 64] |= 1 << (bit % 64);
            }
        }
        masks
    }

    /// The rows whose Hamming distance satisfies `take`, with their estimated distances and lower bounds.
    fn rescore(&self, query: &Query, distances: &[u16], bound: f64, take: impl Fn(u16) -> bool) -> Vec<Candidate> {
        let words = self.params.words();
        let metric = self.params.metric();
        let mut out = Vec::new();
        for (n, chunk) in self.chunks.iter().enumerate() {
            for (slot, d) in distances[n * CHUNK_ROWS..n * CHUNK_ROWS + chunk.len()].iter().enumerate() {
                if *d == u16::MAX || !take(*d) {
                    continue;
                }
                let code = &chunk.codes[slot * words..(slot + 1) * words];
                let (estimate, lower) = query.estimate(self.simd, metric, bound, code, &chunk.factors[slot]);
                out.push(Candidate {
                    estimate,
                    lower: if lower.is_nan() { f64::NEG_INFINITY } else { lower },
                    id: chunk.ids[slot],
                });
            }
        }
        out
    }
}

/// The smallest Hamming distance `t` such that at least `wanted` rows are within `t` (all rows if fewer).
fn threshold(distances: &[u16], wanted: usize, dims: usize) -> u16 {
    let mut histogram = vec![0usize; dims.min(usize::from(u16::MAX - 1)) + 2];
    let last = histogram.len() - 1;
    for d in distances {
        if *d != u16::MAX {
            histogram[usize::from(*d).min(last)] += 1;
        }
    }
    let mut total = 0;
    for (t, count) in histogram.iter().enumerate() {
        total += count;
        if total >= wanted {
            return u16::try_from(t).unwrap_or(u16::MAX - 1);
        }
    }
    u16::MAX - 1
}

/// By estimate, then id (deterministic).
fn sort_candidates(candidates: &mut [Candidate]) {
    candidates.sort_unstable_by(|a, b| a.estimate.total_cmp(&b.estimate).then(a.id.cmp(&b.id)));
}

/// `out[i]` = the smallest lower bound among candidates `i..`.
fn suffix_minima(candidates: &[Candidate]) -> Vec<f64> {
    let mut out = vec![f64::INFINITY; candidates.len() + 1];
    for i in (0..candidates.len()).rev() {
        out[i] = out[i + 1].min(candidates[i].lower);
    }
    out
}
