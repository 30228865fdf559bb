//! sqlite-vec's BLOB format: `codec::decode_sqlite` / `encode_sqlite`, and `sqlite_to_pg_payload`
//! agreeing with `decode_sqlite`.
#![no_main]

use diesel_vector::{codec, Vector, VectorError};
use diesel_vector_fuzz::{bits, check_codec, Codec};
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

struct Sqlite;

impl Codec for Sqlite {
    type Value = Vector;

    fn decode(bytes: &[u8]) -> Result<Vector, VectorError> {
        codec::decode_sqlite(bytes)
    }

    fn encode(value: &Vector) -> Vec<u8> {
        codec::encode_sqlite(value).into_owned()
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Vector>> {
        diesel_vector_fuzz::vector(u)
    }

    fn more_checks(bytes: &[u8]) {
        let mut pg = vec![0xAA];
        match (codec::decode_sqlite(bytes), codec::sqlite_to_pg_payload(bytes, &mut pg)) {
            (Ok(v), Ok(())) => assert_eq!(bits(&codec::decode_pg(&pg).expect("converted value")), bits(&v)),
            (Err(a), Err(b)) => {
                // Debug, not ==: a NaN inside the error is not equal to itself.
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "decode_sqlite and sqlite_to_pg_payload reject for different reasons");
                assert!(pg.is_empty(), "the output is left empty on error");
            }
            (a, b) => panic!("decode_sqlite {a:?} but sqlite_to_pg_payload {b:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| check_codec::<Sqlite>(data));
