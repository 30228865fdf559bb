//! The typed search: [`VectorIndex::search`] on an index declared with
//! [`vector_index!`](crate::vector_index), with the table's own columns and any Diesel filter.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::expression::{is_aggregate, AppearsOnTable, Expression, ValidGrouping};
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::BoolOrNullableBool;
use diesel::QueryResult;

use super::{execute, Hit, IndexSearch, Metric, SearchError, SearchTarget, SearchVector, Strategy, Value};
use crate::index::VectorIndex;

/// A filter a search applies besides its equality filters: nothing ([`NoFilter`]) or Diesel boolean
/// expressions on the table ([`Filtered`]). Sealed. `Sync`, so that an async search borrowing it can be
/// spawned.
pub trait SearchFilter<DB: Backend>: sealed::Sealed + Sync {
    /// True when there is nothing to filter.
    #[doc(hidden)]
    fn is_empty(&self) -> bool;
    /// Renders the condition (only called when not empty).
    #[doc(hidden)]
    fn walk_filter<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

/// No filter beyond the search's equality filters.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFilter;

impl<DB: Backend> SearchFilter<DB> for NoFilter {
    fn is_empty(&self) -> bool {
        true
    }

    fn walk_filter<'b>(&'b self, _out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        Ok(())
    }
}

/// The filters `F` and the Diesel boolean expression `E`, both of which must hold.
#[derive(Debug, Clone, Copy)]
pub struct Filtered<F, E> {
    previous: F,
    predicate: E,
}

impl<DB, F, E> SearchFilter<DB> for Filtered<F, E>
where
    DB: Backend,
    F: SearchFilter<DB>,
    E: QueryFragment<DB> + Sync,
{
    fn is_empty(&self) -> bool {
        false
    }

    fn walk_filter<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if !self.previous.is_empty() {
            self.previous.walk_filter(out.reborrow())?;
            out.push_sql(" AND ");
        }
        out.push_sql("(");
        self.predicate.walk_ast(out.reborrow())?;
        out.push_sql(")");
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoFilter {}
    impl<F, E> Sealed for super::Filtered<F, E> {}
}

/// A search on the table `T` of a [`VectorIndex`], built with [`VectorIndex::search`]: the table's own
/// columns for partition values, and any Diesel boolean expression on it as a filter.
///
/// ```
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel::connection::SimpleConnection;
/// use diesel::prelude::*;
/// use diesel_vector::{search, Vector};
///
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::Vector;
///
///     documents (id) {
///         id -> BigInt,
///         lang -> Text,
///         year -> Integer,
///         embedding -> Nullable<Vector>,
///     }
/// }
///
/// diesel_vector::vector_index! {
///     /// The documents' embeddings, searched by language.
///     pub static DOCUMENTS: documents { column: embedding, dims: 3, partition_by: [lang] }
/// }
///
/// let mut conn = diesel_vector::sqlite::establish(":memory:")?;
/// conn.batch_execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, year INTEGER NOT NULL)")?;
/// let options = diesel_vector::index::generate::Options::default().add_column(true);
/// let migration = diesel_vector::index::generate::render(&DOCUMENTS, &options);
/// conn.batch_execute(&migration.sqlite_up)?;
/// for (id, lang, year, v) in [(1, "fr", 2019, [1.0, 0.0, 0.0]), (2, "fr", 2024, [0.9, 0.2, 0.0]), (3, "en", 2024, [1.0, 0.0, 0.1])] {
///     diesel::insert_into(documents::table)
///         .values((documents::id.eq(id), documents::lang.eq(lang), documents::year.eq(year),
///                  documents::embedding.eq(Vector::new(v.to_vec())?)))
///         .execute(&mut conn)?;
/// }
///
/// let q = Vector::new(vec![1.0, 0.0, 0.0])?;
/// let hits = DOCUMENTS
///     .search(&q)
///     .k(5)
///     .partition(documents::lang, "fr")
///     .filter(documents::year.ge(2020))
///     .run(&mut conn)?;
/// assert_eq!(search::ids(&hits), [2]);
///
/// // The rows themselves, with Diesel, in rank order:
/// let rows: Vec<(i64, i32)> = documents::table
///     .filter(documents::id.eq_any(search::ids(&hits)))
///     .select((documents::id, documents::year))
///     .load(&mut conn)?;
/// let ranked = search::rank(rows, |r| r.0, &hits);
/// assert_eq!(ranked[0].0, (2, 2024));
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
#[derive(Debug)]
pub struct TypedSearch<'a, T, F = NoFilter> {
    index: &'a VectorIndex<T>,
    query: SearchVector<'a>,
    k: usize,
    metric: Option<Metric>,
    filters: Vec<(String, Value)>,
    /// Columns given to `partition`, checked against the index's partition columns when run.
    partitions: Vec<&'static str>,
    pub(super) filter: F,
    strategy: Strategy,
    probes: Option<u32>,
    ef_search: Option<u32>,
    rerank: Option<u32>,
    threads: Option<usize>,
    table: PhantomData<fn() -> T>,
}

impl<T> VectorIndex<T> {
    /// The 10 rows of `T` nearest to `query` by the index's metric; refine with [`TypedSearch`]'s methods.
    /// The query is a value of the column's type: `&Vector`, `&HalfVector`, `&SparseVector` or `&Bit`.
    pub fn search<'a>(&'a self, query: impl Into<SearchVector<'a>>) -> TypedSearch<'a, T, NoFilter> {
        TypedSearch {
            index: self,
            query: query.into(),
            k: 10,
            metric: None,
            filters: Vec::new(),
            partitions: Vec::new(),
            filter: NoFilter,
            strategy: Strategy::Auto,
            probes: None,
            ef_search: None,
            rerank: None,
            threads: None,
            table: PhantomData,
        }
    }
}

/// A value [`TypedSearch::partition`] may compare with a column of SQL type `ST`, checked when the search is
/// written: text for any column (read as the column's type, as SQL reads a literal: `"2021"` for an integer
/// column), an integer (`i8` to `i64`, `u8` to `u32`) for `SmallInt`, `Integer` and `BigInt`, a `bool` for
/// `Bool`, each for the `Nullable` column too, an `Option` of one for a `Nullable` column (`None` is NULL),
/// and a run-time [`Value`] for any column (checked when the search runs).
///
/// ```
/// # diesel::table! { recipes (id) { id -> BigInt, cuisine -> Text, rating -> Nullable<Integer>, embedding -> diesel_vector::sql_types::Vector, } }
/// # diesel_vector::vector_index! { static RECIPES: recipes { column: embedding, dims: 3, partition_by: [cuisine, rating] } }
/// # let q = diesel_vector::Vector::new(vec![1.0, 0.0, 0.0]).unwrap();
/// let french = RECIPES.search(&q).partition(recipes::cuisine, "french");
/// let five_stars = RECIPES.search(&q).partition(recipes::rating, 5);
/// let unrated = RECIPES.search(&q).partition(recipes::rating, None::<i32>);
/// ```
///
/// ```compile_fail
/// # diesel::table! { recipes (id) { id -> BigInt, cuisine -> Text, rating -> Nullable<Integer>, embedding -> diesel_vector::sql_types::Vector, } }
/// # diesel_vector::vector_index! { static RECIPES: recipes { column: embedding, dims: 3, partition_by: [cuisine, rating] } }
/// # let q = diesel_vector::Vector::new(vec![1.0, 0.0, 0.0]).unwrap();
/// // An integer for a text column does not compile.
/// let search = RECIPES.search(&q).partition(recipes::cuisine, 5);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be compared with a column of SQL type `{ST}`",
    label = "a partition value must suit its column: text, an integer for an integer column, a bool for a `Bool` one"
)]
pub trait PartitionValue<ST> {
    /// The value, for the search.
    fn into_value(self) -> Value;
}

macro_rules! any_column {
    ($($t:ty),*) => {$(
        impl<ST> PartitionValue<ST> for $t {
            fn into_value(self) -> Value {
                self.into()
            }
        }
    )*};
}
any_column!(&str, String, &String);

impl<ST> PartitionValue<ST> for Value {
    fn into_value(self) -> Value {
        self
    }
}

macro_rules! typed_column {
    ($st:ty: $($t:ty),*) => {$(
        impl PartitionValue<$st> for $t {
            fn into_value(self) -> Value {
                self.into()
            }
        }
        impl PartitionValue<diesel::sql_types::Nullable<$st>> for $t {
            fn into_value(self) -> Value {
                self.into()
            }
        }
    )*};
}
typed_column!(diesel::sql_types::SmallInt: i8, i16, i32, i64, u8, u16, u32);
typed_column!(diesel::sql_types::Integer: i8, i16, i32, i64, u8, u16, u32);
typed_column!(diesel::sql_types::BigInt: i8, i16, i32, i64, u8, u16, u32);
typed_column!(diesel::sql_types::Bool: bool);

impl<ST, V: PartitionValue<ST>> PartitionValue<diesel::sql_types::Nullable<ST>> for Option<V> {
    fn into_value(self) -> Value {
        self.map_or(Value::Null, PartitionValue::into_value)
    }
}

impl<'a, T, F> TypedSearch<'a, T, F> {
    /// How many neighbours to return (default 10).
    #[must_use]
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// The distance (default: the index's). The index serves its own metric only; another one scans exactly.
    #[must_use]
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = Some(metric);
        self
    }

    /// Only rows whose `column`, one of the index's partition columns, equals `value`; pushed into the
    /// index. A column that is not a partition column is an error when the search runs
    /// ([`SearchError::NotAPartitionColumn`]): filter on it with [`TypedSearch::filter`].
    ///
    /// The value's type must suit the column's ([`PartitionValue`]): text for a text column, an integer for an
    /// integer column, a bool for a `Bool` column (an `Option` of one where the column is nullable, `None`
    /// for NULL); text suits any column (read as its type); a run-time [`Value`] is checked when the search
    /// runs.
    #[must_use]
    pub fn partition<C, V>(mut self, column: C, value: V) -> Self
    where
        C: diesel::Column<Table = T>,
        V: PartitionValue<C::SqlType>,
    {
        let _ = column;
        self.partitions.push(C::NAME);
        self.filters.push((C::NAME.to_owned(), value.into_value()));
        self
    }

    /// Only rows for which `predicate` (any Diesel boolean expression on `T`'s columns) is true; several
    /// filters must all hold. PostgreSQL applies it in the same query as the index scan (pgvector's
    /// iterative scan keeps going until enough rows pass); SQLite restricts the index's candidates to the
    /// rows that pass. Either way no row is lost.
    pub fn filter<E>(self, predicate: E) -> TypedSearch<'a, T, Filtered<F, E>>
    where
        E: Expression + AppearsOnTable<T> + ValidGrouping<(), IsAggregate = is_aggregate::No>,
        E::SqlType: BoolOrNullableBool,
    {
        TypedSearch {
            index: self.index,
            query: self.query,
            k: self.k,
            metric: self.metric,
            filters: self.filters,
            partitions: self.partitions,
            filter: Filtered { previous: self.filter, predicate },
            strategy: self.strategy,
            probes: self.probes,
            ef_search: self.ef_search,
            rerank: self.rerank,
            threads: self.threads,
            table: PhantomData,
        }
    }

    /// Whether the index may be used (default [`Strategy::Auto`]).
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// PostgreSQL, ivfflat: the lists to probe (see [`IndexSearch::probes`]).
    #[must_use]
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = Some(probes);
        self
    }

    /// PostgreSQL, HNSW: `hnsw.ef_search` (see [`IndexSearch::ef_search`]).
    #[must_use]
    pub fn ef_search(mut self, ef_search: u32) -> Self {
        self.ef_search = Some(ef_search);
        self
    }

    /// PostgreSQL, binary-quantized index: candidates per result (see [`IndexSearch::rerank`]).
    #[must_use]
    pub fn rerank(mut self, factor: u32) -> Self {
        self.rerank = Some(factor);
        self
    }

    /// SQLite, a scan of every row of a database file: how many connections read the table at once (see
    /// [`IndexSearch::threads`]).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Runs the search on `conn` ([`diesel::PgConnection`] or [`diesel::SqliteConnection`]).
    ///
    /// # Errors
    ///
    /// As [`IndexSearch::run`]; [`SearchError::NotAPartitionColumn`] for a `partition` column the index is
    /// not partitioned by; [`SearchError::InvalidIndex`] when the index's declaration is not valid.
    pub fn run<C>(&self, conn: &mut C) -> Result<Vec<Hit>, SearchError>
    where
        C: SearchTarget,
        F: SearchFilter<C::Backend>,
    {
        let search = self.generic()?;
        execute(&search, &self.filter, conn)
    }

    /// The run-time search this one is, once its declaration and partition columns are checked.
    pub(crate) fn generic(&self) -> Result<IndexSearch<'a>, SearchError> {
        let spec = self.index.try_spec().map_err(|e| SearchError::InvalidIndex(e.clone()))?;
        if let Some(column) = self.partitions.iter().find(|c| !spec.partition_by().any(|p| p == **c)) {
            return Err(SearchError::NotAPartitionColumn {
                index: spec.name().to_owned(),
                column: (*column).to_owned(),
                partition_by: spec.partition_by().map(str::to_owned).collect(),
            });
        }
        Ok(IndexSearch {
            spec,
            query: self.query,
            k: self.k,
            metric: self.metric.unwrap_or(spec.metric()),
            filters: self.filters.clone(),
            strategy: self.strategy,
            probes: self.probes,
            ef_search: self.ef_search,
            rerank: self.rerank,
            threads: self.threads,
        })
    }
}

/// Wraps `predicate` as a filter (for the crate's own typed filters).
pub(crate) fn filtered<E>(predicate: E) -> Filtered<NoFilter, E> {
    Filtered { previous: NoFilter, predicate }
}
