//! Values that are not pgvector's binary `vector` are typed errors naming the cause, never a panic.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel_vector::{sql_types, Vector, VectorError};

use crate::conn;

/// Reads the result of `expr` (any SQL expression) as if it were a `vector`.
fn read_as_vector(expr: &str) -> VectorError {
    let mut conn = conn();
    let err = diesel::select(sql::<sql_types::Vector>(expr)).get_result::<Vector>(&mut conn).unwrap_err();
    VectorError::find(&err).unwrap_or_else(|| panic!("not a VectorError: {err}")).clone()
}

#[test]
fn values_shorter_than_the_header_are_rejected() {
    assert_eq!(read_as_vector("'\\x0001'::bytea"), VectorError::TruncatedHeader { len: 2 });
    assert_eq!(read_as_vector("''::bytea"), VectorError::TruncatedHeader { len: 0 });
}

#[test]
fn a_halfvec_is_rejected_with_a_hint() {
    let err = read_as_vector("'[1,2,3]'::halfvec");
    assert_eq!(err, VectorError::LengthMismatch { dims: 3, expected_len: 16, actual_len: 10 });
    assert!(err.to_string().contains("halfvec"));
}

#[test]
fn malformed_headers_are_rejected() {
    assert_eq!(read_as_vector("'\\x000100013f800000'::bytea"), VectorError::ReservedNotZero { value: 1 });
    assert_eq!(read_as_vector("'\\x00000000'::bytea"), VectorError::Empty);
    assert_eq!(
        read_as_vector("'\\x0002000000000000'::bytea"),
        VectorError::LengthMismatch { dims: 2, expected_len: 12, actual_len: 8 }
    );
}

#[test]
fn nan_and_infinities_are_rejected() {
    // 1.0 then NaN, big-endian.
    let err = read_as_vector("'\\x000200003f8000007fc00000'::bytea");
    assert!(matches!(err, VectorError::NotFinite { index: 1, value } if value.is_nan()), "{err:?}");
    assert_eq!(
        read_as_vector("'\\x00010000ff800000'::bytea"),
        VectorError::NotFinite { index: 0, value: f32::NEG_INFINITY }
    );
}
