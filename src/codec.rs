//! Pure encoders and decoders for the two wire formats, with no database in sight.
//!
//! The functions at this level are [`Vector`]'s; [`halfvec`], [`sparsevec`] and [`bit`] hold those of
//! the other types, and [`SqliteBlobShape`] says what a valid SQLite BLOB of each type looks like.
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
use std::cell::RefCell;
use std::io;

use crate::simd::Simd;
use crate::vector::check_len;
use crate::{Vector, VectorError};

pub mod bit;
pub mod halfvec;
mod scratch;
mod shape;
pub mod sparsevec;
mod words;

pub use shape::SqliteBlobShape;

use words::{BigEndian, LittleEndian};

/// Size of pgvector's binary header: `u16` dimensions and a reserved `u16`.
pub const PG_HEADER_LEN: usize = 4;

const F32_LEN: usize = std::mem::size_of::<f32>();

/// Length of the pgvector binary encoding of a vector with `dims` dimensions.
#[inline]
pub const fn pg_encoded_len(dims: usize) -> usize {
    PG_HEADER_LEN + dims * F32_LEN
}

/// Encodes a vector in pgvector's binary format.
pub fn encode_pg(v: &Vector) -> Vec<u8> {
    words::encode_be(Simd::detect(), pg_header(v), v.as_slice())
}

/// The 4-byte header: dims and a reserved zero, both big-endian `u16`.
fn pg_header(v: &Vector) -> words::Word {
    // A Vector has 1..=MAX_DIMS (16000) elements, which always fits the u16 header.
    let dims = u16::try_from(v.dims()).unwrap_or(u16::MAX).to_be_bytes();
    [dims[0], dims[1], 0, 0]
}

/// Writes a vector in pgvector's binary format to `out` in one `write_all`, so that a growing buffer
/// (Diesel's bind buffer starts empty) allocates once, at the right size.
///
/// The bytes are prepared in a per-thread scratch buffer (at most 64 KB: 16000 dimensions), so that
/// encoding allocates nothing but what `out` needs.
pub fn write_pg<W: io::Write + ?Sized>(v: &Vector, out: &mut W) -> io::Result<()> {
    thread_local! {
        static SCRATCH: RefCell<Vec<words::Word>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut words) => {
            words.clear();
            words::encode_be_into(Simd::detect(), pg_header(v), v.as_slice(), &mut words);
            out.write_all(words.as_flattened())
        }
        // `out` is itself encoding a vector on this thread: use a buffer of its own.
        Err(_) => out.write_all(&encode_pg(v)),
    })
}

/// Decodes pgvector's binary format, validating the header, the length and every element.
pub fn decode_pg(bytes: &[u8]) -> Result<Vector, VectorError> {
    let payload = pg_payload(bytes)?;
    words::decode::<BigEndian>(Simd::detect(), as_words(payload)).map(Vector::from_validated)
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
    words::decode::<LittleEndian>(Simd::detect(), as_words(bytes)).map(Vector::from_validated)
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

/// Views bytes whose length has been checked to be a multiple of 4 as 4-byte words.
fn as_words(bytes: &[u8]) -> &[words::Word] {
    bytemuck::cast_slice(bytes)
}

/// Converts a pgvector binary value straight into a sqlite-vec BLOB (byte swap, header dropped),
/// validating it as [`decode_pg`] does, without building a `Vec<f32>`.
///
/// `out` is cleared first; on error it is left empty.
pub fn pg_payload_to_sqlite(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), VectorError> {
    out.clear();
    let payload = pg_payload(bytes)?;
    words::swap_into::<BigEndian>(Simd::detect(), as_words(payload), out)
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
    words::swap_into::<LittleEndian>(Simd::detect(), as_words(blob), out).inspect_err(|_| out.clear())
}

#[cfg(any(feature = "pg", feature = "sqlite"))]
/// Checks a sqlite-vec BLOB as [`decode_sqlite`] does (length, dimensions, every element finite) without
/// decoding it; returns its dimensions.
pub(crate) fn check_sqlite(blob: &[u8]) -> Result<usize, VectorError> {
    check_blob_len(blob.len())?;
    words::check::<LittleEndian>(as_words(blob))?;
    Ok(blob.len() / F32_LEN)
}

#[cfg(feature = "pg")]
/// Appends a sqlite-vec BLOB to `out` in pgvector's binary format, validating it as [`decode_sqlite`]
/// does; on error `out` is left as it was.
pub(crate) fn append_sqlite_as_pg(blob: &[u8], out: &mut Vec<u8>) -> Result<(), VectorError> {
    check_blob_len(blob.len())?;
    let start = out.len();
    let dims = u16::try_from(blob.len() / F32_LEN).unwrap_or(u16::MAX);
    out.extend_from_slice(&dims.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    words::swap_into::<LittleEndian>(Simd::detect(), as_words(blob), out).inspect_err(|_| out.truncate(start))
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
    fn write_pg_writes_what_encode_pg_returns_even_from_inside_another_write_pg() {
        /// A writer that encodes another vector with `write_pg` while it is being written to.
        struct Nested(Vec<u8>, Vector);
        impl io::Write for Nested {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let inner = self.1.clone();
                write_pg(&inner, &mut self.0)?;
                self.0.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (outer, inner) = (v(&[1.0; 100]), v(&[-2.5, 3.0]));
        let mut plain = Vec::new();
        write_pg(&outer, &mut plain).unwrap();
        assert_eq!(plain, encode_pg(&outer));
        let mut nested = Nested(Vec::new(), inner.clone());
        write_pg(&outer, &mut nested).unwrap();
        assert_eq!(nested.0, [encode_pg(&inner), encode_pg(&outer)].concat());
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

    #[test]
    fn a_sum_that_overflows_is_not_mistaken_for_an_infinite_element() {
        // The portable decoders check finiteness with a running sum, which values this large overflow (the SIMD
        // conversions check exponent bits): neither may take them for an infinity.
        for dims in [1, 63, 64, 65, 1536] {
            let values: Vec<f32> = (0..dims).map(|i| if i % 2 == 0 { f32::MAX } else { 3e38 }).collect();
            let v = v(&values);
            assert_eq!(decode_pg(&encode_pg(&v)).unwrap(), v);
            assert_eq!(decode_sqlite(&encode_sqlite(&v)).unwrap(), v);
            let mut out = Vec::new();
            pg_payload_to_sqlite(&encode_pg(&v), &mut out).unwrap();
            assert_eq!(out, &*encode_sqlite(&v));
            sqlite_to_pg_payload(&encode_sqlite(&v), &mut out).unwrap();
            assert_eq!(out, encode_pg(&v));
        }
    }

    #[test]
    fn pg_encoding_of_the_largest_vector_has_its_dims_in_the_header() {
        let bytes = encode_pg(&v(&vec![0.25; crate::MAX_DIMS]));
        assert_eq!(&bytes[..4], &[0x3e, 0x80, 0, 0]);
        assert_eq!(bytes.len(), pg_encoded_len(crate::MAX_DIMS));
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
        fn every_decoder_names_the_first_element_that_is_not_finite(
            values in prop::collection::vec(finite_f32(), 1..300),
            pick in any::<prop::sample::Index>(),
            bad in prop::sample::select(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN]),
        ) {
            let mut values = values;
            let index = pick.index(values.len());
            values[index] = bad;
            let pg = pg_bytes(u16::try_from(values.len()).unwrap(), 0, &values);
            let lite = le_bytes(&values);
            let is_ours = |e: VectorError| matches!(e, VectorError::NotFinite { index: i, value } if i == index && value.to_bits() == bad.to_bits());
            prop_assert!(is_ours(decode_pg(&pg).unwrap_err()));
            prop_assert!(is_ours(decode_sqlite(&lite).unwrap_err()));
            let mut out = vec![1];
            prop_assert!(is_ours(pg_payload_to_sqlite(&pg, &mut out).unwrap_err()));
            prop_assert!(out.is_empty());
            out.push(1);
            prop_assert!(is_ours(sqlite_to_pg_payload(&lite, &mut out).unwrap_err()));
            prop_assert!(out.is_empty());
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
