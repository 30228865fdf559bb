//! The SQL of a search over a table named at run time, as Diesel AST nodes: names go through
//! `push_identifier` (quoted, never interpolated), values are bind parameters, and the distance is the
//! distance DSL's own [`Distance`] node, so each metric's SQL has one source per backend
//! (`src/pg/expression.rs`, `src/sqlite/expression.rs`).
//!
//! The nodes are backend-neutral; each backend renders [`Knn`] in its `search.rs`.

use diesel::expression::{is_aggregate, AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::query_builder::{Query, QueryId};
use diesel::sql_types::{BigInt, Double, Nullable};
use diesel::RunQueryDsl;

use super::{ColumnKind, Metric};
use crate::dsl::{metric, Distance};
use crate::index::Element;
use crate::sql_types;
use crate::Vector;

/// `"table"."column"`: the vector column, named at run time and typed as a vector so that the distance
/// DSL renders on it. Qualified, because SQLite reads a double-quoted name that matches no column as a
/// string; the table's columns are checked before any search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VectorColumn<'a> {
    pub(crate) table: &'a str,
    pub(crate) column: &'a str,
    /// PostgreSQL: the type an expression index casts the column to (`halfvec(N)`): the search casts the
    /// same way so that the index serves it.
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) cast: Option<(Element, u32)>,
}

impl Expression for VectorColumn<'_> {
    type SqlType = sql_types::Vector;
}

impl<QS> AppearsOnTable<QS> for VectorColumn<'_> {}

impl<QS> SelectableExpression<QS> for VectorColumn<'_> {}

impl<GB> ValidGrouping<GB> for VectorColumn<'_> {
    type IsAggregate = is_aggregate::No;
}

/// The query vector as a bind parameter, cast like the column ([`VectorColumn::cast`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryVector<'a> {
    pub(crate) vector: &'a Vector,
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) cast: Option<(Element, u32)>,
}

impl Expression for QueryVector<'_> {
    type SqlType = sql_types::Vector;
}

impl<QS> AppearsOnTable<QS> for QueryVector<'_> {}

impl<GB> ValidGrouping<GB> for QueryVector<'_> {
    type IsAggregate = is_aggregate::No;
}

/// The distance of the search's metric, as the distance DSL's node: one variant per metric the DSL has.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DistanceExpr<'a> {
    Cosine(Distance<metric::Cosine, VectorColumn<'a>, QueryVector<'a>>),
    L2(Distance<metric::L2, VectorColumn<'a>, QueryVector<'a>>),
    L1(Distance<metric::L1, VectorColumn<'a>, QueryVector<'a>>),
    InnerProduct(Distance<metric::MaxInnerProduct, VectorColumn<'a>, QueryVector<'a>>),
}

impl<'a> DistanceExpr<'a> {
    /// The distance of `column` to `query` under `metric`; `None` for a metric the DSL has no node for
    /// (Hamming and Jaccard, on `bit` columns).
    pub(crate) fn new(metric: Metric, column: VectorColumn<'a>, query: QueryVector<'a>) -> Option<Self> {
        Some(match metric {
            Metric::Cosine => Self::Cosine(Distance::new(column, query)),
            Metric::L2 => Self::L2(Distance::new(column, query)),
            Metric::L1 => Self::L1(Distance::new(column, query)),
            Metric::InnerProduct => Self::InnerProduct(Distance::new(column, query)),
            _ => return None,
        })
    }
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
    /// SQLite: only BLOBs of this length (the index's dimensions): other stored values are skipped
    /// rather than failing the distance function.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) blob_len: Option<i64>,
    /// Only rows whose distance is a finite number (computed a second time: for the rare re-run after
    /// non-finite distances filled the limit).
    pub(crate) finite_only: bool,
    pub(crate) order: KnnOrder,
    pub(crate) limit: Option<i64>,
}

impl<'a, F> Knn<'a, F> {
    /// The k nearest rows of `spec`'s table to `query` (as cast), with `filters` and `filter`.
    pub(crate) fn new(
        plan: &'a super::Plan<'_>,
        query: &'a Vector,
        cast: Option<(Element, u32)>,
        filters: &'a [EqFilter],
        filter: &'a F,
    ) -> Option<Self> {
        let spec = plan.spec;
        let column = VectorColumn { table: spec.table(), column: spec.column(), cast };
        let distance = DistanceExpr::new(plan.metric, column, QueryVector { vector: query, cast })?;
        Some(Self {
            table: spec.table(),
            id: spec.id_column(),
            column: spec.column(),
            distance,
            filters,
            filter,
            ids: None,
            ids_json: String::new(),
            blob_len: None,
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
    pub(crate) fn blob_len(mut self, len: Option<u64>) -> Self {
        self.blob_len = len.and_then(|l| i64::try_from(l).ok());
        self
    }

    #[must_use]
    pub(crate) fn finite_only(mut self, finite: bool) -> Self {
        self.finite_only = finite;
        self
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
