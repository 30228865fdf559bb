//! Wire formats of [`HalfVector`] (pgvector's `halfvec`).
//!
//! | format | layout | length |
//! |---|---|---|
//! | PostgreSQL binary | `u16` BE dims, `u16` zero, then each `f16` BE | `4 + 2 × dims` |
//! | SQLite BLOB | each `f16` little-endian, nothing else | `2 × dims` |
//!
//! Decoders check the header, the length, the dimension limit and that every element is finite, and
//! return a [`VectorError`] for anything else; they never panic.
//!
//! ```
//! use diesel_vector::{codec, HalfVector};
//!
//! let v = HalfVector::from_f32_slice(&[1.0, -2.0])?;
//! let pg = codec::halfvec::encode_pg(&v);
//! assert_eq!(pg, [0, 2, 0, 0, 0x3c, 0x00, 0xc0, 0x00]);
//! assert_eq!(codec::halfvec::decode_pg(&pg)?, v);
//!
//! let blob = codec::halfvec::encode_sqlite(&v);
//! assert_eq!(&*blob, &[0x00, 0x3c, 0x00, 0xc0]);
//! assert_eq!(codec::halfvec::decode_sqlite(&blob)?, v);
//! # Ok::<(), diesel_vector::VectorError>(())
//! ```

use std::borrow::Cow;
use std::io;

use half::f16;

use crate::halfvec::{check_len, first_not_finite, half_bits_finite};
use crate::{HalfVector, VectorError, VectorKind};

/// Size of the PostgreSQL binary header: `u16` dimensions and a reserved `u16`.
pub const PG_HEADER_LEN: usize = 4;

/// Length of the PostgreSQL binary encoding of a half vector with `dims` dimensions.
#[inline]
pub const fn pg_encoded_len(dims: usize) -> usize {
    PG_HEADER_LEN + 2 * dims
}

/// Length of the SQLite BLOB of a half vector with `dims` dimensions.
#[inline]
pub const fn sqlite_encoded_len(dims: usize) -> usize {
    2 * dims
}

/// Appends the PostgreSQL binary format to `out`.
fn encode_pg_into(v: &HalfVector, out: &mut Vec<u8>) {
    // At most MAX_DIMS (16000) elements: always fits the u16 header.
    let dims = u16::try_from(v.dims()).unwrap_or(u16::MAX).to_be_bytes();
    out.reserve(pg_encoded_len(v.dims()));
    out.extend_from_slice(&[dims[0], dims[1], 0, 0]);
    out.extend(v.as_slice().iter().flat_map(|h| h.to_bits().to_be_bytes()));
}

/// Encodes a half vector in pgvector's binary format.
pub fn encode_pg(v: &HalfVector) -> Vec<u8> {
    let mut out = Vec::new();
    encode_pg_into(v, &mut out);
    out
}

/// Writes a half vector in pgvector's binary format to `out` in one `write_all` (prepared in a per-thread
/// buffer), so that a growing buffer allocates once.
pub fn write_pg<W: io::Write + ?Sized>(v: &HalfVector, out: &mut W) -> io::Result<()> {
    super::scratch::write_all_via(out, |buf| encode_pg_into(v, buf))
}

/// Decodes pgvector's binary `halfvec`, validating the header, the length and every element.
pub fn decode_pg(bytes: &[u8]) -> Result<HalfVector, VectorError> {
    let Some((header, payload)) = bytes.split_first_chunk::<PG_HEADER_LEN>() else {
        return Err(VectorError::TruncatedValue {
            kind: VectorKind::HalfVector,
            len: bytes.len(),
            header_len: PG_HEADER_LEN,
        });
    };
    let dims = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let reserved = u16::from_be_bytes([header[2], header[3]]);
    if reserved != 0 {
        return Err(VectorError::ReservedFieldNotZero { kind: VectorKind::HalfVector, value: i64::from(reserved) });
    }
    check_len(dims)?;
    if payload.len() != 2 * dims {
        return Err(VectorError::ValueLengthMismatch {
            kind: VectorKind::HalfVector,
            declared: dims,
            expected_len: pg_encoded_len(dims),
            actual_len: bytes.len(),
        });
    }
    let halves: &[[u8; 2]] = bytemuck::cast_slice(payload);
    checked(halves.iter().map(|w| f16::from_bits(u16::from_be_bytes(*w))).collect())
}

/// The SQLite BLOB: the elements as little-endian `f16`. On little-endian targets this borrows the
/// vector's own memory.
#[inline]
pub fn encode_sqlite(v: &HalfVector) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        Cow::Borrowed(bytemuck::cast_slice(v.as_slice()))
    }
    #[cfg(not(target_endian = "little"))]
    {
        Cow::Owned(v.as_slice().iter().flat_map(|h| h.to_bits().to_le_bytes()).collect())
    }
}

/// Decodes an SQLite BLOB of little-endian `f16`, validating its length, the dimension limit and every
/// element.
pub fn decode_sqlite(bytes: &[u8]) -> Result<HalfVector, VectorError> {
    let halves = sqlite_halves(bytes)?;
    check_len(halves.len())?;
    checked(halves.iter().map(|w| f16::from_bits(u16::from_le_bytes(*w))).collect())
}

/// The elements of an SQLite BLOB as little-endian 2-byte words, borrowed, after the checks a distance
/// function makes: non-empty and a whole number of elements (finiteness and the dimension limit are not
/// checked).
pub(crate) fn sqlite_halves(bytes: &[u8]) -> Result<&[[u8; 2]], VectorError> {
    if bytes.is_empty() {
        return Err(VectorError::Empty);
    }
    bytemuck::try_cast_slice(bytes)
        .map_err(|_| VectorError::InvalidBlob { kind: VectorKind::HalfVector, blob_size: bytes.len() })
}

/// Checks that every element is finite, in one branch-free pass (the search for the offending element
/// runs only on failure).
fn checked(values: Vec<f16>) -> Result<HalfVector, VectorError> {
    if values.iter().fold(false, |bad, h| bad | !half_bits_finite(h.to_bits())) {
        return Err(first_not_finite(&values));
    }
    Ok(HalfVector::from_validated(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pg_bytes(dims: u16, reserved: u16, halves: &[u16]) -> Vec<u8> {
        let mut out = dims.to_be_bytes().to_vec();
        out.extend_from_slice(&reserved.to_be_bytes());
        out.extend(halves.iter().flat_map(|h| h.to_be_bytes()));
        out
    }

    #[test]
    fn pg_encoding_is_pgvectors_binary_format() {
        let v = HalfVector::from_f32_slice(&[1.0, -2.0, 65504.0, -0.0]).unwrap();
        assert_eq!(encode_pg(&v), pg_bytes(4, 0, &[0x3c00, 0xc000, 0x7bff, 0x8000]));
        let mut written = vec![9];
        write_pg(&v, &mut written).unwrap();
        assert_eq!(written[1..], encode_pg(&v));
        assert_eq!(encode_pg(&v).len(), pg_encoded_len(4));
    }

    #[test]
    fn pg_decoding_names_what_is_wrong() {
        let kind = VectorKind::HalfVector;
        for len in 0..4 {
            assert_eq!(decode_pg(&vec![0; len]), Err(VectorError::TruncatedValue { kind, len, header_len: 4 }));
        }
        assert_eq!(decode_pg(&pg_bytes(1, 3, &[0])), Err(VectorError::ReservedFieldNotZero { kind, value: 3 }));
        assert_eq!(decode_pg(&pg_bytes(0, 0, &[])), Err(VectorError::Empty));
        assert_eq!(
            decode_pg(&pg_bytes(16_001, 0, &vec![0; 16_001])),
            Err(VectorError::LimitExceeded { kind, what: "dimensions", found: 16_001, max: 16_000 })
        );
        assert_eq!(
            decode_pg(&pg_bytes(2, 0, &[0])),
            Err(VectorError::ValueLengthMismatch { kind, declared: 2, expected_len: 8, actual_len: 6 })
        );
        assert_eq!(
            decode_pg(&pg_bytes(2, 0, &[0x3c00, 0x7c00])),
            Err(VectorError::NotFinite { index: 1, value: f32::INFINITY })
        );
        assert!(matches!(decode_pg(&pg_bytes(1, 0, &[0xfe00])), Err(VectorError::NotFinite { index: 0, .. })));
    }

    #[test]
    fn a_vector_read_as_a_halfvec_says_so() {
        let vector = crate::codec::encode_pg(&crate::Vector::new(vec![1.0, 2.0, 3.0]).unwrap());
        let err = decode_pg(&vector).unwrap_err();
        assert_eq!(
            err.to_string(),
            "halfvec value declares 3 dimensions (10 bytes) but is 16 bytes long: is the column a `vector` \
             (4 bytes per element) rather than a `halfvec`?"
        );
    }

    #[test]
    fn sqlite_decoding_names_what_is_wrong() {
        assert_eq!(decode_sqlite(&[]), Err(VectorError::Empty));
        assert_eq!(
            decode_sqlite(&[0, 0x3c, 0]),
            Err(VectorError::InvalidBlob { kind: VectorKind::HalfVector, blob_size: 3 })
        );
        assert!(matches!(decode_sqlite(&[0, 0x3c, 0, 0x7c]), Err(VectorError::NotFinite { index: 1, .. })));
        assert!(matches!(decode_sqlite(&vec![0; 2 * 16_001]), Err(VectorError::LimitExceeded { found: 16_001, .. })));
    }

    fn finite_halves() -> impl Strategy<Value = Vec<f16>> {
        prop::collection::vec(any::<u16>().prop_map(f16::from_bits).prop_filter("finite", |h| h.is_finite()), 1..300)
    }

    fn bits(v: &HalfVector) -> Vec<u16> {
        v.as_slice().iter().map(|h| h.to_bits()).collect()
    }

    proptest! {
        #[test]
        fn every_valid_half_vector_round_trips_bit_exact(values in finite_halves()) {
            let v = HalfVector::new(values).unwrap();
            prop_assert_eq!(bits(&decode_pg(&encode_pg(&v)).unwrap()), bits(&v));
            prop_assert_eq!(bits(&decode_sqlite(&encode_sqlite(&v)).unwrap()), bits(&v));
            prop_assert_eq!(encode_sqlite(&v).len(), sqlite_encoded_len(v.dims()));
        }

        #[test]
        fn decoders_name_the_first_element_that_is_not_finite(
            values in finite_halves(),
            pick in any::<prop::sample::Index>(),
            bad in prop::sample::select(vec![0x7c00u16, 0xfc00, 0x7e00, 0xffff, 0x7c01]),
        ) {
            let mut halves: Vec<u16> = values.iter().map(|h| h.to_bits()).collect();
            let index = pick.index(halves.len());
            halves[index] = bad;
            let pg = pg_bytes(u16::try_from(halves.len()).unwrap(), 0, &halves);
            let lite: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
            let names_it = |e: VectorError| matches!(e, VectorError::NotFinite { index: i, .. } if i == index);
            prop_assert!(names_it(decode_pg(&pg).unwrap_err()));
            prop_assert!(names_it(decode_sqlite(&lite).unwrap_err()));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(v) = decode_pg(&bytes) {
                prop_assert_eq!(encode_pg(&v), bytes.clone());
            }
            if let Ok(v) = decode_sqlite(&bytes) {
                prop_assert_eq!(&*encode_sqlite(&v), bytes.as_slice());
            }
        }

        #[test]
        fn decoding_headers_with_arbitrary_dims_never_panics(dims in any::<u16>(), reserved in 0u16..2, tail in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = pg_bytes(dims, reserved, &[]);
            bytes.extend_from_slice(&tail);
            let _ = decode_pg(&bytes);
        }
    }
}
