//! The crate's SQL functions (src/sqlite/functions*: `vec_distance_l2`, `vec_distance_cosine`,
//! `vec_distance_l1` when sqlite-vec is absent, as in this build, and `diesel_vector_neg_inner_product`)
//! called through a real in-memory SQLite connection with arguments of every storage class. Never a panic;
//! two well-formed BLOBs of the same length give a result (checked against an `f64` reference for L2 and
//! L1, against its range for cosine), anything else an SQL error naming the function.
#![no_main]

use std::cell::RefCell;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::SqliteConnection;
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Arg {
    /// Any bytes.
    Blob(Vec<u8>),
    /// Well-formed: little-endian `f32`s, finite.
    Floats(#[arbitrary(with = floats)] Vec<f32>),
    Text(String),
    Integer(i64),
    Real(f64),
    Null,
}

fn floats(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<f32>> {
    diesel_vector_fuzz::finite_f32s(u, 2048)
}

impl Arg {
    fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Arg::Blob(b) => Some(b.clone()),
            Arg::Floats(f) => Some(f.iter().flat_map(|x| x.to_le_bytes()).collect()),
            _ => None,
        }
    }
}

const FUNCTIONS: [&str; 4] =
    ["vec_distance_l2", "vec_distance_cosine", "vec_distance_l1", "diesel_vector_neg_inner_product"];

#[derive(QueryableByName)]
struct Out {
    #[diesel(sql_type = Nullable<Double>)]
    d: Option<f64>,
}

thread_local! {
    static CONN: RefCell<SqliteConnection> =
        RefCell::new(diesel_vector::sqlite::establish(":memory:").expect("in-memory SQLite"));
}

fn bind<'a>(
    q: diesel::query_builder::BoxedSqlQuery<'a, diesel::sqlite::Sqlite, diesel::query_builder::SqlQuery>,
    arg: &Arg,
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::sqlite::Sqlite, diesel::query_builder::SqlQuery> {
    match arg {
        Arg::Blob(_) | Arg::Floats(_) => q.bind::<Binary, _>(arg.bytes().unwrap_or_default()),
        Arg::Text(s) => q.bind::<Text, _>(s.clone()),
        Arg::Integer(i) => q.bind::<BigInt, _>(*i),
        Arg::Real(r) => q.bind::<Double, _>(*r),
        Arg::Null => q.bind::<Nullable<Binary>, _>(None::<Vec<u8>>),
    }
}

fn words(bytes: &[u8]) -> Vec<f64> {
    bytes.chunks_exact(4).map(|w| f64::from(f32::from_le_bytes([w[0], w[1], w[2], w[3]]))).collect()
}

fuzz_target!(|input: (u8, Arg, Arg)| {
    let (which, a, b) = input;
    let function = FUNCTIONS[usize::from(which) % FUNCTIONS.len()];
    let query = bind(bind(diesel::sql_query(format!("SELECT {function}(?, ?) AS d")).into_boxed(), &a), &b);
    let result = CONN.with(|c| query.get_result::<Out>(&mut *c.borrow_mut()));
    let well_formed = |arg: &Arg| arg.bytes().filter(|b| !b.is_empty() && b.len() % 4 == 0);
    match (well_formed(&a), well_formed(&b)) {
        (Some(x), Some(y)) if x.len() == y.len() => {
            let d = result.unwrap_or_else(|e| panic!("{function} failed on valid BLOBs: {e}")).d;
            let (x, y) = (words(&x), words(&y));
            if x.iter().chain(&y).any(|v| !v.is_finite()) {
                return; // NaN or infinite elements: sqlite-vec takes them too; any result will do
            }
            match function {
                "vec_distance_l2" => {
                    let d = d.expect("L2 of finite vectors is never NULL");
                    let reference = x.iter().zip(&y).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt();
                    if reference < 1e18 {
                        assert!((d - reference).abs() <= 1e-3 * reference + 1e-18, "L2 {d} vs {reference}");
                    } else {
                        assert!(d >= 0.0, "L2 {d}");
                    }
                }
                "vec_distance_l1" => {
                    let d = d.expect("L1 of finite vectors is never NULL");
                    let reference: f64 = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).sum();
                    assert!((d - reference).abs() <= 1e-9 * reference, "L1 {d} vs {reference}");
                }
                "vec_distance_cosine" => {
                    if let Some(d) = d {
                        assert!((0.0..=2.0).contains(&d), "cosine distance {d} out of range");
                    }
                }
                _ => {}
            }
        }
        _ => {
            let e = result.err().unwrap_or_else(|| panic!("{function} accepted {a:?}, {b:?}"));
            assert!(e.to_string().contains(function), "the error names the function: {e}");
        }
    }
});
