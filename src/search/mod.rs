//! Nearest-neighbour search over any registered vector index, with the same answers on both backends.
//!
//! Three ways in, one engine:
//!
//! - [`IndexSearch`], at run time over an [`IndexSpec`] (read from the database's
//!   [registry](crate::index::registry), or built by hand): `spec.search(&q).k(10).filter_eq("lang", "fr")`.
//!   The command line's `search --table` is this.
//! - [`TypedSearch`], at compile time over an index declared with [`vector_index!`](crate::vector_index):
//!   `DOCUMENTS.search(&q).k(10).partition(documents::lang, "fr").filter(documents::year.ge(2020))`, where
//!   `filter` takes any Diesel boolean expression on the table.
//! - [`Search`], the crate's own `fragment_embeddings` by provider and model, as before.
//!
//! Each runs with `run` on a sync connection and, with feature `async`, `run_async` on diesel-async's
//! `AsyncPgConnection` or `sqlite::AsyncSqliteConnection` (`AsyncSearchTarget`): the same checks, plan,
//! SQL and answers.
//!
//! Each returns [`Hit`]s, `id` (the primary key) and `distance`, nearest first, ties broken by id. Load
//! your rows with Diesel (`documents::id.eq_any(search::ids(&hits))`) and put them in rank order with
//! [`rank`].
//!
//! # Guarantees, on every table and both backends
//!
//! - When at least `k` rows match the filters, `k` hits come back; the same ids in the same order on
//!   PostgreSQL and SQLite for the same data (ties broken by id), whatever the path taken, except between
//!   rows whose distances differ by less than the two databases' rounding (pgvector sums in `f32`, in its
//!   own order), such as near-ties among vectors of huge magnitude.
//! - NULL vectors are never returned; under cosine neither are zero vectors (no direction), nor any row
//!   whose distance to the query is not a finite number (NaN, or an overflow of the databases' `f32`
//!   arithmetic). On SQLite, a stored value that is not a vector of the index's dimensions (another BLOB
//!   length, TEXT, REAL: possible on tables without the generated CHECK) is skipped, never an error.
//! - Equality filters on the index's partition columns are pushed into the index (pgvector's iterative
//!   scans; sqlite-vec's partition keys); other filters are applied by the same query (PostgreSQL) or by
//!   restricting the index's candidates to the rows that pass (SQLite), so they never lose rows.
//! - [`Strategy::Exact`] computes every matching row's distance.
//! - Each search records a `tracing` span (target `diesel_vector::search`) with the path it took.
//!
//! # Paths
//!
//! | backend | [`Strategy::Auto`] (default) | [`Strategy::Exact`] |
//! |---|---|---|
//! | PostgreSQL, HNSW | the index with `hnsw.ef_search` from `k` and the filter's selectivity (pgvector's statistics), relaxed iterative scan; exact again if fewer than `k` rows come back or a tie may be cut | sequential scan |
//! | PostgreSQL, ivfflat | the index with `sqrt(lists)` probes (at least 10) and an iterative scan; an index built with far more lists than its rows support (built on an empty table) is not trusted: exact, with a warning | sequential scan |
//! | PostgreSQL, `vector` of 2001-4000 dims | the `halfvec` expression index, then the candidates re-ranked on the full-precision column | sequential scan |
//! | SQLite, codes (the default for `vector` and `halfvec` columns) | the crate's quantized codes: a Hamming scan of the rows passing the partition filters, candidates reranked by their exact distance from the table until the error bound or the estimated recall says the top `k` is complete (brought up to date first, without waiting for the write lock; queued rows computed exactly beside) | exact scan |
//! | SQLite, vec0 kept | candidates from sqlite-vec's vec0 (brought up to date first, without waiting for the write lock), exact distances for them from the table | exact scan |
//! | SQLite otherwise | exact scan (the crate's scan of the values where SQLite holds them) | exact scan |
//!
//! An index serves its own metric; a search with another metric scans exactly.
//!
//! Every vector type is searched so: the query is a value of the column's type ([`SearchVector`]: a
//! `&Vector`, `&HalfVector`, `&SparseVector` or `&Bit`), with a metric of the type. PostgreSQL uses the index
//! pgvector built with the type's operator class (`halfvec_l2_ops`, `sparsevec_ip_ops`, `bit_hamming_ops`...);
//! SQLite uses vec0's `bit[N]` for a `bit` index that keeps vec0 (Hamming), and otherwise scans `halfvec`,
//! `sparsevec` and `bit` columns exactly (sqlite-vec's Hamming distance for `bit`, the crate's functions
//! otherwise).
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel::connection::SimpleConnection;
//! use diesel_vector::index::{generate, IndexSpec, Metric};
//! use diesel_vector::Vector;
//!
//! let mut conn = diesel_vector::sqlite::establish(":memory:")?;
//! conn.batch_execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL)")?;
//! let spec = IndexSpec::builder("documents", "embedding", 3).metric(Metric::L2).partition_by(["lang"]).build()?;
//! conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up)?;
//! // Little-endian f32 BLOBs: [1,0,0], [0.9,0.1,0], [0,1,0].
//! conn.batch_execute(
//!     "INSERT INTO documents (id, lang, embedding) VALUES (1, 'en', x'0000803f0000000000000000'), \
//!      (2, 'fr', x'6666663fcdcccc3d00000000'), (3, 'fr', x'000000000000803f00000000')",
//! )?;
//!
//! let q = Vector::new(vec![1.0, 0.0, 0.0])?;
//! let hits = spec.search(&q).k(2).filter_eq("lang", "fr").run(&mut conn)?;
//! assert_eq!(diesel_vector::search::ids(&hits), [2, 3]);
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

#[cfg(feature = "async")]
mod asynchronous;
pub(crate) mod element;
pub(crate) mod query;
pub(crate) mod seed;
pub(crate) mod typed;

use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

use tracing::info;

use crate::index::{Element, IndexSpec, RegistryError};
use crate::{Vector, VectorError};

pub use crate::index::Metric;
#[doc(hidden)]
pub use element::PlanVector;
pub use element::SearchVector;
pub use seed::{Neighbor, Search, EMBEDDING_DIMS};
pub use typed::{Filtered, NoFilter, PartitionValue, SearchFilter, TypedSearch};

#[cfg(feature = "async")]
pub(crate) use asynchronous::execute_async;
#[cfg(feature = "async")]
pub use asynchronous::AsyncSearchTarget;

pub(crate) use query::{EqFilter, FilterValue, Knn, KnnOrder};

/// Whether a search may use the vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Use the index where the backend has one for the metric; fall back to an exact scan otherwise.
    #[default]
    Auto,
    /// Always compute every matching row's distance.
    Exact,
}

/// The way a search was answered, reported in its `tracing` span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchPath {
    /// SQLite: candidates from sqlite-vec's vec0 table, up to date.
    Vec0,
    /// SQLite: candidates from vec0, which could not be brought up to date without waiting (another
    /// connection holds the write lock, or the database is read-only), plus the rows changed since
    /// (queued), computed exactly.
    Vec0WithQueue,
    /// SQLite: vec0 returned fewer than `k` matching rows or may have cut a tie, so the search ran again
    /// as an exact scan.
    Vec0ThenExact,
    /// SQLite: candidates from the crate's quantized codes, their exact distances from the table.
    Codes,
    /// SQLite: candidates from the codes, which could not be brought up to date without waiting, plus the
    /// rows changed since (queued), computed exactly.
    CodesWithQueue,
    /// SQLite: the codes' search reranked as many candidates as it may and still estimated its recall below
    /// its target (vectors whose codes cannot tell the rows apart, such as random vectors without
    /// structure), so the search ran again as an exact scan.
    CodesThenExact,
    /// SQLite: the codes were trained on vectors they do not rank (a query's nearest rows lie scattered among
    /// the rest by Hamming distance, as for vectors of independent random elements: see
    /// [`Params::ranks_neighbours`](crate::ann::Params::ranks_neighbours)), so the search scanned every
    /// matching row exactly without them. A filter that leaves at most 1000 rows still reads them through the
    /// codes (every one is reranked, so the result is exact).
    CodesUnfitExact,
    /// SQLite: every matching row's distance (the crate's scan of the values where SQLite holds them).
    ExactScan,
    /// PostgreSQL: pgvector's ivfflat index.
    Ivfflat,
    /// PostgreSQL: the ivfflat index returned fewer than `k` rows or may have cut a tie, so the search
    /// ran again exactly.
    IvfflatThenExact,
    /// PostgreSQL: the ivfflat index has far more lists than its rows support (it was built on an empty
    /// or much smaller table) and recalls poorly: not used; a sequential scan answered.
    StaleIvfflatExact,
    /// PostgreSQL: pgvector's HNSW index.
    Hnsw,
    /// PostgreSQL: the HNSW index returned fewer than `k` rows or may have cut a tie, so the search ran
    /// again exactly.
    HnswThenExact,
    /// PostgreSQL: a sequential scan.
    Exact,
    /// PostgreSQL: candidates from the binary-quantized HNSW index by Hamming distance, re-ranked by
    /// their exact distance.
    BinaryQuantized,
    /// PostgreSQL: the binary-quantized index returned fewer than `k` rows, so the search ran again
    /// exactly.
    BinaryQuantizedThenExact,
}

impl SearchPath {
    /// The path's name, as used in telemetry.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vec0 => "vec0",
            Self::Vec0WithQueue => "vec0_with_queue",
            Self::Vec0ThenExact => "vec0_then_exact",
            Self::Codes => "codes",
            Self::CodesWithQueue => "codes_with_queue",
            Self::CodesThenExact => "codes_then_exact",
            Self::CodesUnfitExact => "codes_unfit_exact",
            Self::ExactScan => "exact_scan",
            Self::Ivfflat => "ivfflat",
            Self::IvfflatThenExact => "ivfflat_then_exact",
            Self::StaleIvfflatExact => "stale_ivfflat_exact",
            Self::Hnsw => "hnsw",
            Self::HnswThenExact => "hnsw_then_exact",
            Self::Exact => "exact",
            Self::BinaryQuantized => "binary_quantized",
            Self::BinaryQuantizedThenExact => "binary_quantized_then_exact",
        }
    }
}

/// A value an equality filter compares a column with.
///
/// Both backends compare it with the column's own type: text given for an integer column is read as an
/// integer (so the command line's `--where year=2024` works), `true`/`false` (or `t`/`f`, `yes`/`no`,
/// `1`/`0`, in any case) for a boolean one, and a boolean given for an integer column is 1 or 0 (SQLite
/// stores booleans so). A value that cannot be read so, an integer beyond the range of a PostgreSQL
/// `smallint` or `integer` column, or a filter on the vector column itself is a [`SearchError::FilterValue`].
/// [`Value::Null`] matches rows where the column is NULL (`IS NULL`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// Text.
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Integer(i) => write!(f, "{i}"),
            Self::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

macro_rules! integer_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::Integer(i64::from(v))
            }
        }
    )*};
}
integer_values!(i8, i16, i32, i64, u8, u16, u32);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// One result: a row's primary key and its distance to the query (smaller is nearer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The row's primary key.
    pub id: i64,
    /// The distance under the search's metric.
    pub distance: f64,
}

/// The ids of `hits`, in rank order: for `table.filter(id.eq_any(ids(&hits)))` on a `BigInt` key
/// ([`ids_as`] for the others).
pub fn ids(hits: &[Hit]) -> Vec<i64> {
    hits.iter().map(|h| h.id).collect()
}

/// The ids of `hits` as the id column's Rust type, in rank order: `ids_as::<i32>` for an `Integer` key
/// (`i16` for `SmallInt`), as `table.filter(id.eq_any(ids_as::<i32>(&hits)))` needs. A search's ids are
/// read from that column, so they fit; one that does not names no row of it, and is left out.
///
/// ```
/// use diesel_vector::search::{ids_as, Hit};
///
/// let hits = [Hit { id: 7, distance: 0.1 }, Hit { id: 3, distance: 0.2 }];
/// assert_eq!(ids_as::<i32>(&hits), [7, 3]);
/// assert_eq!(ids_as::<i16>(&[Hit { id: 1 << 20, distance: 0.0 }]), Vec::<i16>::new());
/// ```
pub fn ids_as<T: TryFrom<i64>>(hits: &[Hit]) -> Vec<T> {
    hits.iter().filter_map(|h| T::try_from(h.id).ok()).collect()
}

/// Puts rows loaded for `hits` in rank order, each with its distance: `id` reads a row's primary key.
/// Rows no hit names are dropped; a hit whose row is missing (deleted since) is skipped.
///
/// ```
/// use diesel_vector::search::{rank, Hit};
///
/// let hits = [Hit { id: 7, distance: 0.1 }, Hit { id: 3, distance: 0.2 }];
/// let rows = vec![(3, "three"), (5, "five"), (7, "seven")]; // as a query by id returns them
/// assert_eq!(rank(rows, |r| r.0, &hits), [((7, "seven"), 0.1), ((3, "three"), 0.2)]);
/// ```
pub fn rank<R, K: Into<i64>>(rows: Vec<R>, id: impl Fn(&R) -> K, hits: &[Hit]) -> Vec<(R, f64)> {
    let mut keyed: Vec<Option<(i64, R)>> = rows.into_iter().map(|r| Some((id(&r).into(), r))).collect();
    hits.iter()
        .filter_map(|h| {
            let slot = keyed.iter_mut().find(|s| s.as_ref().is_some_and(|(k, _)| *k == h.id))?;
            slot.take().map(|(_, r)| (r, h.distance))
        })
        .collect()
}

#[cfg(feature = "sqlite")]
impl From<crate::sqlite::IndexError> for SearchError {
    fn from(e: crate::sqlite::IndexError) -> Self {
        Self::Index(e)
    }
}

#[cfg(feature = "sqlite")]
impl From<crate::ann::AnnError> for SearchError {
    fn from(e: crate::ann::AnnError) -> Self {
        use crate::ann::AnnError;
        match e {
            AnnError::DimensionMismatch { expected, found } => {
                Self::InvalidQuery(VectorError::DimensionMismatch { expected, found })
            }
            AnnError::NotFinite { index } => Self::InvalidQuery(VectorError::NotFinite { index, value: f32::NAN }),
            AnnError::ZeroQuery => Self::ZeroQuery,
            other => Self::Index(crate::sqlite::IndexError::Codes(other)),
        }
    }
}

/// Why a search failed. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The query vector cannot be compared with the column (wrong dimensions).
    #[error("invalid query vector: {0}")]
    InvalidQuery(VectorError),
    /// A zero query vector has no cosine distance to anything.
    #[error("the query vector is all zeros, which has no cosine distance: use another metric or a non-zero vector")]
    ZeroQuery,
    /// The query's values are so large that distances overflow the databases' single-precision arithmetic.
    #[error(
        "the query vector's values are too large for {metric} distances: both databases compute them in \
         single precision (f32) and would overflow; scale the vector down"
    )]
    QueryOverflow {
        /// The metric.
        metric: Metric,
    },
    /// `k` must be at least 1.
    #[error("k must be at least 1")]
    InvalidK,
    /// The metric does not apply to the column's type (Hamming on `vector`, say).
    #[error("the {metric} metric does not apply to `{element}` columns: use one of {}", names(.element.metrics()))]
    MetricForType {
        /// The metric asked for.
        metric: Metric,
        /// The column's type.
        element: Element,
    },
    /// The query is a value of another type than the index's column (a `Vector` for a `halfvec` column,
    /// say).
    #[error(
        "the query is a `{found}` but the index's column is `{expected}`: search it with a value of that type \
         (Vector, HalfVector, SparseVector or Bit)"
    )]
    QueryType {
        /// The column's type.
        expected: Element,
        /// The query's type.
        found: Element,
    },
    /// The index's table does not exist (or is not on PostgreSQL's `search_path`).
    #[error(
        "table {table} does not exist in this database{}: create it, or apply the migration that does",
        search_path_hint(.postgres)
    )]
    UnknownTable {
        /// The table.
        table: String,
        /// Whether the database is PostgreSQL (which looks tables up on its `search_path`).
        postgres: bool,
    },
    /// A column the search needs is not in the table.
    #[error("{table} has no column {column} (the {role}); its columns: {}", .available.join(", "))]
    UnknownColumn {
        /// The table.
        table: String,
        /// The missing column.
        column: String,
        /// What it was for: `vector column`, `id column`, `filter column`.
        role: &'static str,
        /// The table's columns.
        available: Vec<String>,
    },
    /// The vector column is not of the type and dimensions the index declares: on PostgreSQL its type, on
    /// SQLite the type its index was registered with (whose values the migration's checks let in). PostgreSQL
    /// converts a `vector` column to a `halfvec` or `sparsevec` declaration on its own (pgvector's implicit
    /// casts) and does not fail; SQLite converts nothing.
    #[error(
        "{table}.{column} is {column_type}, not the {declared} the vector index {index} declares: declare the \
         index as the column is, or migrate the column"
    )]
    ColumnType {
        /// The table.
        table: String,
        /// The vector column.
        column: String,
        /// Its type, as PostgreSQL prints it (`vector(384)`).
        column_type: String,
        /// The type the index declares (`vector(384)`).
        declared: String,
        /// The index.
        index: String,
    },
    /// A filter value that cannot be compared with its column.
    #[error("{table}.{column} is {column_type}: {value} cannot be compared with it{hint}")]
    FilterValue {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type, as the database names it.
        column_type: String,
        /// The value given.
        value: Value,
        /// What would work (`; give an integer`).
        hint: &'static str,
    },
    /// A typed search's `partition` named a column that is not one of the index's partition columns.
    #[error(
        "{column} is not a partition column of the vector index {index} (partitioned by {}): filter on it \
         with `filter` instead",
        list_or_nothing(.partition_by)
    )]
    NotAPartitionColumn {
        /// The index.
        index: String,
        /// The column given.
        column: String,
        /// The index's partition columns.
        partition_by: Vec<String>,
    },
    /// The index's declaration is not valid (a [`vector_index!`](crate::vector_index) whose names are too
    /// long, say).
    #[error(transparent)]
    InvalidIndex(crate::index::SpecError),
    /// The index could not be found in, or read from, the registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Bringing the SQLite index up to date failed.
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Index(crate::sqlite::IndexError),
    /// The query failed.
    #[error("search query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

fn search_path_hint(postgres: &bool) -> &'static str {
    if *postgres {
        " (or its schema is not on the search_path)"
    } else {
        ""
    }
}

fn list_or_nothing(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

fn names(metrics: &[Metric]) -> String {
    metrics.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

/// A search over an [`IndexSpec`], built with [`IndexSpec::search`] and run with [`IndexSearch::run`].
#[derive(Debug, Clone)]
pub struct IndexSearch<'a> {
    pub(crate) spec: &'a IndexSpec,
    pub(crate) query: SearchVector<'a>,
    pub(crate) k: usize,
    pub(crate) metric: Metric,
    pub(crate) filters: Vec<(String, Value)>,
    pub(crate) strategy: Strategy,
    pub(crate) probes: Option<u32>,
    pub(crate) ef_search: Option<u32>,
    pub(crate) rerank: Option<u32>,
    pub(crate) threads: Option<usize>,
}

impl IndexSpec {
    /// The 10 rows nearest to `query` by the index's metric; refine with [`IndexSearch`]'s methods. The
    /// query is a value of the column's type: `&Vector`, `&HalfVector`, `&SparseVector` or `&Bit`
    /// ([`SearchVector`]).
    pub fn search<'a>(&'a self, query: impl Into<SearchVector<'a>>) -> IndexSearch<'a> {
        IndexSearch {
            spec: self,
            query: query.into(),
            k: 10,
            metric: self.metric(),
            filters: Vec::new(),
            strategy: Strategy::Auto,
            probes: None,
            ef_search: None,
            rerank: None,
            threads: None,
        }
    }
}

impl<'a> IndexSearch<'a> {
    /// How many neighbours to return (default 10).
    #[must_use]
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// The distance (default: the index's). The index serves its own metric only; another one scans exactly.
    #[must_use]
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Only rows whose `column` equals `value` ([`Value::Null`]: is NULL). Pushed into the index when
    /// `column` is one of its partition columns; any other column of the table is filtered exactly.
    /// Several filters must all hold.
    #[must_use]
    pub fn filter_eq(mut self, column: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filters.push((column.into(), value.into()));
        self
    }

    /// Whether the index may be used (default [`Strategy::Auto`]).
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// PostgreSQL, ivfflat: the lists to probe (default: [`crate::pg::recommended_probes`] of the index's
    /// lists). More probes, better recall, slower search.
    #[must_use]
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = Some(probes);
        self
    }

    /// PostgreSQL, HNSW: `hnsw.ef_search`, the candidates the graph search keeps (default: from `k` and
    /// the filters' selectivity; pgvector takes 1 to 1000).
    #[must_use]
    pub fn ef_search(mut self, ef_search: u32) -> Self {
        self.ef_search = Some(ef_search);
        self
    }

    /// PostgreSQL, binary-quantized index ([`PgIndex::BinaryQuantized`](crate::index::PgIndex)): how many
    /// candidates per result the index gives for the exact re-ranking (default
    /// [`DEFAULT_RERANK`]; at least 1). More, better recall, slower search.
    #[must_use]
    pub fn rerank(mut self, factor: u32) -> Self {
        self.rerank = Some(factor);
        self
    }

    /// SQLite, a scan of every row (exact, or where the index cannot answer) of a database file: how many
    /// connections read the table at once, each a part of its rows, this connection one of them (default:
    /// the threads the machine runs at once, at most 4, for a table of more than 16,384 rows; at least 1).
    /// An index that keeps a copy of the vectors (`SqliteIndex::vectors`) has its copy read the same way,
    /// by ranges of its groups of 16 rows. The default search's scan of the quantized codes is divided the
    /// same way between threads of this process when 2^18 rows or more pass the filter
    /// ([`SearchOptions::threads`](crate::ann::SearchOptions::threads)), with the same results.
    /// The extra connections are kept open for the next scan (`sqlite::close_scan_connections` closes
    /// them); they read the same snapshot as this one, checked before their results are taken. A search
    /// inside a transaction, or on a database in memory, reads on this connection only, and so does any part
    /// another connection cannot read (a function only this connection knows, for example). The results are
    /// the same either way.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel::connection::SimpleConnection;
    /// use diesel_vector::index::{generate, IndexSpec, Metric};
    /// use diesel_vector::search::{ids, Strategy};
    /// use diesel_vector::Vector;
    ///
    /// let path = std::env::temp_dir().join(format!("threads-{}.db", std::process::id()));
    /// let mut conn = diesel_vector::sqlite::establish(path.to_str().unwrap())?;
    /// conn.batch_execute("CREATE TABLE points (id INTEGER PRIMARY KEY)")?;
    /// let spec = IndexSpec::builder("points", "embedding", 2).metric(Metric::L2).build()?;
    /// conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up)?;
    /// // 2000 points on a line: [i, 0].
    /// use diesel::prelude::*;
    /// conn.transaction::<_, diesel::result::Error, _>(|conn| {
    ///     for i in 1..=2000_i64 {
    ///         diesel::sql_query("INSERT INTO points (id, embedding) VALUES (?, ?)")
    ///             .bind::<diesel::sql_types::BigInt, _>(i)
    ///             .bind::<diesel_vector::sql_types::Vector, _>(Vector::new(vec![i as f32, 0.0]).unwrap())
    ///             .execute(conn)?;
    ///     }
    ///     Ok(())
    /// })?;
    /// let q = Vector::new(vec![1234.2, 0.0])?;
    /// let exact = spec.search(&q).k(3).strategy(Strategy::Exact);
    /// // Four connections each read ranges of the rows; one connection reads them all: the same rows.
    /// let divided = exact.clone().threads(4).run(&mut conn)?;
    /// assert_eq!(ids(&divided), [1234, 1235, 1233]);
    /// assert_eq!(divided, exact.threads(1).run(&mut conn)?);
    /// # drop(conn);
    /// # diesel_vector::sqlite::close_scan_connections();
    /// # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Runs the search on `conn`: a [`diesel::PgConnection`] or a [`diesel::SqliteConnection`] (set up by
    /// [`crate::sqlite::establish`]); [`crate::database::DatabaseConnection::search_index`] for either.
    ///
    /// # Errors
    ///
    /// [`SearchError`]: a query of the wrong dimensions, `k = 0`, a table, column or filter value that
    /// does not fit the database, or the database's error.
    pub fn run<C: SearchTarget>(&self, conn: &mut C) -> Result<Vec<Hit>, SearchError> {
        execute(self, &NoFilter, conn)
    }
}

/// A search ready for a backend: checked, with its query (scaled when needed) and candidate count.
#[doc(hidden)]
#[derive(Debug)]
pub struct Plan<'a> {
    pub(crate) spec: &'a IndexSpec,
    pub(crate) query: PlanVector<'a>,
    pub(crate) k: usize,
    /// Candidates to fetch: a few more than `k`, so that ties at the k-th distance can be broken by id.
    pub(crate) limit: usize,
    pub(crate) metric: Metric,
    pub(crate) filters: &'a [(String, Value)],
    pub(crate) strategy: Strategy,
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) probes: Option<u32>,
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) ef_search: Option<u32>,
    /// Candidates per result from a binary-quantized index.
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    pub(crate) rerank: u32,
    /// SQLite: the connections a scan of the table may use ([`IndexSearch::threads`]).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) threads: Option<usize>,
}

impl Plan<'_> {
    /// Whether the index's own structures can serve this search (its metric, not exact).
    pub(crate) fn index_serves(&self) -> bool {
        self.strategy == Strategy::Auto && self.metric == self.spec.metric()
    }
}

/// A [`Plan`] that owns what it borrowed, to be moved to another thread (the SQLite wrapper's blocking
/// call) and planned again there with [`OwnedPlan::plan`].
#[cfg(all(feature = "async", feature = "sqlite"))]
#[derive(Debug)]
pub(crate) struct OwnedPlan {
    spec: IndexSpec,
    query: element::OwnedPlanVector,
    k: usize,
    limit: usize,
    metric: Metric,
    filters: Vec<(String, Value)>,
    strategy: Strategy,
    probes: Option<u32>,
    ef_search: Option<u32>,
    rerank: u32,
    threads: Option<usize>,
}

#[cfg(all(feature = "async", feature = "sqlite"))]
impl OwnedPlan {
    pub(crate) fn new(plan: &Plan<'_>) -> Self {
        Self {
            spec: plan.spec.clone(),
            query: element::OwnedPlanVector::new(&plan.query),
            k: plan.k,
            limit: plan.limit,
            metric: plan.metric,
            filters: plan.filters.to_vec(),
            strategy: plan.strategy,
            probes: plan.probes,
            ef_search: plan.ef_search,
            rerank: plan.rerank,
            threads: plan.threads,
        }
    }

    pub(crate) fn plan(&self) -> Plan<'_> {
        Plan {
            spec: &self.spec,
            query: self.query.plan_vector(),
            k: self.k,
            limit: self.limit,
            metric: self.metric,
            filters: &self.filters,
            strategy: self.strategy,
            probes: self.probes,
            ef_search: self.ef_search,
            rerank: self.rerank,
            threads: self.threads,
        }
    }
}

/// What a backend found, before sorting: hits (possibly more than `k`) and the path taken.
#[doc(hidden)]
#[derive(Debug)]
pub struct Found {
    pub(crate) hits: Vec<Hit>,
    pub(crate) path: SearchPath,
}

/// Checks the search, runs it on `conn` with `filter`, sorts, truncates and reports.
pub(crate) fn execute<C, F>(search: &IndexSearch<'_>, filter: &F, conn: &mut C) -> Result<Vec<Hit>, SearchError>
where
    C: SearchTarget,
    F: SearchFilter<C::Backend>,
{
    let plan = plan(search)?;
    let span = span(search, C::BACKEND, filter.is_empty());
    let started = Instant::now();
    let found = span.in_scope(|| conn.knn(&plan, filter))?;
    Ok(report(search, &span, C::BACKEND, found, started))
}

/// The search checked and made ready for a backend: the same checks, in the same order, for every
/// connection, sync or async.
pub(crate) fn plan<'a>(search: &'a IndexSearch<'a>) -> Result<Plan<'a>, SearchError> {
    let spec = search.spec;
    if search.query.element() == spec.element() && !spec.element().metrics().contains(&search.metric) {
        return Err(SearchError::MetricForType { metric: search.metric, element: spec.element() });
    }
    let query = element::prepare(spec, search.query, search.metric)?;
    if search.k == 0 {
        return Err(SearchError::InvalidK);
    }
    Ok(Plan {
        spec,
        query,
        k: search.k,
        limit: candidates(search.k),
        metric: search.metric,
        filters: &search.filters,
        strategy: search.strategy,
        probes: search.probes,
        ef_search: search.ef_search,
        rerank: search.rerank.unwrap_or(DEFAULT_RERANK).max(1),
        threads: search.threads,
    })
}

/// The search's `tracing` span (target `diesel_vector::search`); [`report`] fills in how it went.
pub(crate) fn span(search: &IndexSearch<'_>, backend: &'static str, typed_filter_empty: bool) -> tracing::Span {
    let spec = search.spec;
    tracing::info_span!(
        target: "diesel_vector::search",
        "search",
        backend,
        index = spec.name(),
        table = spec.table(),
        metric = search.metric.name(),
        k = search.k,
        filters = search.filters.len(),
        typed_filter = !typed_filter_empty,
        path = tracing::field::Empty,
        rows = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        scanned = tracing::field::Empty,
        reranked = tracing::field::Empty,
        recall_estimate = tracing::field::Empty,
        simd = tracing::field::Empty,
        scan_threads = tracing::field::Empty,
        catalog = tracing::field::Empty,
        ef_search = tracing::field::Empty,
        partition_index = tracing::field::Empty,
        connections = tracing::field::Empty,
        vectors_copy = tracing::field::Empty,
    )
}

/// Sorts and truncates what the backend found, records it in `span` and logs the search.
pub(crate) fn report(
    search: &IndexSearch<'_>,
    span: &tracing::Span,
    backend: &'static str,
    found: Found,
    started: Instant,
) -> Vec<Hit> {
    let Found { mut hits, path } = found;
    finish(&mut hits, search.k);
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("path", path.name());
    span.record("rows", hits.len());
    span.record("duration_ms", duration_ms);
    span.in_scope(|| {
        info!(
            target: "diesel_vector::search",
            backend,
            index = search.spec.name(),
            path = path.name(),
            metric = search.metric.name(),
            k = search.k,
            rows = hits.len(),
            duration_ms,
            "search"
        );
    });
    hits
}

/// Records a codes search's counters on the current search span: rows compared in the scan, candidates
/// reranked exactly, the estimated recall (`1 - expected misses / k`, 1 when the error bound proved the
/// result), the SIMD level and the threads the scan was divided between.
#[cfg(feature = "sqlite")]
pub(crate) fn record_codes_stats(stats: &crate::ann::SearchStats) {
    let span = tracing::Span::current();
    if stats.deferred {
        // Nothing was searched: the exact scan that answers records its own.
        return;
    }
    span.record("scanned", stats.passed);
    span.record("reranked", stats.fetched);
    span.record("recall_estimate", stats.recall_estimate());
    span.record("simd", stats.level.name());
    span.record("scan_threads", stats.scan_threads);
}

/// Candidates per result a binary-quantized index gives for the exact re-ranking, by default (200 for
/// k = 10): on 20k clustered 768-dim vectors that found the true 10 nearest where 10 per result found 0.8 of
/// them (BENCHMARKS.md, "Binary quantization on PostgreSQL").
pub const DEFAULT_RERANK: u32 = 20;

/// The largest sum a query's squares (or absolute values, for L1) may reach: a quarter of `f32::MAX`, so
/// that the databases' `f32` sums over the query and an ordinary stored vector stay finite.
const F32_HEADROOM: f64 = f32::MAX as f64 / 4.0;

/// The query as the backends get it. Cosine ignores scale, so a query whose squared norm would overflow
/// `f32` is scaled by a power of two (exact: every element keeps its bits but the exponent) to norm at
/// most 1; the other metrics depend on scale, so such a query is an error.
fn prepare_query(query: &Vector, metric: Metric) -> Result<Cow<'_, Vector>, SearchError> {
    let values = query.as_slice();
    let squares: f64 = values.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    if metric == Metric::Cosine {
        if squares == 0.0 {
            return Err(SearchError::ZeroQuery);
        }
        if squares <= F32_HEADROOM {
            return Ok(Cow::Borrowed(query));
        }
        // 2^-e with 2^e >= the norm: the scaled norm is at most 1. The norm of at most 16000 finite f32
        // is below 2^135, so the exponent fits any integer type.
        #[allow(clippy::cast_possible_truncation)]
        let exponent = squares.sqrt().log2().ceil() as i32;
        // In two factors: 2^-128 alone is not a normal f32.
        let (first, second) = (2f32.powi(-(exponent / 2)), 2f32.powi(-(exponent - exponent / 2)));
        let scaled =
            Vector::new(values.iter().map(|x| x * first * second).collect()).map_err(SearchError::InvalidQuery)?;
        if scaled.as_slice().iter().all(|x| *x == 0.0) {
            return Err(SearchError::ZeroQuery);
        }
        return Ok(Cow::Owned(scaled));
    }
    let magnitude = if metric == Metric::L1 { values.iter().map(|x| f64::from(x.abs())).sum() } else { squares };
    if magnitude > F32_HEADROOM {
        return Err(SearchError::QueryOverflow { metric });
    }
    Ok(Cow::Borrowed(query))
}

/// Drops hits without a finite distance, orders by distance then id and keeps the first `k`.
pub(crate) fn finish(hits: &mut Vec<Hit>, k: usize) {
    hits.retain(|h| h.distance.is_finite());
    sort(hits);
    hits.dedup_by_key(|h| h.id);
    hits.truncate(k);
}

/// Orders by distance then id (so ties are deterministic).
pub(crate) fn sort(hits: &mut [Hit]) {
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
}

/// How many candidates to fetch for `k` results: a few more, so that ties at the k-th distance can be
/// broken by id rather than by scan order.
pub(crate) fn candidates(k: usize) -> usize {
    k.saturating_add(k / 4 + 4)
}

/// True when sorted candidates hold the true first `k` of the rows they were drawn from: `boundary` is the
/// distance below which no candidate was left out (the farthest candidate fetched when the fetch filled
/// its limit; `None` when every matching row was fetched). The k-th finite distance must be strictly
/// below it: a row at the same distance may have been left out, and ties are broken by id.
pub(crate) fn trusted(sorted: &[Hit], k: usize, boundary: Option<f64>) -> bool {
    let Some(boundary) = boundary else { return true };
    sorted.iter().filter(|h| h.distance.is_finite()).nth(k - 1).is_some_and(|kth| kth.distance < boundary)
}

/// A connection a search runs on: [`diesel::PgConnection`] (feature `pg`) and [`diesel::SqliteConnection`]
/// (feature `sqlite`). Sealed. diesel-async's connections take `run_async` (`AsyncSearchTarget`, feature
/// `async`).
pub trait SearchTarget: crate::migrations::sealed::Sealed + diesel::Connection {
    #[doc(hidden)]
    const BACKEND: &'static str;
    /// Up to about `plan.limit` hits (possibly more, unsorted) and the path taken.
    #[doc(hidden)]
    fn knn<F: SearchFilter<Self::Backend>>(&mut self, plan: &Plan<'_>, filter: &F) -> Result<Found, SearchError>;
    /// [`Search::run`] (the fragment filter is a Diesel expression, checked for each backend).
    #[doc(hidden)]
    fn search_fragments(&mut self, search: &Search<'_>) -> Result<Vec<Neighbor>, SearchError>;
}

/// How a backend compares a filter column, from the column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    Text,
    Integer,
    Bool,
    /// Any other type: compared as text (PostgreSQL: the column cast to text; SQLite: by its affinity).
    Other,
}

/// `value` as the bind a column of `kind` compares with, or the reason it cannot be.
pub(crate) fn coerce(value: &Value, kind: ColumnKind) -> Result<FilterValue, &'static str> {
    Ok(match (value, kind) {
        (Value::Null, _) => FilterValue::Null,
        (Value::Integer(i), ColumnKind::Integer) => FilterValue::Integer(*i),
        (Value::Text(t), ColumnKind::Integer) => {
            FilterValue::Integer(t.trim().parse().map_err(|_| "; give an integer")?)
        }
        (Value::Bool(b), ColumnKind::Integer) => FilterValue::Integer(i64::from(*b)),
        (Value::Bool(b), ColumnKind::Bool) => FilterValue::Bool(*b),
        (Value::Text(t), ColumnKind::Bool) => FilterValue::Bool(match t.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" => true,
            "false" | "f" | "0" | "no" => false,
            _ => return Err("; give true or false"),
        }),
        (Value::Integer(i @ (0 | 1)), ColumnKind::Bool) => FilterValue::Bool(*i == 1),
        (Value::Integer(_), ColumnKind::Bool) => return Err("; give true or false"),
        // PostgreSQL's text holds no NUL (its driver would fail the query), and no row SQLite holds one in
        // is reachable from PostgreSQL's side: refused on both, the same way.
        (Value::Text(t), ColumnKind::Text | ColumnKind::Other) if t.contains('\0') => {
            return Err("; text holds no NUL character")
        }
        (Value::Text(t), ColumnKind::Text | ColumnKind::Other) => FilterValue::Text(t.clone()),
        (Value::Integer(i), ColumnKind::Text | ColumnKind::Other) => FilterValue::Text(i.to_string()),
        (Value::Bool(_), ColumnKind::Text) => return Err("; give text"),
        (Value::Bool(b), ColumnKind::Other) => FilterValue::Text(b.to_string()),
    })
}

/// PostgreSQL, after a search's SQL failed: the vector column's type (`columns`: `(name, kind, type)`) when it
/// is not the type and dimensions `spec` declares (pgvector then has no operator for the two, or refuses
/// their dimensions). A type PostgreSQL converts on its own (a `halfvec` declaration of a `vector` column) does
/// not fail, and is not one.
#[cfg(feature = "pg-backend")]
pub(crate) fn vector_column_type(spec: &IndexSpec, columns: &[(String, ColumnKind, String)]) -> Option<SearchError> {
    let ty = columns.iter().find(|(n, _, _)| n == spec.column()).map(|(_, _, t)| t.as_str())?;
    let (base, dims) = match ty.split_once('(') {
        Some((base, rest)) => (base.trim(), rest.trim_end_matches(')').trim().parse::<u32>().ok()),
        None => (ty.trim(), None),
    };
    // Qualified by its schema when the extension's schema is not on the search path.
    let base = base.rsplit('.').next().unwrap_or(base);
    (base != spec.element().name() || dims.is_some_and(|d| d != spec.dims())).then(|| SearchError::ColumnType {
        table: spec.table().to_owned(),
        column: spec.column().to_owned(),
        column_type: ty.to_owned(),
        declared: spec.element().pg_type(spec.dims()),
        index: spec.name().to_owned(),
    })
}

/// PostgreSQL: the hint for an integer that a `smallint` or `integer` column (`ty`, as `format_type` prints
/// it) cannot hold, whose comparison would fail in the server or match nothing.
fn pg_integer_out_of_range(ty: &str, i: i64) -> Option<&'static str> {
    let (fits, hint) = match ty {
        "smallint" => (i16::try_from(i).is_ok(), "; give an integer from -32768 to 32767"),
        "integer" => (i32::try_from(i).is_ok(), "; give an integer from -2147483648 to 2147483647"),
        _ => (true, ""),
    };
    (!fits).then_some(hint)
}

/// The filters of `plan` checked against the table's columns (`(name, kind, type name)`), in order.
pub(crate) fn resolve_filters(
    plan: &Plan<'_>,
    columns: &[(String, ColumnKind, String)],
    postgres: bool,
) -> Result<Vec<EqFilter>, SearchError> {
    let spec = plan.spec;
    let available = || columns.iter().map(|(n, _, _)| n.clone()).collect::<Vec<_>>();
    if columns.is_empty() {
        return Err(SearchError::UnknownTable { table: spec.table().to_owned(), postgres });
    }
    for (column, role) in [(spec.column(), "vector column"), (spec.id_column(), "id column")] {
        if !columns.iter().any(|(n, _, _)| n == column) {
            return Err(SearchError::UnknownColumn {
                table: spec.table().to_owned(),
                column: column.to_owned(),
                role,
                available: available(),
            });
        }
    }
    plan.filters
        .iter()
        .map(|(column, value)| {
            let Some((_, kind, ty)) = columns.iter().find(|(n, _, _)| n == column) else {
                return Err(SearchError::UnknownColumn {
                    table: spec.table().to_owned(),
                    column: column.clone(),
                    role: "filter column",
                    available: available(),
                });
            };
            let refused = |hint| SearchError::FilterValue {
                table: spec.table().to_owned(),
                column: column.clone(),
                column_type: ty.clone(),
                value: value.clone(),
                hint,
            };
            if column == spec.column() {
                return Err(refused("; the vector column is searched, not filtered: filter on another column"));
            }
            let value = coerce(value, *kind).map_err(refused)?;
            if let (FilterValue::Integer(i), true) = (&value, postgres) {
                if let Some(hint) = pg_integer_out_of_range(ty, *i) {
                    return Err(refused(hint));
                }
            }
            let partition = spec.partition_by().position(|p| p == column);
            Ok(EqFilter { column: column.clone(), kind: *kind, value, partition })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: i64, distance: f64) -> Hit {
        Hit { id, distance }
    }

    #[test]
    fn results_are_ordered_by_distance_then_id_without_non_finite_distances() {
        let mut hits =
            vec![hit(5, 0.2), hit(2, f64::NAN), hit(3, 0.1), hit(1, 0.2), hit(4, f64::NEG_INFINITY), hit(3, 0.1)];
        finish(&mut hits, 10);
        assert_eq!(hits, [hit(3, 0.1), hit(1, 0.2), hit(5, 0.2)]);
    }

    #[test]
    fn candidates_are_trusted_only_below_their_boundary() {
        let hits: Vec<Hit> = (0..6u8).map(|i| hit(i64::from(i), f64::from(i))).collect();
        assert!(trusted(&hits, 3, Some(5.0)), "the 3rd is nearer than the farthest fetched");
        assert!(!trusted(&hits[..2], 3, Some(5.0)), "fewer than k");
        assert!(trusted(&hits[..2], 3, None), "fewer than k, but every row was seen");
        let tied = vec![hit(1, 0.0), hit(2, 0.5), hit(3, 0.5), hit(4, 0.5)];
        assert!(!trusted(&tied, 2, Some(0.5)), "the limit may have cut a tie at the k-th distance");
        let odd = vec![hit(1, f64::NEG_INFINITY), hit(2, 0.1), hit(3, 0.2)];
        assert!(trusted(&odd, 2, Some(0.3)), "non-finite distances do not count");
    }

    #[test]
    fn cosine_queries_too_large_for_f32_are_scaled_exactly_and_others_refused() {
        let huge = Vector::new(vec![3.0e38, -1.0e38, 2.0]).unwrap();
        let scaled = prepare_query(&huge, Metric::Cosine).unwrap();
        let ratio: Vec<f64> =
            scaled.as_slice().iter().zip(huge.as_slice()).map(|(a, b)| f64::from(*b) / f64::from(*a)).collect();
        assert!(ratio.iter().all(|r| *r == ratio[0]) && ratio[0].log2().fract() == 0.0, "one power of two: {ratio:?}");
        assert!(scaled.as_slice().iter().map(|x| x * x).sum::<f32>() <= 1.0);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::L1] {
            assert!(matches!(prepare_query(&huge, metric), Err(SearchError::QueryOverflow { .. })), "{metric}");
        }
        let normal = Vector::new(vec![1.0, 2.0]).unwrap();
        assert!(matches!(prepare_query(&normal, Metric::Cosine).unwrap(), Cow::Borrowed(_)));
        let zero = Vector::new(vec![0.0, -0.0]).unwrap();
        assert!(matches!(prepare_query(&zero, Metric::Cosine), Err(SearchError::ZeroQuery)));
        assert!(prepare_query(&zero, Metric::L2).is_ok());
    }

    #[test]
    fn filter_values_follow_the_columns_type() {
        assert_eq!(coerce(&"2024".into(), ColumnKind::Integer), Ok(FilterValue::Integer(2024)));
        assert!(coerce(&"fr".into(), ColumnKind::Integer).is_err());
        assert_eq!(coerce(&7.into(), ColumnKind::Text), Ok(FilterValue::Text("7".into())));
        assert_eq!(coerce(&"T".into(), ColumnKind::Bool), Ok(FilterValue::Bool(true)));
        assert!(coerce(&"maybe".into(), ColumnKind::Bool).is_err());
        assert_eq!(coerce(&"th\0ai".into(), ColumnKind::Text), Err("; text holds no NUL character"));
        assert_eq!(coerce(&Value::Null, ColumnKind::Bool), Ok(FilterValue::Null));
        assert_eq!(coerce(&true.into(), ColumnKind::Integer), Ok(FilterValue::Integer(1)));
        assert_eq!(Value::from(None::<i32>), Value::Null);
    }

    #[test]
    fn rows_are_put_in_rank_order() {
        let hits = [hit(9, 0.5), hit(4, 0.7), hit(100, 0.9)];
        let rows = vec![(4i32, 'a'), (9, 'b')];
        assert_eq!(rank(rows, |r| r.0, &hits), [((9, 'b'), 0.5), ((4, 'a'), 0.7)]);
    }
}
