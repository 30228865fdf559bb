//! The distance arithmetic of bit strings on borrowed BLOBs, as pgvector's `bitutils.c` does it (popcounts
//! of 64-bit words, then of the remaining bytes): exact integers, so the results are pgvector's to the bit.

/// The popcount of `op(a, b)` summed over both slices, 8 bytes at a time.
#[inline(always)]
fn popcount(a: &[u8], b: &[u8], op: impl Fn(u64, u64) -> u64) -> u64 {
    let (chunks_a, chunks_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: u64 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| u64::from(op(u64::from(*x), u64::from(*y)).count_ones()))
        .sum();
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    chunks_a.zip(chunks_b).map(|(x, y)| u64::from(op(word(x), word(y)).count_ones())).sum::<u64>() + tail
}

/// The number of bits that differ.
#[allow(clippy::cast_precision_loss)] // at most 2^53 bits: exact
pub(super) fn hamming(a: &[u8], b: &[u8]) -> f64 {
    popcount(a, b, |x, y| x ^ y) as f64
}

/// pgvector's `BitJaccardDistance`: `1 - |a ∧ b| / (|a| + |b| - |a ∧ b|)`, 1 when no bit is set in both.
#[allow(clippy::cast_precision_loss)] // at most 2^53 bits: exact
pub(super) fn jaccard(a: &[u8], b: &[u8]) -> f64 {
    let ab = popcount(a, b, |x, y| x & y);
    let aa = popcount(a, a, |x, _| x);
    let bb = popcount(b, b, |_, y| y);
    if ab == 0 {
        1.0
    } else {
        1.0 - ab as f64 / (aa + bb - ab) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn textbook_values() {
        assert_eq!(hamming(&[0b1010_0000], &[0b0110_0000]), 2.0);
        assert_eq!(jaccard(&[0b1110_0000], &[0b0111_0000]), 1.0 - 2.0 / 4.0);
        assert_eq!(jaccard(&[0], &[0]), 1.0);
        assert_eq!(jaccard(&[0xff; 20], &[0xff; 20]), 0.0);
    }

    proptest! {
        #[test]
        fn kernels_count_bit_by_bit(pairs in prop::collection::vec(any::<(u8, u8)>(), 1..100)) {
            let (a, b): (Vec<u8>, Vec<u8>) = pairs.into_iter().unzip();
            let bit = |v: &[u8], i: usize| v[i / 8] >> (7 - i % 8) & 1 == 1;
            let n = 8 * a.len();
            let differ = (0..n).filter(|i| bit(&a, *i) != bit(&b, *i)).count();
            let both = (0..n).filter(|i| bit(&a, *i) && bit(&b, *i)).count();
            let either = (0..n).filter(|i| bit(&a, *i) || bit(&b, *i)).count();
            prop_assert_eq!(hamming(&a, &b), differ as f64);
            let expected = if both == 0 { 1.0 } else { 1.0 - both as f64 / either as f64 };
            prop_assert_eq!(jaccard(&a, &b), expected);
        }
    }
}
