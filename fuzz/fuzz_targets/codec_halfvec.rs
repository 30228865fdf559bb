//! `halfvec`'s two formats: `codec::halfvec::{decode_pg, encode_pg, write_pg}` (pgvector's binary
//! `halfvec`) and `{decode_sqlite, encode_sqlite}` (little-endian f16 BLOBs); what one format accepts, the
//! other carries bit-exact.
#![no_main]

use arbitrary::Unstructured;
use diesel_vector::codec::halfvec;
use diesel_vector::{HalfVector, VectorError};
use diesel_vector_fuzz::{check_codec, Codec};
use half::f16;
use libfuzzer_sys::fuzz_target;

/// A valid half vector of 1 to 16000 dimensions, any finite f16 bits (subnormals and -0 included).
fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<HalfVector>> {
    let n = u.int_in_range(0..=HalfVector::MAX_DIMS)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let bits: u16 = u.arbitrary()?;
        let x = f16::from_bits(bits);
        // Non-finite ones made finite (the exponent's lowest bit cleared).
        values.push(if x.is_finite() { x } else { f16::from_bits(bits & !0x0400) });
    }
    Ok(HalfVector::new(values).ok())
}

fn bits(v: &HalfVector) -> Vec<u16> {
    v.as_slice().iter().map(|x| x.to_bits()).collect()
}

struct Pg;

impl Codec for Pg {
    type Value = HalfVector;

    fn decode(bytes: &[u8]) -> Result<HalfVector, VectorError> {
        halfvec::decode_pg(bytes)
    }

    fn encode(value: &HalfVector) -> Vec<u8> {
        let bytes = halfvec::encode_pg(value);
        let mut written = Vec::new();
        halfvec::write_pg(value, &mut written).expect("writing to a Vec");
        assert_eq!(written, bytes, "write_pg and encode_pg disagree");
        bytes
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<HalfVector>> {
        value(u)
    }

    fn more_checks(bytes: &[u8]) {
        if let Ok(v) = halfvec::decode_pg(bytes) {
            let blob = halfvec::encode_sqlite(&v);
            let back = halfvec::decode_sqlite(&blob).expect("a decoded halfvec is a valid SQLite BLOB");
            assert_eq!(bits(&back), bits(&v), "PostgreSQL -> SQLite changed the bits");
        }
    }
}

struct Sqlite;

impl Codec for Sqlite {
    type Value = HalfVector;

    fn decode(bytes: &[u8]) -> Result<HalfVector, VectorError> {
        halfvec::decode_sqlite(bytes)
    }

    fn encode(value: &HalfVector) -> Vec<u8> {
        halfvec::encode_sqlite(value).into_owned()
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<HalfVector>> {
        value(u)
    }

    fn more_checks(bytes: &[u8]) {
        if let Ok(v) = halfvec::decode_sqlite(bytes) {
            let back = halfvec::decode_pg(&halfvec::encode_pg(&v)).expect("a decoded halfvec encodes for PostgreSQL");
            assert_eq!(bits(&back), bits(&v), "SQLite -> PostgreSQL changed the bits");
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
