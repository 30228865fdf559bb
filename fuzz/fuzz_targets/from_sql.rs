//! `FromSql<sql_types::Vector, Sqlite>` for `Vector` on arbitrary SQLite values: a BLOB decodes exactly
//! when `codec::decode_sqlite` accepts its bytes (to the same bits); TEXT, INTEGER, REAL and NULL are
//! errors (as `Option<Vector>`, NULL is `None`). Through a real in-memory connection; never a panic.
#![no_main]

use std::cell::RefCell;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::SqliteConnection;
use diesel_vector::{codec, Vector};
use diesel_vector_fuzz::bits;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Value {
    Blob(Vec<u8>),
    Text(String),
    Integer(i64),
    Real(f64),
    Null,
}

#[derive(QueryableByName)]
struct Strict {
    #[diesel(sql_type = diesel_vector::sql_types::Vector)]
    v: Vector,
}

#[derive(QueryableByName)]
struct Lenient {
    #[diesel(sql_type = Nullable<diesel_vector::sql_types::Vector>)]
    v: Option<Vector>,
}

thread_local! {
    static CONN: RefCell<SqliteConnection> =
        RefCell::new(diesel_vector::sqlite::establish(":memory:").expect("in-memory SQLite"));
}

type Query = diesel::query_builder::BoxedSqlQuery<'static, diesel::sqlite::Sqlite, diesel::query_builder::SqlQuery>;

fn query(value: &Value) -> Query {
    let q = diesel::sql_query("SELECT ? AS v").into_boxed();
    match value {
        Value::Blob(b) => q.bind::<Binary, _>(b.clone()),
        Value::Text(s) => q.bind::<Text, _>(s.clone()),
        Value::Integer(i) => q.bind::<BigInt, _>(*i),
        Value::Real(r) => q.bind::<Double, _>(*r),
        Value::Null => q.bind::<Nullable<Binary>, _>(None::<Vec<u8>>),
    }
}

fn stored_as_null(value: &Value) -> bool {
    matches!(value, Value::Null) || matches!(value, Value::Real(r) if r.is_nan())
}

fuzz_target!(|value: Value| {
    CONN.with(|c| {
        let conn = &mut *c.borrow_mut();
        let strict = query(&value).get_result::<Strict>(conn).map(|r| r.v);
        let lenient = query(&value).get_result::<Lenient>(conn).map(|r| r.v);
        match &value {
            Value::Blob(bytes) => match codec::decode_sqlite(bytes) {
                Ok(expected) => {
                    let got = strict.unwrap_or_else(|e| panic!("valid BLOB rejected: {e}"));
                    assert_eq!(bits(&got), bits(&expected));
                    assert_eq!(lenient.expect("valid BLOB").map(|v| bits(&v)), Some(bits(&expected)));
                }
                Err(_) => assert!(strict.is_err() && lenient.is_err(), "invalid BLOB accepted"),
            },
            // SQLite stores a NaN bound as a REAL as NULL.
            Value::Null | Value::Real(_) if stored_as_null(&value) => {
                assert!(strict.is_err(), "NULL into a non-null Vector");
                assert!(matches!(lenient, Ok(None)), "NULL is None");
            }
            _ => assert!(strict.is_err() && lenient.is_err(), "{value:?} accepted as a vector"),
        }
    });
});
