//! The SQL functions the crate registers on SQLite connections, in pure Rust.
//!
//! - `diesel_vector_neg_inner_product(a, b)`, always: sqlite-vec has no inner product.
//! - `vec_distance_l2`, `vec_distance_cosine`, `vec_distance_l1`, only when sqlite-vec is not loaded, so
//!   that the distance DSL runs without the extension.
//!
//! Each takes two BLOBs of little-endian `f32` and reads them in place: no copy and no allocation per
//! call. Where sqlite-vec reports an error, so do they, as an SQL error naming the function and the
//! argument: an argument that is not a BLOB (NULL included; sqlite-vec would also take JSON text), an
//! empty BLOB or one that is not a whole number of floats, and vectors of different dimensions. Where
//! the result is NaN (the cosine distance to a zero vector), SQLite stores NULL, as it does for sqlite-vec.

mod kernels;

use std::fmt;
use std::marker::PhantomData;

use diesel::deserialize::{self, FromSqlRow, StaticallySizedRow};
use diesel::row::{Field, Row};
use diesel::sql_types::{Binary, Double, Nullable};
use diesel::sqlite::{Sqlite, SqliteValue};
use diesel::{QueryResult, SqliteConnection};

use super::expression::SqliteFunction;
use super::sqlite_vec_version;
use crate::dsl::metric;
use crate::{codec, VectorError};

/// Registers the crate's functions on `conn`: the inner product always, the three sqlite-vec distances
/// when sqlite-vec is not loaded on it.
pub(crate) fn register(conn: &mut SqliteConnection) -> QueryResult<()> {
    register_one::<metric::MaxInnerProduct>(conn)?;
    if sqlite_vec_version(conn)?.is_none() {
        register_one::<metric::L2>(conn)?;
        register_one::<metric::Cosine>(conn)?;
        register_one::<metric::L1>(conn)?;
    }
    Ok(())
}

/// A metric the crate computes in Rust.
trait Kernel: SqliteFunction + Send + 'static {
    /// The metric of two vectors of the same, non-zero dimensions.
    fn compute(a: &[[u8; 4]], b: &[[u8; 4]]) -> f64;
}

impl Kernel for metric::L2 {
    fn compute(a: &[[u8; 4]], b: &[[u8; 4]]) -> f64 {
        kernels::l2(a, b)
    }
}

impl Kernel for metric::Cosine {
    fn compute(a: &[[u8; 4]], b: &[[u8; 4]]) -> f64 {
        kernels::cosine(a, b)
    }
}

impl Kernel for metric::L1 {
    fn compute(a: &[[u8; 4]], b: &[[u8; 4]]) -> f64 {
        kernels::l1(a, b)
    }
}

impl Kernel for metric::MaxInnerProduct {
    fn compute(a: &[[u8; 4]], b: &[[u8; 4]]) -> f64 {
        kernels::neg_inner_product(a, b)
    }
}

fn register_one<M: Kernel>(conn: &mut SqliteConnection) -> QueryResult<()> {
    // `define_sql_function!`'s `register_impl` decodes each argument on its own into an owned value (a
    // `Vec<u8>` per argument per row). Its expansion calls this public, `#[doc(hidden)]` method with the
    // arguments as one row; doing the same with `Computed` below, which implements `FromSqlRow` for both
    // arguments at once, lets the kernel read the two BLOBs where SQLite holds them.
    conn.register_sql_function::<(Binary, Binary), Nullable<Double>, Computed<M>, Option<f64>, _>(
        M::FUNCTION,
        true,
        |computed: Computed<M>| computed.value,
    )
}

/// The function's result, computed while its arguments are read: Diesel hands the callback owned
/// values only, and the arguments' bytes live as long as the row.
struct Computed<M> {
    /// `None` (SQL NULL) for NaN, which SQLite stores as NULL anyway.
    value: Option<f64>,
    metric: PhantomData<M>,
}

impl<M: Kernel> FromSqlRow<(Binary, Binary), Sqlite> for Computed<M> {
    fn build_from_row<'a>(row: &impl Row<'a, Sqlite>) -> deserialize::Result<Self> {
        let error = |argument, cause| Box::new(FunctionError { function: M::FUNCTION, argument, cause });
        let (first, second) = match (row.get(0), row.get(1)) {
            (Some(first), Some(second)) => (first, second),
            _ => return Err(Box::new(diesel::result::UnexpectedEndOfRow)),
        };
        let (mut first, mut second) = (first.value(), second.value());
        let a = words(first.as_mut()).map_err(|cause| error(1, cause))?;
        let b = words(second.as_mut()).map_err(|cause| error(2, cause))?;
        if a.len() != b.len() {
            return Err(error(2, VectorError::DimensionMismatch { expected: a.len(), found: b.len() }));
        }
        let value = M::compute(a, b);
        Ok(Self { value: (!value.is_nan()).then_some(value), metric: PhantomData })
    }
}

impl<M: Kernel> StaticallySizedRow<(Binary, Binary), Sqlite> for Computed<M> {
    const FIELD_COUNT: usize = 2;
}

/// An argument's little-endian `f32` words, borrowed from SQLite, after sqlite-vec's checks.
fn words<'v>(value: Option<&'v mut SqliteValue<'_, '_, '_>>) -> Result<&'v [[u8; 4]], VectorError> {
    let value = value.ok_or(VectorError::NotABlob { storage_class: "NULL" })?;
    if value.value_type() != Some(diesel::sqlite::SqliteType::Binary) {
        // `read_blob` would turn TEXT into bytes: reject anything that is not stored as a BLOB.
        return Err(VectorError::NotABlob { storage_class: super::types::storage_class_name(value.value_type()) });
    }
    codec::sqlite_words(value.read_blob())
}

/// Why a function call failed: SQLite reports `Display` as the statement's error message.
#[derive(Debug)]
struct FunctionError {
    function: &'static str,
    /// 1 or 2.
    argument: u8,
    cause: VectorError,
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { function, argument, cause } = self;
        match cause {
            VectorError::DimensionMismatch { expected, found } => write!(
                f,
                "{function}(): argument {argument} has {found} dimensions but argument 1 has {expected}: \
                 vectors from different models (or a query embedded with another model) cannot be compared"
            ),
            cause => write!(f, "{function}(): argument {argument}: {cause}"),
        }
    }
}

impl std::error::Error for FunctionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}
