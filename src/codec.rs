//! Pure encoders and decoders for the two wire formats, with no database in sight.
//!
//! | format | layout | used by |
//! |---|---|---|
//! | pgvector binary | `u16` BE dims, `u16` zero, then each `f32` BE | PostgreSQL's `vector_send`/`vector_recv` |
//! | sqlite-vec BLOB | each `f32` little-endian, nothing else | sqlite-vec's `float[N]` and `vec_f32` |
//!
//! Decoders validate while they convert (length, header, finiteness) in one pass and return a
//! [`VectorError`] for anything malformed; they never panic. Encoders take a [`Vector`], which is valid
//! by construction, and write it without checking again. [`pg_payload_to_sqlite`] and
//! [`sqlite_to_pg_payload`] convert between the two formats without building a `Vec<f32>`.
//!
//! ```
//! use diesel_vector::{codec, Vector};
//!
//! let v = Vector::new(vec![1.0, -2.0])?;
//! let pg = codec::encode_pg(&v);
//! assert_eq!(pg, [0, 2, 0, 0, 0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]);
//! assert_eq!(codec::decode_pg(&pg)?, v);
//!
//! let blob = codec::encode_sqlite(&v);
//! assert_eq!(&*blob, &[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
//! assert_eq!(codec::decode_sqlite(&blob)?, v);
//! # Ok::<(), diesel_vector::VectorError>(())
//! ```

use std::borrow::Cow;
use std::io;

use crate::vector::{check_len, first_not_finite};
use crate::{Vector, VectorError};

/// Size of pgvector's binary header: `u16` dimensions and a reserved `u16`.
pub const PG_HEADER_LEN: usize = 4;

const F32_LEN: usize = std::mem::size_of::<f32>();
const EXPONENT_MASK: u32 = 0x7f80_0000;

/// Length of the pgvector binary encoding of a vector with `dims` dimensions.
#[inline]
pub const fn pg_encoded_len(dims: usize) -> usize {
    PG_HEADER_LEN + dims * F32_LEN
}

/// Encodes a vector in pgvector's binary format.
pub fn encode_pg(v: &Vector) -> Vec<u8> {
    let mut out = Vec::with_capacity(pg_encoded_len(v.dims()));
    write_pg(v, &mut out).unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
    out
}

/// Writes a vector in pgvector's binary format to `out`, a few kilobytes at a time, with no heap
/// allocation of its own.
pub fn write_pg<W: io::Write + ?Sized>(v: &Vector, out: &mut W) -> io::Result<()> {
    let values = v.as_slice();
    // A Vector has 1..=MAX_DIMS (16000) elements, which always fits the u16 header.
    let dims = u16::try_from(values.len()).map_err(|_| io::Error::other("vector too long for pgvector"))?;
    let mut header = [0u8; PG_HEADER_LEN];
    header[..2].copy_from_slice(&dims.to_be_bytes());
    out.write_all(&header)?;

    const CHUNK: usize = 1024;
    let mut buf = [0u8; CHUNK * F32_LEN];
    for chunk in values.chunks(CHUNK) {
        let bytes = &mut buf[..chunk.len() * F32_LEN];
        for (dst, x) in bytes.chunks_exact_mut(F32_LEN).zip(chunk) {
            dst.copy_from_slice(&x.to_be_bytes());
        }
        out.write_all(bytes)?;
    }
    Ok(())
}

/// Decodes pgvector's binary format, validating the header, the length and every element.
pub fn decode_pg(bytes: &[u8]) -> Result<Vector, VectorError> {
    let payload = pg_payload(bytes)?;
    decode_floats(payload, f32::from_be_bytes).map(Vector::from_validated)
}

/// Checks a pgvector binary value's header and length and returns the element bytes after the header.
///
/// Elements are not checked for finiteness here: [`decode_pg`] and [`pg_payload_to_sqlite`] do that in
/// their own pass over the bytes.
pub fn pg_payload(bytes: &[u8]) -> Result<&[u8], VectorError> {
    let Some((header, payload)) = bytes.split_first_chunk::<PG_HEADER_LEN>() else {
        return Err(VectorError::TruncatedHeader { len: bytes.len() });
    };
    let dims = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let reserved = u16::from_be_bytes([header[2], header[3]]);
    if reserved != 0 {
        return Err(VectorError::ReservedNotZero { value: reserved });
    }
    check_len(dims)?;
    if payload.len() != dims * F32_LEN {
        return Err(VectorError::LengthMismatch { dims, expected_len: pg_encoded_len(dims), actual_len: bytes.len() });
    }
    Ok(payload)
}

/// The sqlite-vec BLOB for a vector: its elements as little-endian `f32`.
///
/// On little-endian targets this borrows the vector's own memory: no copy at all.
#[inline]
pub fn encode_sqlite(v: &Vector) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        Cow::Borrowed(bytemuck::cast_slice(v.as_slice()))
    }
    #[cfg(not(target_endian = "little"))]
    {
        Cow::Owned(v.as_slice().iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Decodes a sqlite-vec BLOB (little-endian `f32`), validating its length and every element.
pub fn decode_sqlite(bytes: &[u8]) -> Result<Vector, VectorError> {
    check_blob_len(bytes.len())?;
    decode_floats(bytes, f32::from_le_bytes).map(Vector::from_validated)
}

/// The elements of a sqlite-vec BLOB as little-endian 4-byte words, borrowed without a copy, for
/// computing on a stored vector without decoding it into a `Vec` (each word is `f32::from_le_bytes`).
///
/// Checks what sqlite-vec's own functions check: the BLOB is non-empty and a whole number of floats.
/// Elements are not checked for finiteness and the dimension limit does not apply: a distance function
/// takes whatever sqlite-vec takes.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_words(blob: &[u8]) -> Result<&[[u8; F32_LEN]], VectorError> {
    if blob.is_empty() {
        return Err(VectorError::Empty);
    }
    bytemuck::try_cast_slice(blob).map_err(|_| VectorError::InvalidBlobSize { blob_size: blob.len() })
}

fn check_blob_len(len: usize) -> Result<(), VectorError> {
    if len % F32_LEN != 0 {
        return Err(VectorError::InvalidBlobSize { blob_size: len });
    }
    check_len(len / F32_LEN)
}

/// Converts a pgvector binary value straight into a sqlite-vec BLOB (byte swap, header dropped),
/// validating it as [`decode_pg`] does, without building a `Vec<f32>`.
///
/// `out` is cleared first; on error it is left empty.
pub fn pg_payload_to_sqlite(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), VectorError> {
    out.clear();
    let payload = pg_payload(bytes)?;
    out.reserve(payload.len());
    swap_words(payload, out, f32::from_be_bytes)
}

/// Converts a sqlite-vec BLOB straight into pgvector's binary format, validating it as
/// [`decode_sqlite`] does, without building a `Vec<f32>`.
///
/// `out` is cleared first; on error it is left empty.
pub fn sqlite_to_pg_payload(blob: &[u8], out: &mut Vec<u8>) -> Result<(), VectorError> {
    out.clear();
    check_blob_len(blob.len())?;
    let dims = u16::try_from(blob.len() / F32_LEN).unwrap_or(u16::MAX);
    out.reserve(PG_HEADER_LEN + blob.len());
    out.extend_from_slice(&dims.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    swap_words(blob, out, f32::from_le_bytes).inspect_err(|_| out.clear())
}

/// Appends `src` with every 4-byte word reversed, checking in the same pass that each word, read in
/// the source's byte order by `read`, is a finite `f32`.
fn swap_words(src: &[u8], out: &mut Vec<u8>, read: fn([u8; 4]) -> f32) -> Result<(), VectorError> {
    let start = out.len();
    out.resize(start + src.len(), 0);
    let mut bad = false;
    for (dst, w) in out[start..].chunks_exact_mut(F32_LEN).zip(src.chunks_exact(F32_LEN)) {
        let w = [w[0], w[1], w[2], w[3]];
        bad |= read(w).to_bits() & EXPONENT_MASK == EXPONENT_MASK;
        dst.copy_from_slice(&[w[3], w[2], w[1], w[0]]);
    }
    if bad {
        out.truncate(start);
        return Err(first_not_finite(src.chunks_exact(F32_LEN).map(|w| read([w[0], w[1], w[2], w[3]]))));
    }
    Ok(())
}

/// One pass from bytes to floats, accumulating a "not finite" flag without branching so that the loop
/// vectorises; the offending index is looked up only on failure.
#[inline]
fn decode_floats(bytes: &[u8], read: fn([u8; 4]) -> f32) -> Result<Vec<f32>, VectorError> {
    let mut bad = false;
    let values: Vec<f32> = bytes
        .chunks_exact(F32_LEN)
        .map(|w| {
            let v = read([w[0], w[1], w[2], w[3]]);
            bad |= v.to_bits() & EXPONENT_MASK == EXPONENT_MASK;
            v
        })
        .collect();
    if bad {
        return Err(first_not_finite(values));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(values: &[f32]) -> Vector {
        Vector::from_slice(values).unwrap()
    }

    fn pg_bytes(dims: u16, reserved: u16, values: &[f32]) -> Vec<u8> {
        let mut out = dims.to_be_bytes().to_vec();
        out.extend_from_slice(&reserved.to_be_bytes());
        for x in values {
            out.extend_from_slice(&x.to_be_bytes());
        }
        out
    }

    fn le_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn pg_encoding_is_pgvector_binary_format() {
        assert_eq!(encode_pg(&v(&[1.0, -2.0, 0.5])), pg_bytes(3, 0, &[1.0, -2.0, 0.5]));
    }

    #[test]
    fn pg_encoding_spans_several_chunks() {
        let values: Vec<f32> = (0..5000).map(|i| i as f32 * 0.5 - 7.0).collect();
        assert_eq!(encode_pg(&v(&values)), pg_bytes(5000, 0, &values));
    }

    #[test]
    fn sqlite_encoding_is_little_endian_f32() {
        assert_eq!(&*encode_sqlite(&v(&[1.0, -2.0])), le_bytes(&[1.0, -2.0]).as_slice());
    }

    #[test]
    fn pg_decoding_rejects_values_shorter_than_the_header() {
        for len in 0..4 {
            assert_eq!(decode_pg(&vec![0; len]), Err(VectorError::TruncatedHeader { len }));
        }
    }

    #[test]
    fn pg_decoding_rejects_a_length_that_does_not_match_the_header() {
        let mut bytes = pg_bytes(3, 0, &[1.0, 2.0, 3.0]);
        bytes.pop();
        assert_eq!(decode_pg(&bytes), Err(VectorError::LengthMismatch { dims: 3, expected_len: 16, actual_len: 15 }));
        let long = pg_bytes(2, 0, &[1.0, 2.0, 3.0]);
        assert_eq!(decode_pg(&long), Err(VectorError::LengthMismatch { dims: 2, expected_len: 12, actual_len: 16 }));
    }

    #[test]
    fn pg_decoding_rejects_a_non_zero_reserved_field() {
        assert_eq!(decode_pg(&pg_bytes(1, 7, &[1.0])), Err(VectorError::ReservedNotZero { value: 7 }));
    }

    #[test]
    fn pg_decoding_rejects_zero_and_too_many_dimensions() {
        assert_eq!(decode_pg(&pg_bytes(0, 0, &[])), Err(VectorError::Empty));
        let values = vec![1.0; 16_001];
        assert_eq!(
            decode_pg(&pg_bytes(16_001, 0, &values)),
            Err(VectorError::TooManyDimensions { dims: 16_001, max: 16_000 })
        );
    }

    #[test]
    fn decoding_names_the_first_element_that_is_not_finite() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let values = [1.0, 2.0, bad, f32::NAN];
            let err = decode_pg(&pg_bytes(4, 0, &values)).unwrap_err();
            assert!(matches!(err, VectorError::NotFinite { index: 2, value } if value.to_bits() == bad.to_bits()));
            let err = decode_sqlite(&le_bytes(&values)).unwrap_err();
            assert!(matches!(err, VectorError::NotFinite { index: 2, .. }));
        }
        let err = decode_pg(&pg_bytes(2, 0, &[0.0, f32::NAN])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vector element 1 is NaN: every element must be a finite number \
             (check the embedding provider's output for NaN or overflow)"
        );
    }

    #[test]
    fn sqlite_decoding_rejects_partial_floats_and_empty_blobs() {
        assert_eq!(decode_sqlite(&[0; 5]), Err(VectorError::InvalidBlobSize { blob_size: 5 }));
        assert_eq!(decode_sqlite(&[]), Err(VectorError::Empty));
        assert_eq!(
            decode_sqlite(&le_bytes(&vec![0.5; 16_001])),
            Err(VectorError::TooManyDimensions { dims: 16_001, max: 16_000 })
        );
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_words_borrow_the_blob_after_sqlite_vecs_checks() {
        let blob = le_bytes(&[1.0, -2.0]);
        let words = sqlite_words(&blob).unwrap();
        assert_eq!(words.iter().map(|w| f32::from_le_bytes(*w)).collect::<Vec<_>>(), [1.0, -2.0]);
        assert_eq!(words.as_ptr().cast::<u8>(), blob.as_ptr(), "no copy");
        assert_eq!(sqlite_words(&[]), Err(VectorError::Empty));
        assert_eq!(sqlite_words(&[0; 7]), Err(VectorError::InvalidBlobSize { blob_size: 7 }));
        // What sqlite-vec accepts, these accept: NaN and more than MAX_DIMS elements.
        assert_eq!(sqlite_words(&le_bytes(&[f32::NAN])).unwrap().len(), 1);
        assert_eq!(sqlite_words(&vec![0; 4 * 16_001]).unwrap().len(), 16_001);
    }

    #[test]
    fn payload_conversion_rejects_what_decoding_rejects() {
        let mut out = vec![9];
        let nan_le = le_bytes(&[1.0, f32::NAN]);
        assert!(matches!(sqlite_to_pg_payload(&nan_le, &mut out), Err(VectorError::NotFinite { index: 1, .. })));
        assert!(out.is_empty(), "nothing of a rejected value is left in the buffer");
        let inf_be = pg_bytes(2, 0, &[f32::INFINITY, 1.0]);
        assert!(matches!(pg_payload_to_sqlite(&inf_be, &mut out), Err(VectorError::NotFinite { index: 0, .. })));
        assert!(out.is_empty());
        assert_eq!(sqlite_to_pg_payload(&[0; 6], &mut out), Err(VectorError::InvalidBlobSize { blob_size: 6 }));
        assert_eq!(pg_payload_to_sqlite(&[0, 1, 0, 1], &mut out), Err(VectorError::ReservedNotZero { value: 1 }));
    }

    fn finite_f32() -> impl Strategy<Value = f32> {
        // Every finite bit pattern: normals, subnormals, both zeros, the extremes.
        any::<u32>().prop_map(f32::from_bits).prop_filter("finite", |x| x.is_finite())
    }

    fn valid_vector() -> impl Strategy<Value = Vector> {
        prop::collection::vec(finite_f32(), 1..300).prop_map(|values| Vector::new(values).unwrap())
    }

    fn bits(v: &Vector) -> Vec<u32> {
        v.as_slice().iter().map(|x| x.to_bits()).collect()
    }

    proptest! {
        #[test]
        fn every_valid_vector_round_trips_bit_exact(v in valid_vector()) {
            prop_assert_eq!(bits(&decode_pg(&encode_pg(&v)).unwrap()), bits(&v));
            prop_assert_eq!(bits(&decode_sqlite(&encode_sqlite(&v)).unwrap()), bits(&v));
        }

        #[test]
        fn direct_conversion_matches_decode_then_encode(v in valid_vector()) {
            let mut blob = Vec::new();
            pg_payload_to_sqlite(&encode_pg(&v), &mut blob).unwrap();
            prop_assert_eq!(&blob, &*encode_sqlite(&v));
            let mut pg = Vec::new();
            sqlite_to_pg_payload(&blob, &mut pg).unwrap();
            prop_assert_eq!(pg, encode_pg(&v));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            let pg = decode_pg(&bytes);
            prop_assert_eq!(pg.is_ok(), pg_payload_to_sqlite(&bytes, &mut out).is_ok());
            let lite = decode_sqlite(&bytes);
            prop_assert_eq!(lite.is_ok(), sqlite_to_pg_payload(&bytes, &mut out).is_ok());
            if let Ok(v) = lite {
                prop_assert_eq!(&*encode_sqlite(&v), bytes.as_slice());
            }
        }

        #[test]
        fn decoding_headers_with_arbitrary_dims_never_panics(dims in any::<u16>(), reserved in 0u16..2, tail in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = dims.to_be_bytes().to_vec();
            bytes.extend_from_slice(&reserved.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let _ = decode_pg(&bytes);
        }
    }
}
