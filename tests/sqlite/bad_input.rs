//! Every malformed stored value is a typed error naming the cause, never a panic.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::result::Error;
use diesel_vector::{sql_types, Vector, VectorError};

use crate::{conn_with_items, items};

/// Stores `value_sql` raw in the table, then reads it back as a vector.
fn read_stored(value_sql: &str) -> Result<Option<Vector>, Error> {
    let mut conn = conn_with_items();
    diesel::sql_query(format!("INSERT INTO items (id, embedding) VALUES (1, {value_sql})")).execute(&mut conn).unwrap();
    items::table.select(items::embedding).first(&mut conn)
}

#[track_caller]
fn vector_error(result: Result<Option<Vector>, Error>) -> VectorError {
    match result {
        Err(e @ Error::DeserializationError(_)) => {
            VectorError::find(&e).unwrap_or_else(|| panic!("not a VectorError: {e}")).clone()
        }
        other => panic!("expected a deserialization error, got {other:?}"),
    }
}

#[test]
fn values_stored_as_text_integer_or_real_are_rejected() {
    assert_eq!(vector_error(read_stored("'[1,2,3]'")), VectorError::NotABlob { storage_class: "TEXT" });
    assert_eq!(vector_error(read_stored("42")), VectorError::NotABlob { storage_class: "INTEGER" });
    assert_eq!(vector_error(read_stored("4.5")), VectorError::NotABlob { storage_class: "REAL" });
    let msg = vector_error(read_stored("'[1,2,3]'")).to_string();
    assert!(msg.contains("SQLite holds a TEXT value") && msg.contains("vec_f32"), "{msg}");
}

#[test]
fn blobs_that_are_not_whole_floats_are_rejected() {
    assert_eq!(vector_error(read_stored("x'0000803f00'")), VectorError::InvalidBlobSize { blob_size: 5 });
    assert_eq!(vector_error(read_stored("x''")), VectorError::Empty);
}

#[test]
fn blobs_holding_nan_or_infinity_are_rejected() {
    // 1.0 then NaN (0x7fc00000) then -inf (0xff800000), little-endian.
    let err = vector_error(read_stored("x'0000803f0000c07f000080ff'"));
    assert!(matches!(err, VectorError::NotFinite { index: 1, value } if value.is_nan()));
    let err = vector_error(read_stored("x'000080ff'"));
    assert_eq!(err, VectorError::NotFinite { index: 0, value: f32::NEG_INFINITY });
}

#[test]
fn a_bound_value_of_the_wrong_kind_is_rejected_too() {
    let mut conn = crate::conn();
    let result = diesel::select(sql::<sql_types::Vector>("'not a blob'")).get_result::<Vector>(&mut conn);
    assert!(matches!(result, Err(Error::DeserializationError(_))));
}
