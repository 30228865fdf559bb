//! Reference distances in `f64`, for checking what the databases compute in `f32`. Included with
//! `#[path]` by the test binaries that exercise the distance DSL.
#![allow(dead_code)]

use diesel_vector::Vector;

/// The four metrics of the DSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    L2,
    Cosine,
    L1,
    /// pgvector's `<#>`: `-(a · b)`.
    NegInnerProduct,
}

pub const METRICS: [Metric; 4] = [Metric::L2, Metric::Cosine, Metric::L1, Metric::NegInnerProduct];

/// The dimension counts the distance tests cover: below, at and above the kernels' 16 lanes, and
/// typical embedding sizes.
pub const DIMS: [usize; 6] = [1, 3, 16, 37, 384, 1536];

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

/// The metric computed in `f64` from the `f32` elements.
pub fn exact(metric: Metric, a: &Vector, b: &Vector) -> f64 {
    let (a, b) = (a.as_slice(), b.as_slice());
    match metric {
        Metric::L2 => a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>().sqrt(),
        Metric::Cosine => 1.0 - dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt()),
        Metric::L1 => a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum(),
        Metric::NegInnerProduct => -dot(a, b),
    }
}

/// The size of the terms a metric is computed from. `f32` sums are accurate to about 1e-7 of it: for L1
/// and L2 that is the value itself (relative error), for a cosine distance 1, for an inner product
/// ‖a‖·‖b‖ (the result can be much smaller than its terms, and its relative error then much larger).
pub fn scale(metric: Metric, a: &Vector, b: &Vector) -> f64 {
    match metric {
        Metric::L2 | Metric::L1 => exact(metric, a, b),
        Metric::Cosine => 1.0,
        Metric::NegInnerProduct => {
            let (a, b) = (a.as_slice(), b.as_slice());
            dot(a, a).sqrt() * dot(b, b).sqrt()
        }
    }
}

/// Asserts `actual` is within 1e-6 of [`scale`] of `expected`.
#[track_caller]
pub fn assert_close(metric: Metric, actual: f64, expected: f64, a: &Vector, b: &Vector) {
    let tolerance = 1e-6 * scale(metric, a, b).max(f64::MIN_POSITIVE);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{metric:?} over {} dims: {actual} vs {expected} (difference {:e}, tolerance {tolerance:e})",
        a.dims(),
        (actual - expected).abs()
    );
}

/// A deterministic vector of values in [-1, 1) that look random (xorshift), unlike `smooth`'s sine wave.
pub fn scattered(dims: usize, seed: u64) -> Vector {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let values = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Vector::new(values).unwrap()
}
