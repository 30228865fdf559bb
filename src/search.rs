//! Nearest-neighbour search over `fragment_embeddings`, with the same answers on both backends.
//!
//! A [`Search`] looks for the `k` embeddings nearest to a query vector among those of one provider and
//! model (vectors of different models are never compared), optionally among a set of fragments, and
//! returns [`Neighbor`]s sorted by distance, ties broken by id.
//!
//! | backend | [`Strategy::Auto`] (default) | [`Strategy::Exact`] |
//! |---|---|---|
//! | SQLite with sqlite-vec | cosine: the vec0 index (brought up to date first); other metrics or a fragment filter: exact scan | exact scan |
//! | SQLite without sqlite-vec | exact scan with the crate's distance functions | exact scan |
//! | PostgreSQL | cosine: the ivfflat index (`probes`, iterative scan), re-run exactly if it returns fewer than `k` rows | sequential scan |
//!
//! sqlite-vec's KNN is itself exact, so on SQLite every path returns the true nearest neighbours; on
//! PostgreSQL the ivfflat index is approximate (recall grows with `probes`).
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_vector::models::NewFragmentEmbedding;
//! use diesel_vector::search::{Metric, Search};
//! use diesel_vector::{migrations, schema::fragments, Vector};
//! use diesel::prelude::*;
//!
//! let mut conn = diesel_vector::sqlite::establish(":memory:")?;
//! migrations::run_pending_migrations(&mut conn)?;
//! let unit = |i: usize| Vector::new((0..1536).map(|j| if j == i { 1.0 } else { 0.0 }).collect());
//! for i in 0..3 {
//!     let fragment: i64 = diesel::insert_into(fragments::table)
//!         .values(fragments::content.eq(format!("fragment {i}")))
//!         .returning(fragments::id)
//!         .get_result(&mut conn)?;
//!     NewFragmentEmbedding::new(fragment, "openai", "small", &unit(i)?, "hash").upsert(&mut conn)?;
//! }
//!
//! let hits = Search::new("openai", "small", &unit(1)?).k(2).run(&mut conn)?;
//! assert_eq!(hits[0].fragment_id, 2);
//! assert!(hits[0].distance.abs() < 1e-6);
//! assert_eq!(hits.len(), 2);
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```

use std::fmt;
use std::time::Instant;

use tracing::info;

use crate::{Vector, VectorError};

/// The dimensions of the migrated `embedding` column (`vector(1536)`).
pub const EMBEDDING_DIMS: usize = 1536;

pub use crate::index::Metric;

/// Whether a search may use the vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Use the index where the backend has one for the metric; fall back to an exact scan otherwise.
    #[default]
    Auto,
    /// Always compute every distance.
    Exact,
}

/// The way a search was answered, reported in its `tracing` span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchPath {
    /// SQLite: sqlite-vec's vec0 KNN.
    Vec0,
    /// SQLite: the crate's quantized codes, candidates reranked exactly.
    Codes,
    /// SQLite: every matching row's distance, by sqlite-vec's or the crate's functions.
    ExactScan,
    /// PostgreSQL: the ivfflat index.
    Ivfflat,
    /// PostgreSQL: the ivfflat index returned fewer than `k` rows, so the search ran again exactly.
    IvfflatThenExact,
    /// PostgreSQL: a sequential scan.
    Exact,
}

impl SearchPath {
    /// The path's name, as used in telemetry.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vec0 => "vec0",
            Self::Codes => "codes",
            Self::ExactScan => "exact_scan",
            Self::Ivfflat => "ivfflat",
            Self::IvfflatThenExact => "ivfflat_then_exact",
            Self::Exact => "exact",
        }
    }
}

/// One result: an embedding row and its distance to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    /// The embedding's id.
    pub id: i64,
    /// The fragment it embeds.
    pub fragment_id: i64,
    /// The distance under the search's metric (smaller is nearer).
    pub distance: f64,
}

impl Neighbor {
    /// `1 - distance`: the cosine similarity, for a [`Metric::Cosine`] search.
    pub fn cosine_similarity(&self) -> f64 {
        1.0 - self.distance
    }
}

/// Why a search failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SearchError {
    /// The query vector cannot be compared with the column (wrong dimensions).
    InvalidQuery(VectorError),
    /// A zero query vector has no cosine distance to anything.
    ZeroQuery,
    /// `k` must be at least 1.
    InvalidK,
    /// The metric does not apply to the column's type (Hamming on `vector`, say).
    MetricForType {
        /// The metric asked for.
        metric: Metric,
        /// The column's type.
        element: crate::index::Element,
    },
    /// Bringing the SQLite index up to date failed.
    #[cfg(feature = "sqlite")]
    Index(crate::sqlite::IndexError),
    /// The query failed.
    Query(diesel::result::Error),
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidQuery(e) => write!(f, "invalid query vector: {e}"),
            Self::ZeroQuery => f.write_str(
                "the query vector is all zeros, which has no cosine distance: use another metric or a non-zero vector",
            ),
            Self::InvalidK => f.write_str("k must be at least 1"),
            Self::MetricForType { metric, element } => write!(
                f,
                "the {metric} metric does not apply to `{element}` columns: use one of {}",
                element.metrics().iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            ),
            #[cfg(feature = "sqlite")]
            Self::Index(e) => write!(f, "{e}"),
            Self::Query(e) => write!(f, "search query failed: {e}"),
        }
    }
}

impl std::error::Error for SearchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidQuery(e) => Some(e),
            #[cfg(feature = "sqlite")]
            Self::Index(e) => Some(e),
            Self::Query(e) => Some(e),
            _ => None,
        }
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

impl From<diesel::result::Error> for SearchError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

/// A nearest-neighbour search; build it with [`Search::new`] and run it with [`Search::run`].
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
    pub(crate) query: &'a Vector,
    pub(crate) k: usize,
    pub(crate) metric: Metric,
    pub(crate) fragment_ids: Option<&'a [i64]>,
    pub(crate) strategy: Strategy,
    pub(crate) probes: Option<u32>,
}

impl<'a> Search<'a> {
    /// The 10 nearest embeddings of `provider`/`model` to `query` by cosine distance.
    pub fn new(provider: &'a str, model: &'a str, query: &'a Vector) -> Self {
        Self {
            provider,
            model,
            query,
            k: 10,
            metric: Metric::Cosine,
            fragment_ids: None,
            strategy: Strategy::Auto,
            probes: None,
        }
    }

    /// How many neighbours to return (default 10).
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// The distance (default [`Metric::Cosine`]).
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Only embeddings of these fragments. At least `k` matching rows always give `k` results.
    pub fn fragment_ids(mut self, ids: &'a [i64]) -> Self {
        self.fragment_ids = Some(ids);
        self
    }

    /// Whether the index may be used (default [`Strategy::Auto`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// PostgreSQL: the ivfflat lists to probe (default: [`crate::pg::recommended_probes`] for the index,
    /// `sqrt(lists)` but at least 10). More probes, better recall, slower search.
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = Some(probes);
        self
    }

    /// Runs the search on `conn`: a [`diesel::PgConnection`] or a [`diesel::SqliteConnection`] (set up by
    /// [`crate::sqlite::establish`]).
    ///
    /// # Errors
    ///
    /// [`SearchError::InvalidQuery`] when the query does not have [`EMBEDDING_DIMS`] dimensions,
    /// [`SearchError::ZeroQuery`] for a zero vector with cosine, [`SearchError::InvalidK`] for `k = 0`, or
    /// the backend's error.
    pub fn run<C: SearchTarget>(&self, conn: &mut C) -> Result<Vec<Neighbor>, SearchError> {
        self.query.check_dims(EMBEDDING_DIMS).map_err(SearchError::InvalidQuery)?;
        if self.k == 0 {
            return Err(SearchError::InvalidK);
        }
        let element = crate::index::Element::Vector;
        if !element.metrics().contains(&self.metric) {
            return Err(SearchError::MetricForType { metric: self.metric, element });
        }
        if self.metric == Metric::Cosine && self.query.as_slice().iter().all(|x| *x == 0.0) {
            return Err(SearchError::ZeroQuery);
        }
        let span = tracing::info_span!(
            target: "diesel_vector::search",
            "search",
            backend = C::BACKEND,
            metric = self.metric.name(),
            k = self.k,
            path = tracing::field::Empty,
            rows = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            scanned = tracing::field::Empty,
            reranked = tracing::field::Empty,
            recall_estimate = tracing::field::Empty,
            simd = tracing::field::Empty,
        );
        let _enter = span.enter();
        let started = Instant::now();
        let (mut hits, path) = conn.nearest(self)?;
        sort_and_truncate(&mut hits, self.k);
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        span.record("path", path.name());
        span.record("rows", hits.len());
        span.record("duration_ms", duration_ms);
        info!(
            target: "diesel_vector::search",
            backend = C::BACKEND,
            path = path.name(),
            metric = self.metric.name(),
            k = self.k,
            rows = hits.len(),
            duration_ms,
            "search"
        );
        Ok(hits)
    }
}

/// Records a codes search's counters on the current search span: rows compared in the scan, candidates
/// reranked exactly, the estimated recall (`1 - expected misses / k`, 1 when the error bound proved the
/// result) and the SIMD level.
#[cfg(feature = "sqlite")]
pub(crate) fn record_codes_stats(stats: &crate::ann::SearchStats) {
    let span = tracing::Span::current();
    span.record("scanned", stats.passed);
    span.record("reranked", stats.fetched);
    span.record("recall_estimate", stats.recall_estimate());
    span.record("simd", stats.level.name());
}

/// How many candidates to fetch for `k` results: a few more, so that ties at the k-th distance can be
/// broken by id rather than by scan order.
pub(crate) fn candidates(k: usize) -> usize {
    k.saturating_add(k / 4 + 4)
}

/// True when the candidates may have cut a tie at the k-th distance (they filled `limit` and the last
/// one is as near as the k-th): only an exact, id-ordered query settles which rows come first.
pub(crate) fn tie_may_be_cut(sorted: &[Neighbor], k: usize, limit: usize) -> bool {
    sorted.len() >= limit && limit > k && sorted[limit - 1].distance <= sorted[k - 1].distance
}

/// Orders by distance then id (so ties are deterministic) and keeps the first `k`.
pub(crate) fn sort_and_truncate(hits: &mut Vec<Neighbor>, k: usize) {
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    hits.truncate(k);
}

/// A connection [`Search::run`] works on: [`diesel::PgConnection`] (feature `pg`) and
/// [`diesel::SqliteConnection`] (feature `sqlite`). Sealed.
pub trait SearchTarget: crate::migrations::sealed::Sealed {
    #[doc(hidden)]
    const BACKEND: &'static str;
    /// Up to about `k` (possibly more, for tie-breaking) candidates and the path taken.
    #[doc(hidden)]
    fn nearest(&mut self, search: &Search<'_>) -> Result<(Vec<Neighbor>, SearchPath), SearchError>;
}

#[derive(diesel::QueryableByName)]
pub(crate) struct Row {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) fragment_id: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub(crate) distance: f64,
}

impl From<Row> for Neighbor {
    fn from(r: Row) -> Self {
        Self { id: r.id, fragment_id: r.fragment_id, distance: r.distance }
    }
}
