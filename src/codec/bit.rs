//! Wire formats of [`Bit`] (PostgreSQL's `bit`).
//!
//! | format | layout | length |
//! |---|---|---|
//! | PostgreSQL binary | `i32` BE length in bits, then the packed bytes, most significant bit first | `4 + ⌈len / 8⌉` |
//! | SQLite BLOB | the packed bytes, most significant bit first, nothing else | `len / 8` |
//!
//! The SQLite BLOB is sqlite-vec's `bit[N]` format: `vec_distance_hamming(vec_bit(a), vec_bit(b))` reads
//! it. It has no room for a length, so only lengths that are a multiple of 8 can be stored there: writing
//! another length is an error ([`VectorError::BitLengthNotWholeBytes`]), never a silent change of
//! length. (sqlite-vec's own functions do not agree on the order of the bits in a byte:
//! `vec_quantize_binary` and `vec_to_json` number them from the least significant, `vec_each` from the
//! most. Hamming distances do not depend on it; this crate follows PostgreSQL, most significant first, so a
//! [`Bit`] reads the same from both backends.)
//!
//! Both backends refuse more than [`Bit::MAX_LEN`] bits, PostgreSQL's limit for `bit(n)`; SQLite also
//! refuses an empty bit string, as sqlite-vec does.
//!
//! ```
//! use diesel_vector::{codec, Bit};
//!
//! let b = Bit::new(&[true, false, true]);
//! assert_eq!(codec::bit::encode_pg(&b)?, [0, 0, 0, 3, 0b1010_0000]);
//! assert_eq!(codec::bit::decode_pg(&[0, 0, 0, 3, 0b1010_0000])?, b);
//!
//! let byte = Bit::from_bytes(&[0b1010_0000]);
//! assert_eq!(codec::bit::encode_sqlite(&byte)?, [0b1010_0000]);
//! assert!(codec::bit::encode_sqlite(&b).is_err()); // 3 bits are not a whole byte
//! # Ok::<(), diesel_vector::VectorError>(())
//! ```

use std::io;

use crate::bit::{check_max_len, check_padding};
use crate::{Bit, VectorError, VectorKind};

/// Size of the PostgreSQL binary header: the length in bits.
pub const PG_HEADER_LEN: usize = 4;

/// Length of the PostgreSQL binary encoding of a bit string of `len` bits.
#[inline]
pub const fn pg_encoded_len(len: usize) -> usize {
    PG_HEADER_LEN + len.div_ceil(8)
}

/// The header: the length as an `i32`, after checking it against [`Bit::MAX_LEN`].
fn pg_header(b: &Bit) -> Result<[u8; 4], VectorError> {
    check_max_len(b.len())?;
    // At most MAX_LEN (83886080) bits: fits an i32.
    Ok(i32::try_from(b.len()).unwrap_or(i32::MAX).to_be_bytes())
}

/// Encodes a bit string in PostgreSQL's binary format.
///
/// # Errors
///
/// More than [`Bit::MAX_LEN`] bits.
pub fn encode_pg(b: &Bit) -> Result<Vec<u8>, VectorError> {
    let header = pg_header(b)?;
    let mut out = Vec::with_capacity(pg_encoded_len(b.len()));
    out.extend_from_slice(&header);
    out.extend_from_slice(b.as_bytes());
    Ok(out)
}

/// Writes a bit string in PostgreSQL's binary format to `out` in one `write_all` (prepared in a per-thread
/// buffer).
///
/// # Errors
///
/// An [`io::ErrorKind::InvalidInput`] error wrapping the [`VectorError`] for more than [`Bit::MAX_LEN`]
/// bits (nothing is written then), or the writer's error.
pub fn write_pg<W: io::Write + ?Sized>(b: &Bit, out: &mut W) -> io::Result<()> {
    let header = pg_header(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // One `write_all`, so that a growing buffer allocates once.
    super::scratch::write_all_via(out, |buf| {
        buf.reserve(PG_HEADER_LEN + b.as_bytes().len());
        buf.extend_from_slice(&header);
        buf.extend_from_slice(b.as_bytes());
    })
}

/// Decodes PostgreSQL's binary `bit` (or `varbit`), validating the length, the limit and that the bits
/// after the end are zero.
pub fn decode_pg(bytes: &[u8]) -> Result<Bit, VectorError> {
    let kind = VectorKind::Bit;
    let Some((header, payload)) = bytes.split_first_chunk::<PG_HEADER_LEN>() else {
        return Err(VectorError::TruncatedValue { kind, len: bytes.len(), header_len: PG_HEADER_LEN });
    };
    let len = i32::from_be_bytes(*header);
    let len = usize::try_from(len).map_err(|_| VectorError::NegativeLength { kind, value: i64::from(len) })?;
    check_max_len(len)?;
    if payload.len() != len.div_ceil(8) {
        return Err(VectorError::ValueLengthMismatch {
            kind,
            declared: len,
            expected_len: pg_encoded_len(len),
            actual_len: bytes.len(),
        });
    }
    check_padding(payload, len)?;
    Ok(Bit::from_validated(payload.to_vec(), len))
}

/// The SQLite BLOB: the packed bytes themselves, borrowed.
///
/// # Errors
///
/// A length that is not a multiple of 8 ([`VectorError::BitLengthNotWholeBytes`]), an empty bit string
/// ([`VectorError::Empty`]), more than [`Bit::MAX_LEN`] bits.
pub fn encode_sqlite(b: &Bit) -> Result<&[u8], VectorError> {
    check_sqlite_len(b.len())?;
    Ok(b.as_bytes())
}

/// Decodes an SQLite BLOB of packed bits: `8 × length` bits.
pub fn decode_sqlite(bytes: &[u8]) -> Result<Bit, VectorError> {
    check_sqlite_len(bytes.len().saturating_mul(8))?;
    Ok(Bit::from_bytes(bytes))
}

fn check_sqlite_len(len: usize) -> Result<(), VectorError> {
    if len == 0 {
        return Err(VectorError::Empty);
    }
    if len % 8 != 0 {
        return Err(VectorError::BitLengthNotWholeBytes { bits: len });
    }
    check_max_len(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pg_bytes(len: i32, bytes: &[u8]) -> Vec<u8> {
        [&len.to_be_bytes()[..], bytes].concat()
    }

    #[test]
    fn encodings_are_the_documented_layouts() {
        let b = Bit::new(&[false, true, false, true, false, false, false, false, true]);
        assert_eq!(encode_pg(&b).unwrap(), pg_bytes(9, &[0b0101_0000, 0b1000_0000]));
        let mut written = Vec::new();
        write_pg(&b, &mut written).unwrap();
        assert_eq!(written, encode_pg(&b).unwrap());
        assert_eq!(encode_pg(&Bit::new(&[])).unwrap(), [0, 0, 0, 0]);
        let bytes = Bit::from_bytes(&[0x12, 0x34]);
        assert_eq!(encode_sqlite(&bytes).unwrap(), &[0x12, 0x34]);
        assert_eq!(encode_sqlite(&bytes).unwrap().as_ptr(), bytes.as_bytes().as_ptr(), "borrowed, not copied");
    }

    #[test]
    fn pg_decoding_names_what_is_wrong() {
        let kind = VectorKind::Bit;
        assert_eq!(decode_pg(&[0, 0, 0]), Err(VectorError::TruncatedValue { kind, len: 3, header_len: 4 }));
        assert_eq!(decode_pg(&pg_bytes(-8, &[])), Err(VectorError::NegativeLength { kind, value: -8 }));
        assert_eq!(
            decode_pg(&pg_bytes(9, &[0])),
            Err(VectorError::ValueLengthMismatch { kind, declared: 9, expected_len: 6, actual_len: 5 })
        );
        assert_eq!(decode_pg(&pg_bytes(9, &[0, 0x40])), Err(VectorError::BitPaddingNotZero { bits: 9 }));
        assert_eq!(
            decode_pg(&pg_bytes(83_886_081, &[])),
            Err(VectorError::LimitExceeded { kind, what: "bits", found: 83_886_081, max: 83_886_080 })
        );
        assert_eq!(decode_pg(&pg_bytes(0, &[])).unwrap(), Bit::new(&[]));
    }

    #[test]
    fn sqlite_refuses_what_it_could_not_give_back() {
        assert_eq!(encode_sqlite(&Bit::new(&[true; 9])), Err(VectorError::BitLengthNotWholeBytes { bits: 9 }));
        assert_eq!(
            encode_sqlite(&Bit::new(&[true; 9])).unwrap_err().to_string(),
            "bit string of 9 bits cannot be stored on SQLite, which keeps bit vectors as whole bytes (sqlite-vec's \
             `bit[N]` format) and would lose the length: use a length that is a multiple of 8"
        );
        assert_eq!(encode_sqlite(&Bit::new(&[])), Err(VectorError::Empty));
        assert_eq!(decode_sqlite(&[]), Err(VectorError::Empty));
        let huge = Bit::from_bytes(&vec![0; Bit::MAX_LEN / 8 + 1]);
        assert!(matches!(encode_sqlite(&huge), Err(VectorError::LimitExceeded { what: "bits", .. })));
        assert!(matches!(encode_pg(&huge), Err(VectorError::LimitExceeded { what: "bits", .. })));
        let mut out = Vec::new();
        let err = write_pg(&huge, &mut out).unwrap_err();
        assert!(out.is_empty(), "nothing is written");
        assert!(err.get_ref().and_then(|e| e.downcast_ref::<VectorError>()).is_some());
        let largest = Bit::from_bytes(&vec![0xff; Bit::MAX_LEN / 8]);
        assert_eq!(decode_sqlite(encode_sqlite(&largest).unwrap()).unwrap(), largest);
        assert_eq!(decode_pg(&encode_pg(&largest).unwrap()).unwrap(), largest);
    }

    proptest! {
        #[test]
        fn every_bit_string_round_trips(bits in prop::collection::vec(any::<bool>(), 0..200)) {
            let b = Bit::new(&bits);
            prop_assert_eq!(decode_pg(&encode_pg(&b).unwrap()).unwrap(), b.clone());
            if !bits.is_empty() && bits.len() % 8 == 0 {
                prop_assert_eq!(decode_sqlite(encode_sqlite(&b).unwrap()).unwrap(), b);
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(b) = decode_pg(&bytes) {
                prop_assert_eq!(encode_pg(&b).unwrap(), bytes.clone());
            }
            if let Ok(b) = decode_sqlite(&bytes) {
                prop_assert_eq!(encode_sqlite(&b).unwrap(), bytes.as_slice());
            }
        }

        #[test]
        fn decoding_arbitrary_lengths_never_panics(len in any::<i32>(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_pg(&pg_bytes(len, &tail));
        }
    }
}
