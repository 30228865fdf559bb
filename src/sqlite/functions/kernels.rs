//! The distance arithmetic behind the crate's SQLite functions, on borrowed little-endian `f32` words.
//!
//! Each kernel follows the precision of the function it stands in for, so that results agree with it:
//!
//! | kernel | stands in for | sums in | result |
//! |---|---|---|---|
//! | [`l2`] | sqlite-vec's `vec_distance_l2` | `f32` | rounded to `f32` |
//! | [`cosine`] | sqlite-vec's `vec_distance_cosine` | `f32` | `1 - dot / (‖a‖·‖b‖)` in `f64` (the ratio clamped to [-1, 1] as pgvector does), rounded to `f32` |
//! | [`l1`] | sqlite-vec's `vec_distance_l1` | `f64` | `f64` |
//! | [`neg_inner_product`] | pgvector's `<#>` | `f32` | `f64` |
//!
//! sqlite-vec and pgvector add element after element; these kernels keep [`LANES`] independent partial
//! sums and add them at the end, which lets SIMD run them and is, if anything, more accurate. The order
//! differs, so results agree to about 1e-6 relative rather than to the bit. Callers check that both
//! sides have the same, non-zero length.
//!
//! When both arguments can be read as `f32` in place (a little-endian machine, and SQLite's buffers
//! aligned, as they are for values it read from a page), the sums run through the run-time SIMD dispatch
//! ([`crate::simd`]), whose kernels add the same partial sums in the same order: the same bits as the loops
//! here, which remain for the rest.

use crate::simd::Simd;

/// Independent partial sums per kernel: wide enough for two AVX registers of `f32`.
const LANES: usize = 16;

type Word = [u8; 4];

#[inline(always)]
fn f(w: Word) -> f32 {
    f32::from_le_bytes(w)
}

/// Sums `term(a[i], b[i])` in `f32` over [`LANES`] partial sums.
#[inline(always)]
fn sum_f32(a: &[Word], b: &[Word], term: impl Fn(f32, f32) -> f32) -> f32 {
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    let mut acc = [0f32; LANES];
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..LANES {
            acc[i] += term(f(x[i]), f(y[i]));
        }
    }
    let tail: f32 = rest_a.iter().zip(rest_b).map(|(x, y)| term(f(*x), f(*y))).sum();
    acc.iter().sum::<f32>() + tail
}

/// Rounds to `f32` and back, as sqlite-vec does by returning `f32` from its L2 and cosine kernels.
#[inline]
#[allow(clippy::cast_possible_truncation)] // the rounding is the point: it matches sqlite-vec
fn round_f32(x: f64) -> f64 {
    f64::from(x as f32)
}

/// Both arguments as `f32` slices, when they can be read in place.
#[inline]
fn as_f32<'a>(a: &'a [Word], b: &'a [Word]) -> Option<(&'a [f32], &'a [f32])> {
    if cfg!(target_endian = "big") {
        return None;
    }
    Some((bytemuck::try_cast_slice(a).ok()?, bytemuck::try_cast_slice(b).ok()?))
}

/// Euclidean distance, like sqlite-vec's `l2_sqr_float`: `f32` sum of squares, `f64` square root, the
/// result rounded to `f32`.
pub(super) fn l2(a: &[Word], b: &[Word]) -> f64 {
    let sum = match as_f32(a, b) {
        Some((x, y)) => Simd::detect().l2_squared(x, y),
        None => sum_f32(a, b, |x, y| (x - y) * (x - y)),
    };
    round_f32(f64::from(sum).sqrt())
}

/// Cosine distance, like sqlite-vec's `distance_cosine_float`: `f32` sums of `a·b`, `a·a`, `b·b`, then
/// `1 - dot / (sqrt(aa) * sqrt(bb))` in `f64`, rounded to `f32`. NaN when either vector is zero.
///
/// Three passes over the (cache-resident) slices rather than one: each sum is the same as in a fused
/// loop, but the compiler vectorises a loop with one accumulator array and not one with three: two to
/// three times faster at 768 dimensions.
pub(super) fn cosine(a: &[Word], b: &[Word]) -> f64 {
    let (dot, aa, bb) = match as_f32(a, b) {
        Some((x, y)) => {
            let simd = Simd::detect();
            let (dot, bb) = simd.dot_and_norm(x, y);
            (dot, simd.norm_squared(x), bb)
        }
        None => (sum_f32(a, b, |x, y| x * y), sum_f32(a, a, |x, _| x * x), sum_f32(b, b, |_, y| y * y)),
    };
    // The similarity is clamped to [-1, 1], as pgvector does: `f32` sums can leave that range, and a norm
    // that underflows to zero while the dot product does not (elements below 1e-19 against large ones)
    // would otherwise give a distance of -inf, ranked first (sqlite-vec returns it; found by fuzzing).
    // NaN, a zero vector, stays NaN. `ann`'s exact distance does the same.
    let similarity = f64::from(dot) / (f64::from(aa).sqrt() * f64::from(bb).sqrt());
    round_f32(1.0 - similarity.clamp(-1.0, 1.0))
}

/// Manhattan distance, like sqlite-vec's `l1_f32`: `|a[i] - b[i]|` in `f64`, summed in `f64`.
pub(super) fn l1(a: &[Word], b: &[Word]) -> f64 {
    if let Some((x, y)) = as_f32(a, b) {
        return Simd::detect().l1(x, y);
    }
    const LANES_F64: usize = LANES / 2;
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES_F64), b.chunks_exact(LANES_F64));
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    let mut acc = [0f64; LANES_F64];
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..LANES_F64 {
            acc[i] += (f64::from(f(x[i])) - f64::from(f(y[i]))).abs();
        }
    }
    let tail: f64 = rest_a.iter().zip(rest_b).map(|(x, y)| (f64::from(f(*x)) - f64::from(f(*y))).abs()).sum();
    acc.iter().sum::<f64>() + tail
}

/// Negative inner product, like pgvector's `vector_negative_inner_product`: `f32` sum of products,
/// negated, as `f64`.
pub(super) fn neg_inner_product(a: &[Word], b: &[Word]) -> f64 {
    match as_f32(a, b) {
        Some((x, y)) => -f64::from(Simd::detect().dot(x, y)),
        None => -f64::from(sum_f32(a, b, |x, y| x * y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(values: &[f32]) -> Vec<Word> {
        values.iter().map(|x| x.to_le_bytes()).collect()
    }

    /// sqlite-vec 0.1.9's C loops, element after element, transcribed.
    mod sqlite_vec {
        pub(super) fn l2(a: &[f32], b: &[f32]) -> f64 {
            let mut res = 0f32;
            for (x, y) in a.iter().zip(b) {
                let t = x - y;
                res += t * t;
            }
            super::round_f32(f64::from(res).sqrt())
        }

        pub(super) fn cosine(a: &[f32], b: &[f32]) -> f64 {
            let (mut dot, mut a_mag, mut b_mag) = (0f32, 0f32, 0f32);
            for (x, y) in a.iter().zip(b) {
                dot += x * y;
                a_mag += x * x;
                b_mag += y * y;
            }
            super::round_f32(1.0 - f64::from(dot) / (f64::from(a_mag).sqrt() * f64::from(b_mag).sqrt()))
        }

        pub(super) fn l1(a: &[f32], b: &[f32]) -> f64 {
            a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum()
        }
    }

    /// The exact value (up to `f64` rounding) of each metric.
    mod exact {
        fn dot(a: &[f32], b: &[f32]) -> f64 {
            a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
        }
        pub(super) fn l2(a: &[f32], b: &[f32]) -> f64 {
            a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>().sqrt()
        }
        pub(super) fn cosine(a: &[f32], b: &[f32]) -> f64 {
            1.0 - dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
        }
        pub(super) fn neg_inner_product(a: &[f32], b: &[f32]) -> f64 {
            -dot(a, b)
        }
        pub(super) fn norms(a: &[f32], b: &[f32]) -> f64 {
            dot(a, a).sqrt() * dot(b, b).sqrt()
        }
    }

    /// `|actual - expected| <= 1e-6 * scale`. For L1 and L2 the scale is the value itself (relative
    /// error); a cosine distance is a difference of terms of size 1 and an inner product of terms of size
    /// ‖a‖·‖b‖, so those are the scales for them.
    #[track_caller]
    fn assert_close(actual: f64, expected: f64, scale: f64) {
        let tolerance = 1e-6 * scale.abs().max(f64::MIN_POSITIVE);
        assert!((actual - expected).abs() <= tolerance, "{actual} vs {expected} (tolerance {tolerance:e})");
    }

    #[test]
    fn small_vectors_give_the_textbook_values() {
        let (a, b) = (words(&[1.0, 2.0, 3.0]), words(&[4.0, 6.0, 3.0]));
        assert_eq!(l2(&a, &b), 5.0);
        assert_eq!(l1(&a, &b), 7.0);
        assert_eq!(neg_inner_product(&a, &b), -25.0);
        assert_eq!(cosine(&words(&[1.0, 0.0]), &words(&[0.0, 3.0])), 1.0);
        assert_eq!(cosine(&words(&[2.0, 2.0]), &words(&[-1.0, -1.0])), 2.0);
    }

    #[test]
    fn short_vectors_match_sqlite_vec_to_the_bit() {
        // Below LANES elements only the tail loop runs: same order as sqlite-vec.
        let a = [0.1f32, -2.5, 3.25, 7.0, 1e-3];
        let b = [1.5f32, 0.2, -0.75, 6.5, 2e-3];
        let (wa, wb) = (words(&a), words(&b));
        assert_eq!(l2(&wa, &wb).to_bits(), sqlite_vec::l2(&a, &b).to_bits());
        assert_eq!(cosine(&wa, &wb).to_bits(), sqlite_vec::cosine(&a, &b).to_bits());
        assert_eq!(l1(&wa, &wb).to_bits(), sqlite_vec::l1(&a, &b).to_bits());
    }

    #[test]
    fn the_simd_dispatch_gives_the_bits_of_the_loops_here() {
        let a: Vec<f32> = (0..1543).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let b: Vec<f32> = (0..1543).map(|i| ((i * 53 % 89) as f32 - 44.0) / 3.0).collect();
        let (wa, wb) = (words(&a), words(&b));
        assert!(as_f32(&wa, &wb).is_some(), "a Vec of words is aligned for f32");
        let loops = |f: fn(f32, f32) -> f32, x: &[Word], y: &[Word]| sum_f32(x, y, f);
        assert_eq!(
            l2(&wa, &wb).to_bits(),
            round_f32(f64::from(loops(|x, y| (x - y) * (x - y), &wa, &wb)).sqrt()).to_bits()
        );
        assert_eq!(neg_inner_product(&wa, &wb).to_bits(), (-f64::from(loops(|x, y| x * y, &wa, &wb))).to_bits());
        let (dot, aa, bb) =
            (loops(|x, y| x * y, &wa, &wb), loops(|x, _| x * x, &wa, &wa), loops(|_, y| y * y, &wb, &wb));
        let expected = round_f32(1.0 - f64::from(dot) / (f64::from(aa).sqrt() * f64::from(bb).sqrt()));
        assert_eq!(cosine(&wa, &wb).to_bits(), expected.to_bits());
    }

    #[test]
    fn a_cosine_distance_stays_within_0_and_2_when_a_norm_underflows() {
        // ‖a‖² underflows to 0 in f32 while a·b does not: sqlite-vec's loop gives 1 - 1/0 = -inf.
        let (a, b) = ([1e-25f32], [1e15f32]);
        assert_eq!(sqlite_vec::cosine(&a, &b), f64::NEG_INFINITY);
        assert_eq!(cosine(&words(&a), &words(&b)), 0.0);
        assert_eq!(cosine(&words(&a), &words(&[-1e15])), 2.0);
    }

    #[test]
    fn a_zero_vector_has_no_cosine_distance() {
        assert!(cosine(&words(&[0.0, 0.0]), &words(&[1.0, 2.0])).is_nan());
        assert!(cosine(&words(&[0.0]), &words(&[0.0])).is_nan());
    }

    fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (1usize..600)
            .prop_flat_map(|n| (prop::collection::vec(-10f32..10.0, n), prop::collection::vec(-10f32..10.0, n)))
    }

    proptest! {
        #[test]
        fn kernels_match_the_exact_values((a, b) in pair()) {
            let (wa, wb) = (words(&a), words(&b));
            assert_close(l2(&wa, &wb), exact::l2(&a, &b), exact::l2(&a, &b));
            assert_close(l1(&wa, &wb), sqlite_vec::l1(&a, &b), sqlite_vec::l1(&a, &b));
            let norms = exact::norms(&a, &b);
            if norms > 0.0 {
                assert_close(cosine(&wa, &wb), exact::cosine(&a, &b), 1.0);
            }
            assert_close(neg_inner_product(&wa, &wb), exact::neg_inner_product(&a, &b), norms);
        }

        #[test]
        fn kernels_match_sqlite_vec((a, b) in pair()) {
            let (wa, wb) = (words(&a), words(&b));
            let expected = sqlite_vec::l2(&a, &b);
            assert_close(l2(&wa, &wb), expected, expected);
            if exact::norms(&a, &b) > 0.0 {
                assert_close(cosine(&wa, &wb), sqlite_vec::cosine(&a, &b), 1.0);
            }
        }
    }
}
