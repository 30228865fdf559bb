//! Typed vector distances for Diesel queries: `l2_distance`, `cosine_distance`, `l1_distance` and
//! `max_inner_product` on any expression of SQL type [`Vector`](crate::sql_types::Vector) or
//! `Nullable<Vector>`, usable in `select`, `filter` and `order`.
//!
//! | metric | method | PostgreSQL (pgvector) | SQLite (sqlite-vec) | SQLite (no extension) |
//! |---|---|---|---|---|
//! | L2 (Euclidean) | [`l2_distance`] | `(a <-> b)` | `vec_distance_l2(a, b)` | `vec_distance_l2(a, b)`, the crate's |
//! | cosine | [`cosine_distance`] | `(a <=> b)` | `vec_distance_cosine(a, b)` | `vec_distance_cosine(a, b)`, the crate's |
//! | L1 (Manhattan) | [`l1_distance`] | `(a <+> b)` (pgvector 0.7+) | `vec_distance_l1(a, b)` | `vec_distance_l1(a, b)`, the crate's |
//! | negative inner product | [`max_inner_product`] | `(a <#> b)` | `diesel_vector_neg_inner_product(a, b)`, the crate's | the same |
//!
//! Every method returns `Double`, or `Nullable<Double>` when either side is nullable; smaller is always
//! nearer, so `order(column.cosine_distance(&q)).limit(k)` is a k-nearest-neighbour search.
//!
//! The SQLite functions marked "the crate's" are written in Rust and registered by
//! [`sqlite::establish`](crate::sqlite::establish), [`ConnectionOptions::apply`] and the r2d2
//! customizer on every connection they set up: `diesel_vector_neg_inner_product` always (sqlite-vec has no
//! inner product), and `vec_distance_l2`, `vec_distance_cosine`, `vec_distance_l1` only when sqlite-vec is
//! not loaded on the connection, so that the same queries run without the extension. They do sqlite-vec
//! 0.1.9's arithmetic (`f32` sums for L2 and cosine, rounded to `f32`; `f64` sums for L1; `f32` sums for
//! the inner product, as pgvector): bit for bit below 16 dimensions, and within about 1e-6 above, where
//! they add in a different, SIMD-friendly order. They read both BLOBs in place, without allocating. An
//! argument that is NULL, not a BLOB, empty or not a whole number of floats, and vectors of different
//! dimensions, are SQL errors naming the function and the argument; a NaN result (the cosine distance to a
//! zero vector) is NULL. A connection opened some other way needs [`ConnectionOptions::apply`] before it
//! can run `max_inner_product`, or any distance without sqlite-vec.
//!
//! [`l2_distance`]: VectorExpressionMethods::l2_distance
//! [`cosine_distance`]: VectorExpressionMethods::cosine_distance
//! [`l1_distance`]: VectorExpressionMethods::l1_distance
//! [`max_inner_product`]: VectorExpressionMethods::max_inner_product
//! [`ConnectionOptions::apply`]: crate::sqlite::ConnectionOptions::apply
//!
//! # Where the backends differ
//!
//! - **NULL**: a distance involving a NULL vector is NULL on both backends (on SQLite the call is
//!   wrapped in `CASE WHEN a IS NOT NULL THEN ... END`, because sqlite-vec's functions reject NULL).
//!   PostgreSQL sorts NULL last in ascending order and SQLite first: filter them out (`.filter(column.is_not_null())`)
//!   before ordering by distance.
//! - **Zero vectors**: the cosine distance to a zero vector is NaN on PostgreSQL and NULL on SQLite.
//! - **Different dimensions** are an error on both: "different vector dimensions" from pgvector, "Vector
//!   dimension mistmatch" (sic) from sqlite-vec, "vec_distance_l2(): argument 2 has 4 dimensions but
//!   argument 1 has 3" from the crate's functions.
//! - **Precision**: pgvector and sqlite-vec both sum in `f32`; sqlite-vec also rounds L2 and cosine
//!   results to `f32`. Results agree to about 1e-6 of the magnitude of the terms (relative for L1 and
//!   L2, absolute for cosine, relative to ‖a‖·‖b‖ for the inner product), not to the bit.
//! - **Indexes**: on PostgreSQL, `ORDER BY embedding <=> $1 LIMIT k` can use an HNSW or IVFFlat index
//!   built with the matching operator class. On SQLite these functions scan every row (exact search).
//!
//! # Example
//!
//! ```
//! # include!("doctest_setup.rs");
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let conn = &mut establish()?;
//! use diesel_vector::VectorExpressionMethods;
//!
//! let q = Vector::new(vec![0.9, 0.1, 0.0])?;
//!
//! // The two nearest items by cosine distance.
//! let nearest: Vec<i32> = items::table
//!     .select(items::id)
//!     .order(items::embedding.cosine_distance(&q))
//!     .limit(2)
//!     .load(conn)?;
//! assert_eq!(nearest, [1, 2]);
//!
//! // Items within an L2 radius, with their distance.
//! let close: Vec<(i32, f64)> = items::table
//!     .select((items::id, items::embedding.l2_distance(&q)))
//!     .filter(items::embedding.l2_distance(&q).lt(1.5))
//!     .load(conn)?;
//! assert_eq!(close.len(), 2);
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```
//!
//! The methods exist only on vector expressions; on a `Text` column they do not compile:
//!
//! ```compile_fail,E0599
//! use diesel_vector::{Vector, VectorExpressionMethods};
//!
//! diesel::table! {
//!     docs (id) {
//!         id -> Integer,
//!         body -> Text,
//!     }
//! }
//!
//! let q = Vector::new(vec![1.0, 0.0])?;
//! let _ = docs::body.cosine_distance(&q);
//! # Ok::<(), diesel_vector::VectorError>(())
//! ```

mod distance;

use diesel::expression::{AsExpression, Expression};
use diesel::sql_types::is_nullable::{IsNullable, NotNull};
use diesel::sql_types::{Nullable, SingleValue, SqlType};

pub use self::distance::{metric, Distance};
use crate::sql_types;

/// Vector distances on expressions of SQL type [`Vector`](crate::sql_types::Vector) or
/// `Nullable<Vector>` (columns, bound values, other distances' operands).
///
/// The other side can be a [`Vector`](crate::Vector), a `&Vector`, or any expression of SQL type
/// `Vector` or `Nullable<Vector>` (another column, `v.into_sql::<Nullable<Vector>>()`). The result is
/// `Double`, or `Nullable<Double>` when either side is nullable. See the [module docs](self) for the SQL
/// each backend runs.
///
/// ```
/// # include!("doctest_setup.rs");
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = &mut establish()?;
/// use diesel_vector::VectorExpressionMethods;
///
/// let q = Vector::new(vec![0.0, 2.0, 0.0])?;
/// let nearest: i32 = items::table.select(items::id).order(items::embedding.l2_distance(&q)).first(conn)?;
/// assert_eq!(nearest, 2);
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
pub trait VectorExpressionMethods: Expression + Sized {
    /// Euclidean (L2) distance: pgvector's `<->`, sqlite-vec's `vec_distance_l2`.
    ///
    /// ```
    /// # include!("doctest_setup.rs");
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = &mut establish()?;
    /// let q = Vector::new(vec![0.0, 0.0, 0.0])?;
    /// let distances: Vec<f64> =
    ///     items::table.select(items::embedding.l2_distance(&q)).order(items::id).load(conn)?;
    /// assert_eq!(distances, [1.0, 1.0, 1.0]);
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    fn l2_distance<T, K>(self, other: T) -> L2Distance<Self, T, K>
    where
        T: VectorOperand<K>,
    {
        Distance::new(self, other.into_operand())
    }

    /// Cosine distance, `1 - cos(a, b)`: pgvector's `<=>`, sqlite-vec's `vec_distance_cosine`.
    ///
    /// ```
    /// # include!("doctest_setup.rs");
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = &mut establish()?;
    /// let q = Vector::new(vec![2.0, 0.0, 0.0])?;
    /// let distances: Vec<f64> =
    ///     items::table.select(items::embedding.cosine_distance(&q)).order(items::id).load(conn)?;
    /// assert_eq!(distances, [0.0, 1.0, 2.0]); // same direction, orthogonal, opposite
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    fn cosine_distance<T, K>(self, other: T) -> CosineDistance<Self, T, K>
    where
        T: VectorOperand<K>,
    {
        Distance::new(self, other.into_operand())
    }

    /// Manhattan (L1) distance: pgvector's `<+>` (pgvector 0.7 or later), sqlite-vec's `vec_distance_l1`.
    ///
    /// ```
    /// # include!("doctest_setup.rs");
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = &mut establish()?;
    /// let q = Vector::new(vec![1.0, 1.0, 0.0])?;
    /// let far: Vec<i32> =
    ///     items::table.select(items::id).filter(items::embedding.l1_distance(&q).gt(2.0)).load(conn)?;
    /// assert_eq!(far, [3]); // |-1 - 1| + |0 - 1| = 3
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    fn l1_distance<T, K>(self, other: T) -> L1Distance<Self, T, K>
    where
        T: VectorOperand<K>,
    {
        Distance::new(self, other.into_operand())
    }

    /// The **negative** inner product, `-(a · b)`: pgvector's `<#>`. Smaller is nearer, so ordering by it
    /// ascending finds the largest inner products. On SQLite it runs the crate's
    /// `diesel_vector_neg_inner_product` (sqlite-vec has no inner product).
    ///
    /// ```
    /// # include!("doctest_setup.rs");
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let conn = &mut establish()?;
    /// let q = Vector::new(vec![-3.0, 0.5, 0.0])?;
    /// let best: Vec<(i32, f64)> = items::table
    ///     .select((items::id, items::embedding.max_inner_product(&q)))
    ///     .order(items::embedding.max_inner_product(&q))
    ///     .limit(2)
    ///     .load(conn)?;
    /// assert_eq!(best, [(3, -3.0), (2, -0.5)]);
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    fn max_inner_product<T, K>(self, other: T) -> MaxInnerProduct<Self, T, K>
    where
        T: VectorOperand<K>,
    {
        Distance::new(self, other.into_operand())
    }
}

impl<T> VectorExpressionMethods for T
where
    T: Expression,
    T::SqlType: VectorOrNullableVector,
{
}

/// The type of `left.l2_distance(right)`. `K` is [`NotNull`] for a `Vector`, `&Vector` or non-null
/// vector expression on the right, [`IsNullable`] for a nullable one.
///
/// ```
/// use diesel_vector::dsl::L2Distance;
/// use diesel_vector::{Vector, VectorExpressionMethods};
/// # diesel::table! { items (id) { id -> Integer, embedding -> diesel_vector::sql_types::Vector, } }
///
/// fn distance_to(q: &Vector) -> L2Distance<items::embedding, &Vector> {
///     items::embedding.l2_distance(q)
/// }
/// ```
pub type L2Distance<L, R, K = NotNull> = Distance<metric::L2, L, <R as VectorOperand<K>>::Expression>;

/// The type of `left.cosine_distance(right)`; see [`L2Distance`] for `K`.
///
/// ```
/// use diesel_vector::dsl::CosineDistance;
/// use diesel_vector::{Vector, VectorExpressionMethods};
/// # diesel::table! { items (id) { id -> Integer, embedding -> diesel_vector::sql_types::Vector, } }
///
/// fn distance_to(q: Vector) -> CosineDistance<items::embedding, Vector> {
///     items::embedding.cosine_distance(q)
/// }
/// ```
pub type CosineDistance<L, R, K = NotNull> = Distance<metric::Cosine, L, <R as VectorOperand<K>>::Expression>;

/// The type of `left.l1_distance(right)`; see [`L2Distance`] for `K`.
///
/// ```
/// use diesel_vector::dsl::L1Distance;
/// use diesel_vector::VectorExpressionMethods;
/// # diesel::table! { items (id) { id -> Integer, embedding -> diesel_vector::sql_types::Vector, } }
/// # diesel::table! { other (id) { id -> Integer, embedding -> Nullable<diesel_vector::sql_types::Vector>, } }
/// use diesel::sql_types::is_nullable::IsNullable;
///
/// // A nullable column on the right: `K` is `IsNullable`, the result `Nullable<Double>`.
/// fn between() -> L1Distance<items::embedding, other::embedding, IsNullable> {
///     items::embedding.l1_distance(other::embedding)
/// }
/// ```
pub type L1Distance<L, R, K = NotNull> = Distance<metric::L1, L, <R as VectorOperand<K>>::Expression>;

/// The type of `left.max_inner_product(right)`; see [`L2Distance`] for `K`.
///
/// ```
/// use diesel_vector::dsl::MaxInnerProduct;
/// use diesel_vector::{Vector, VectorExpressionMethods};
/// # diesel::table! { items (id) { id -> Integer, embedding -> diesel_vector::sql_types::Vector, } }
///
/// fn score(q: &Vector) -> MaxInnerProduct<items::embedding, &Vector> {
///     items::embedding.max_inner_product(q)
/// }
/// ```
pub type MaxInnerProduct<L, R, K = NotNull> = Distance<metric::MaxInnerProduct, L, <R as VectorOperand<K>>::Expression>;

/// SQL types the distance methods apply to: [`sql_types::Vector`] and
/// `Nullable<Vector>`. Sealed.
///
/// ```
/// use diesel::sql_types::Nullable;
/// use diesel_vector::dsl::VectorOrNullableVector;
/// use diesel_vector::sql_types::Vector;
///
/// fn is_vector<T: VectorOrNullableVector>() {}
/// is_vector::<Vector>();
/// is_vector::<Nullable<Vector>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither `diesel_vector::sql_types::Vector` nor `Nullable<diesel_vector::sql_types::Vector>`",
    note = "vector distances apply only to expressions of a vector SQL type"
)]
pub trait VectorOrNullableVector: SqlType + SingleValue + sealed::Sealed {
    /// Whether this is `Nullable<Vector>`: SQLite guards the distance call with `IS NOT NULL`.
    #[doc(hidden)]
    const IS_NULLABLE: bool;
}

impl VectorOrNullableVector for sql_types::Vector {
    const IS_NULLABLE: bool = false;
}

impl VectorOrNullableVector for Nullable<sql_types::Vector> {
    const IS_NULLABLE: bool = true;
}

/// What can stand on the right of a distance method. `K` tells the two kinds apart (it is inferred):
///
/// - [`NotNull`]: anything that is `AsExpression<sql_types::Vector>`: a [`Vector`](crate::Vector), a
///   `&Vector`, a `Vector` column or expression;
/// - [`IsNullable`]: an expression of SQL type `Nullable<Vector>`, such as a nullable column.
///
/// Sealed. An `Option<Vector>` is neither: write `v.into_sql::<Nullable<Vector>>()`, or better, skip the
/// query when there is no vector.
///
/// ```
/// use diesel::sql_types::is_nullable::{IsNullable, NotNull};
/// use diesel_vector::dsl::VectorOperand;
/// use diesel_vector::Vector;
/// # diesel::table! { items (id) { id -> Integer, embedding -> Nullable<diesel_vector::sql_types::Vector>, } }
///
/// fn operand<T: VectorOperand<K>, K>(_: T) {}
/// let q = Vector::new(vec![1.0])?;
/// operand::<_, NotNull>(&q);
/// operand::<_, IsNullable>(items::embedding);
/// # Ok::<(), diesel_vector::VectorError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the other side of a vector distance",
    note = "use a `Vector`, a `&Vector`, or an expression of SQL type `Vector` or `Nullable<Vector>`"
)]
pub trait VectorOperand<K>: sealed::Operand<K> {
    /// The expression the operand becomes.
    type Expression: Expression;

    /// Turns the operand into its expression.
    fn into_operand(self) -> Self::Expression;
}

impl<T> VectorOperand<NotNull> for T
where
    T: AsExpression<sql_types::Vector>,
{
    type Expression = T::Expression;

    fn into_operand(self) -> Self::Expression {
        self.as_expression()
    }
}

impl<T> VectorOperand<IsNullable> for T
where
    T: Expression<SqlType = Nullable<sql_types::Vector>>,
{
    type Expression = T;

    fn into_operand(self) -> Self::Expression {
        self
    }
}

mod sealed {
    use super::*;

    pub trait Sealed {}
    impl Sealed for sql_types::Vector {}
    impl Sealed for Nullable<sql_types::Vector> {}

    pub trait Operand<K> {}
    impl<T: AsExpression<sql_types::Vector>> Operand<NotNull> for T {}
    impl<T: Expression<SqlType = Nullable<sql_types::Vector>>> Operand<IsNullable> for T {}
}
