//! The distance arithmetic of `sparsevec` on borrowed SQLite BLOBs, transcribed from pgvector 0.8's
//! `sparsevec.c`: the same merge over the two sorted index lists, the same `f32` sums in the same order.
//! The L1 distance is pgvector's to the bit; the others too, unless pgvector was built to fuse multiplies
//! and adds (its default `-march=native` lets the C compiler use FMA), and then to about 1e-7.

use crate::codec::sparsevec::SqliteParts;

fn index(w: [u8; 4]) -> u32 {
    u32::from_le_bytes(w)
}

fn value(w: [u8; 4]) -> f32 {
    f32::from_le_bytes(w)
}

/// pgvector's `SparsevecL2SquaredDistance`.
fn l2_squared(a: SqliteParts<'_>, b: SqliteParts<'_>) -> f32 {
    let mut distance = 0f32;
    let mut bpos = 0;
    for (ai, ax) in a.indices.iter().zip(a.values) {
        let (ai, ax) = (index(*ai), value(*ax));
        let mut found = false;
        for (j, (bi, bx)) in b.indices.iter().zip(b.values).enumerate().skip(bpos) {
            let (bi, bx) = (index(*bi), value(*bx));
            if ai == bi {
                let diff = ax - bx;
                distance += diff * diff;
                found = true;
            } else if ai > bi {
                distance += bx * bx;
            }
            if ai >= bi {
                bpos = j + 1;
            }
            if bi >= ai {
                break;
            }
        }
        if !found {
            distance += ax * ax;
        }
    }
    for bx in &b.values[bpos.min(b.values.len())..] {
        distance += value(*bx) * value(*bx);
    }
    distance
}

/// pgvector's `SparsevecInnerProduct`.
fn inner_product(a: SqliteParts<'_>, b: SqliteParts<'_>) -> f32 {
    let mut distance = 0f32;
    let mut bpos = 0;
    for (ai, ax) in a.indices.iter().zip(a.values) {
        let ai = index(*ai);
        for (j, (bi, bx)) in b.indices.iter().zip(b.values).enumerate().skip(bpos) {
            let bi = index(*bi);
            if ai == bi {
                distance += value(*ax) * value(*bx);
            }
            if ai >= bi {
                bpos = j + 1;
            }
            if bi >= ai {
                break;
            }
        }
    }
    distance
}

pub(super) fn l2(a: SqliteParts<'_>, b: SqliteParts<'_>) -> f64 {
    f64::from(l2_squared(a, b)).sqrt()
}

pub(super) fn neg_inner_product(a: SqliteParts<'_>, b: SqliteParts<'_>) -> f64 {
    f64::from(-inner_product(a, b))
}

/// pgvector's `sparsevec_cosine_distance`: NaN when either vector is zero.
pub(super) fn cosine(a: SqliteParts<'_>, b: SqliteParts<'_>) -> f64 {
    let norm = |v: SqliteParts<'_>| v.values.iter().fold(0f32, |acc, x| acc + value(*x) * value(*x));
    super::half::cosine_from_sums(inner_product(a, b), norm(a), norm(b))
}

/// pgvector's `sparsevec_l1_distance`.
pub(super) fn l1(a: SqliteParts<'_>, b: SqliteParts<'_>) -> f64 {
    let mut distance = 0f32;
    let mut bpos = 0;
    for (ai, ax) in a.indices.iter().zip(a.values) {
        let (ai, ax) = (index(*ai), value(*ax));
        let mut found = false;
        for (j, (bi, bx)) in b.indices.iter().zip(b.values).enumerate().skip(bpos) {
            let (bi, bx) = (index(*bi), value(*bx));
            if ai == bi {
                distance += (ax - bx).abs();
                found = true;
            } else if ai > bi {
                distance += bx.abs();
            }
            if ai >= bi {
                bpos = j + 1;
            }
            if bi >= ai {
                break;
            }
        }
        if !found {
            distance += ax.abs();
        }
    }
    for bx in &b.values[bpos.min(b.values.len())..] {
        distance += value(*bx).abs();
    }
    f64::from(distance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::sparsevec::{encode_sqlite, sqlite_parts};
    use crate::SparseVector;
    use proptest::prelude::*;

    fn blob(dense: &[f32]) -> Vec<u8> {
        encode_sqlite(&SparseVector::from_dense(dense).unwrap())
    }

    fn all(a: &[f32], b: &[f32]) -> [f64; 4] {
        let (a, b) = (blob(a), blob(b));
        let (a, b) = (sqlite_parts(&a).unwrap(), sqlite_parts(&b).unwrap());
        [l2(a, b), cosine(a, b), l1(a, b), neg_inner_product(a, b)]
    }

    #[test]
    fn small_vectors_give_the_textbook_values() {
        let [l2, cosine, l1, ip] = all(&[1.0, 0.0, 2.0, 0.0, 3.0], &[4.0, 0.0, 6.0, 0.0, 3.0]);
        assert_eq!((l2, l1, ip), (5.0, 7.0, -25.0));
        assert!((cosine - (1.0 - 25.0 / (14f64.sqrt() * 61f64.sqrt()))).abs() < 1e-7);
        // Disjoint supports, one side empty.
        assert_eq!(all(&[1.0, 0.0, 0.0], &[0.0, 2.0, 0.0])[..3], [5f64.sqrt(), 1.0, 3.0]);
        let [l2, cosine, l1, ip] = all(&[0.0, 0.0], &[3.0, 4.0]);
        assert_eq!((l2, l1, ip), (5.0, 7.0, -0.0));
        assert!(cosine.is_nan());
    }

    proptest! {
        #[test]
        fn kernels_agree_with_the_dense_arithmetic(
            pairs in prop::collection::vec((prop::sample::select(vec![0.0f32, 0.0, 1.5, -2.0, 0.25]), prop::sample::select(vec![0.0f32, 0.0, 3.0, -0.5, 1.0])), 1..80),
        ) {
            let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let [l2, cosine, l1, ip] = all(&a, &b);
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let l2_exact = a.iter().zip(&b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt();
            let l1_exact: f64 = a.iter().zip(&b).map(|(x, y)| f64::from((x - y).abs())).sum();
            prop_assert!((l2 - l2_exact).abs() <= 1e-6 * l2_exact.max(1.0));
            prop_assert!((l1 - l1_exact).abs() <= 1e-6 * l1_exact.max(1.0));
            prop_assert!((ip + dot).abs() <= 1e-6 * dot.abs().max(1.0));
            let norms = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt() * b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            if norms > 0.0 {
                prop_assert!((cosine - (1.0 - dot / norms)).abs() <= 1e-6);
            } else {
                prop_assert!(cosine.is_nan());
            }
        }
    }
}
