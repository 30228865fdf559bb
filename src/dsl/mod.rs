//! Typed vector distances for Diesel queries on every vector type, usable in `select`, `filter` and
//! `order`: `l2_distance`, `cosine_distance`, `l1_distance` and `max_inner_product` on expressions of SQL
//! type [`Vector`](crate::sql_types::Vector), [`HalfVector`](crate::sql_types::HalfVector) and
//! [`SparseVector`](crate::sql_types::SparseVector); `hamming_distance` and `jaccard_distance` on
//! [`Bit`](crate::sql_types::Bit); each also on the `Nullable` of its type.
//!
//! | metric | method | PostgreSQL (pgvector) | SQLite (sqlite-vec) | SQLite (no extension) |
//! |---|---|---|---|---|
//! | L2 (Euclidean) | [`l2_distance`] | `(a <-> b)` | `vec_distance_l2(a, b)` | `vec_distance_l2(a, b)`, the crate's |
//! | cosine | [`cosine_distance`] | `(a <=> b)` | `vec_distance_cosine(a, b)` | `vec_distance_cosine(a, b)`, the crate's |
//! | L1 (Manhattan) | [`l1_distance`] | `(a <+> b)` (pgvector 0.7+) | `vec_distance_l1(a, b)` | `vec_distance_l1(a, b)`, the crate's |
//! | negative inner product | [`max_inner_product`] | `(a <#> b)` | `diesel_vector_neg_inner_product(a, b)`, the crate's | the same |
//! | Hamming (`Bit`) | [`hamming_distance`] | `(a <~> b)` | `vec_distance_hamming(vec_bit(a), vec_bit(b))` | the same names, the crate's |
//! | Jaccard (`Bit`) | [`jaccard_distance`] | `(a <%> b)` | `diesel_vector_bit_jaccard_distance(a, b)`, the crate's | the same |
//!
//! The first four rows are for `Vector`. On SQLite, `HalfVector` and `SparseVector` use the crate's
//! functions `diesel_vector_halfvec_*` and `diesel_vector_sparsevec_*` (`l2_distance`, `cosine_distance`,
//! `l1_distance`, `neg_inner_product`), since sqlite-vec has no such types; PostgreSQL uses pgvector's
//! operators for every type.
//!
//! Every method returns `Double`, or `Nullable<Double>` when either side is nullable; smaller is always
//! nearer, so `order(column.cosine_distance(&q)).limit(k)` is a k-nearest-neighbour search. Both sides
//! must be of the same vector type: a `HalfVector` column takes a [`HalfVector`](crate::HalfVector) (or
//! a `HalfVector` expression), not a [`Vector`](crate::Vector); a metric that is not defined on a type
//! (`hamming_distance` on a `Vector`, `l2_distance` on a `Bit`) does not compile.
//!
//! The SQLite functions marked "the crate's" are written in Rust and registered by
//! [`sqlite::establish`](crate::sqlite::establish), [`ConnectionOptions::apply`] and the r2d2
//! customizer on every connection they set up: the `diesel_vector_*` functions always, and
//! `vec_distance_l2`, `vec_distance_cosine`, `vec_distance_l1`, `vec_distance_hamming` and `vec_bit` only
//! when sqlite-vec is not loaded on the connection, so that the same queries run without the extension.
//! Those for `Vector` do sqlite-vec 0.1.9's arithmetic (`f32` sums for L2 and cosine, rounded to `f32`;
//! `f64` sums for L1; `f32` sums for the inner product, as pgvector): bit for bit below 16 dimensions, and
//! within about 1e-6 above, where they add in a different, SIMD-friendly order. Those for `HalfVector` do
//! pgvector's (`f32` sums of the elements converted to `f32`; pgvector's cosine formula), also in a
//! SIMD-friendly order; those for `SparseVector` do pgvector's loops in pgvector's order, and those for
//! `Bit` exact integer arithmetic, as pgvector. They read both BLOBs in place, without allocating. An argument that is NULL, not a
//! BLOB or not of its type's layout, and vectors of different dimensions, are SQL errors naming the
//! function and the argument; a NaN result (the cosine distance to a zero vector) is NULL. A connection
//! opened some other way needs [`ConnectionOptions::apply`] before it can run these functions.
//!
//! [`l2_distance`]: VectorExpressionMethods::l2_distance
//! [`cosine_distance`]: VectorExpressionMethods::cosine_distance
//! [`l1_distance`]: VectorExpressionMethods::l1_distance
//! [`max_inner_product`]: VectorExpressionMethods::max_inner_product
//! [`hamming_distance`]: VectorExpressionMethods::hamming_distance
//! [`jaccard_distance`]: VectorExpressionMethods::jaccard_distance
//! [`ConnectionOptions::apply`]: crate::sqlite::ConnectionOptions::apply
//!
//! # Where the backends differ
//!
//! - **NULL**: a distance involving a NULL vector is NULL on both backends (on SQLite the call is
//!   wrapped in `CASE WHEN a IS NOT NULL THEN ... END`, because sqlite-vec's functions reject NULL).
//!   PostgreSQL sorts NULL last in ascending order and SQLite first: filter them out (`.filter(column.is_not_null())`)
//!   before ordering by distance.
//! - **Zero vectors**: the cosine distance to a zero vector is NaN on PostgreSQL and NULL on SQLite. The
//!   Jaccard distance between two bit strings with no bit set in common is 1 on both.
//! - **Different dimensions** are an error on both: "different vector dimensions" from pgvector, "Vector
//!   dimension mistmatch" (sic) from sqlite-vec, "vec_distance_l2(): argument 2 has 4 dimensions but
//!   argument 1 has 3" from the crate's functions.
//! - **Precision**: pgvector and sqlite-vec both sum in `f32`; sqlite-vec also rounds L2 and cosine
//!   results to `f32`. For `Vector` and `HalfVector`, results agree to about 1e-6 of the magnitude of the
//!   terms (relative for L1 and L2, absolute for cosine, relative to ‖a‖·‖b‖ for the inner product), not
//!   to the bit. For `SparseVector` they agree to about 1e-7 (the order of the sums is pgvector's, but
//!   a pgvector built with its default `-march=native` may fuse multiply-adds); for `Bit` exactly.
//! - **Bit lengths**: SQLite stores whole bytes only (see [`codec::bit`](crate::codec::bit)), and
//!   sqlite-vec's `vec_distance_hamming` returns an `f32`: counts above 2²⁴ bits are rounded.
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
//! The same methods on the other types:
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel::prelude::*;
//! use diesel_vector::{Bit, HalfVector, VectorExpressionMethods};
//!
//! diesel::table! {
//!     use diesel::sql_types::*;
//!     use diesel_vector::sql_types::{Bit, HalfVector};
//!
//!     images (id) {
//!         id -> Integer,
//!         embedding -> HalfVector,
//!         code -> Bit,
//!     }
//! }
//!
//! let conn = &mut diesel_vector::sqlite::establish(":memory:")?;
//! diesel::sql_query("CREATE TABLE images (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL, code BLOB NOT NULL)")
//!     .execute(conn)?;
//! for (id, values) in [(1, [1.0, 0.5]), (2, [-1.0, 2.0])] {
//!     let code = Bit::new(&values.map(|x| x > 0.0).repeat(4)); // 8 bits
//!     diesel::insert_into(images::table)
//!         .values((images::id.eq(id), images::embedding.eq(HalfVector::from_f32_slice(&values)?), images::code.eq(code)))
//!         .execute(conn)?;
//! }
//!
//! let q = HalfVector::from_f32_slice(&[1.0, 0.0])?;
//! let nearest: i32 = images::table.select(images::id).order(images::embedding.cosine_distance(&q)).first(conn)?;
//! assert_eq!(nearest, 1);
//!
//! let code = Bit::from_bytes(&[0b1111_1111]);
//! let distances: Vec<f64> =
//!     images::table.select(images::code.hamming_distance(&code)).order(images::id).load(conn)?;
//! assert_eq!(distances, [0.0, 4.0]); // 11111111 and 01010101
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
//!
//! Nor does a metric on a type it is not defined on:
//!
//! ```compile_fail,E0277
//! use diesel_vector::{Vector, VectorExpressionMethods};
//! # diesel::table! { items (id) { id -> Integer, embedding -> diesel_vector::sql_types::Vector, } }
//!
//! let q = Vector::new(vec![1.0, 0.0])?;
//! let _ = items::embedding.hamming_distance(&q);
//! # Ok::<(), diesel_vector::VectorError>(())
//! ```
//!
//! ```compile_fail,E0277
//! use diesel_vector::{Bit, VectorExpressionMethods};
//! # diesel::table! { items (id) { id -> Integer, code -> diesel_vector::sql_types::Bit, } }
//!
//! let _ = items::code.l2_distance(Bit::from_bytes(&[1]));
//! ```
//!
//! Nor a distance between two vector types:
//!
//! ```compile_fail,E0277
//! use diesel_vector::{Vector, VectorExpressionMethods};
//! # diesel::table! { items (id) { id -> Integer, embedding -> diesel_vector::sql_types::HalfVector, } }
//!
//! let q = Vector::new(vec![1.0, 0.0])?;
//! let _ = items::embedding.l2_distance(&q);
//! # Ok::<(), diesel_vector::VectorError>(())
//! ```

mod distance;

use diesel::expression::{AsExpression, Expression};
use diesel::sql_types::is_nullable::{IsNullable, NotNull};
use diesel::sql_types::{Nullable, SingleValue, SqlType};

pub use self::distance::{metric, Distance};
use crate::{sql_types, VectorKind};

/// Vector distances on expressions of a vector SQL type or its `Nullable` (columns, bound values, other
/// distances' operands): `l2_distance`, `cosine_distance`, `l1_distance` and `max_inner_product` on
/// [`Vector`](crate::sql_types::Vector), [`HalfVector`](crate::sql_types::HalfVector) and
/// [`SparseVector`](crate::sql_types::SparseVector); `hamming_distance` and `jaccard_distance` on
/// [`Bit`](crate::sql_types::Bit).
///
/// The other side is a value of the same type (a [`Vector`](crate::Vector) or `&Vector` for a `Vector`
/// column, a [`HalfVector`](crate::HalfVector) for a `HalfVector` column, ...), or any expression of that
/// SQL type or its `Nullable` (another column, `v.into_sql::<Nullable<Vector>>()`). The result is
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
    /// Euclidean (L2) distance: pgvector's `<->`, sqlite-vec's `vec_distance_l2` (for `Vector`).
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
        Self::SqlType: VectorOrNullableVector,
        BaseOf<Self>: HasMetric<metric::L2>,
        T: VectorOperand<BaseOf<Self>, K>,
    {
        Distance::new(self, other.into_operand())
    }

    /// Cosine distance, `1 - cos(a, b)`: pgvector's `<=>`, sqlite-vec's `vec_distance_cosine` (for
    /// `Vector`).
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
        Self::SqlType: VectorOrNullableVector,
        BaseOf<Self>: HasMetric<metric::Cosine>,
        T: VectorOperand<BaseOf<Self>, K>,
    {
        Distance::new(self, other.into_operand())
    }

    /// Manhattan (L1) distance: pgvector's `<+>` (pgvector 0.7 or later), sqlite-vec's `vec_distance_l1`
    /// (for `Vector`).
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
        Self::SqlType: VectorOrNullableVector,
        BaseOf<Self>: HasMetric<metric::L1>,
        T: VectorOperand<BaseOf<Self>, K>,
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
        Self::SqlType: VectorOrNullableVector,
        BaseOf<Self>: HasMetric<metric::MaxInnerProduct>,
        T: VectorOperand<BaseOf<Self>, K>,
    {
        Distance::new(self, other.into_operand())
    }

    /// Hamming distance between bit strings, the number of bits that differ: pgvector's `<~>`,
    /// sqlite-vec's `vec_distance_hamming` (the arguments wrapped in `vec_bit`, which tells sqlite-vec
    /// they are bit vectors).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel::prelude::*;
    /// use diesel_vector::{Bit, VectorExpressionMethods};
    /// # diesel::table! { codes (id) { id -> Integer, code -> diesel_vector::sql_types::Bit, } }
    ///
    /// let conn = &mut diesel_vector::sqlite::establish(":memory:")?;
    /// # diesel::sql_query("CREATE TABLE codes (id INTEGER PRIMARY KEY, code BLOB NOT NULL)").execute(conn)?;
    /// diesel::insert_into(codes::table).values((codes::id.eq(1), codes::code.eq(Bit::from_bytes(&[0x0f])))).execute(conn)?;
    /// let d: f64 = codes::table.select(codes::code.hamming_distance(Bit::from_bytes(&[0xff]))).first(conn)?;
    /// assert_eq!(d, 4.0);
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    fn hamming_distance<T, K>(self, other: T) -> HammingDistance<Self, T, K>
    where
        Self::SqlType: VectorOrNullableVector,
        BaseOf<Self>: HasMetric<metric::Hamming>,
        T: VectorOperand<BaseOf<Self>, K>,
    {
        Distance::new(self, other.into_operand())
    }

    /// Jaccard distance between bit strings, `1 - |a ∧ b| / |a ∨ b|` (1 when no bit is set in both):
    /// pgvector's `<%>`; on SQLite the crate's `diesel_vector_bit_jaccard_distance`.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel::prelude::*;
    /// use diesel_vector::{Bit, VectorExpressionMethods};
    /// # diesel::table! { codes (id) { id -> Integer, code -> diesel_vector::sql_types::Bit, } }
    ///
    /// let conn = &mut diesel_vector::sqlite::establish(":memory:")?;
    /// # diesel::sql_query("CREATE TABLE codes (id INTEGER PRIMARY KEY, code BLOB NOT NULL)").execute(conn)?;
    /// diesel::insert_into(codes::table).values((codes::id.eq(1), codes::code.eq(Bit::from_bytes(&[0x0f])))).execute(conn)?;
    /// let d: f64 = codes::table.select(codes::code.jaccard_distance(Bit::from_bytes(&[0x3c]))).first(conn)?;
    /// assert_eq!(d, 1.0 - 2.0 / 6.0); // 2 bits in common, 6 set in either
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    fn jaccard_distance<T, K>(self, other: T) -> JaccardDistance<Self, T, K>
    where
        Self::SqlType: VectorOrNullableVector,
        BaseOf<Self>: HasMetric<metric::Jaccard>,
        T: VectorOperand<BaseOf<Self>, K>,
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

/// The vector SQL type of an expression, without `Nullable`: `BaseOf<items::embedding>` is
/// `sql_types::HalfVector` for a `Nullable<HalfVector>` column.
pub type BaseOf<E> = <<E as Expression>::SqlType as VectorOrNullableVector>::Base;

/// The type of `left.l2_distance(right)`. `K` is [`NotNull`] for a value or non-null expression on the
/// right, [`IsNullable`] for a nullable one.
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
pub type L2Distance<L, R, K = NotNull> = Distance<metric::L2, L, <R as VectorOperand<BaseOf<L>, K>>::Expression>;

/// The type of `left.cosine_distance(right)`; see [`L2Distance`] for `K`.
///
/// ```
/// use diesel_vector::dsl::CosineDistance;
/// use diesel_vector::{HalfVector, VectorExpressionMethods};
/// # diesel::table! { items (id) { id -> Integer, embedding -> diesel_vector::sql_types::HalfVector, } }
///
/// fn distance_to(q: HalfVector) -> CosineDistance<items::embedding, HalfVector> {
///     items::embedding.cosine_distance(q)
/// }
/// ```
pub type CosineDistance<L, R, K = NotNull> =
    Distance<metric::Cosine, L, <R as VectorOperand<BaseOf<L>, K>>::Expression>;

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
pub type L1Distance<L, R, K = NotNull> = Distance<metric::L1, L, <R as VectorOperand<BaseOf<L>, K>>::Expression>;

/// The type of `left.max_inner_product(right)`; see [`L2Distance`] for `K`.
///
/// ```
/// use diesel_vector::dsl::MaxInnerProduct;
/// use diesel_vector::{SparseVector, VectorExpressionMethods};
/// # diesel::table! { docs (id) { id -> Integer, terms -> diesel_vector::sql_types::SparseVector, } }
///
/// fn score(q: &SparseVector) -> MaxInnerProduct<docs::terms, &SparseVector> {
///     docs::terms.max_inner_product(q)
/// }
/// ```
pub type MaxInnerProduct<L, R, K = NotNull> =
    Distance<metric::MaxInnerProduct, L, <R as VectorOperand<BaseOf<L>, K>>::Expression>;

/// The type of `left.hamming_distance(right)`; see [`L2Distance`] for `K`.
///
/// ```
/// use diesel_vector::dsl::HammingDistance;
/// use diesel_vector::{Bit, VectorExpressionMethods};
/// # diesel::table! { items (id) { id -> Integer, code -> diesel_vector::sql_types::Bit, } }
///
/// fn distance_to(q: &Bit) -> HammingDistance<items::code, &Bit> {
///     items::code.hamming_distance(q)
/// }
/// ```
pub type HammingDistance<L, R, K = NotNull> =
    Distance<metric::Hamming, L, <R as VectorOperand<BaseOf<L>, K>>::Expression>;

/// The type of `left.jaccard_distance(right)`; see [`L2Distance`] for `K`.
///
/// ```
/// use diesel_vector::dsl::JaccardDistance;
/// use diesel_vector::{Bit, VectorExpressionMethods};
/// # diesel::table! { items (id) { id -> Integer, code -> diesel_vector::sql_types::Bit, } }
///
/// fn distance_to(q: Bit) -> JaccardDistance<items::code, Bit> {
///     items::code.jaccard_distance(q)
/// }
/// ```
pub type JaccardDistance<L, R, K = NotNull> =
    Distance<metric::Jaccard, L, <R as VectorOperand<BaseOf<L>, K>>::Expression>;

/// The four vector SQL types: [`sql_types::Vector`], [`sql_types::HalfVector`],
/// [`sql_types::SparseVector`] and [`sql_types::Bit`]. Sealed.
///
/// ```
/// use diesel_vector::dsl::VectorSqlType;
/// use diesel_vector::{sql_types, VectorKind};
///
/// assert_eq!(<sql_types::HalfVector as VectorSqlType>::KIND, VectorKind::HalfVector);
/// ```
pub trait VectorSqlType: SqlType + SingleValue + Default + sealed::Sealed {
    /// Which of the four it is.
    const KIND: VectorKind;
}

impl VectorSqlType for sql_types::Vector {
    const KIND: VectorKind = VectorKind::Vector;
}

impl VectorSqlType for sql_types::HalfVector {
    const KIND: VectorKind = VectorKind::HalfVector;
}

impl VectorSqlType for sql_types::SparseVector {
    const KIND: VectorKind = VectorKind::SparseVector;
}

impl VectorSqlType for sql_types::Bit {
    const KIND: VectorKind = VectorKind::Bit;
}

/// SQL types the distance methods apply to: the [vector SQL types](VectorSqlType) and their `Nullable`.
/// Sealed.
///
/// ```
/// use diesel::sql_types::Nullable;
/// use diesel_vector::dsl::VectorOrNullableVector;
/// use diesel_vector::sql_types::{Bit, Vector};
///
/// fn is_vector<T: VectorOrNullableVector>() {}
/// is_vector::<Vector>();
/// is_vector::<Nullable<Vector>>();
/// is_vector::<Nullable<Bit>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a vector SQL type",
    note = "vector distances apply only to expressions of SQL type `Vector`, `HalfVector`, `SparseVector` or `Bit` \
            (from `diesel_vector::sql_types`), or their `Nullable`"
)]
pub trait VectorOrNullableVector: SqlType + SingleValue + sealed::Sealed {
    /// The vector SQL type without `Nullable`.
    type Base: VectorSqlType;

    /// Whether this is a `Nullable`: SQLite guards the distance call with `IS NOT NULL`.
    #[doc(hidden)]
    const IS_NULLABLE: bool;
}

impl<T: VectorSqlType> VectorOrNullableVector for T {
    type Base = T;
    const IS_NULLABLE: bool = false;
}

impl<T: VectorSqlType> VectorOrNullableVector for Nullable<T> {
    type Base = T;
    const IS_NULLABLE: bool = true;
}

/// Which metrics a vector SQL type has: L2, cosine, L1 and the inner product for
/// [`Vector`](sql_types::Vector), [`HalfVector`](sql_types::HalfVector) and
/// [`SparseVector`](sql_types::SparseVector); Hamming and Jaccard for [`Bit`](sql_types::Bit), as in
/// pgvector. Sealed.
///
/// ```
/// use diesel_vector::dsl::{metric, HasMetric};
/// use diesel_vector::sql_types;
///
/// fn has<T: HasMetric<M>, M: metric::Metric>() {}
/// has::<sql_types::SparseVector, metric::Cosine>();
/// has::<sql_types::Bit, metric::Hamming>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{M}` is not defined on `{Self}` vectors",
    note = "`Vector`, `HalfVector` and `SparseVector` have `l2_distance`, `cosine_distance`, `l1_distance` and \
            `max_inner_product`; `Bit` has `hamming_distance` and `jaccard_distance`"
)]
pub trait HasMetric<M: metric::Metric>: VectorSqlType {}

impl<M: metric::FloatMetric> HasMetric<M> for sql_types::Vector {}
impl<M: metric::FloatMetric> HasMetric<M> for sql_types::HalfVector {}
impl<M: metric::FloatMetric> HasMetric<M> for sql_types::SparseVector {}
impl<M: metric::BitMetric> HasMetric<M> for sql_types::Bit {}

/// What can stand on the right of a distance whose left side has the vector SQL type `ST`. `K` tells the
/// two kinds apart (it is inferred):
///
/// - [`NotNull`]: anything that is `AsExpression<ST>`: a value of the matching Rust type ([`Vector`](crate::Vector)
///   or `&Vector` for `ST = sql_types::Vector`, and so on), a column or expression of type `ST`;
/// - [`IsNullable`]: an expression of SQL type `Nullable<ST>`, such as a nullable column.
///
/// Sealed. An `Option<Vector>` is neither: write `v.into_sql::<Nullable<Vector>>()`, or better, skip the
/// query when there is no vector.
///
/// ```
/// use diesel::sql_types::is_nullable::{IsNullable, NotNull};
/// use diesel_vector::dsl::VectorOperand;
/// use diesel_vector::{sql_types, Vector};
/// # diesel::table! { items (id) { id -> Integer, embedding -> Nullable<diesel_vector::sql_types::Vector>, } }
///
/// fn operand<T: VectorOperand<sql_types::Vector, K>, K>(_: T) {}
/// let q = Vector::new(vec![1.0])?;
/// operand::<_, NotNull>(&q);
/// operand::<_, IsNullable>(items::embedding);
/// # Ok::<(), diesel_vector::VectorError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the other side of a distance on `{ST}`",
    note = "both sides of a distance have the same vector type: a value of it (`Vector` for a `Vector` column, \
            `HalfVector` for a `HalfVector` column, ...), or an expression of that SQL type or its `Nullable`"
)]
pub trait VectorOperand<ST, K>: sealed::Operand<ST, K> {
    /// The expression the operand becomes.
    type Expression: Expression;

    /// Turns the operand into its expression.
    fn into_operand(self) -> Self::Expression;
}

impl<ST, T> VectorOperand<ST, NotNull> for T
where
    ST: VectorSqlType,
    T: AsExpression<ST>,
{
    type Expression = T::Expression;

    fn into_operand(self) -> Self::Expression {
        self.as_expression()
    }
}

impl<ST, T> VectorOperand<ST, IsNullable> for T
where
    ST: VectorSqlType,
    T: Expression<SqlType = Nullable<ST>>,
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
    impl Sealed for sql_types::HalfVector {}
    impl Sealed for sql_types::SparseVector {}
    impl Sealed for sql_types::Bit {}
    impl<T: VectorSqlType> Sealed for Nullable<T> {}

    pub trait Operand<ST, K> {}
    impl<ST: VectorSqlType, T: AsExpression<ST>> Operand<ST, NotNull> for T {}
    impl<ST: VectorSqlType, T: Expression<SqlType = Nullable<ST>>> Operand<ST, IsNullable> for T {}
}
