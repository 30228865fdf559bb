//! Training parameters: the centre the codes are taken around, the calibrated error bound of the estimate,
//! and the stored form of both.

use super::bytes::{checksum, Reader, Writer};
use super::{AnnError, Metric};
use crate::simd::Simd;

/// Bits per dimension of the quantised query used to rescore candidates.
pub(super) const QUERY_BITS: usize = 4;

/// Vectors of the sample whose codes the error bound is measured on, and queries drawn from them.
const CALIBRATION_ROWS: usize = 2000;
const CALIBRATION_QUERIES: usize = 32;
/// Below this many pairs the measured bound means little: no bound (every candidate may be needed).
const CALIBRATION_MIN_PAIRS: usize = 200;
/// The quantile of the calibration errors taken as the bound.
const BOUND_QUANTILE: f64 = 0.999;

const MAGIC: &[u8; 4] = b"DVQP";
const VERSION: u16 = 1;

/// What an index is trained with: the metric, the dimensions, the centre of the data and the error bound
/// of the distance estimate, measured on the training sample.
///
/// Stored with [`Params::to_bytes`] and loaded with [`Params::from_bytes`], which rejects anything
/// truncated, damaged or written by another format version.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    metric: Metric,
    dims: usize,
    centre: Vec<f32>,
    /// The 99.9th percentile of `|estimate - exact| / (‖x - c‖·‖q - c‖)` of the inner product in calibration.
    error_bound: f32,
    /// `checksum(to_bytes())`, computed once: chunks carry it so that codes are never read with other
    /// parameters than they were made with.
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

#[allow(clippy::cast_possible_truncation)] // f64 sums of f32 values, stored as f32 on purpose
fn to_f32(x: f64) -> f32 {
    x as f32
}

impl Params {
    /// Trains parameters for `metric` on a sample of `dims`-dimensional vectors (a few thousand rows of the
    /// data to be indexed; more is fine, every one is read once, the first 2000 are also used to measure the
    /// error bound).
    ///
    /// Errors: [`AnnError::EmptySample`] for no vectors or `dims` outside `1..=MAX_DIMS`,
    /// [`AnnError::DimensionMismatch`] and [`AnnError::NotFinite`] for a bad vector.
    pub fn train<'a>(
        metric: Metric,
        dims: usize,
        sample: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Params, AnnError> {
        if dims == 0 || dims > crate::MAX_DIMS {
            return Err(AnnError::EmptySample);
        }
        let mut sum = vec![0f64; dims];
        let mut count = 0usize;
        let mut kept: Vec<Vec<f32>> = Vec::new();
        for v in sample {
            check(v, dims)?;
            let prepared = prepare(metric, v);
            for (s, x) in sum.iter_mut().zip(&prepared) {
                *s += f64::from(*x);
            }
            count += 1;
            if kept.len() < CALIBRATION_ROWS {
                kept.push(prepared);
            }
        }
        if count == 0 {
            return Err(AnnError::EmptySample);
        }
        let centre: Vec<f32> = sum.iter().map(|s| to_f32(s / count as f64)).collect();
        let mut params = Params { metric, dims, centre, error_bound: f32::INFINITY, fingerprint: 0 };
        params.error_bound = params.calibrate(&kept);
        params.fingerprint = checksum(&params.body());
        Ok(params)
    }

    /// A high quantile of the relative error of the inner-product estimate over pairs of sample vectors, or infinity
    /// when the sample is too small to say.
    fn calibrate(&self, sample: &[Vec<f32>]) -> f32 {
        let simd = Simd::detect();
        let codes: Vec<(Vec<u64>, Factors)> = sample
            .iter()
            .map(|v| {
                let mut code = vec![0u64; self.words()];
                let f = self.encode_prepared(v, &mut code);
                (code, f)
            })
            .collect();
        let queries = sample.len().min(CALIBRATION_QUERIES);
        if queries * sample.len().saturating_sub(1) < CALIBRATION_MIN_PAIRS {
            return f32::INFINITY;
        }
        let stride = sample.len() / queries;
        let mut errors = Vec::with_capacity(queries * sample.len());
        for qi in (0..queries).map(|i| i * stride) {
            let query = self.prepare_prepared(&sample[qi]);
            let q_centred: Vec<f64> =
                sample[qi].iter().zip(&self.centre).map(|(x, c)| f64::from(*x) - f64::from(*c)).collect();
            for (ri, (row, (code, factors))) in sample.iter().zip(&codes).enumerate() {
                if ri == qi {
                    continue;
                }
                let exact: f64 = row
                    .iter()
                    .zip(&self.centre)
                    .zip(&q_centred)
                    .map(|((x, c), q)| (f64::from(*x) - f64::from(*c)) * q)
                    .sum();
                let estimate = query.inner_product(simd, code, factors);
                let scale = (f64::from(factors.norm_sq) * query.norm_sq).sqrt();
                if scale > 0.0 {
                    errors.push((estimate - exact).abs() / scale);
                }
            }
        }
        // A high quantile rather than the maximum: the bound decides when to stop reranking, and the few
        // largest errors of tens of thousands of pairs would make every search rerank far more candidates
        // for the sake of a recall difference below 0.1% (BENCHMARKS.md measures it).
        errors.sort_by(f64::total_cmp);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a position within `errors`
        let at = ((errors.len() as f64 * BOUND_QUANTILE) as usize).min(errors.len().saturating_sub(1));
        errors.get(at).map_or(f32::INFINITY, |e| to_f32(*e))
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

    /// The calibrated relative error bound of the inner-product estimate: the 99.9th percentile of the errors
    /// measured on pairs of sample vectors (infinite when the sample was too small to measure it).
    pub fn error_bound(&self) -> f32 {
        self.error_bound
    }

    /// A checksum of the stored parameters; chunks of codes carry it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// 64-bit words per code.
    pub fn words(&self) -> usize {
        self.dims.div_ceil(64)
    }

    /// The stored form: magic `DVQP`, format version, metric, dimensions, error bound, centre, checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(self.body());
        w.u64(checksum(&w.0));
        w.0
    }

    fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(24 + 4 * self.dims);
        w.bytes(MAGIC);
        w.u16(VERSION);
        w.u8(self.metric.code());
        w.u8(u8::try_from(QUERY_BITS).unwrap_or(0));
        w.u32(u32::try_from(self.dims).unwrap_or(0));
        w.f32(self.error_bound);
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
        if version != VERSION {
            return Err(AnnError::corrupt(format!("{what}: format version {version}, this build reads {VERSION}")));
        }
        let metric = Metric::from_code(r.u8()?).ok_or_else(|| AnnError::corrupt(format!("{what}: unknown metric")))?;
        if usize::from(r.u8()?) != QUERY_BITS {
            return Err(AnnError::corrupt(format!("{what}: unknown query quantisation")));
        }
        let dims = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if dims == 0 || dims > crate::MAX_DIMS {
            return Err(AnnError::corrupt(format!("{what}: {dims} dimensions")));
        }
        let error_bound = r.f32()?;
        if error_bound.is_nan() || error_bound < 0.0 {
            return Err(AnnError::corrupt(format!("{what}: error bound {error_bound}")));
        }
        let centre = r.finite_f32s(dims)?;
        r.end()?;
        let body_len = blob.len() - 8;
        Ok(Params { metric, dims, centre, error_bound, fingerprint: checksum(&blob[..body_len]) })
    }

    /// The binary code of `vector`: [`words`](Self::words) 64-bit words, bit `i % 64` of word `i / 64` set
    /// when dimension `i` lies above the centre (after normalising, for cosine). What the index stores per
    /// row, with three numbers for the distance estimate; given here for tools and benchmarks.
    pub fn encode(&self, vector: &[f32]) -> Result<Vec<u64>, AnnError> {
        self.check(vector)?;
        let mut code = vec![0u64; self.words()];
        self.encode_into(vector, &mut code);
        Ok(code)
    }

    /// Checks a vector's dimensions and finiteness.
    pub(super) fn check(&self, v: &[f32]) -> Result<(), AnnError> {
        check(v, self.dims)
    }

    /// Writes the code of a checked vector into `code` (`words()` long) and returns its factors.
    pub(super) fn encode_into(&self, v: &[f32], code: &mut [u64]) -> Factors {
        self.encode_prepared(&prepare(self.metric, v), code)
    }

    fn encode_prepared(&self, x: &[f32], code: &mut [u64]) -> Factors {
        code.fill(0);
        let (mut l1, mut norm_sq, mut centre_dot) = (0f64, 0f64, 0f64);
        for (i, (x, c)) in x.iter().zip(&self.centre).enumerate() {
            let o = f64::from(*x) - f64::from(*c);
            if o > 0.0 {
                code[i / 64] |= 1 << (i % 64);
            }
            l1 += o.abs();
            norm_sq += o * o;
            centre_dot += o * f64::from(*c);
        }
        let scale = if l1 > 0.0 { norm_sq / l1 } else { 0.0 };
        Factors { scale: to_f32(scale), norm_sq: to_f32(norm_sq), centre_dot: to_f32(centre_dot) }
    }

    /// Prepares a checked query; a zero query under cosine is [`AnnError::ZeroQuery`].
    pub(super) fn prepare_query(&self, q: &[f32]) -> Result<Query, AnnError> {
        if self.metric == Metric::Cosine && q.iter().all(|x| *x == 0.0) {
            return Err(AnnError::ZeroQuery);
        }
        Ok(self.prepare_prepared(&prepare(self.metric, q)))
    }

    fn prepare_prepared(&self, q: &[f32]) -> Query {
        let words = self.words();
        let centred: Vec<f64> = q.iter().zip(&self.centre).map(|(x, c)| f64::from(*x) - f64::from(*c)).collect();
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
            let u = ((v - low) / step).round().clamp(0.0, levels) as u32;
            for (j, plane) in planes.chunks_exact_mut(words).enumerate() {
                if u >> j & 1 == 1 {
                    plane[i / 64] |= 1 << (i % 64);
                }
            }
        }
        Query {
            code,
            planes,
            low,
            step,
            sum: centred.iter().sum(),
            norm_sq: centred.iter().map(|v| v * v).sum(),
            centre_dot: q.iter().zip(&self.centre).map(|(x, c)| f64::from(*x) * f64::from(*c)).sum(),
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

    /// The estimated distance of a row and the lowest distance its estimate allows under `bound`.
    #[inline]
    pub(super) fn estimate(
        &self,
        simd: Simd,
        metric: Metric,
        bound: f64,
        code: &[u64],
        factors: &Factors,
    ) -> (f64, f64) {
        let ip = self.inner_product(simd, code, factors);
        let norm_sq = f64::from(factors.norm_sq);
        let margin = bound * (norm_sq * self.norm_sq).sqrt();
        match metric {
            Metric::Cosine | Metric::InnerProduct => {
                let similarity = ip + f64::from(factors.centre_dot) + self.centre_dot;
                let d = if metric == Metric::Cosine { 1.0 - similarity } else { -similarity };
                (d, d - margin)
            }
            // The L1 distance is at least the L2 distance: the L2 bound holds for it too (loosely).
            Metric::L2 | Metric::L1 => {
                let d_sq = norm_sq + self.norm_sq - 2.0 * ip;
                (d_sq.max(0.0).sqrt(), (d_sq - 2.0 * margin).max(0.0).sqrt())
            }
        }
    }
}

fn check(v: &[f32], dims: usize) -> Result<(), AnnError> {
    if v.len() != dims {
        return Err(AnnError::DimensionMismatch { expected: dims, found: v.len() });
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(AnnError::NotFinite { index }),
        None => Ok(()),
    }
}

/// The vector the codes are made of: normalised for cosine (a zero vector stays zero), as is otherwise.
fn prepare(metric: Metric, v: &[f32]) -> Vec<f32> {
    if metric != Metric::Cosine {
        return v.to_vec();
    }
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| to_f32(f64::from(*x) / norm)).collect()
    } else {
        v.to_vec()
    }
}
