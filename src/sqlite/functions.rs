//! The SQL functions the crate registers on SQLite connections, in pure Rust.
//!
//! Always:
//! - `diesel_vector_neg_inner_product(a, b)` for `Vector` (sqlite-vec has no inner product);
//! - `diesel_vector_halfvec_{l2_distance, cosine_distance, l1_distance, neg_inner_product}(a, b)` and
//!   `diesel_vector_sparsevec_*` likewise (sqlite-vec has neither type);
//! - `diesel_vector_bit_jaccard_distance(a, b)` (sqlite-vec has no Jaccard distance);
//! - `diesel_vector_sparsevec_valid(x)`: 1 when `x` is a `sparsevec` BLOB the distances take and that has
//!   a distance (its layout, its indices in order and within its dimensions, its values finite and not
//!   zero), 0 for anything else; never an error (the index's checks count the rows it leaves out with it).
//!
//! Only when sqlite-vec is not loaded, so that the distance DSL runs without the extension:
//! `vec_distance_l2`, `vec_distance_cosine`, `vec_distance_l1` (for `Vector`), `vec_distance_hamming` and
//! `vec_bit` (for `Bit`: the DSL renders `vec_distance_hamming(vec_bit(a), vec_bit(b))`; the stand-in
//! `vec_bit` returns its BLOB argument, and the stand-in `vec_distance_hamming` reads any BLOBs as bits).
//!
//! Each distance takes two BLOBs of its type's SQLite layout (see [`crate::codec`]) and reads them in
//! place: no copy and no allocation per call. Where sqlite-vec (or pgvector) reports an error, so do they,
//! as an SQL error naming the function and the argument: an argument that is not a BLOB (NULL included;
//! sqlite-vec would also take JSON text for `vec_distance_*`), a BLOB that is empty or not of the type's
//! layout, and vectors of different dimensions. Where the result is NaN (the cosine distance to a zero
//! vector), SQLite stores NULL, as it does for sqlite-vec.

mod bits;
mod half;
mod kernels;
mod sparse;

pub(crate) use half::f16_to_f32;

/// A distance between a stored BLOB and the query's (both as SQLite stores the type), `None` when the row
/// is not a value of the query's shape or has no distance (NaN).
pub(crate) type BlobKernel = fn(&[u8], &[u8]) -> Option<f64>;

/// The kernel of the crate's SQL function for `metric` on `bit` or `sparsevec` BLOBs, for scans that read
/// the rows in place: the function's own reading, checks and arithmetic ([`scan_kernel`]), so the same
/// distances, with the arguments in the SQL function's order (the column's value, then the query). `None`
/// for the other types and for metrics the type lacks.
pub(crate) fn blob_kernel(element: crate::index::Element, metric: crate::index::Metric) -> Option<BlobKernel> {
    use crate::index::{Element, Metric};

    let kernel: BlobKernel = match (element, metric) {
        (Element::Bit, Metric::Hamming) => scan_kernel::<sql_types::Bit, metric::Hamming>,
        (Element::Bit, Metric::Jaccard) => scan_kernel::<sql_types::Bit, metric::Jaccard>,
        (Element::SparseVector, Metric::L2) => scan_kernel::<sql_types::SparseVector, metric::L2>,
        (Element::SparseVector, Metric::Cosine) => scan_kernel::<sql_types::SparseVector, metric::Cosine>,
        (Element::SparseVector, Metric::L1) => scan_kernel::<sql_types::SparseVector, metric::L1>,
        (Element::SparseVector, Metric::InnerProduct) => {
            scan_kernel::<sql_types::SparseVector, metric::MaxInnerProduct>
        }
        _ => return None,
    };
    Some(kernel)
}

/// [`Computed`]'s reading and arithmetic for a scan: `None` where the SQL function raises an error (a value
/// not of the type's layout, other dimensions) or returns NULL (NaN), so that a row the function cannot
/// compare is skipped rather than failing the scan; `None` too for a row with NaN or infinite elements,
/// which the index leaves out (its distance may still be a number, where they meet the query's zeros).
fn scan_kernel<T: Kernel<M>, M>(row: &[u8], query: &[u8]) -> Option<f64> {
    let (a, b) = (T::read(row).ok().filter(|a| T::finite(*a))?, T::read(query).ok()?);
    (T::dims(a) == T::dims(b)).then(|| T::compute(a, b)).filter(|d| !d.is_nan())
}

use std::fmt;
use std::marker::PhantomData;

use diesel::deserialize::{self, FromSqlRow, StaticallySizedRow};
use diesel::row::{Field, Row};
use diesel::sql_types::{Binary, Double, Integer, Nullable};
use diesel::sqlite::{Sqlite, SqliteValue};
use diesel::{QueryResult, SqliteConnection};

use super::expression::SqliteDistance;
use super::sqlite_vec_version;
use crate::codec::sparsevec::SqliteParts;
use crate::dsl::{metric, VectorSqlType};
use crate::{codec, sql_types, VectorError, VectorKind};

/// Registers the crate's functions on `conn`: its own always, sqlite-vec's stand-ins when sqlite-vec is
/// not loaded on it.
pub(crate) fn register(conn: &mut SqliteConnection) -> QueryResult<()> {
    register_one::<sql_types::Vector, metric::MaxInnerProduct>(conn)?;
    register_one::<sql_types::HalfVector, metric::L2>(conn)?;
    register_one::<sql_types::HalfVector, metric::Cosine>(conn)?;
    register_one::<sql_types::HalfVector, metric::L1>(conn)?;
    register_one::<sql_types::HalfVector, metric::MaxInnerProduct>(conn)?;
    register_one::<sql_types::SparseVector, metric::L2>(conn)?;
    register_one::<sql_types::SparseVector, metric::Cosine>(conn)?;
    register_one::<sql_types::SparseVector, metric::L1>(conn)?;
    register_one::<sql_types::SparseVector, metric::MaxInnerProduct>(conn)?;
    register_one::<sql_types::Bit, metric::Jaccard>(conn)?;
    conn.register_sql_function::<(Binary,), Integer, Valid<sql_types::SparseVector>, i32, _>(
        SPARSEVEC_VALID,
        true,
        |valid: Valid<sql_types::SparseVector>| i32::from(valid.0),
    )?;
    if sqlite_vec_version(conn)?.is_none() {
        register_one::<sql_types::Vector, metric::L2>(conn)?;
        register_one::<sql_types::Vector, metric::Cosine>(conn)?;
        register_one::<sql_types::Vector, metric::L1>(conn)?;
        register_one::<sql_types::Bit, metric::Hamming>(conn)?;
        register_vec_bit(conn)?;
    }
    Ok(())
}

/// How a vector SQL type's SQLite BLOBs are read in place.
trait BlobLayout: VectorSqlType {
    /// A borrowed view of one argument.
    type Arg<'a>: Copy;

    /// Checks the layout (not the elements' values: a distance takes whatever sqlite-vec takes).
    fn read(blob: &[u8]) -> Result<Self::Arg<'_>, VectorError>;

    /// The dimensions (bits, for `Bit`), which both arguments must share.
    fn dims(arg: Self::Arg<'_>) -> usize;

    /// Whether every element is a finite number: what a scan asks of a row (a row with NaN or infinite
    /// elements is one the index leaves out), not what a distance asks of its arguments.
    fn finite(arg: Self::Arg<'_>) -> bool;
}

impl BlobLayout for sql_types::Vector {
    type Arg<'a> = &'a [[u8; 4]];

    fn read(blob: &[u8]) -> Result<Self::Arg<'_>, VectorError> {
        codec::sqlite_words(blob)
    }

    fn dims(arg: Self::Arg<'_>) -> usize {
        arg.len()
    }

    fn finite(arg: Self::Arg<'_>) -> bool {
        arg.iter().all(|w| f32::from_le_bytes(*w).is_finite())
    }
}

impl BlobLayout for sql_types::HalfVector {
    type Arg<'a> = &'a [[u8; 2]];

    fn read(blob: &[u8]) -> Result<Self::Arg<'_>, VectorError> {
        codec::halfvec::sqlite_halves(blob)
    }

    fn dims(arg: Self::Arg<'_>) -> usize {
        arg.len()
    }

    fn finite(arg: Self::Arg<'_>) -> bool {
        arg.iter().all(|h| crate::halfvec::half_bits_finite(u16::from_le_bytes(*h)))
    }
}

impl BlobLayout for sql_types::SparseVector {
    type Arg<'a> = SqliteParts<'a>;

    /// The layout and the indices (the merge needs them sorted and in range), not the values.
    fn read(blob: &[u8]) -> Result<Self::Arg<'_>, VectorError> {
        let parts = codec::sparsevec::sqlite_parts(blob)?;
        let dims = crate::sparsevec::check_dims(i64::from(parts.dims))?;
        codec::sparsevec::check_indices(parts.indices, i32::from_le_bytes, dims)?;
        Ok(parts)
    }

    fn dims(arg: Self::Arg<'_>) -> usize {
        usize::try_from(arg.dims).unwrap_or(usize::MAX)
    }

    /// And none zero: pgvector's `sparsevec` stores only non-zero elements, and a stored zero is a value
    /// the crate's decoder (as pgvector's binary input) refuses, which a search must not return.
    fn finite(arg: Self::Arg<'_>) -> bool {
        arg.values.iter().all(|w| {
            let x = f32::from_le_bytes(*w);
            x.is_finite() && x != 0.0
        })
    }
}

impl BlobLayout for sql_types::Bit {
    type Arg<'a> = &'a [u8];

    fn read(blob: &[u8]) -> Result<Self::Arg<'_>, VectorError> {
        if blob.is_empty() {
            return Err(VectorError::Empty);
        }
        Ok(blob)
    }

    fn dims(arg: Self::Arg<'_>) -> usize {
        arg.len().saturating_mul(8)
    }

    fn finite(_: Self::Arg<'_>) -> bool {
        true
    }
}

/// A metric the crate computes in Rust on a vector type's BLOBs.
trait Kernel<M>: BlobLayout + SqliteDistance<M> + Send + 'static {
    /// The metric of two arguments of the same, non-zero dimensions.
    fn compute(a: Self::Arg<'_>, b: Self::Arg<'_>) -> f64;
}

macro_rules! kernels {
    ($($sql_type:ty, $metric:ty => $kernel:path;)*) => {$(
        impl Kernel<$metric> for $sql_type {
            fn compute(a: Self::Arg<'_>, b: Self::Arg<'_>) -> f64 {
                $kernel(a, b)
            }
        }
    )*};
}

kernels! {
    sql_types::Vector, metric::L2 => kernels::l2;
    sql_types::Vector, metric::Cosine => kernels::cosine;
    sql_types::Vector, metric::L1 => kernels::l1;
    sql_types::Vector, metric::MaxInnerProduct => kernels::neg_inner_product;
    sql_types::HalfVector, metric::L2 => half::l2;
    sql_types::HalfVector, metric::Cosine => half::cosine;
    sql_types::HalfVector, metric::L1 => half::l1;
    sql_types::HalfVector, metric::MaxInnerProduct => half::neg_inner_product;
    sql_types::SparseVector, metric::L2 => sparse::l2;
    sql_types::SparseVector, metric::Cosine => sparse::cosine;
    sql_types::SparseVector, metric::L1 => sparse::l1;
    sql_types::SparseVector, metric::MaxInnerProduct => sparse::neg_inner_product;
    sql_types::Bit, metric::Hamming => bits::hamming;
    sql_types::Bit, metric::Jaccard => bits::jaccard;
}

fn register_one<T: Kernel<M>, M: Send + 'static>(conn: &mut SqliteConnection) -> QueryResult<()> {
    // `define_sql_function!`'s `register_impl` decodes each argument on its own into an owned value (a
    // `Vec<u8>` per argument per row). Its expansion calls this public, `#[doc(hidden)]` method with the
    // arguments as one row; doing the same with `Computed` below, which implements `FromSqlRow` for both
    // arguments at once, lets the kernel read the two BLOBs where SQLite holds them.
    conn.register_sql_function::<(Binary, Binary), Nullable<Double>, Computed<T, M>, Option<f64>, _>(
        <T as SqliteDistance<M>>::FUNCTION,
        true,
        |computed: Computed<T, M>| computed.value,
    )
}

/// The function's result, computed while its arguments are read: Diesel hands the callback owned
/// values only, and the arguments' bytes live as long as the row.
struct Computed<T, M> {
    /// `None` (SQL NULL) for NaN, which SQLite stores as NULL anyway.
    value: Option<f64>,
    kernel: PhantomData<(T, M)>,
}

impl<T: Kernel<M>, M> FromSqlRow<(Binary, Binary), Sqlite> for Computed<T, M> {
    fn build_from_row<'a>(row: &impl Row<'a, Sqlite>) -> deserialize::Result<Self> {
        let function = <T as SqliteDistance<M>>::FUNCTION;
        let error = |argument, cause| Box::new(FunctionError { function, argument, cause });
        let (first, second) = match (row.get(0), row.get(1)) {
            (Some(first), Some(second)) => (first, second),
            _ => return Err(Box::new(diesel::result::UnexpectedEndOfRow)),
        };
        let (mut first, mut second) = (first.value(), second.value());
        let a = blob(first.as_mut(), T::KIND).and_then(T::read).map_err(|cause| error(1, cause))?;
        let b = blob(second.as_mut(), T::KIND).and_then(T::read).map_err(|cause| error(2, cause))?;
        if T::dims(a) != T::dims(b) {
            return Err(error(2, VectorError::DimensionMismatch { expected: T::dims(a), found: T::dims(b) }));
        }
        let value = T::compute(a, b);
        Ok(Self { value: (!value.is_nan()).then_some(value), kernel: PhantomData })
    }
}

impl<T: Kernel<M>, M> StaticallySizedRow<(Binary, Binary), Sqlite> for Computed<T, M> {
    const FIELD_COUNT: usize = 2;
}

/// An argument's bytes, borrowed from SQLite, if it is stored as a BLOB.
fn blob<'v>(value: Option<&'v mut SqliteValue<'_, '_, '_>>, kind: VectorKind) -> Result<&'v [u8], VectorError> {
    let not_a_blob = |storage_class| match kind {
        VectorKind::Vector => VectorError::NotABlob { storage_class },
        kind => VectorError::NotStoredAsBlob { kind, storage_class },
    };
    let value = value.ok_or(not_a_blob("NULL"))?;
    if value.value_type() != Some(diesel::sqlite::SqliteType::Binary) {
        // `read_blob` would turn TEXT into bytes: reject anything that is not stored as a BLOB.
        return Err(not_a_blob(super::types::storage_class_name(value.value_type())));
    }
    Ok(value.read_blob())
}

/// sqlite-vec's `vec_bit(blob)` without sqlite-vec: the BLOB itself (what the stand-in
/// `vec_distance_hamming` reads), after sqlite-vec's checks.
fn register_vec_bit(conn: &mut SqliteConnection) -> QueryResult<()> {
    conn.register_sql_function::<(Binary,), Binary, BitArgument, Vec<u8>, _>("vec_bit", true, |arg: BitArgument| arg.0)
}

/// The name of the function that says whether a value is a valid `sparsevec` BLOB.
pub(crate) const SPARSEVEC_VALID: &str = "diesel_vector_sparsevec_valid";

/// Whether the argument is a BLOB of `T`'s layout with finite elements (what a scan needs of a row):
/// worked out while the argument is read in place.
struct Valid<T>(bool, PhantomData<T>);

impl<T: BlobLayout> FromSqlRow<(Binary,), Sqlite> for Valid<T> {
    fn build_from_row<'a>(row: &impl Row<'a, Sqlite>) -> deserialize::Result<Self> {
        let field = row.get(0).ok_or(diesel::result::UnexpectedEndOfRow)?;
        let mut value = field.value();
        let valid = blob(value.as_mut(), T::KIND).and_then(T::read).is_ok_and(T::finite);
        Ok(Self(valid, PhantomData))
    }
}

impl<T: BlobLayout> StaticallySizedRow<(Binary,), Sqlite> for Valid<T> {
    const FIELD_COUNT: usize = 1;
}

struct BitArgument(Vec<u8>);

impl FromSqlRow<(Binary,), Sqlite> for BitArgument {
    fn build_from_row<'a>(row: &impl Row<'a, Sqlite>) -> deserialize::Result<Self> {
        let field = row.get(0).ok_or(diesel::result::UnexpectedEndOfRow)?;
        let mut value = field.value();
        let bytes = blob(value.as_mut(), VectorKind::Bit)
            .and_then(<sql_types::Bit as BlobLayout>::read)
            .map_err(|cause| Box::new(FunctionError { function: "vec_bit", argument: 1, cause }))?;
        Ok(Self(bytes.to_vec()))
    }
}

impl StaticallySizedRow<(Binary,), Sqlite> for BitArgument {
    const FIELD_COUNT: usize = 1;
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
