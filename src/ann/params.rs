//! Training parameters: the centre the codes are taken around, the calibrated error bounds of the estimate,
//! and the stored form of both; the encoder that turns a vector into its code.

use super::bytes::{checksum_v1, Reader, Writer};
use super::{metric_code, metric_from_code, supports, AnnError, Metric};
use crate::simd::Simd;

/// Bits per dimension of the quantised query used to rescore candidates.
pub(super) const QUERY_BITS: usize = 4;

/// Vectors of the sample whose codes the error bounds are measured on, and queries drawn from them.
const CALIBRATION_ROWS: usize = 2000;
const CALIBRATION_QUERIES: usize = 16;
/// Queries whose nearest sample rows (by estimate, the nearest 5%) give the error tail.
const TAIL_QUERIES: usize = 128;
/// Pairs below which the tail is not measured (the rule that uses it is then off): ten beyond its last
/// point.
const TAIL_MIN_PAIRS: usize = 10_000;
/// Below this many pairs the measured bound means little: no bound (every candidate may be needed).
const CALIBRATION_MIN_PAIRS: usize = 200;
/// The quantile of the calibration errors taken as the bound.
const BOUND_QUANTILE: f64 = 0.999;
/// The smallest `1 - cos²` the angular bound is scaled by: the query's own 4-bit quantisation adds an error
/// that does not shrink as a row turns towards the query.
pub(super) const SPREAD_FLOOR: f64 = 0.02;

/// Queries of the calibration sample whose true nearest rows are ranked by their codes at training, and how
/// many nearest rows each.
const TRIAL_QUERIES: usize = 32;
const TRIAL_K: usize = 10;
/// The share of the calibration sample's rows ranked by Hamming distance ahead of a query's farthest true top
/// [`TRIAL_K`] row (the median over the trial's queries) from which the codes are taken not to rank the data's
/// nearest rows ([`Params::ranks_neighbours`]). Measured on 2000-row samples (BENCHMARKS.md, "Vectors the
/// codes cannot rank"): 0.16 to 0.50 for independent Gaussian elements of 24 to 1536 dimensions under L2 and
/// cosine; 0.008 to 0.09 for the structured generators from 64 dimensions up, 0.08 to 0.12 at 24.
const UNRANKED_SHARE: f32 = 0.14;

const MAGIC: &[u8; 4] = b"DVQP";
/// Version 3 adds the trial's share (`neighbour_share`); version 2, without it, still loads (unmeasured).
const VERSION: u16 = 3;

/// Points of the error distribution's tail kept: the quantiles at `1 - 10^-1` to `1 - 10^-3`.
pub(super) const TAIL_POINTS: usize = 3;

/// Partial sums of the encoder (two AVX registers of `f32`).
const LANES: usize = 16;

/// What an index is trained with: the metric, the dimensions, the centre of the data and the error bounds
/// of the distance estimate, measured on the training sample.
///
/// Stored with [`Params::to_bytes`] and loaded with [`Params::from_bytes`], which rejects anything
/// truncated, damaged or written by another format version.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    metric: Metric,
    dims: usize,
    centre: Vec<f32>,
    /// Rows the parameters were trained on.
    sample_rows: u64,
    /// The 99.9th percentile of `|estimate - exact| / (‖x - c‖·‖q - c‖)` of the inner product in calibration.
    error_bound: f32,
    /// The same of `|estimate - exact| / (‖x - c‖·‖q - c‖·√max(1 - cos², floor))`, `cos` the cosine of
    /// `x - c` and `q - c`: the binary code's error is proportional to the sine of that angle, so rows that
    /// point towards the query are estimated more tightly than the plain bound says.
    angular_bound: f32,
    /// Quantiles of the signed error `(exact - estimate)` of the inner product, normalised like
    /// `angular_bound`, at `1 - 10^-(j+1)` for `j = 0..3` (infinite when calibration had fewer than
    /// [`TAIL_MIN_PAIRS`] near pairs): the tail of the error distribution, from which a
    /// search estimates how likely each unfetched candidate is to belong in the top `k`.
    tail: [f32; TAIL_POINTS],
    /// L1 only: the 0.1th percentile and the median of the ratio of the L1 to the L2 distance over the
    /// calibration pairs (L1 is estimated and bounded from the L2 estimate through them); 1 otherwise.
    l1_low: f32,
    l1_mid: f32,
    /// The trial's median share of the sample ranked ahead of a query's farthest true top-10 row by Hamming
    /// distance (see [`UNRANKED_SHARE`]); `None` when not measured (a sample below [`CALIBRATION_ROWS`] rows,
    /// or parameters stored by version 2). Stored as -1 then.
    neighbour_share: Option<f32>,
    /// `checksum_v1` of the stored form without its trailing sum, computed once: chunks carry it so that
    /// codes are never read with other parameters than they were made with (the first format's sum, so that
    /// codes of every build since agree on it).
    fingerprint: u64,
}

/// Per-row numbers that turn code arithmetic into distance estimates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Factors {
    /// `‖o‖² / Σ|o_i|` with `o = x - c`: the RaBitQ scale of the code's inner product.
    pub(super) scale: f32,
    /// `‖o‖²`.
    pub(super) norm_sq: f32,
    /// `<o, c>`.
    pub(super) centre_dot: f32,
}

impl Factors {
    /// These factors with every one finite, as the stored codes must hold them (their loader refuses
    /// others): infinity as the largest finite value of its sign, NaN as 0. Only a vector whose arithmetic
    /// overflows `f32` has others.
    pub(super) fn finite(self) -> Factors {
        let f = |x: f32| if x.is_nan() { 0.0 } else { x.clamp(f32::MIN, f32::MAX) };
        Factors { scale: f(self.scale), norm_sq: f(self.norm_sq), centre_dot: f(self.centre_dot) }
    }

    pub(super) fn to_array(self) -> [f32; 3] {
        [self.scale, self.norm_sq, self.centre_dot]
    }

    pub(super) fn from_array([scale, norm_sq, centre_dot]: [f32; 3]) -> Factors {
        Factors { scale, norm_sq, centre_dot }
    }
}

/// A query prepared for one search: its sign code, its 4-bit planes and the numbers the estimate needs.
#[derive(Debug)]
pub(super) struct Query {
    pub(super) code: Vec<u64>,
    pub(super) planes: Vec<u64>,
    low: f64,
    step: f64,
    /// `Σ (q_i - c_i)`.
    sum: f64,
    /// `‖q - c‖²`.
    norm_sq: f64,
    /// `<c, q>` (of the normalised query for cosine).
    centre_dot: f64,
}

/// The bounds a search stops by, scaled by its options.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub(super) metric: Metric,
    pub(super) plain: f64,
    pub(super) angular: f64,
    pub(super) l1_low: f64,
    pub(super) l1_mid: f64,
    pub(super) tail: [f64; TAIL_POINTS],
}

impl Bounds {
    /// How likely a candidate is to lie nearer than `kth` (the `k`-th exact distance found so far), from
    /// the calibrated tail of the estimate's error: 1 when its estimate is already nearer, then falling
    /// tenfold per tail point its margin passes (log-linear between the points and beyond the last).
    pub(super) fn miss_probability(&self, kth: f64, basis: f64, scale: f64) -> f64 {
        // L1's estimate is L2's: the k-th L1 distance as the smallest L2 distance it allows.
        let kth = match self.metric {
            Metric::L1 if self.l1_low > 0.0 => kth / self.l1_low,
            Metric::L1 => f64::INFINITY,
            _ => kth,
        };
        let gap = self.gap(basis, kth);
        // Already nearer (or no number): certainly a miss if left out. No spread: the estimate is exact.
        if gap.is_nan() || gap <= 0.0 {
            return 1.0;
        }
        if scale.is_nan() || scale <= 0.0 {
            return 0.0;
        }
        let g = gap / scale;
        let t = &self.tail;
        if !t.iter().all(|x| x.is_finite() && *x > 0.0) {
            return 1.0;
        }
        if g <= t[0] {
            // Between no margin (at most 1) and the first point (0.1): linear.
            return 1.0 - 0.9 * g / t[0];
        }
        let last = TAIL_POINTS - 1;
        if g > t[last] + 6.0 * (t[last] - t[last - 1]) {
            // Below 1e-10: nothing worth counting (most candidates end here, with no power taken).
            return 0.0;
        }
        let j = (0..last).find(|j| g <= t[j + 1]).unwrap_or(last - 1);
        let width = t[j + 1] - t[j];
        let decades = if width > 0.0 { (g - t[j]) / width } else { f64::INFINITY };
        // 10^-x as e^(-x ln 10): `exp` costs a fraction of `powf`, called for every unfetched candidate on
        // every round (`powf` was 4 % of a search through SQLite).
        (-(j as f64 + 1.0 + decades) * std::f64::consts::LN_10).exp()
    }
}

impl Bounds {
    /// A fetched row's signed error `exact - estimate` from its exact `distance`, normalised by its estimate's
    /// `scale` as the calibrated tail is; `None` for L1 (its estimate is L2's, through ratios) or no number.
    pub(super) fn observed_error(&self, distance: f64, basis: f64, scale: f64) -> Option<f64> {
        if !distance.is_finite() || scale.is_nan() || scale <= 0.0 {
            return None;
        }
        if self.metric == Metric::L1 {
            return None;
        }
        let error = self.gap(basis, distance);
        error.is_finite().then_some(error / scale)
    }

    /// How far an estimate's `basis` lies beyond an exact `distance`, in the estimate's units: the inner
    /// product's difference (half the difference of squares for L2 and L1, whose estimate is L2's).
    fn gap(&self, basis: f64, distance: f64) -> f64 {
        match self.metric {
            Metric::L2 | Metric::L1 => (basis - distance * distance) / 2.0,
            _ => basis - distance,
        }
    }

    /// The bounds with the tail of the estimate's error scaled to what this search measured on its own
    /// fetched rows (`observed`, reordered): by their errors' 0.9 quantile over the calibrated one (the
    /// tail's first point), at least `floor` and at most 2. The fetched rows are the rows nearest by
    /// estimate, the population the tail was calibrated on, but for this query and this data rather than
    /// pairs of a 2000-row sample. Chosen by their estimate, they understate the errors of the rows left
    /// (the estimate favours rows it overrates): hence the floor. Unchanged below [`TUNE_MIN_ROWS`] rows.
    pub(super) fn tuned(&self, observed: &mut [f64], floor: f64) -> Bounds {
        let first = self.tail[0];
        if observed.len() < TUNE_MIN_ROWS || !first.is_finite() || first <= 0.0 {
            return *self;
        }
        let at = observed.len() * 9 / 10;
        let (_, q90, _) = observed.select_nth_unstable_by(at, f64::total_cmp);
        let ratio = (*q90 / first).clamp(floor.clamp(0.0, 1.0), 2.0);
        if ratio.is_nan() {
            return *self;
        }
        Bounds { tail: self.tail.map(|t| t * ratio), ..*self }
    }
}

/// Fetched rows a search measures its own errors on before it tunes the tail ([`Bounds::tuned`]).
pub(super) const TUNE_MIN_ROWS: usize = 40;

#[allow(clippy::cast_possible_truncation)] // f64 sums of f32 values, stored as f32 on purpose
fn to_f32(x: f64) -> f32 {
    x as f32
}

/// The factor a vector is multiplied by before coding: `1 / ‖v‖` for cosine (1 for a zero vector), else 1.
fn scale_of(simd: Simd, metric: Metric, v: &[f32]) -> f32 {
    if metric != Metric::Cosine {
        return 1.0;
    }
    let mut norm = f64::from(simd.norm_squared(v)).sqrt();
    if norm.is_infinite() {
        // Elements beyond about 1e19: their `f32` sum of squares overflows, an `f64` one does not.
        norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    }
    if norm > 0.0 && norm.is_finite() {
        to_f32(1.0 / norm)
    } else {
        1.0
    }
}

/// The `q`-quantile of sorted `values`, or infinity for none.
///
/// An error that is not a number (rows whose values overflow `f32` arithmetic, such as elements near
/// `f32::MAX`: their products are infinite, and infinity minus infinity is NaN) sorts last and counts as
/// infinite: a bound that cannot be measured proves nothing, and a NaN one would be refused on loading,
/// so that every sync would rebuild the codes again.
fn quantile(sorted: &[f64], q: f64) -> f32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a position within `sorted`
    let at = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(at).map_or(f32::INFINITY, |e| if e.is_nan() { f32::INFINITY } else { to_f32(*e) })
}

/// How far the centre of a larger sample may lie from the centre codes were made around, in squared
/// distance relative to the sample's mean squared distance to its own centre, for
/// [`Params::recalibrated`] to keep the codes: a tenth of the RMS distance. Two random samples of 1000 rows
/// of the same data lie about a thousandth apart; a first batch of one topic of the data lies far beyond.
const CENTRE_DRIFT: f64 = 0.01;

/// A training sample read once: the sum and count of its (scaled) vectors, and the first
/// [`CALIBRATION_ROWS`] of them, scaled.
struct Gathered {
    sum: Vec<f64>,
    count: u64,
    kept: Vec<Vec<f32>>,
}

impl Gathered {
    fn of<'a>(
        metric: Metric,
        dims: usize,
        sample: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<(Simd, Gathered), AnnError> {
        if !supports(metric) {
            return Err(AnnError::UnsupportedMetric { metric });
        }
        if dims == 0 || dims > crate::MAX_DIMS {
            return Err(AnnError::EmptySample);
        }
        let simd = Simd::detect();
        let mut gathered = Gathered { sum: vec![0f64; dims], count: 0, kept: Vec::new() };
        let mut scaled: Vec<f32> = Vec::with_capacity(dims);
        for v in sample {
            check(v, dims)?;
            let s = scale_of(simd, metric, v);
            scaled.clear();
            scaled.extend(v.iter().map(|x| x * s));
            if !simd.norm_squared(&scaled).is_finite() {
                // Elements beyond about 1e19, not normalised away (cosine normalises them): the row's
                // arithmetic overflows `f32`, and the errors measured on it would be no numbers. Not trained
                // on; still coded (`QuantizedIndex::insert`).
                continue;
            }
            for (total, x) in gathered.sum.iter_mut().zip(&scaled) {
                *total += f64::from(*x);
            }
            gathered.count += 1;
            if gathered.kept.len() < CALIBRATION_ROWS {
                gathered.kept.push(scaled.clone());
            }
        }
        if gathered.count == 0 {
            return Err(AnnError::EmptySample);
        }
        Ok((simd, gathered))
    }

    /// The mean of the (scaled) vectors.
    fn centre(&self) -> Vec<f32> {
        self.sum.iter().map(|s| to_f32(s / self.count as f64)).collect()
    }
}

impl Params {
    /// Trains parameters for `metric` on a sample of `dims`-dimensional vectors (a few thousand rows of the
    /// data to be indexed; more is fine, every one is read once, the first 2000 are also used to measure the
    /// error bounds).
    ///
    /// Errors: [`AnnError::UnsupportedMetric`] for a bit metric, [`AnnError::EmptySample`] for no vectors or
    /// `dims` outside `1..=MAX_DIMS`, [`AnnError::DimensionMismatch`] and [`AnnError::NotFinite`] for a bad
    /// vector.
    pub fn train<'a>(
        metric: Metric,
        dims: usize,
        sample: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Params, AnnError> {
        let (simd, gathered) = Gathered::of(metric, dims, sample)?;
        let centre = gathered.centre();
        Ok(Params::calibrated(simd, metric, dims, centre, &gathered))
    }

    /// These parameters measured again on a larger `sample` of the same data, keeping their centre, so that
    /// every code made with them stays valid: the error bounds from the new sample, which they then say
    /// they were trained on. `None` when the sample's own centre lies more than a tenth of the sample's
    /// root-mean-square distance to it away from the kept one (the first rows were not like the rest):
    /// then [`train`](Self::train) anew and encode every row again.
    ///
    /// Errors: as [`train`](Self::train).
    pub fn recalibrated<'a>(&self, sample: impl IntoIterator<Item = &'a [f32]>) -> Result<Option<Params>, AnnError> {
        let (simd, gathered) = Gathered::of(self.metric, self.dims, sample)?;
        let centre = gathered.centre();
        let shift: f64 = centre.iter().zip(&self.centre).map(|(a, b)| f64::from(a - b).powi(2)).sum();
        let spread = gathered.kept.iter().map(|v| f64::from(simd.l2_squared(v, &centre))).sum::<f64>()
            / gathered.kept.len().max(1) as f64;
        if shift > CENTRE_DRIFT * spread {
            return Ok(None);
        }
        Ok(Some(Params::calibrated(simd, self.metric, self.dims, self.centre.clone(), &gathered)))
    }

    /// Parameters around `centre`, their bounds measured on `gathered`'s calibration rows.
    fn calibrated(simd: Simd, metric: Metric, dims: usize, centre: Vec<f32>, gathered: &Gathered) -> Params {
        let mut params = Params {
            metric,
            dims,
            centre,
            sample_rows: gathered.count,
            error_bound: f32::INFINITY,
            angular_bound: f32::INFINITY,
            tail: [f32::INFINITY; TAIL_POINTS],
            l1_low: if metric == Metric::L1 { 0.0 } else { 1.0 },
            l1_mid: 1.0,
            neighbour_share: None,
            fingerprint: 0,
        };
        params.calibrate(simd, &gathered.kept);
        params.fingerprint = checksum_v1(&params.body());
        params
    }

    /// Measures the error bounds (and the L1 ratios) on pairs of sample vectors; leaves them infinite when
    /// the sample is too small to say.
    fn calibrate(&mut self, simd: Simd, sample: &[Vec<f32>]) {
        let queries = sample.len().min(CALIBRATION_QUERIES);
        if queries * sample.len().saturating_sub(1) < CALIBRATION_MIN_PAIRS {
            return;
        }
        let codes: Vec<(Vec<u64>, Factors)> = sample
            .iter()
            .map(|v| {
                let mut code = vec![0u64; self.words()];
                let f = self.encode_scaled(simd, v, 1.0, &mut code);
                (code, f)
            })
            .collect();
        self.neighbour_share = self.trial_share(simd, sample, &codes);
        let centred: Vec<Vec<f32>> =
            sample.iter().map(|v| v.iter().zip(&self.centre).map(|(x, c)| x - c).collect()).collect();
        let stride = sample.len() / queries;
        let pairs = queries * sample.len();
        let (mut plain, mut angular) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
        let mut signed = Vec::with_capacity(pairs);
        let mut ratios = Vec::new();
        for qi in (0..queries).map(|i| i * stride) {
            let query = self.prepare_scaled(&sample[qi], 1.0);
            for (ri, (code, factors)) in codes.iter().enumerate() {
                if ri == qi {
                    continue;
                }
                let exact = f64::from(simd.dot(&centred[ri], &centred[qi]));
                let estimate = query.inner_product(simd, code, factors);
                let scale = (f64::from(factors.norm_sq) * query.norm_sq).sqrt();
                if scale > 0.0 {
                    let error = (estimate - exact).abs();
                    let cos = (exact / scale).clamp(-1.0, 1.0);
                    let spread = (1.0 - cos * cos).max(SPREAD_FLOOR).sqrt();
                    plain.push(error / scale);
                    angular.push(error / (scale * spread));
                }
                if self.metric == Metric::L1 {
                    let l2 = f64::from(simd.l2_squared(&sample[ri], &sample[qi])).sqrt();
                    if l2 > 0.0 {
                        ratios.push(simd.l1(&sample[ri], &sample[qi]) / l2);
                    }
                }
            }
        }
        plain.sort_by(f64::total_cmp);
        self.error_bound = quantile(&plain, BOUND_QUANTILE);
        // The tail the expected-miss rule uses: the errors of the rows a search reranks, that is of the
        // rows whose *estimate* is among the nearest to the query. Their errors differ from those of all
        // pairs: without a random rotation the code's estimate is biased for near rows of structured data,
        // and selecting rows by their estimate favours those it overrates.
        let tail_queries = sample.len().min(TAIL_QUERIES);
        let tail_stride = sample.len() / tail_queries;
        let near = (sample.len() / 20).max(1);
        let bounds = self.bounds(1.0);
        // Fewer pairs than the tail needs (a sample below 1580 rows): it stays unmeasured, so its loop is
        // not run (training on 1000 rows of 1536 dims: 20.7 ms with it, 6.9 ms without).
        let tail_queries = if tail_queries * near >= TAIL_MIN_PAIRS { tail_queries } else { 0 };
        for qi in (0..tail_queries).map(|i| i * tail_stride) {
            let query = self.prepare_scaled(&sample[qi], 1.0);
            let mut by_estimate: Vec<(f64, usize)> = codes
                .iter()
                .enumerate()
                .filter(|(ri, _)| *ri != qi)
                .map(|(ri, (code, factors))| {
                    let e = query.estimate(simd, &bounds, code, factors);
                    (e.estimate, ri)
                })
                .collect();
            // The `near` lowest estimates, ties by row as a stable sort orders them: only the set matters
            // below, so a selection does instead of a sort of every row per query (the same parameters,
            // byte for byte; training 4000 rows of 1536 dims took 34.5-40.0 ms with the sort, 28.7-29.0 without).
            if near < by_estimate.len() {
                by_estimate.select_nth_unstable_by(near, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                by_estimate.truncate(near);
            }
            for (_, ri) in by_estimate {
                let (code, factors) = &codes[ri];
                let exact = f64::from(simd.dot(&centred[ri], &centred[qi]));
                let estimate = query.inner_product(simd, code, factors);
                let scale = (f64::from(factors.norm_sq) * query.norm_sq).sqrt();
                if scale > 0.0 {
                    let cos_low = ((estimate / scale).abs() - f64::from(self.error_bound)).clamp(0.0, 1.0);
                    let spread = (1.0 - cos_low * cos_low).max(SPREAD_FLOOR).sqrt();
                    signed.push((exact - estimate) / (scale * spread));
                }
            }
        }
        // A high quantile rather than the maximum: the bound decides when to stop reranking, and the few
        // largest errors of tens of thousands of pairs would make every search rerank far more candidates
        // for the sake of a recall difference below 0.1% (BENCHMARKS.md measures it).
        angular.sort_by(f64::total_cmp);
        signed.sort_by(f64::total_cmp);
        self.angular_bound = quantile(&angular, BOUND_QUANTILE);
        if signed.len() >= TAIL_MIN_PAIRS {
            let mut p = 1.0;
            for t in &mut self.tail {
                p /= 10.0;
                *t = quantile(&signed, 1.0 - p);
            }
        }
        if !ratios.is_empty() {
            ratios.sort_by(f64::total_cmp);
            let (low, mid) = (quantile(&ratios, 1.0 - BOUND_QUANTILE), quantile(&ratios, 0.5));
            // Ratios of overflowing rows are not numbers: the defaults (no bound from L2) stand then.
            if low.is_finite() && mid.is_finite() && low <= mid {
                (self.l1_low, self.l1_mid) = (low, mid);
            }
        }
    }

    /// The trial behind [`Params::ranks_neighbours`]: for [`TRIAL_QUERIES`] rows of a full calibration sample,
    /// the share of the other rows whose code lies nearer by Hamming distance (the order the scan keeps rows
    /// in) than the farthest of the query's true [`TRIAL_K`] nearest; the median of those shares. `None` for a
    /// smaller sample, where the share says less (a near row has fewer rows to be ranked behind).
    fn trial_share(&self, simd: Simd, sample: &[Vec<f32>], codes: &[(Vec<u64>, Factors)]) -> Option<f32> {
        if sample.len() < CALIBRATION_ROWS {
            return None;
        }
        let stride = sample.len() / TRIAL_QUERIES;
        let mut shares: Vec<f64> = Vec::with_capacity(TRIAL_QUERIES);
        let mut exact: Vec<(f64, usize)> = Vec::with_capacity(sample.len());
        let mut hamming = vec![0u32; sample.len()];
        for qi in (0..TRIAL_QUERIES).map(|i| i * stride + stride / 2) {
            let query = &sample[qi];
            let norm_sq = simd.norm_squared(query);
            exact.clear();
            exact.extend(
                sample
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != qi)
                    .map(|(i, row)| (super::exact_distance(simd, self.metric, query, norm_sq, row), i)),
            );
            // NaN (a zero row under cosine) orders last.
            exact.select_nth_unstable_by(TRIAL_K - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let own = &codes[qi].0;
            for (h, (code, _)) in hamming.iter_mut().zip(codes) {
                *h = code.iter().zip(own).map(|(a, b)| (a ^ b).count_ones()).sum();
            }
            let farthest = exact[..TRIAL_K].iter().map(|(_, i)| hamming[*i]).max().unwrap_or(0);
            let ahead = hamming.iter().enumerate().filter(|(i, h)| *i != qi && **h < farthest).count();
            shares.push(ahead as f64 / (sample.len() - 1) as f64);
        }
        shares.sort_by(f64::total_cmp);
        Some(to_f32(shares[shares.len() / 2]))
    }

    /// Whether the codes rank the data's nearest rows ahead of most others, as measured at training: the
    /// codes take the vectors' directions from the centre, one bit per dimension, and vectors without
    /// structure (independent random elements, whose distances differ little and under L2 mostly by their
    /// norms) leave a query's true nearest rows scattered among the rest in Hamming order. A search of such
    /// codes reranks thousands of rows and may still miss neighbours; the SQLite index scans every row
    /// instead ([`SearchOptions::defer_unranked`](super::SearchOptions::defer_unranked)). True when not
    /// measured (trained on fewer than 2000 rows, or by an earlier build).
    pub fn ranks_neighbours(&self) -> bool {
        self.neighbour_share.is_none_or(|share| share < UNRANKED_SHARE)
    }

    /// The share behind [`ranks_neighbours`](Self::ranks_neighbours): the median, over trial queries of the
    /// training sample, of the share of the sample ranked by Hamming distance ahead of the query's farthest
    /// true top-10 row (at least 0.14 means the codes do not rank the data's nearest rows). `None` when not
    /// measured.
    pub fn neighbour_share(&self) -> Option<f32> {
        self.neighbour_share
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The dimensions of the vectors.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The centre the codes are taken around (of the normalised vectors for cosine).
    pub fn centre(&self) -> &[f32] {
        &self.centre
    }

    /// How many vectors the parameters were trained on.
    pub fn sample_rows(&self) -> u64 {
        self.sample_rows
    }

    /// The calibrated relative error bound of the inner-product estimate: the 99.9th percentile of the errors
    /// measured on pairs of sample vectors, relative to the product of their distances to the centre
    /// (infinite when the sample was too small to measure it).
    pub fn error_bound(&self) -> f32 {
        self.error_bound
    }

    /// The calibrated bound relative to the sine of the angle between the two vectors (around the centre),
    /// which a search applies to rows whose estimate says they point towards the query: see the module
    /// docs. Infinite when the sample was too small.
    pub fn angular_bound(&self) -> f32 {
        self.angular_bound
    }

    /// A checksum of the stored parameters; chunks of codes carry it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// 64-bit words per code.
    pub fn words(&self) -> usize {
        self.dims.div_ceil(64)
    }

    /// The words of each code a search's first pass compares (the rest only for the rows that pass compare
    /// nearest): a third of the code from 8 words (512 dimensions) up, the whole code below.
    pub(super) fn prefix_words(&self) -> usize {
        let words = self.words();
        if words >= 8 {
            words.div_ceil(3)
        } else {
            words
        }
    }

    pub(super) fn bounds(&self, scale: f64) -> Bounds {
        Bounds {
            metric: self.metric,
            plain: f64::from(self.error_bound) * scale,
            angular: f64::from(self.angular_bound) * scale,
            l1_low: f64::from(self.l1_low),
            l1_mid: f64::from(self.l1_mid),
            tail: self.tail.map(f64::from),
        }
    }

    /// The stored form: magic `DVQP`, format version, metric, query bits, dimensions, sample rows, the
    /// bounds and L1 ratios, the error tail, the trial's neighbour share, the centre, checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(self.body());
        w.u64(checksum_v1(&w.0));
        w.0
    }

    fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(56 + 4 * self.dims);
        w.bytes(MAGIC);
        w.u16(VERSION);
        w.u8(metric_code(self.metric).unwrap_or(0));
        w.u8(u8::try_from(QUERY_BITS).unwrap_or(0));
        w.u32(u32::try_from(self.dims).unwrap_or(0));
        w.u64(self.sample_rows);
        for x in [self.error_bound, self.angular_bound, self.l1_low, self.l1_mid] {
            w.f32(x);
        }
        for x in self.tail {
            w.f32(x);
        }
        w.f32(self.neighbour_share.unwrap_or(-1.0));
        for c in &self.centre {
            w.f32(*c);
        }
        w.0
    }

    /// Loads parameters stored by [`Params::to_bytes`]; anything truncated, damaged or of another format
    /// version is an [`AnnError::Corrupt`], never trusted.
    pub fn from_bytes(blob: &[u8]) -> Result<Params, AnnError> {
        let what = "index parameters";
        let mut r = Reader::open(blob, what, MAGIC)?;
        let version = r.u16()?;
        if version != VERSION && version != 2 {
            return Err(AnnError::corrupt(format!("{what}: format version {version}, this build reads {VERSION}")));
        }
        let metric = metric_from_code(r.u8()?).ok_or_else(|| AnnError::corrupt(format!("{what}: unknown metric")))?;
        if usize::from(r.u8()?) != QUERY_BITS {
            return Err(AnnError::corrupt(format!("{what}: unknown query quantisation")));
        }
        let dims = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if dims == 0 || dims > crate::MAX_DIMS {
            return Err(AnnError::corrupt(format!("{what}: {dims} dimensions")));
        }
        let sample_rows = r.u64()?;
        let [error_bound, angular_bound, l1_low, l1_mid] = [r.f32()?, r.f32()?, r.f32()?, r.f32()?];
        for (name, x) in [("error bound", error_bound), ("angular bound", angular_bound)] {
            if x.is_nan() || x < 0.0 {
                return Err(AnnError::corrupt(format!("{what}: {name} {x}")));
            }
        }
        if !(l1_low.is_finite() && l1_mid.is_finite() && 0.0 <= l1_low && l1_low <= l1_mid) {
            return Err(AnnError::corrupt(format!("{what}: L1 ratios {l1_low}, {l1_mid}")));
        }
        let mut tail = [0f32; TAIL_POINTS];
        for t in &mut tail {
            *t = r.f32()?;
        }
        if tail.iter().any(|t| t.is_nan()) || tail.windows(2).any(|w| w[0] > w[1]) {
            return Err(AnnError::corrupt(format!("{what}: error tail {tail:?}")));
        }
        // -1 is written for "not measured".
        let neighbour_share = match if version == 2 { -1.0 } else { r.f32()? } {
            -1.0 => None,
            x if (0.0..=1.0).contains(&x) => Some(x),
            x => return Err(AnnError::corrupt(format!("{what}: neighbour share {x}"))),
        };
        let centre = r.finite_f32s(dims)?;
        r.end()?;
        let body_len = blob.len() - 8;
        Ok(Params {
            metric,
            dims,
            centre,
            sample_rows,
            error_bound,
            angular_bound,
            tail,
            l1_low,
            l1_mid,
            neighbour_share,
            fingerprint: checksum_v1(&blob[..body_len]),
        })
    }

    /// The binary code of `vector`: [`words`](Self::words) 64-bit words, bit `i % 64` of word `i / 64` set
    /// when dimension `i` lies above the centre (after normalising, for cosine). What the index stores per
    /// row, with three numbers for the distance estimate; given here for tools and benchmarks.
    pub fn encode(&self, vector: &[f32]) -> Result<Vec<u64>, AnnError> {
        self.check(vector)?;
        let mut code = vec![0u64; self.words()];
        self.encode_into(Simd::detect(), vector, &mut code);
        Ok(code)
    }

    /// Checks a vector's dimensions and finiteness.
    pub(super) fn check(&self, v: &[f32]) -> Result<(), AnnError> {
        check(v, self.dims)
    }

    /// Writes the code of a checked vector into `code` (`words()` long) and returns its factors.
    pub(super) fn encode_into(&self, simd: Simd, v: &[f32], code: &mut [u64]) -> Factors {
        self.encode_scaled(simd, v, scale_of(simd, self.metric, v), code)
    }

    /// The code of `v * s`: one pass, 64 dimensions (a code word) at a time, no allocation; the whole words
    /// by [`Simd::sign_code`] (the same bits at every level), the rest here in the same order. The sums run
    /// in `f32` over [`LANES`] partial sums; they only feed the estimate, whose error the calibration
    /// measures.
    fn encode_scaled(&self, simd: Simd, v: &[f32], s: f32, code: &mut [u64]) -> Factors {
        let [mut l1, mut norm_sq, mut centre_dot] = simd.sign_code(v, s, &self.centre, code);
        let whole = v.len() / 64 * 64;
        let (rest_v, rest_c) = (&v[whole.min(v.len())..], &self.centre[whole.min(self.centre.len())..]);
        if !rest_v.is_empty() {
            let mut w = 0u64;
            for (j, (x, c)) in rest_v.iter().zip(rest_c).enumerate() {
                let o = x * s - c;
                l1[0] += o.abs();
                norm_sq[0] += o * o;
                centre_dot[0] += o * c;
                w |= u64::from(o > 0.0) << j;
            }
            if let Some(last) = code.last_mut() {
                *last = w;
            }
        }
        let total = |a: [f32; LANES]| a.iter().map(|x| f64::from(*x)).sum::<f64>();
        let (l1, norm_sq, centre_dot) = (total(l1), total(norm_sq), total(centre_dot));
        let scale = if l1 > 0.0 { norm_sq / l1 } else { 0.0 };
        Factors { scale: to_f32(scale), norm_sq: to_f32(norm_sq), centre_dot: to_f32(centre_dot) }
    }

    /// Prepares a checked query; a zero query under cosine is [`AnnError::ZeroQuery`].
    pub(super) fn prepare_query(&self, simd: Simd, q: &[f32]) -> Result<Query, AnnError> {
        if self.metric == Metric::Cosine && q.iter().all(|x| *x == 0.0) {
            return Err(AnnError::ZeroQuery);
        }
        Ok(self.prepare_scaled(q, scale_of(simd, self.metric, q)))
    }

    fn prepare_scaled(&self, q: &[f32], s: f32) -> Query {
        let words = self.words();
        let centred: Vec<f64> = q.iter().zip(&self.centre).map(|(x, c)| f64::from(x * s) - f64::from(*c)).collect();
        let mut code = vec![0u64; words];
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, v) in centred.iter().enumerate() {
            if *v > 0.0 {
                code[i / 64] |= 1 << (i % 64);
            }
            low = low.min(*v);
            high = high.max(*v);
        }
        let levels = ((1u32 << QUERY_BITS) - 1) as f64;
        let step = if high > low { (high - low) / levels } else { 1.0 };
        let mut planes = vec![0u64; QUERY_BITS * words];
        for (i, v) in centred.iter().enumerate() {
            // In 0..=15 by construction of `low` and `step`; the clamp guards the rounding.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let u = ((v - low) / step).round().clamp(0.0, levels) as u64;
            for j in 0..QUERY_BITS {
                planes[j * words + i / 64] |= (u >> j & 1) << (i % 64);
            }
        }
        Query {
            code,
            planes,
            low,
            step,
            sum: centred.iter().sum(),
            norm_sq: centred.iter().map(|v| v * v).sum(),
            centre_dot: q.iter().zip(&self.centre).map(|(x, c)| f64::from(x * s) * f64::from(*c)).sum(),
        }
    }
}

impl Query {
    /// The estimate of `<x - c, q - c>` from a row's code and factors.
    #[inline]
    pub(super) fn inner_product(&self, simd: Simd, code: &[u64], factors: &Factors) -> f64 {
        let (weighted, ones) = simd.plane_sums(&self.planes, code);
        let set_sum = self.low * f64::from(ones) + self.step * f64::from(weighted);
        f64::from(factors.scale) * (2.0 * set_sum - self.sum)
    }

    /// The estimated distance of a row, the lowest distance its estimate allows under `bounds`, and what
    /// [`Bounds::miss_probability`] needs.
    ///
    /// The margin on the inner product is the plain bound times `‖x - c‖·‖q - c‖`, or, tighter for rows
    /// whose estimate says they point towards the query, the angular bound times that and the sine of the
    /// widest angle the plain bound allows (so the tighter margin never rests on an estimate the plain
    /// bound does not vouch for).
    #[inline]
    pub(super) fn estimate(&self, simd: Simd, bounds: &Bounds, code: &[u64], factors: &Factors) -> Estimate {
        let ip = self.inner_product(simd, code, factors);
        let norm_sq = f64::from(factors.norm_sq);
        let scale = (norm_sq * self.norm_sq).sqrt();
        let (margin, scale) = if scale > 0.0 {
            let cos_low = ((ip / scale).abs() - bounds.plain).clamp(0.0, 1.0);
            let spread = (1.0 - cos_low * cos_low).max(SPREAD_FLOOR).sqrt();
            (scale * bounds.plain.min(bounds.angular * spread), scale * spread)
        } else {
            (0.0, 0.0)
        };
        match bounds.metric {
            Metric::L2 | Metric::L1 => {
                let d_sq = norm_sq + self.norm_sq - 2.0 * ip;
                let (d, low) = (d_sq.max(0.0).sqrt(), (d_sq - 2.0 * margin).max(0.0).sqrt());
                let (estimate, lower) = if bounds.metric == Metric::L1 {
                    // L1 from L2 through the ratios measured in calibration.
                    (d * bounds.l1_mid, low * bounds.l1_low)
                } else {
                    (d, low)
                };
                Estimate { estimate, lower, basis: d_sq, scale }
            }
            // Cosine and the inner product.
            _ => {
                let similarity = ip + f64::from(factors.centre_dot) + self.centre_dot;
                let d = if bounds.metric == Metric::Cosine { 1.0 - similarity } else { -similarity };
                Estimate { estimate: d, lower: d - margin, basis: d, scale }
            }
        }
    }
}

/// A row's estimated distance and what the stop rules need of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimate {
    pub(super) estimate: f64,
    /// The lowest distance the hard bound allows.
    pub(super) lower: f64,
    /// The estimated distance (cosine, inner product) or squared L2 distance (L2, L1), unclamped.
    pub(super) basis: f64,
    /// The normaliser of the estimate's error.
    pub(super) scale: f64,
}

fn check(v: &[f32], dims: usize) -> Result<(), AnnError> {
    if v.len() != dims {
        return Err(AnnError::DimensionMismatch { expected: dims, found: v.len() });
    }
    // The slow search for the first bad one runs only when one is (a sum of `x * 0` here took 0.5 us per
    // 1536-dim vector in a sync).
    if crate::vector::all_finite(v) {
        return Ok(());
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(AnnError::NotFinite { index }),
        None => Ok(()),
    }
}
