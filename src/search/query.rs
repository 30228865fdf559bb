//! The SQL of a search over a table named at run time, as Diesel AST nodes: names go through
//! `push_identifier` (quoted, never interpolated), values are bind parameters, and the distance is the
//! distance DSL's own [`Distance`] node, so each metric's SQL has one source per backend
//! (`src/pg/expression.rs`, `src/sqlite/expression.rs`).
//!
//! The nodes are backend-neutral; each backend renders [`Knn`] in its `search.rs`.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::expression::{is_aggregate, AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::{QueryResult, RunQueryDsl};

use super::{ColumnKind, Metric, PlanVector};
use crate::dsl::{metric, Distance, VectorSqlType};
use crate::index::Element;
use crate::sql_types;
use crate::{Bit, HalfVector, SparseVector, Vector};

/// `"table"."column"`: the vector column, named at run time and typed as the index's SQL type `ST` so that
/// the distance DSL renders on it. Qualified, because SQLite reads a double-quoted name that matches no
/// column as a string; the table's columns are checked before any search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VectorColumn<'a, ST> {
    pub(crate) table: &'a str,
    pub(crate) column: &'a str,
    /// PostgreSQL: the type an expression index casts the column to (`halfvec(N)`): the search casts the
    /// same way so that the index serves it.
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) cast: Option<(Element, u32)>,
    sql_type: PhantomData<ST>,
}

impl<ST: VectorSqlType> Expression for VectorColumn<'_, ST> {
    type SqlType = ST;
}

impl<QS, ST: VectorSqlType> AppearsOnTable<QS> for VectorColumn<'_, ST> {}

impl<QS, ST: VectorSqlType> SelectableExpression<QS> for VectorColumn<'_, ST> {}

impl<GB, ST> ValidGrouping<GB> for VectorColumn<'_, ST> {
    type IsAggregate = is_aggregate::No;
}

/// A value type a search's query can be: its SQL type.
pub(crate) trait SearchValue: std::fmt::Debug {
    type SqlType: VectorSqlType;
}

impl SearchValue for Vector {
    type SqlType = sql_types::Vector;
}

impl SearchValue for HalfVector {
    type SqlType = sql_types::HalfVector;
}

impl SearchValue for SparseVector {
    type SqlType = sql_types::SparseVector;
}

impl SearchValue for Bit {
    type SqlType = sql_types::Bit;
}

/// The query as a bind parameter of its type, cast like the column ([`VectorColumn::cast`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryVector<'a, V> {
    pub(crate) vector: &'a V,
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) cast: Option<(Element, u32)>,
}

impl<V: SearchValue> Expression for QueryVector<'_, V> {
    type SqlType = V::SqlType;
}

impl<QS, V: SearchValue> AppearsOnTable<QS> for QueryVector<'_, V> {}

impl<GB, V> ValidGrouping<GB> for QueryVector<'_, V> {
    type IsAggregate = is_aggregate::No;
}

/// The distance of the search's metric on the index's type, as the distance DSL's node: one variant per
/// type and metric the DSL has.
macro_rules! distance_expr {
    ($($variant:ident: $element:ident, $metric:ident => $dsl:ident;)*) => {
        #[derive(Debug)]
        pub(crate) enum DistanceExpr<'a> {
            $($variant(Distance<metric::$dsl, VectorColumn<'a, sql_types::$element>, QueryVector<'a, $element>>),)*
        }

        impl<'a> DistanceExpr<'a> {
            /// The distance of `table.column` (cast, on PostgreSQL) to `query` under `metric`; `None` for
            /// a metric that does not apply to the query's type.
            pub(crate) fn new(
                metric: Metric,
                table: &'a str,
                column: &'a str,
                query: &'a PlanVector<'_>,
                cast: Option<(Element, u32)>,
            ) -> Option<Self> {
                Some(match (query, metric) {
                    $((PlanVector::$element(v), Metric::$metric) => {
                        let vector: &'a $element = &**v;
                        let column = VectorColumn { table, column, cast, sql_type: PhantomData };
                        Self::$variant(Distance::new(column, QueryVector { vector, cast }))
                    })*
                    _ => return None,
                })
            }
        }

        impl<'a, DB: Backend> QueryFragment<DB> for DistanceExpr<'a>
        where
            $(Distance<metric::$dsl, VectorColumn<'a, sql_types::$element>, QueryVector<'a, $element>>: QueryFragment<DB>,)*
        {
            fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                match self {
                    $(Self::$variant(d) => d.walk_ast(out),)*
                }
            }
        }
    };
}

distance_expr! {
    VectorCosine: Vector, Cosine => Cosine;
    VectorL2: Vector, L2 => L2;
    VectorL1: Vector, L1 => L1;
    VectorInnerProduct: Vector, InnerProduct => MaxInnerProduct;
    HalfCosine: HalfVector, Cosine => Cosine;
    HalfL2: HalfVector, L2 => L2;
    HalfL1: HalfVector, L1 => L1;
    HalfInnerProduct: HalfVector, InnerProduct => MaxInnerProduct;
    SparseCosine: SparseVector, Cosine => Cosine;
    SparseL2: SparseVector, L2 => L2;
    SparseL1: SparseVector, L1 => L1;
    SparseInnerProduct: SparseVector, InnerProduct => MaxInnerProduct;
    BitHamming: Bit, Hamming => Hamming;
    BitJaccard: Bit, Jaccard => Jaccard;
}

/// A filter value, checked against its column's type ([`super::coerce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilterValue {
    Null,
    Text(String),
    Integer(i64),
    Bool(bool),
}

impl FilterValue {
    /// The value as text, the way each database prints it (PostgreSQL's statistics and sqlite-vec's text
    /// partition keys, which hold `CAST(value AS TEXT)`); `None` for NULL. `postgres` picks the boolean
    /// spelling (`t`/`f` there, `1`/`0` in SQLite, which stores booleans as integers).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn text(&self, postgres: bool) -> Option<String> {
        match self {
            Self::Null => None,
            Self::Text(t) => Some(t.clone()),
            Self::Integer(i) => Some(i.to_string()),
            Self::Bool(b) => Some(match (postgres, b) {
                (true, true) => "t".into(),
                (true, false) => "f".into(),
                (false, b) => i64::from(*b).to_string(),
            }),
        }
    }
}

/// One equality filter, resolved against the table.
#[derive(Debug, Clone)]
pub(crate) struct EqFilter {
    pub(crate) column: String,
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) kind: ColumnKind,
    pub(crate) value: FilterValue,
    /// The column's position among the index's partition columns, if it is one.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) partition: Option<usize>,
}

/// The order of [`Knn`]'s rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KnnOrder {
    /// By distance only: what an index scan can produce.
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    Distance,
    /// By distance, then id: an exact scan, ties broken in SQL.
    DistanceThenId,
    /// None (rows of given ids, sorted afterwards).
    None,
}

/// `SELECT CAST(id AS BIGINT), distance FROM table WHERE vector IS NOT NULL AND filters... ORDER BY ...
/// LIMIT n`: a k-nearest-neighbour query, or the exact distances of given ids.
#[derive(Debug)]
pub(crate) struct Knn<'a, F> {
    pub(crate) table: &'a str,
    pub(crate) id: &'a str,
    pub(crate) column: &'a str,
    pub(crate) distance: DistanceExpr<'a>,
    pub(crate) filters: &'a [EqFilter],
    /// The typed search's Diesel filter, or [`super::NoFilter`].
    pub(crate) filter: &'a F,
    /// Only these ids.
    pub(crate) ids: Option<&'a [i64]>,
    /// SQLite: [`Knn::ids`] as a JSON array, for `json_each`.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) ids_json: String,
    /// SQLite: only BLOBs of this shape (the index's type and dimensions): other stored values are
    /// skipped rather than failing the distance function.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) blob_shape: Option<crate::codec::SqliteBlobShape>,
    /// Only rows whose distance is a finite number (computed a second time: for the rare re-run after
    /// non-finite distances filled the limit).
    pub(crate) finite_only: bool,
    pub(crate) order: KnnOrder,
    pub(crate) limit: Option<i64>,
}

impl<'a, F> Knn<'a, F> {
    /// The k nearest rows of `spec`'s table to `query` (as cast), with `filters` and `filter`; `None`
    /// when the plan's metric does not apply to the query's type.
    pub(crate) fn new(
        plan: &'a super::Plan<'_>,
        query: &'a PlanVector<'_>,
        cast: Option<(Element, u32)>,
        filters: &'a [EqFilter],
        filter: &'a F,
    ) -> Option<Self> {
        let spec = plan.spec;
        let distance = DistanceExpr::new(plan.metric, spec.table(), spec.column(), query, cast)?;
        Some(Self {
            table: spec.table(),
            id: spec.id_column(),
            column: spec.column(),
            distance,
            filters,
            filter,
            ids: None,
            ids_json: String::new(),
            blob_shape: None,
            finite_only: false,
            order: KnnOrder::DistanceThenId,
            limit: None,
        })
    }

    #[must_use]
    pub(crate) fn order(mut self, order: KnnOrder) -> Self {
        self.order = order;
        self
    }

    #[must_use]
    pub(crate) fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(i64::try_from(limit).unwrap_or(i64::MAX));
        self
    }

    #[must_use]
    pub(crate) fn only_ids(mut self, ids: &'a [i64]) -> Self {
        self.ids = Some(ids);
        self.order = KnnOrder::None;
        self
    }

    /// SQLite: the ids as the JSON array `json_each` reads.
    #[must_use]
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn ids_json(mut self, json: String) -> Self {
        self.ids_json = json;
        self
    }

    #[must_use]
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn blob_shape(mut self, shape: Option<crate::codec::SqliteBlobShape>) -> Self {
        self.blob_shape = shape;
        self
    }

    #[must_use]
    pub(crate) fn finite_only(mut self, finite: bool) -> Self {
        self.finite_only = finite;
        self
    }
}

/// What differs between the backends' renderings of [`Knn`]; the statement itself is written once, in its
/// `QueryFragment` implementation below.
pub(crate) trait KnnDialect:
    Backend + diesel::sql_types::HasSqlType<BigInt> + diesel::sql_types::HasSqlType<Text>
where
    i64: diesel::serialize::ToSql<BigInt, Self>,
    String: diesel::serialize::ToSql<Text, Self>,
{
    /// The outer query's condition on the distance when only finite ones are kept.
    const FINITE: &'static str;
    /// What follows `ORDER BY 2` so that NULL distances (a zero vector under cosine on SQLite) sort last.
    const NULLS_LAST: &'static str;

    /// What the stored value must be beyond not NULL, as ` AND ...` (SQLite: a BLOB of the index's shape).
    fn push_stored_shape<'b, F>(knn: &'b Knn<'_, F>, out: &mut AstPass<'_, 'b, Self>) -> QueryResult<()>;

    /// The column an equality filter compares, as this backend compares a value with it.
    fn push_filter_column<'b>(out: &mut AstPass<'_, 'b, Self>, table: &'b str, filter: &'b EqFilter)
        -> QueryResult<()>;

    /// ` = value` for a boolean filter value.
    fn push_bool_eq<'b>(out: &mut AstPass<'_, 'b, Self>, value: &'b bool) -> QueryResult<()>;

    /// ` AND "table"."id"` among [`Knn::ids`] (only called when there are some).
    fn push_ids<'b, F>(knn: &'b Knn<'_, F>, out: &mut AstPass<'_, 'b, Self>) -> QueryResult<()>;
}

/// ` AND "table"."column" = value` (or `IS NULL`) for each filter, its value bound as the column's kind
/// compares it.
pub(crate) fn push_eq_filters<'b, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    table: &'b str,
    filters: impl Iterator<Item = &'b EqFilter>,
) -> QueryResult<()>
where
    DB: KnnDialect,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    String: diesel::serialize::ToSql<Text, DB>,
{
    for f in filters {
        out.push_sql(" AND ");
        DB::push_filter_column(out, table, f)?;
        match &f.value {
            FilterValue::Null => out.push_sql(" IS NULL"),
            FilterValue::Text(t) => {
                out.push_sql(" = ");
                out.push_bind_param::<Text, String>(t)?;
            }
            FilterValue::Integer(i) => {
                out.push_sql(" = ");
                out.push_bind_param::<BigInt, i64>(i)?;
            }
            FilterValue::Bool(b) => DB::push_bool_eq(out, b)?,
        }
    }
    Ok(())
}

/// `"table"."column"`.
pub(crate) fn push_column<'b, DB: Backend>(
    out: &mut AstPass<'_, 'b, DB>,
    table: &'b str,
    column: &'b str,
) -> QueryResult<()> {
    out.push_identifier(table)?;
    out.push_sql(".");
    out.push_identifier(column)
}

impl<F> Knn<'_, F> {
    /// ` WHERE t.v IS NOT NULL [AND shape] [AND filters...] [AND the typed filter] [AND t.id among ids]`.
    pub(crate) fn push_where<'b, DB>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
    where
        DB: KnnDialect,
        i64: diesel::serialize::ToSql<BigInt, DB>,
        String: diesel::serialize::ToSql<Text, DB>,
        F: super::SearchFilter<DB>,
    {
        out.push_sql(" WHERE ");
        push_column(out, self.table, self.column)?;
        out.push_sql(" IS NOT NULL");
        DB::push_stored_shape(self, out)?;
        push_eq_filters(out, self.table, self.filters.iter())?;
        if !self.filter.is_empty() {
            out.push_sql(" AND ");
            self.filter.walk_filter(out.reborrow())?;
        }
        if self.ids.is_some() {
            DB::push_ids(self, out)?;
        }
        Ok(())
    }
}

/// `SELECT CAST(t.id AS BIGINT) AS i, <distance> AS d FROM t WHERE t.v IS NOT NULL [AND shape] [AND filters...]
/// [AND the typed filter] [AND t.id among ids] ORDER BY 2, 1 LIMIT n`. `ORDER BY 2` is the distance expression
/// itself, which PostgreSQL's HNSW or ivfflat index with the metric's operator class serves. A non-finite
/// distance (a zero stored vector's cosine: NaN on PostgreSQL, NULL on SQLite) sorts after every number, so
/// such rows can only come last and are dropped after the query; filtering them in the query would compute
/// (and on PostgreSQL detoast) every row's distance twice. With [`Knn::finite_only`] they are filtered in an
/// outer query (the rare re-run after non-finite distances filled the limit).
impl<DB, F> QueryFragment<DB> for Knn<'_, F>
where
    DB: KnnDialect,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    String: diesel::serialize::ToSql<Text, DB>,
    F: super::SearchFilter<DB>,
    for<'d> DistanceExpr<'d>: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if self.finite_only {
            out.push_sql("SELECT s.i, s.d FROM (");
        }
        out.push_sql("SELECT CAST(");
        push_column(&mut out, self.table, self.id)?;
        out.push_sql(" AS BIGINT) AS i, ");
        self.distance.walk_ast(out.reborrow())?;
        out.push_sql(" AS d FROM ");
        out.push_identifier(self.table)?;
        self.push_where(&mut out)?;
        if self.finite_only {
            out.push_sql(") s WHERE ");
            out.push_sql(DB::FINITE);
            out.push_sql(" ORDER BY s.d, s.i");
        } else {
            match self.order {
                KnnOrder::DistanceThenId => {
                    out.push_sql(" ORDER BY 2");
                    out.push_sql(DB::NULLS_LAST);
                    out.push_sql(", 1");
                }
                KnnOrder::Distance => {
                    out.push_sql(" ORDER BY 2");
                    out.push_sql(DB::NULLS_LAST);
                }
                KnnOrder::None => {}
            }
        }
        if let Some(limit) = self.limit {
            // A number of the crate's, written in the text: with a bound `LIMIT $n` PostgreSQL plans the
            // statement again on every call (its generic plan's cost, for an unknown limit, never beats the
            // custom plans'), 0.05 to 0.3 ms per search; with the number the cached plan is used.
            out.push_sql(&format!(" LIMIT {limit}"));
        }
        Ok(())
    }
}

impl<F> QueryId for Knn<'_, F> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F> Query for Knn<'_, F> {
    type SqlType = (BigInt, Nullable<Double>);
}

impl<F, C> RunQueryDsl<C> for Knn<'_, F> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_each_database_does() {
        assert_eq!(FilterValue::Bool(true).text(true).as_deref(), Some("t"));
        assert_eq!(FilterValue::Bool(true).text(false).as_deref(), Some("1"));
        assert_eq!(FilterValue::Integer(-4).text(false).as_deref(), Some("-4"));
        assert_eq!(FilterValue::Null.text(true), None);
    }
}
