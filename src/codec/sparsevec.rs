//! Wire formats of [`SparseVector`] (pgvector's `sparsevec`).
//!
//! | format | layout | length |
//! |---|---|---|
//! | PostgreSQL binary | `i32` BE dims, `i32` BE nnz, `i32` zero, nnz × `i32` BE index (0-based), nnz × `f32` BE value | `12 + 8 × nnz` |
//! | SQLite BLOB | `u32` LE dims, nnz × `u32` LE index (0-based), nnz × `f32` LE value | `4 + 8 × nnz` |
//!
//! In both, indices are strictly ascending and below the dimensions, and values finite and non-zero; the
//! SQLite form needs no count, since nnz is `(length - 4) / 8`. It is pgvector's layout without the two
//! redundant header fields, in the byte order of the other SQLite formats, so that a BLOB's first four
//! bytes say its dimensions (a `CHECK` can compare them, see [`SqliteBlobShape`](super::SqliteBlobShape)).
//!
//! Decoders check everything pgvector's `sparsevec_recv` checks and return a [`VectorError`] naming the
//! problem; they never panic.
//!
//! ```
//! use diesel_vector::{codec, SparseVector};
//!
//! let v: SparseVector = "{1:1.5,3:2}/5".parse()?;
//! let blob = codec::sparsevec::encode_sqlite(&v);
//! assert_eq!(blob, [5, 0, 0, 0, /* indices */ 0, 0, 0, 0, 2, 0, 0, 0, /* values */ 0, 0, 0xc0, 0x3f, 0, 0, 0, 0x40]);
//! assert_eq!(codec::sparsevec::decode_sqlite(&blob)?, v);
//! assert_eq!(codec::sparsevec::decode_pg(&codec::sparsevec::encode_pg(&v))?, v);
//! # Ok::<(), diesel_vector::VectorError>(())
//! ```

use std::io;

use crate::sparsevec::{check_dims, check_index, check_nnz};
use crate::{SparseVector, VectorError, VectorKind};

/// Size of the PostgreSQL binary header: dimensions, number of non-zero elements, a reserved zero.
pub const PG_HEADER_LEN: usize = 12;

/// Size of the SQLite BLOB's header: the dimensions.
pub const SQLITE_HEADER_LEN: usize = 4;

/// Length of the PostgreSQL binary encoding of a sparse vector with `nnz` non-zero elements.
#[inline]
pub const fn pg_encoded_len(nnz: usize) -> usize {
    PG_HEADER_LEN + 8 * nnz
}

/// Length of the SQLite BLOB of a sparse vector with `nnz` non-zero elements.
#[inline]
pub const fn sqlite_encoded_len(nnz: usize) -> usize {
    SQLITE_HEADER_LEN + 8 * nnz
}

/// `nnz` as the header's `i32`: at most MAX_NNZ (16000), which always fits.
fn nnz_i32(v: &SparseVector) -> i32 {
    i32::try_from(v.nnz()).unwrap_or(i32::MAX)
}

fn encode_pg_into(v: &SparseVector, out: &mut Vec<u8>) {
    out.reserve(pg_encoded_len(v.nnz()));
    out.extend_from_slice(&v.dimensions().to_be_bytes());
    out.extend_from_slice(&nnz_i32(v).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend(v.indices().iter().flat_map(|i| i.to_be_bytes()));
    out.extend(v.values().iter().flat_map(|x| x.to_be_bytes()));
}

/// Encodes a sparse vector in pgvector's binary format.
pub fn encode_pg(v: &SparseVector) -> Vec<u8> {
    let mut out = Vec::new();
    encode_pg_into(v, &mut out);
    out
}

/// Writes a sparse vector in pgvector's binary format to `out` in one `write_all` (prepared in a
/// per-thread buffer), so that a growing buffer allocates once.
pub fn write_pg<W: io::Write + ?Sized>(v: &SparseVector, out: &mut W) -> io::Result<()> {
    super::scratch::write_all_via(out, |buf| encode_pg_into(v, buf))
}

/// Decodes pgvector's binary `sparsevec`, with every check of pgvector's `sparsevec_recv`: dimensions
/// between 1 and 10⁹, at most 16000 non-zero elements, a zero reserved field, the length, indices
/// strictly ascending and in range, values finite and non-zero.
pub fn decode_pg(bytes: &[u8]) -> Result<SparseVector, VectorError> {
    let kind = VectorKind::SparseVector;
    let Some((header, payload)) = bytes.split_first_chunk::<PG_HEADER_LEN>() else {
        return Err(VectorError::TruncatedValue { kind, len: bytes.len(), header_len: PG_HEADER_LEN });
    };
    let field = |i: usize| i32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (dims, nnz, reserved) = (field(0), field(4), field(8));
    let dims_usize = check_dims(i64::from(dims))?;
    let nnz = usize::try_from(nnz).map_err(|_| VectorError::NegativeLength { kind, value: i64::from(nnz) })?;
    check_nnz(nnz)?;
    if reserved != 0 {
        return Err(VectorError::ReservedFieldNotZero { kind, value: i64::from(reserved) });
    }
    if payload.len() != 8 * nnz {
        return Err(VectorError::ValueLengthMismatch {
            kind,
            declared: nnz,
            expected_len: pg_encoded_len(nnz),
            actual_len: bytes.len(),
        });
    }
    let (indices, values) = payload.split_at(4 * nnz);
    let indices = read_indices(bytemuck::cast_slice(indices), i32::from_be_bytes, dims_usize)?;
    let values = read_values(bytemuck::cast_slice(values), f32::from_be_bytes)?;
    Ok(SparseVector::from_validated(dims, indices, values))
}

/// The SQLite BLOB (see the [module docs](self)).
pub fn encode_sqlite(v: &SparseVector) -> Vec<u8> {
    let mut out = Vec::with_capacity(sqlite_encoded_len(v.nnz()));
    out.extend_from_slice(&v.dimensions().to_le_bytes());
    out.extend(v.indices().iter().flat_map(|i| i.to_le_bytes()));
    out.extend(v.values().iter().flat_map(|x| x.to_le_bytes()));
    out
}

/// Decodes the SQLite BLOB, with the checks of [`decode_pg`].
pub fn decode_sqlite(bytes: &[u8]) -> Result<SparseVector, VectorError> {
    let parts = sqlite_parts(bytes)?;
    let dims = check_dims(i64::from(parts.dims))?;
    check_nnz(parts.indices.len())?;
    check_indices(parts.indices, i32::from_le_bytes, dims)?;
    let values = read_values(parts.values, f32::from_le_bytes)?;
    // On little-endian targets the BLOB's indices are their memory: one copy.
    #[cfg(target_endian = "little")]
    let indices: Vec<i32> = {
        let mut indices = vec![0i32; parts.indices.len()];
        bytemuck::cast_slice_mut::<i32, [u8; 4]>(&mut indices).copy_from_slice(parts.indices);
        indices
    };
    #[cfg(not(target_endian = "little"))]
    let indices: Vec<i32> = parts.indices.iter().map(|w| i32::from_le_bytes(*w)).collect();
    // `check_dims` accepted it: at most 10^9, which fits an i32.
    Ok(SparseVector::from_validated(i32::try_from(dims).unwrap_or(i32::MAX), indices, values))
}

/// An SQLite BLOB's parts, borrowed: what a distance function reads in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqliteParts<'a> {
    /// The dimensions, as stored.
    pub(crate) dims: u32,
    /// Little-endian indices.
    pub(crate) indices: &'a [[u8; 4]],
    /// Little-endian values, as many as indices.
    pub(crate) values: &'a [[u8; 4]],
}

/// Splits an SQLite BLOB into its parts after checking its length (nothing else).
pub(crate) fn sqlite_parts(bytes: &[u8]) -> Result<SqliteParts<'_>, VectorError> {
    let invalid = || VectorError::InvalidBlob { kind: VectorKind::SparseVector, blob_size: bytes.len() };
    let (header, rest) = bytes.split_first_chunk::<SQLITE_HEADER_LEN>().ok_or_else(invalid)?;
    if rest.len() % 8 != 0 {
        return Err(invalid());
    }
    let (indices, values) = rest.split_at(rest.len() / 2);
    Ok(SqliteParts {
        dims: u32::from_le_bytes(*header),
        indices: bytemuck::cast_slice(indices),
        values: bytemuck::cast_slice(values),
    })
}

/// Reads indices, checking that they are strictly ascending and below `dims`.
fn read_indices(words: &[[u8; 4]], read: impl Fn([u8; 4]) -> i32 + Copy, dims: usize) -> Result<Vec<i32>, VectorError> {
    check_indices(words, read, dims)?;
    Ok(words.iter().map(|w| read(*w)).collect())
}

/// Checks that the indices in `words` are strictly ascending and below `dims`: one branch-free pass over
/// neighbouring pairs (which vectorises), the exact search for the offending index only on failure.
///
/// Generic over `read` (rather than taking a function pointer) so that each byte order gets its own
/// inlined, vectorised loop.
pub(crate) fn check_indices(
    words: &[[u8; 4]],
    read: impl Fn([u8; 4]) -> i32 + Copy,
    dims: usize,
) -> Result<(), VectorError> {
    let ascending = words.windows(2).fold(true, |ok, pair| ok & (read(pair[0]) < read(pair[1])));
    let in_range = match (words.first(), words.last()) {
        (Some(first), Some(last)) => read(*first) >= 0 && usize::try_from(read(*last)).is_ok_and(|last| last < dims),
        _ => true,
    };
    if ascending && in_range {
        Ok(())
    } else {
        find_bad_index(words, read, dims)
    }
}

#[cold]
#[inline(never)]
fn find_bad_index(words: &[[u8; 4]], read: impl Fn([u8; 4]) -> i32, dims: usize) -> Result<(), VectorError> {
    let mut previous = None;
    for (position, word) in words.iter().enumerate() {
        let index = i64::from(read(*word));
        check_index(position, index, previous, dims)?;
        previous = Some(index);
    }
    Ok(())
}

/// Reads values, checking that they are finite and not zero (one branch-free pass, then the exact search
/// only on failure).
fn read_values(words: &[[u8; 4]], read: impl Fn([u8; 4]) -> f32) -> Result<Vec<f32>, VectorError> {
    let values: Vec<f32> = words.iter().map(|w| read(*w)).collect();
    if values.iter().fold(false, |bad, v| bad | !v.is_finite() | (*v == 0.0)) {
        find_bad_value(&values)?;
    }
    Ok(values)
}

#[cold]
#[inline(never)]
fn find_bad_value(values: &[f32]) -> Result<(), VectorError> {
    match values.iter().enumerate().find(|(_, v)| !v.is_finite() || **v == 0.0) {
        Some((position, value)) if value.is_finite() => Err(VectorError::SparseZeroValue { position }),
        Some((position, value)) => Err(VectorError::NotFinite { index: position, value: *value }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pg_bytes(dims: i32, nnz: i32, reserved: i32, indices: &[i32], values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for x in [dims, nnz, reserved].iter().chain(indices) {
            out.extend_from_slice(&x.to_be_bytes());
        }
        out.extend(values.iter().flat_map(|x| x.to_be_bytes()));
        out
    }

    fn lite_bytes(dims: u32, indices: &[i32], values: &[f32]) -> Vec<u8> {
        let mut out = dims.to_le_bytes().to_vec();
        out.extend(indices.iter().flat_map(|x| x.to_le_bytes()));
        out.extend(values.iter().flat_map(|x| x.to_le_bytes()));
        out
    }

    #[test]
    fn encodings_are_the_documented_layouts() {
        let v = SparseVector::new(5, vec![0, 2], vec![1.5, -2.0]).unwrap();
        assert_eq!(encode_pg(&v), pg_bytes(5, 2, 0, &[0, 2], &[1.5, -2.0]));
        assert_eq!(encode_sqlite(&v), lite_bytes(5, &[0, 2], &[1.5, -2.0]));
        let mut written = Vec::new();
        write_pg(&v, &mut written).unwrap();
        assert_eq!(written, encode_pg(&v));
        let empty = SparseVector::new(3, vec![], vec![]).unwrap();
        assert_eq!(encode_sqlite(&empty), [3, 0, 0, 0]);
        assert_eq!(decode_sqlite(&[3, 0, 0, 0]).unwrap(), empty);
        assert_eq!(decode_pg(&encode_pg(&empty)).unwrap(), empty);
    }

    #[test]
    fn pg_decoding_checks_what_pgvector_checks() {
        let kind = VectorKind::SparseVector;
        let dec = |dims, nnz, reserved, i: &[i32], v: &[f32]| decode_pg(&pg_bytes(dims, nnz, reserved, i, v));
        assert_eq!(decode_pg(&[0; 11]), Err(VectorError::TruncatedValue { kind, len: 11, header_len: 12 }));
        assert_eq!(dec(0, 0, 0, &[], &[]), Err(VectorError::Empty));
        assert_eq!(dec(-1, 0, 0, &[], &[]), Err(VectorError::NegativeLength { kind, value: -1 }));
        assert!(matches!(
            dec(1_000_000_001, 0, 0, &[], &[]),
            Err(VectorError::LimitExceeded { what: "dimensions", .. })
        ));
        assert_eq!(dec(5, -1, 0, &[], &[]), Err(VectorError::NegativeLength { kind, value: -1 }));
        assert!(matches!(
            dec(20_000, 16_001, 0, &[], &[]),
            Err(VectorError::LimitExceeded { what: "non-zero elements", .. })
        ));
        assert_eq!(dec(5, 0, 7, &[], &[]), Err(VectorError::ReservedFieldNotZero { kind, value: 7 }));
        assert_eq!(
            dec(5, 2, 0, &[0], &[1.0]),
            Err(VectorError::ValueLengthMismatch { kind, declared: 2, expected_len: 28, actual_len: 20 })
        );
        assert_eq!(
            dec(5, 1, 0, &[5], &[1.0]),
            Err(VectorError::SparseIndexOutOfRange { position: 0, index: 5, dims: 5 })
        );
        assert_eq!(
            dec(5, 1, 0, &[-2], &[1.0]),
            Err(VectorError::SparseIndexOutOfRange { position: 0, index: -2, dims: 5 })
        );
        assert_eq!(
            dec(5, 2, 0, &[3, 3], &[1.0, 1.0]),
            Err(VectorError::SparseIndicesNotAscending { position: 1, index: 3, previous: 3 })
        );
        assert_eq!(
            dec(5, 2, 0, &[3, 1], &[1.0, 1.0]),
            Err(VectorError::SparseIndicesNotAscending { position: 1, index: 1, previous: 3 })
        );
        assert_eq!(dec(5, 2, 0, &[1, 3], &[1.0, 0.0]), Err(VectorError::SparseZeroValue { position: 1 }));
        assert_eq!(dec(5, 1, 0, &[1], &[-0.0]), Err(VectorError::SparseZeroValue { position: 0 }));
        assert!(matches!(dec(5, 1, 0, &[1], &[f32::NAN]), Err(VectorError::NotFinite { index: 0, .. })));
    }

    #[test]
    fn sqlite_decoding_checks_the_same() {
        let kind = VectorKind::SparseVector;
        for len in [0, 1, 3, 5, 8, 11] {
            assert_eq!(decode_sqlite(&vec![1; len]), Err(VectorError::InvalidBlob { kind, blob_size: len }));
        }
        assert_eq!(decode_sqlite(&lite_bytes(0, &[], &[])), Err(VectorError::Empty));
        assert!(matches!(decode_sqlite(&lite_bytes(u32::MAX, &[], &[])), Err(VectorError::LimitExceeded { .. })));
        assert_eq!(
            decode_sqlite(&lite_bytes(5, &[2, 1], &[1.0, 1.0])),
            Err(VectorError::SparseIndicesNotAscending { position: 1, index: 1, previous: 2 })
        );
        assert_eq!(decode_sqlite(&lite_bytes(5, &[1], &[0.0])), Err(VectorError::SparseZeroValue { position: 0 }));
        assert!(matches!(decode_sqlite(&lite_bytes(5, &[1], &[f32::INFINITY])), Err(VectorError::NotFinite { .. })));
        let too_many: Vec<i32> = (0..16_001).collect();
        assert!(matches!(
            decode_sqlite(&lite_bytes(20_000, &too_many, &vec![1.0; 16_001])),
            Err(VectorError::LimitExceeded { what: "non-zero elements", found: 16_001, .. })
        ));
    }

    fn sparse() -> impl Strategy<Value = SparseVector> {
        (1i32..1_000_000_000).prop_flat_map(|dims| {
            prop::collection::btree_map(
                0..dims,
                any::<u32>().prop_map(f32::from_bits).prop_filter("finite", |x| x.is_finite()),
                0..50,
            )
            .prop_map(move |map| SparseVector::from_map(&map, dims).unwrap())
        })
    }

    fn bits(v: &SparseVector) -> (i32, Vec<i32>, Vec<u32>) {
        (v.dimensions(), v.indices().to_vec(), v.values().iter().map(|x| x.to_bits()).collect())
    }

    proptest! {
        #[test]
        fn every_valid_sparse_vector_round_trips_bit_exact(v in sparse()) {
            prop_assert_eq!(bits(&decode_pg(&encode_pg(&v)).unwrap()), bits(&v));
            prop_assert_eq!(bits(&decode_sqlite(&encode_sqlite(&v)).unwrap()), bits(&v));
            prop_assert_eq!(encode_sqlite(&v).len(), sqlite_encoded_len(v.nnz()));
            prop_assert_eq!(encode_pg(&v).len(), pg_encoded_len(v.nnz()));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(v) = decode_pg(&bytes) {
                prop_assert_eq!(encode_pg(&v), bytes.clone());
            }
            if let Ok(v) = decode_sqlite(&bytes) {
                prop_assert_eq!(encode_sqlite(&v), bytes.clone());
            }
        }

        #[test]
        fn decoding_arbitrary_headers_never_panics(
            dims in any::<i32>(), nnz in -2i32..40, reserved in 0i32..2, tail in prop::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut bytes = pg_bytes(dims, nnz, reserved, &[], &[]);
            bytes.extend_from_slice(&tail);
            let _ = decode_pg(&bytes);
            let mut lite = dims.to_le_bytes().to_vec();
            lite.extend_from_slice(&tail);
            let _ = decode_sqlite(&lite);
        }
    }
}
