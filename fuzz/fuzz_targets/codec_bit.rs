//! `bit`'s two formats: `codec::bit::{decode_pg, encode_pg, write_pg}` (PostgreSQL's binary `bit`, any
//! length, zero padding) and `{decode_sqlite, encode_sqlite}` (sqlite-vec's `bit[N]` BLOB, whole bytes
//! only); a length that is not a multiple of 8 is refused by the SQLite encoder, never truncated.
#![no_main]

use arbitrary::Unstructured;
use diesel_vector::codec::bit;
use diesel_vector::{Bit, VectorError};
use diesel_vector_fuzz::{check_codec, Codec};
use libfuzzer_sys::fuzz_target;

/// A bit string of 0 to 4096 bits (whole bytes when `whole`), any bits.
fn value(u: &mut Unstructured<'_>, whole: bool) -> arbitrary::Result<Option<Bit>> {
    let len = if whole { u.int_in_range(1..=512usize)? * 8 } else { u.int_in_range(0..=4096usize)? };
    let bits: Vec<bool> = (0..len).map(|_| u.arbitrary()).collect::<arbitrary::Result<_>>()?;
    Ok(Some(Bit::new(&bits)))
}

struct Pg;

impl Codec for Pg {
    type Value = Bit;

    fn decode(bytes: &[u8]) -> Result<Bit, VectorError> {
        bit::decode_pg(bytes)
    }

    fn encode(value: &Bit) -> Vec<u8> {
        let bytes = bit::encode_pg(value).expect("a decoded or generated bit string is within the limit");
        let mut written = Vec::new();
        bit::write_pg(value, &mut written).expect("writing to a Vec");
        assert_eq!(written, bytes, "write_pg and encode_pg disagree");
        bytes
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Bit>> {
        value(u, false)
    }

    fn more_checks(bytes: &[u8]) {
        if let Ok(b) = bit::decode_pg(bytes) {
            match bit::encode_sqlite(&b) {
                Ok(blob) => assert_eq!(bit::decode_sqlite(blob).expect("valid for SQLite"), b),
                Err(e) => assert!(
                    b.is_empty() || b.len() % 8 != 0,
                    "a whole-byte bit string of {} bits refused for SQLite: {e}",
                    b.len()
                ),
            }
        }
    }
}

struct Sqlite;

impl Codec for Sqlite {
    type Value = Bit;

    fn decode(bytes: &[u8]) -> Result<Bit, VectorError> {
        bit::decode_sqlite(bytes)
    }

    fn encode(value: &Bit) -> Vec<u8> {
        bit::encode_sqlite(value).expect("whole bytes").to_vec()
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Bit>> {
        value(u, true)
    }

    fn more_checks(bytes: &[u8]) {
        if let Ok(b) = bit::decode_sqlite(bytes) {
            assert_eq!(b.len(), bytes.len() * 8, "every byte is 8 bits");
            let back = bit::decode_pg(&bit::encode_pg(&b).expect("within the limit")).expect("valid for PostgreSQL");
            assert_eq!(back, b, "SQLite -> PostgreSQL changed the bits");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the format; the rest goes to the generic checks.
    match data.split_first() {
        Some((format, rest)) if format & 1 == 1 => check_codec::<Sqlite>(rest),
        Some((_, rest)) => check_codec::<Pg>(rest),
        None => {}
    }
});
