//! pgvector's binary format: `codec::decode_pg` / `encode_pg` / `write_pg`, and `pg_payload_to_sqlite`
//! agreeing with `decode_pg`.
#![no_main]

use diesel_vector::{codec, Vector, VectorError};
use diesel_vector_fuzz::{bits, check_codec, Codec};
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

struct Pg;

impl Codec for Pg {
    type Value = Vector;

    fn decode(bytes: &[u8]) -> Result<Vector, VectorError> {
        codec::decode_pg(bytes)
    }

    fn encode(value: &Vector) -> Vec<u8> {
        let bytes = codec::encode_pg(value);
        let mut written = Vec::new();
        codec::write_pg(value, &mut written).expect("writing to a Vec");
        assert_eq!(written, bytes, "write_pg and encode_pg disagree");
        bytes
    }

    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Vector>> {
        diesel_vector_fuzz::vector(u)
    }

    fn more_checks(bytes: &[u8]) {
        let mut blob = vec![0xAA];
        match (codec::decode_pg(bytes), codec::pg_payload_to_sqlite(bytes, &mut blob)) {
            (Ok(v), Ok(())) => assert_eq!(bits(&codec::decode_sqlite(&blob).expect("converted blob")), bits(&v)),
            (Err(a), Err(b)) => {
                // Debug, not ==: a NaN inside the error is not equal to itself.
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "decode_pg and pg_payload_to_sqlite reject for different reasons");
                assert!(blob.is_empty(), "the output is left empty on error");
            }
            (a, b) => panic!("decode_pg {a:?} but pg_payload_to_sqlite {b:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| check_codec::<Pg>(data));
