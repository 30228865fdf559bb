//! `sparsevec`'s two formats: `codec::sparsevec::{decode_pg, encode_pg, write_pg}` (pgvector's binary
//! `sparsevec`) and `{decode_sqlite, encode_sqlite}` (u32 dims, u32 indices, f32 values, little-endian);
//! what one format accepts, the other carries bit-exact; the text form of a valid value parses back.
#![no_main]

use arbitrary::Unstructured;
use diesel_vector::codec::sparsevec;
use diesel_vector::{SparseVector, VectorError};
use diesel_vector_fuzz::{check_codec, finite_f32s, Codec};
use libfuzzer_sys::fuzz_target;

/// A valid sparse vector: dimensions up to 10^9, indices drawn in ascending order below them, finite
/// values (zeros are dropped by the constructor, as pgvector does).
fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<SparseVector>> {
    let dims: i32 = u.int_in_range(1..=SparseVector::MAX_DIMS as i32)?;
    let values = finite_f32s(u, 64)?;
    let mut indices = Vec::with_capacity(values.len());
    let mut next: i64 = 0;
    for _ in &values {
        let step: u32 = u.arbitrary()?;
        next += i64::from(step % 1_000_000);
        indices.push(i32::try_from(next).unwrap_or(i32::MAX));
        next += 1;
    }
    Ok(SparseVector::new(dims, indices, values).ok())
}

/// The value as its parts, the floats as bits: equal means bit-exact.
fn parts(v: &SparseVector) -> (i32, Vec<i32>, Vec<u32>) {
    (v.dimensions(), v.indices().to_vec(), v.values().iter().map(|x| x.to_bits()).collect())
}

struct Pg;

impl Codec for Pg {
    type Value = SparseVector;

    fn decode(bytes: &[u8]) -> Result<SparseVector, VectorError> {
        sparsevec::decode_pg(bytes)
    }

    fn encode(value: &SparseVector) -> Vec<u8> {
        let bytes = sparsevec::encode_pg(value);
        let mut written = Vec::new();
        sparsevec::write_pg(value, &mut written).expect("writing to a Vec");
        assert_eq!(written, bytes, "write_pg and encode_pg disagree");
        bytes
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<SparseVector>> {
        value(u)
    }

    fn more_checks(bytes: &[u8]) {
        if let Ok(v) = sparsevec::decode_pg(bytes) {
            let back = sparsevec::decode_sqlite(&sparsevec::encode_sqlite(&v)).expect("valid for SQLite");
            assert_eq!(parts(&back), parts(&v), "PostgreSQL -> SQLite changed the value");
            let text: SparseVector = v.to_string().parse().expect("the text form parses back");
            assert_eq!(text.indices(), v.indices(), "the text form changed the indices");
        }
    }
}

struct Sqlite;

impl Codec for Sqlite {
    type Value = SparseVector;

    fn decode(bytes: &[u8]) -> Result<SparseVector, VectorError> {
        sparsevec::decode_sqlite(bytes)
    }

    fn encode(value: &SparseVector) -> Vec<u8> {
        sparsevec::encode_sqlite(value)
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<SparseVector>> {
        value(u)
    }

    fn more_checks(bytes: &[u8]) {
        if let Ok(v) = sparsevec::decode_sqlite(bytes) {
            let back = sparsevec::decode_pg(&sparsevec::encode_pg(&v)).expect("valid for PostgreSQL");
            assert_eq!(parts(&back), parts(&v), "SQLite -> PostgreSQL changed the value");
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
