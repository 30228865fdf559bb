//! The distance AST node, generic over its metric, and the Diesel impls every backend shares.
//!
//! The SQL each backend renders lives with that backend: `src/pg/expression.rs` and
//! `src/sqlite/expression.rs`.

use std::marker::PhantomData;

use diesel::expression::{AppearsOnTable, Expression, MixedAggregates, SelectableExpression, ValidGrouping};
use diesel::sql_types::is_nullable::{IsOneNullable, IsSqlTypeNullable, MaybeNullable};
use diesel::sql_types::{Double, MaybeNullableType, OneIsNullable};

use super::{HasMetric, VectorOrNullableVector};

/// The distance between two vector expressions under metric `M`, as built by the methods of
/// [`VectorExpressionMethods`](super::VectorExpressionMethods).
///
/// Its SQL type is `Double`, or `Nullable<Double>` when either side is nullable; both sides have the same
/// vector SQL type, one that has the metric. Each backend renders it its own way (see the table in
/// [`dsl`](super)); name it through the helper types [`L2Distance`], [`CosineDistance`], [`L1Distance`],
/// [`MaxInnerProduct`], [`HammingDistance`] and [`JaccardDistance`] when a function returns one.
///
/// [`L2Distance`]: super::L2Distance
/// [`CosineDistance`]: super::CosineDistance
/// [`L1Distance`]: super::L1Distance
/// [`MaxInnerProduct`]: super::MaxInnerProduct
/// [`HammingDistance`]: super::HammingDistance
/// [`JaccardDistance`]: super::JaccardDistance
///
/// ```
/// # include!("doctest_setup.rs");
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let conn = &mut establish()?;
/// use diesel_vector::dsl::{metric, Distance};
///
/// let q = Vector::new(vec![1.0, 0.0, 0.0])?;
/// let distance: Distance<metric::L2, items::embedding, _> = items::embedding.l2_distance(&q);
/// let d: f64 = items::table.filter(items::id.eq(3)).select(distance).first(conn)?;
/// assert_eq!(d, 2.0); // from [-1, 0, 0]
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId, diesel::sql_types::DieselNumericOps)]
// Only the backends' `QueryFragment` impls read the operands.
#[cfg_attr(not(any(feature = "pg", feature = "sqlite")), allow(dead_code))]
pub struct Distance<M, L, R> {
    metric: PhantomData<M>,
    pub(crate) left: L,
    pub(crate) right: R,
}

impl<M, L, R> Distance<M, L, R> {
    pub(crate) fn new(left: L, right: R) -> Self {
        Self { metric: PhantomData, left, right }
    }
}

impl<M, L, R> Expression for Distance<M, L, R>
where
    M: metric::Metric,
    L: Expression,
    R: Expression,
    L::SqlType: VectorOrNullableVector,
    R::SqlType: VectorOrNullableVector<Base = <L::SqlType as VectorOrNullableVector>::Base>,
    <L::SqlType as VectorOrNullableVector>::Base: HasMetric<M>,
    IsSqlTypeNullable<L::SqlType>: OneIsNullable<IsSqlTypeNullable<R::SqlType>>,
    IsOneNullable<L::SqlType, R::SqlType>: MaybeNullableType<Double>,
{
    type SqlType = MaybeNullable<IsOneNullable<L::SqlType, R::SqlType>, Double>;
}

impl<M, L, R, GB> ValidGrouping<GB> for Distance<M, L, R>
where
    L: ValidGrouping<GB>,
    R: ValidGrouping<GB>,
    L::IsAggregate: MixedAggregates<R::IsAggregate>,
{
    type IsAggregate = <L::IsAggregate as MixedAggregates<R::IsAggregate>>::Output;
}

impl<M, L, R, QS> AppearsOnTable<QS> for Distance<M, L, R>
where
    L: AppearsOnTable<QS>,
    R: AppearsOnTable<QS>,
    Self: Expression,
{
}

impl<M, L, R, QS> SelectableExpression<QS> for Distance<M, L, R>
where
    L: SelectableExpression<QS>,
    R: SelectableExpression<QS>,
    Self: AppearsOnTable<QS>,
{
}

/// The metrics a [`Distance`] can use: marker types, one per method of
/// [`VectorExpressionMethods`](super::VectorExpressionMethods).
pub mod metric {
    /// A vector distance metric. Sealed: the six markers in this module are all there is.
    ///
    /// ```
    /// use diesel_vector::dsl::metric::{self, Metric};
    ///
    /// fn name<M: Metric>() -> &'static str {
    ///     M::NAME
    /// }
    /// assert_eq!(name::<metric::Cosine>(), "cosine distance");
    /// ```
    pub trait Metric:
        sealed::Sealed + Copy + Default + std::fmt::Debug + diesel::query_builder::QueryId + Send + Sync + 'static
    {
        /// What the metric is called in error messages and docs.
        const NAME: &'static str;
    }

    /// The metrics of the float vector types (`Vector`, `HalfVector`, `SparseVector`): [`L2`], [`Cosine`],
    /// [`L1`], [`MaxInnerProduct`]. Sealed.
    pub trait FloatMetric: Metric {}

    /// The metrics of bit strings (`Bit`): [`Hamming`], [`Jaccard`]. Sealed.
    pub trait BitMetric: Metric {}

    mod sealed {
        pub trait Sealed {}
    }

    macro_rules! metrics {
        ($family:ident, $column:literal, $value:literal: $($(#[$doc:meta])* $name:ident => $text:literal, $method:literal;)*) => {$(
            $(#[$doc])*
            ///
            /// ```
            /// use diesel_vector::dsl::{metric, Distance};
            /// use diesel_vector::VectorExpressionMethods;
            #[doc = concat!("# diesel::table! { items (id) { id -> Integer, v -> diesel_vector::sql_types::", $column, ", } }")]
            ///
            #[doc = concat!("let q = ", $value, ";")]
            #[doc = concat!("let d: Distance<metric::", stringify!($name), ", items::v, _> = items::v.", $method, "(&q);")]
            /// # let _ = d;
            /// # Ok::<(), diesel_vector::VectorError>(())
            /// ```
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, diesel::query_builder::QueryId)]
            pub struct $name;

            impl sealed::Sealed for $name {}

            impl Metric for $name {
                const NAME: &'static str = $text;
            }

            impl $family for $name {}
        )*};
    }

    metrics! {
        FloatMetric, "Vector", "diesel_vector::Vector::new(vec![1.0, 0.0, 0.0])?":
        /// Euclidean (L2) distance: `sqrt(sum((a[i] - b[i])²))`.
        L2 => "L2 distance", "l2_distance";
        /// Cosine distance: `1 - cos(a, b)`, from 0 (same direction) to 2 (opposite directions).
        Cosine => "cosine distance", "cosine_distance";
        /// Manhattan (L1) distance: `sum(|a[i] - b[i]|)`.
        L1 => "L1 distance", "l1_distance";
        /// Negative inner product, `-sum(a[i] * b[i])`: pgvector's `<#>`, smaller is nearer.
        MaxInnerProduct => "negative inner product", "max_inner_product";
    }

    metrics! {
        BitMetric, "Bit", "diesel_vector::Bit::from_bytes(&[0b1010_0000])":
        /// Hamming distance: the number of bits that differ.
        Hamming => "Hamming distance", "hamming_distance";
        /// Jaccard distance: `1 - |a ∧ b| / |a ∨ b|`, 1 when no bit is set in both.
        Jaccard => "Jaccard distance", "jaccard_distance";
    }
}
