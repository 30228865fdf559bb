//! [`Search`]: the crate's own `fragment_embeddings`, by provider and model, as one use of the generic
//! search (its registered index, `fragment_embeddings_idx`, partitioned by provider and model).

use super::{Hit, IndexSearch, Metric, SearchError, SearchTarget, Strategy};
use crate::Vector;

/// The dimensions of the migrated `embedding` column (`vector(1536)`).
pub const EMBEDDING_DIMS: usize = 1536;

/// One result of a [`Search`]: an embedding row and its distance to the query.
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

/// The `k` embeddings of one provider and model nearest to a query (vectors of different models are
/// never compared), optionally among given fragments; build it with [`Search::new`] and run it with
/// [`Search::run`]. It is the generic search ([`crate::search`]) on the crate's own index, with the same
/// guarantees.
///
/// ```
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel_vector::models::NewFragmentEmbedding;
/// use diesel_vector::search::{Metric, Search};
/// use diesel_vector::{migrations, schema::fragments, Vector};
/// use diesel::prelude::*;
///
/// let mut conn = diesel_vector::sqlite::establish(":memory:")?;
/// migrations::run_pending_migrations(&mut conn)?;
/// let unit = |i: usize| Vector::new((0..1536).map(|j| if j == i { 1.0 } else { 0.0 }).collect());
/// for i in 0..3 {
///     let fragment: i64 = diesel::insert_into(fragments::table)
///         .values(fragments::content.eq(format!("fragment {i}")))
///         .returning(fragments::id)
///         .get_result(&mut conn)?;
///     NewFragmentEmbedding::new(fragment, "openai", "small", &unit(i)?, "hash").upsert(&mut conn)?;
/// }
///
/// let hits = Search::new("openai", "small", &unit(1)?).k(2).run(&mut conn)?;
/// assert_eq!(hits[0].fragment_id, 2);
/// assert!(hits[0].distance.abs() < 1e-6);
/// assert_eq!(hits.len(), 2);
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
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
    pub(crate) threads: Option<usize>,
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
            threads: None,
        }
    }

    /// How many neighbours to return (default 10).
    #[must_use]
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// The distance (default [`Metric::Cosine`]).
    #[must_use]
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Only embeddings of these fragments. At least `k` matching rows always give `k` results.
    #[must_use]
    pub fn fragment_ids(mut self, ids: &'a [i64]) -> Self {
        self.fragment_ids = Some(ids);
        self
    }

    /// Whether the index may be used (default [`Strategy::Auto`]).
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// PostgreSQL: the ivfflat lists to probe (default: [`crate::pg::recommended_probes`] for the index,
    /// `sqrt(lists)` but at least 10). More probes, better recall, slower search.
    #[must_use]
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = Some(probes);
        self
    }

    /// SQLite: how many connections a scan of every row reads with, and how many threads divide a large
    /// index's scan of its codes (see [`IndexSearch::threads`]; at least 1).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Runs the search on `conn`: a [`diesel::PgConnection`] or a [`diesel::SqliteConnection`] (set up by
    /// [`crate::sqlite::establish`]).
    ///
    /// # Errors
    ///
    /// [`SearchError::InvalidQuery`] when the query does not have [`EMBEDDING_DIMS`] dimensions,
    /// [`SearchError::ZeroQuery`] for a zero vector with cosine, [`SearchError::InvalidK`] for `k = 0`,
    /// [`SearchError::UnknownTable`] before the crate's migrations, or the backend's error.
    pub fn run<C: SearchTarget>(&self, conn: &mut C) -> Result<Vec<Neighbor>, SearchError> {
        conn.search_fragments(self)
    }
}

impl Search<'_> {
    /// The generic search this one is: the crate's index, filtered by provider and model.
    pub(crate) fn generic(&self) -> IndexSearch<'_> {
        let spec = crate::schema::fragment_embeddings_index();
        let mut generic = spec
            .search(self.query)
            .k(self.k)
            .metric(self.metric)
            .strategy(self.strategy)
            .filter_eq("provider", self.provider)
            .filter_eq("model", self.model);
        if let Some(p) = self.probes {
            generic = generic.probes(p);
        }
        if let Some(threads) = self.threads {
            generic = generic.threads(threads);
        }
        generic
    }
}

/// `hits` with their fragments' ids (`pairs` of embedding id and fragment id); rows deleted since are
/// left out.
pub(crate) fn neighbors(hits: Vec<Hit>, pairs: &[(i64, i64)]) -> Vec<Neighbor> {
    hits.into_iter()
        .filter_map(|h| {
            let (_, fragment_id) = pairs.iter().find(|(id, _)| *id == h.id)?;
            Some(Neighbor { id: h.id, fragment_id: *fragment_id, distance: h.distance })
        })
        .collect()
}

/// The body of each backend's `SearchTarget::search_fragments` and `AsyncSearchTarget::search_fragments_async`:
/// the generic search with the fragment filter (a Diesel expression, checked for the concrete backend),
/// then the fragments' ids. `$execute` and `$load` are the sync or async search and load; `.await` follows
/// them on an async connection.
macro_rules! search_fragments {
    ($conn:ident, $search:ident, $execute:path, $load:path $(, $($await:tt)+)?) => {{
        use diesel::prelude::*;
        use $crate::schema::fragment_embeddings as fe;
        let generic = $search.generic();
        let hits = match $search.fragment_ids {
            Some(wanted) => $execute(
                &generic,
                &$crate::search::typed::filtered(fe::fragment_id.eq_any(wanted)),
                $conn,
            ) $($($await)+)? ?,
            None => $execute(&generic, &$crate::search::NoFilter, $conn) $($($await)+)? ?,
        };
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = $crate::search::ids(&hits);
        let pairs: Vec<(i64, i64)> =
            $load(fe::table.select((fe::id, fe::fragment_id)).filter(fe::id.eq_any(&wanted)), $conn) $($($await)+)? ?;
        Ok($crate::search::seed::neighbors(hits, &pairs))
    }};
}
pub(crate) use search_fragments;
