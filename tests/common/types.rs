//! Sample values of the other vector types (`halfvec`, `sparsevec`, `bit`) with their edge cases.

use diesel_vector::{Bit, HalfVector, SparseVector};
use half::f16;

/// The `f16` edge values every round trip must carry bit-exact.
pub fn half_edge_values() -> Vec<f16> {
    [
        0x0000u16, // 0
        0x8000,    // -0
        0x3c00,    // 1
        0xbc00,    // -1
        0x7bff,    // 65504, the largest
        0xfbff,    // -65504
        0x0400,    // the smallest normal
        0x0001,    // the smallest subnormal
        0x83ff,    // the largest negative subnormal
        0x3555,    // 0.333 (rounded)
        0x4248,    // 3.14
    ]
    .map(f16::from_bits)
    .to_vec()
}

/// A deterministic half vector of `dims` elements that starts with the edge values.
pub fn half_sample(dims: usize) -> HalfVector {
    let edges = half_edge_values();
    let values = (0..dims)
        .map(|i| edges.get(i).copied().unwrap_or_else(|| f16::from_f32(((i as f32) * 0.618_034).sin() * 3.0)))
        .collect();
    HalfVector::new(values).unwrap()
}

/// A sparse vector of `dims` dimensions with up to `nnz` non-zero elements spread over them, including
/// the first and last index and extreme values.
pub fn sparse_sample(dims: i32, nnz: usize) -> SparseVector {
    let extremes = [f32::MAX, f32::MIN, f32::MIN_POSITIVE, -f32::from_bits(1), 1.0, -0.5, 1e-30, 123_456.79];
    let mut indices: Vec<i32> = if nnz == 0 {
        vec![]
    } else {
        let step = (i64::from(dims) / nnz as i64).max(1);
        (0..nnz as i64).map(|k| k * step).filter(|i| *i < i64::from(dims)).map(|i| i as i32).collect()
    };
    if nnz > 1 && *indices.last().unwrap() != dims - 1 {
        *indices.last_mut().unwrap() = dims - 1;
    }
    let values =
        (0..indices.len()).map(|k| extremes.get(k).copied().unwrap_or((k as f32 * 0.37).cos() + 2.0)).collect();
    SparseVector::new(dims, indices, values).unwrap()
}

/// A deterministic bit string of `len` bits.
pub fn bit_sample(len: usize, seed: u64) -> Bit {
    let mut rng = super::Rng::new(seed);
    Bit::new(&(0..len).map(|_| rng.next_u64() & 1 == 1).collect::<Vec<_>>())
}

/// Asserts two half vectors are identical to the bit (so `-0` differs from `0`).
#[track_caller]
pub fn assert_half_bit_exact(actual: &HalfVector, expected: &HalfVector) {
    let bits = |v: &HalfVector| v.as_slice().iter().map(|h| h.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(actual), bits(expected));
}

/// Asserts two sparse vectors are identical to the bit.
#[track_caller]
pub fn assert_sparse_bit_exact(actual: &SparseVector, expected: &SparseVector) {
    let bits = |v: &SparseVector| {
        (v.dimensions(), v.indices().to_vec(), v.values().iter().map(|x| x.to_bits()).collect::<Vec<_>>())
    };
    assert_eq!(bits(actual), bits(expected));
}
