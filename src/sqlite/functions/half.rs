//! The distance arithmetic of `halfvec` on borrowed little-endian `f16` words, as pgvector does it:
//! each element converted to `f32`, `f32` sums, the result in `f64`.
//!
//! | kernel | pgvector function | result |
//! |---|---|---|
//! | [`l2`] | `halfvec_l2_distance` | `sqrt` of the `f32` sum of squares |
//! | [`cosine`] | `halfvec_cosine_distance` | `1 - dot / sqrt(‖a‖² · ‖b‖²)` in `f64`, the similarity kept within [-1, 1] |
//! | [`l1`] | `halfvec_l1_distance` | `f32` sum |
//! | [`neg_inner_product`] | `halfvec_negative_inner_product` | `f32` sum, negated |
//!
//! pgvector adds element after element (or 8 lanes with F16C); these keep [`LANES`] partial sums, which
//! lets the compiler use SIMD. Results agree to about 1e-6 relative, not to the bit. Callers check that
//! both sides have the same, non-zero length.

/// Independent partial sums per kernel: two AVX registers of `f32`.
const LANES: usize = 16;

type Half = [u8; 2];

/// 2¹¹², the factor between an `f16` exponent moved into an `f32` and its value.
const EXPONENT_SHIFT: f32 = f32::from_bits(0x7780_0000);

/// An `f16` (little-endian bytes) as `f32`, exactly, without branches (so that loops over it vectorise):
/// the exponent and mantissa moved into an `f32`'s and rescaled by one multiplication, which also makes
/// subnormals normal; infinities and NaN keep an all-ones exponent.
#[inline(always)]
pub(crate) fn f16_to_f32(w: Half) -> f32 {
    let h = u32::from(u16::from_le_bytes(w));
    let sign = (h & 0x8000) << 16;
    let exp_mant = h & 0x7fff;
    let finite = f32::from_bits(exp_mant << 13) * EXPONENT_SHIFT;
    let magnitude = if exp_mant >= 0x7c00 { f32::from_bits(0x7f80_0000 | ((exp_mant & 0x3ff) << 13)) } else { finite };
    f32::from_bits(magnitude.to_bits() | sign)
}

/// Sums `term(a[i], b[i])` in `f32` over [`LANES`] partial sums.
#[inline(always)]
fn sum_f32(a: &[Half], b: &[Half], term: impl Fn(f32, f32) -> f32) -> f32 {
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    let mut acc = [0f32; LANES];
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..LANES {
            acc[i] += term(f16_to_f32(x[i]), f16_to_f32(y[i]));
        }
    }
    let tail: f32 = rest_a.iter().zip(rest_b).map(|(x, y)| term(f16_to_f32(*x), f16_to_f32(*y))).sum();
    acc.iter().sum::<f32>() + tail
}

pub(super) fn l2(a: &[Half], b: &[Half]) -> f64 {
    f64::from(sum_f32(a, b, |x, y| (x - y) * (x - y))).sqrt()
}

pub(super) fn cosine(a: &[Half], b: &[Half]) -> f64 {
    let dot = sum_f32(a, b, |x, y| x * y);
    let aa = sum_f32(a, a, |x, _| x * x);
    let bb = sum_f32(b, b, |_, y| y * y);
    cosine_from_sums(dot, aa, bb)
}

/// pgvector's `1 - similarity`, with `similarity = dot / sqrt(aa * bb)` in `f64` kept within [-1, 1]
/// (NaN, from a zero vector, stays NaN).
pub(super) fn cosine_from_sums(dot: f32, aa: f32, bb: f32) -> f64 {
    let similarity = f64::from(dot) / (f64::from(aa) * f64::from(bb)).sqrt();
    1.0 - if similarity.is_nan() { similarity } else { similarity.clamp(-1.0, 1.0) }
}

pub(super) fn l1(a: &[Half], b: &[Half]) -> f64 {
    f64::from(sum_f32(a, b, |x, y| (x - y).abs()))
}

pub(super) fn neg_inner_product(a: &[Half], b: &[Half]) -> f64 {
    -f64::from(sum_f32(a, b, |x, y| x * y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use proptest::prelude::*;

    fn halves(values: &[f32]) -> Vec<Half> {
        values.iter().map(|x| f16::from_f32(*x).to_le_bytes()).collect()
    }

    #[test]
    fn the_conversion_is_exact_for_every_f16() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            let ours = f16_to_f32(bits.to_le_bytes());
            if h.is_nan() {
                assert!(ours.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(ours.to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
            }
        }
    }

    #[test]
    fn small_vectors_give_the_textbook_values() {
        let (a, b) = (halves(&[1.0, 2.0, 3.0]), halves(&[4.0, 6.0, 3.0]));
        assert_eq!(l2(&a, &b), 5.0);
        assert_eq!(l1(&a, &b), 7.0);
        assert_eq!(neg_inner_product(&a, &b), -25.0);
        assert_eq!(cosine(&halves(&[1.0, 0.0]), &halves(&[0.0, 3.0])), 1.0);
        assert_eq!(cosine(&halves(&[2.0, 2.0]), &halves(&[-1.0, -1.0])), 2.0);
        assert_eq!(cosine(&halves(&[0.5, 0.25]), &halves(&[0.5, 0.25])), 0.0, "kept within [-1, 1]");
        assert!(cosine(&halves(&[0.0, 0.0]), &halves(&[1.0, 2.0])).is_nan());
    }

    /// pgvector's scalar loops (`halfutils.c`), element after element, transcribed.
    fn pgvector_l2(a: &[f32], b: &[f32]) -> f64 {
        let mut d = 0f32;
        for (x, y) in a.iter().zip(b) {
            d += (x - y) * (x - y);
        }
        f64::from(d).sqrt()
    }

    proptest! {
        #[test]
        fn kernels_match_pgvectors_loops(n in 1usize..600, seed in any::<u64>()) {
            let mut state = seed | 1;
            let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0 };
            let a: Vec<f32> = (0..n).map(|_| f16::from_f32(next()).to_f32()).collect();
            let b: Vec<f32> = (0..n).map(|_| f16::from_f32(next()).to_f32()).collect();
            let (ha, hb) = (halves(&a), halves(&b));
            let expected = pgvector_l2(&a, &b);
            prop_assert!((l2(&ha, &hb) - expected).abs() <= 1e-6 * expected.max(f64::MIN_POSITIVE));
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let norms = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt() * b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            prop_assert!((neg_inner_product(&ha, &hb) + dot).abs() <= 1e-6 * norms);
            prop_assert!((cosine(&ha, &hb) - (1.0 - dot / norms)).abs() <= 1e-6);
            let l1_exact: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum();
            prop_assert!((l1(&ha, &hb) - l1_exact).abs() <= 1e-6 * l1_exact.max(f64::MIN_POSITIVE));
        }
    }
}
