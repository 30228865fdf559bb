//! Nearest-neighbour search on PostgreSQL, over any registered index: pgvector's HNSW or ivfflat index,
//! or a sequential scan.
//!
//! Written once, as `async fn`s over the crate's executor ([`crate::exec`]): `PgConnection` runs them at
//! once (`block_on`), `AsyncPgConnection` awaits tokio-postgres through `exec::AsyncPg`, which rolls the
//! search's transaction back when its future is dropped half way.
//!
//! Each search is one transaction of two statements (three when it must fall back):
//!
//! 1. **Set-up** ([`Setup`], one prepared statement Diesel caches per connection): reads the table's
//!    columns (checked before anything else runs), the index's method, validity and ivfflat lists, the
//!    table's row estimate and the filters' selectivity from PostgreSQL's statistics
//!    (`pg_stats`), then sets, for this transaction only, what the path needs:
//!    - HNSW: `hnsw.ef_search` from `k` and the selectivity ([`default_ef_search`], divided by the square
//!      root of the selectivity; a filter a partition index serves, `super::create_partition_index`,
//!      counts as passing every row), `hnsw.iterative_scan = relaxed_order` (the scan goes on until enough rows
//!      pass the filters; its slightly unordered rows are sorted here);
//!    - ivfflat: `ivfflat.probes` (`sqrt(lists)`, at least 10) and `ivfflat.iterative_scan`;
//!    - an index scan when the index serves the search (`enable_seqscan` off: the planner's estimate
//!      sometimes prefers a sequential scan of the whole table, hundreds of times slower);
//!    - an HNSW search a partition index serves (`super::create_partition_index`):
//!      `plan_cache_mode = force_custom_plan`, so that its statement (prepared once per connection) is
//!      planned with the filter's values and runs on that index (a generic plan, which PostgreSQL settles on
//!      after a few executions, cannot prove the index's condition and used the table's index). Only then:
//!      planning the statement each time cost 0.26 ms;
//!    - `enable_indexscan` off for an exact search.
//!
//!    What the set-up reads is remembered per process (`learned`: the connection's own entry first, else
//!    the latest any connection learned), tied to the table's identity (its
//!    catalog rows' versions, its index's, its `ANALYZE` count, the database and role). A later HNSW search
//!    of the same table and filters skips the set-up: it sends the `SET LOCAL`s one would write by hand and
//!    checks the identity in its candidates' own statement (`learned_hnsw`); other filtered searches send
//!    the unfiltered set-up with what was learned (`filtered_setup`). A changed identity, or a failure,
//!    makes the search read the catalog again.
//!
//!    An ivfflat index with far more lists than the statistics' row estimate supports may have been
//!    built on an empty table (it then recalls poorly until rebuilt); the statistics lag behind a bulk
//!    load, so the rows are counted (up to the number that would make the lists fit) before the index is
//!    used; a stale one is passed over for an exact scan, with a `tracing` warning.
//! 2. **The query**: the distance DSL's `ORDER BY distance LIMIT n` on the table, filters in the same
//!    `WHERE`; a few more rows than `k` so that ties are broken by id. A `vector` column of 2001 to 4000
//!    dimensions is indexed as `halfvec` (an expression index): the query orders by the same cast, then
//!    the candidates' exact distances are computed on the full-precision column.
//! 3. **Exact again** when the index returned fewer than `k` rows, or a tie at the limit may have been
//!    cut: a sequential scan in the same transaction.
//!
//! Settings made with `SET LOCAL` end with the transaction. When the search runs inside the caller's
//! own transaction, the planner switches it changed (`enable_seqscan`, `enable_indexscan`,
//! `plan_cache_mode`) are put back afterwards; the pgvector settings stay
//! for the rest of that transaction, as a `SET LOCAL` of the caller's would.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Nullable, Text, Untyped};

use crate::exec::{self, first, sql, Exec};
use crate::index::{quote, Element, IndexSpec, PgIndex};
use crate::search::query::{push_column, KnnDialect, QueryVector, SearchValue, VectorColumn};
use crate::search::{
    resolve_filters, sort, trusted, ColumnKind, EqFilter, FilterValue, Found, Hit, Knn, KnnOrder, Plan, PlanVector,
    SearchError, SearchFilter, SearchPath,
};
use crate::sql_types::Vector;
use diesel::serialize::ToSql;

/// `hnsw.ef_search` for `k` neighbours without a filter: the graph keeps this many candidates (`20 k`, 200 to
/// 1000). With filters the search divides it by the square root of their selectivity (from `pg_stats`; 0.2
/// gives 447): pgvector's iterative scan keeps going until enough rows pass, and the wider first pass keeps
/// recall. On clustered 1536-dim embeddings at 100k rows pgvector's default of 40 found 0.875 to 0.99 of the
/// true 10 nearest depending on the graph's build; 200 at least 0.95 (BENCHMARKS.md, "KNN on a table of one's
/// own").
pub fn default_ef_search(k: usize) -> u32 {
    let k = u32::try_from(k).unwrap_or(u32::MAX);
    k.saturating_mul(20).clamp(200, 1000)
}

#[cfg(feature = "pg")]
impl crate::search::SearchTarget for diesel::PgConnection {
    const BACKEND: &'static str = "postgresql";

    fn knn<F: SearchFilter<Pg>>(&mut self, plan: &Plan<'_>, filter: &F) -> Result<Found, SearchError> {
        let connection = std::ptr::from_ref(self).addr();
        exec::block_on(knn(self, connection, plan, filter))
    }

    fn search_fragments(
        &mut self,
        search: &crate::search::Search<'_>,
    ) -> Result<Vec<crate::search::Neighbor>, SearchError> {
        crate::search::seed::search_fragments!(self, search, crate::search::execute, diesel::RunQueryDsl::load)
    }
}

#[cfg(feature = "async")]
impl crate::search::AsyncSearchTarget for diesel_async::AsyncPgConnection {
    type Db = Pg;
    const BACKEND: &'static str = "postgresql";

    async fn knn_async<'a, F: SearchFilter<Pg>>(
        &'a mut self,
        plan: &'a Plan<'a>,
        filter: &'a F,
    ) -> Result<Found, SearchError> {
        // The guard rolls the search's transaction back if the future is dropped half way.
        let connection = std::ptr::from_ref(self).addr();
        knn(&mut exec::AsyncPg::new(self), connection, plan, filter).await
    }

    async fn search_fragments_async<'a>(
        &'a mut self,
        search: &'a crate::search::Search<'a>,
    ) -> Result<Vec<crate::search::Neighbor>, SearchError> {
        crate::search::seed::search_fragments!(
            self,
            search,
            crate::search::execute_async,
            diesel_async::RunQueryDsl::load,
            .await
        )
    }
}

/// The search on any PostgreSQL connection (see the module's docs): one transaction, or a savepoint in
/// the caller's, whose planner switches are put back afterwards. `connection` is the connection's address
/// (what it learned is its own, see [`learned`]).
async fn knn<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    connection: usize,
    plan: &Plan<'_>,
    filter: &F,
) -> Result<Found, SearchError> {
    let saved: Option<Planner> =
        if conn.in_transaction()? { Some(first(conn, sql(READ_PLANNER)).await?) } else { None };
    let key = learned::Key::of(connection, plan);
    let known = learned::recall(&key);
    let mut result = exec::transaction(conn, async |conn: &mut E| {
        knn_in_transaction(conn, plan, filter, &key, known.as_deref()).await
    })
    .await;
    if known.is_some() && matches!(result, Err(SearchError::Query(_))) {
        // What was learned may be what failed (another database's column types where the identity check
        // could not run first: a type error fails the statement before it runs): once more from the catalog.
        learned::forget(&key);
        result = exec::transaction(conn, async |conn: &mut E| knn_in_transaction(conn, plan, filter, &key, None).await)
            .await;
    }
    if let Some(saved) = saved {
        conn.execute(
            sql(RESTORE_PLANNER)
                .bind::<Text, _>(saved.seqscan)
                .bind::<Text, _>(saved.indexscan)
                .bind::<Text, _>(saved.plan_cache),
        )
        .await?;
    }
    if result.is_err() {
        // What was learned about the table may be what failed (a column renamed or dropped since).
        learned::forget(&key);
    }
    match result {
        // A search without filters does not read the columns first: a failed query names them now.
        Err(SearchError::Query(e)) => Err(missing_columns(conn, plan).await.unwrap_or(SearchError::Query(e))),
        result => result,
    }
}

/// The HNSW search with what an earlier search learned ([`learned`]): when the index was a valid HNSW index
/// serving this search, its settings are sent as the `SET LOCAL`s one would write by hand (`ef_search` from `k`
/// and the remembered selectivity), and the query checks the table's identity in the same statement
/// ([`Checked`]). `None` when nothing was learned, or the identity changed (the settings are then put back
/// for the full set-up), or no row came back to carry the check: the full set-up then runs in the same
/// transaction.
async fn learned_hnsw<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    filter: &F,
    key: &learned::Key,
    known: Option<&learned::Known>,
) -> Result<Option<Found>, SearchError> {
    if plan.spec.pg_index() != PgIndex::Hnsw || !plan.index_serves() {
        return Ok(None);
    }
    // A search a partition index serves is planned with its values each time: planning this statement, with
    // its check of the table's identity, cost 0.3-0.4 ms more than the search's own query; the lighter set-up
    // then that query (`filtered_setup`) cost less.
    let Some(known) = known.filter(|k| k.mode == "hnsw" && k.identity.is_some() && !k.partition_index) else {
        return Ok(None);
    };
    let Ok(filters) = resolve_filters_if_any(plan, &known.columns) else {
        return Ok(None);
    };
    let setup = Setup::<false>::new(plan);
    let ef_search = setup.ef_search.unwrap_or_else(|| filtered_ef_search(setup.ef_base, known.selectivity));
    // Numbers only: nothing of the input is in this text.
    conn.batch_execute(&format!(
        "SET LOCAL enable_seqscan = off; SET LOCAL hnsw.ef_search = {ef_search}; \
         SET LOCAL hnsw.iterative_scan = relaxed_order"
    ))
    .await?;
    let check = Check { table: setup.table, index: setup.index, identity: known.identity.clone().unwrap_or_default() };
    match indexed(conn, plan, &filters, filter, PgIndex::Hnsw, Some(&check)).await? {
        Some(found) => {
            tracing::Span::current().record("catalog", "learned");
            tracing::Span::current().record("ef_search", ef_search);
            Ok(Some(found))
        }
        None => {
            learned::forget(key);
            conn.batch_execute("SET LOCAL enable_seqscan = on").await?;
            Ok(None)
        }
    }
}

/// The filters of `plan` resolved against remembered columns (none to resolve without filters).
fn resolve_filters_if_any(
    plan: &Plan<'_>,
    columns: &[(String, ColumnKind, String)],
) -> Result<Vec<EqFilter>, SearchError> {
    if plan.filters.is_empty() {
        Ok(Vec::new())
    } else {
        resolve_filters(plan, columns, true)
    }
}

/// The set-up of a filtered search: the columns' kinds (which type the filters' values) and the filters'
/// selectivity (which sizes `hnsw.ef_search`) come from the catalog and `pg_stats`, read by the full
/// set-up statement the first time and remembered ([`learned`]). Later searches with the same table and
/// filters send the lighter statement of unfiltered searches, with `ef_search` computed from the remembered
/// selectivity; it also returns the table's identity (see [`learned`]), and when that differs from the
/// remembered one (another database, DDL on the table, a new `ANALYZE`, another role) the full statement
/// runs after it in the same transaction, and its settings replace the lighter one's.
async fn filtered_setup<E: Exec<Db = Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    key: &learned::Key,
    known: Option<&learned::Known>,
) -> Result<(SetupRow, Vec<EqFilter>), SearchError> {
    if let Some(known) = known {
        let mut quick = Setup::<false>::new(plan);
        quick.identify = true;
        quick.ef_search = Some(quick.ef_search.unwrap_or_else(|| filtered_ef_search(quick.ef_base, known.selectivity)));
        let setup: SetupRow = first_row(conn, quick).await?;
        if setup.identity.is_some() && setup.identity == known.identity {
            // Columns renamed since give a clear error below only after the catalog is read again.
            if let Ok(filters) = resolve_filters(plan, &known.columns, true) {
                tracing::Span::current().record("catalog", "learned");
                return Ok((setup, filters));
            }
        }
    }
    let mut full = Setup::<true>::new(plan);
    full.identify = true;
    let setup: SetupRow = first_row(conn, full).await?;
    tracing::Span::current().record("catalog", "read");
    let columns = setup.columns();
    let filters = resolve_filters(plan, &columns, true)?;
    learn(key, &setup, columns);
    Ok((setup, filters))
}

/// `hnsw.ef_search` of a filtered search: the base divided by the square root of the filters' selectivity,
/// within pgvector's 1 to 1000 (the full set-up statement computes the same in SQL).
fn filtered_ef_search(ef_base: i32, selectivity: Option<f64>) -> i32 {
    let selectivity = selectivity.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(1.0);
    let ef = (f64::from(ef_base) / selectivity.sqrt()).ceil().clamp(1.0, 1000.0);
    #[allow(clippy::cast_possible_truncation)] // a whole number in 1..=1000 after the clamp: exact
    let ef = ef as i32;
    ef
}

mod learned {
    //! What searches learned about a table from the catalog, per process: the index's method and, for filtered
    //! searches, the columns' kinds and the filters' selectivity, keyed by the table's name, its index and the
    //! filters, and tied to the table's **identity** as the set-up statement reads it
    //! ([`super::SETUP_IDENTITY`]: it changes with any DDL on the table's columns, even in the transaction that
    //! reads it, with each `ANALYZE`, and with the database, role or server). A search trusts an entry only when
    //! the identity it reads in its own transaction equals the remembered one, and an entry whose search fails
    //! is forgotten: an entry can make a search slower (one more statement), never wrong. At most
    //! [`CAPACITY`] entries are kept (all are dropped when it is full).
    //!
    //! Entries are kept twice: under the connection's address as well, and as the latest for the table, index
    //! and filters. A search takes its connection's own entry first, else the latest. So connections to two
    //! databases whose tables share their names (a database per tenant, or per test) keep what each learned
    //! while they stay in place (keyed by the table alone, searching in turn, each took the other's entry,
    //! failed its identity check and read the catalog again: one statement more than learning nothing), and a
    //! connection that moves (a pool's checkout holds it inline) or is new still finds what another learned.
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex, PoisonError};

    use crate::search::{ColumnKind, Plan, Value};

    pub(super) const CAPACITY: usize = 1024;

    /// What a search is about: the table, its index, the filters.
    #[derive(Clone, PartialEq, Eq, Hash)]
    struct About {
        table: String,
        index: Option<String>,
        filters: Vec<(String, Value)>,
    }

    #[derive(Clone, PartialEq, Eq, Hash)]
    pub(super) struct Key {
        connection: usize,
        about: About,
    }

    impl Key {
        /// The key of `plan`'s search on the connection at address `connection`.
        pub(super) fn of(connection: usize, plan: &Plan<'_>) -> Self {
            let about = About {
                table: plan.spec.table().to_owned(),
                index: plan.spec.pg_index_name().map(str::to_owned),
                filters: plan.filters.to_vec(),
            };
            Self { connection, about }
        }
    }

    pub(super) struct Known {
        pub(super) identity: Option<String>,
        /// Empty when learned by an unfiltered search (it does not read them).
        pub(super) columns: Vec<(String, ColumnKind, String)>,
        pub(super) selectivity: Option<f64>,
        /// The path the set-up chose (`hnsw`, `ivfflat`, `scan`, ...).
        pub(super) mode: String,
        /// Whether a partition index serves one of the filters (`super::super::partition`).
        pub(super) partition_index: bool,
    }

    #[derive(Default)]
    struct Memory {
        by_connection: HashMap<Key, Arc<Known>>,
        latest: HashMap<About, Arc<Known>>,
    }

    static KNOWN: LazyLock<Mutex<Memory>> = LazyLock::new(|| Mutex::new(Memory::default()));

    fn memory() -> std::sync::MutexGuard<'static, Memory> {
        KNOWN.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection's own entry, else the latest any connection learned.
    pub(super) fn recall(key: &Key) -> Option<Arc<Known>> {
        let memory = memory();
        memory.by_connection.get(key).or_else(|| memory.latest.get(&key.about)).cloned()
    }

    pub(super) fn remember(key: Key, known: Known) {
        let mut memory = memory();
        let known = Arc::new(known);
        if memory.by_connection.len() >= CAPACITY && !memory.by_connection.contains_key(&key) {
            memory.by_connection.clear();
        }
        if memory.latest.len() >= CAPACITY && !memory.latest.contains_key(&key.about) {
            memory.latest.clear();
        }
        memory.latest.insert(key.about.clone(), Arc::clone(&known));
        memory.by_connection.insert(key, known);
    }

    /// Forgets the connection's entry and the latest (either may be what the search used).
    pub(super) fn forget(key: &Key) {
        let mut memory = memory();
        memory.by_connection.remove(key);
        memory.latest.remove(&key.about);
    }
}

/// The table or column of `plan` that does not exist, read from the catalog after a query failed.
async fn missing_columns<E: Exec<Db = Pg>>(conn: &mut E, plan: &Plan<'_>) -> Option<SearchError> {
    let columns = super::migrations::columns(conn, &quote(plan.spec.table())).await.ok()?;
    let columns: Vec<(String, ColumnKind, String)> =
        columns.into_iter().map(|c| (c.name, ColumnKind::Other, c.ty)).collect();
    let unfiltered = Plan { filters: &[], query: plan.query.reborrow(), ..*plan };
    resolve_filters(&unfiltered, &columns, true)
        .err()
        .or_else(|| crate::search::vector_column_type(plan.spec, &columns))
}

const READ_PLANNER: &str = "SELECT current_setting('enable_seqscan') AS seqscan, \
     current_setting('enable_indexscan') AS indexscan, current_setting('plan_cache_mode') AS plan_cache";
const RESTORE_PLANNER: &str = "SELECT set_config('enable_seqscan', $1, true) AS seqscan, \
     set_config('enable_indexscan', $2, true) AS indexscan, set_config('plan_cache_mode', $3, true) AS plan_cache";

#[derive(QueryableByName)]
struct Planner {
    #[diesel(sql_type = Text)]
    seqscan: String,
    #[diesel(sql_type = Text)]
    indexscan: String,
    #[diesel(sql_type = Text)]
    plan_cache: String,
}

/// The first row of a query node.
async fn first_row<E, Q, U>(conn: &mut E, query: Q) -> QueryResult<U>
where
    E: Exec<Db = Pg>,
    Q: QueryFragment<Pg> + QueryId + Send,
    U: QueryableByName<Pg> + Send + 'static,
{
    conn.load_rows(query).await?.into_iter().next().ok_or(diesel::result::Error::NotFound)
}

/// Remembers what the full set-up `setup` read (with `columns`, when it read them) for `key`, when it read the
/// table's identity.
fn learn(key: &learned::Key, setup: &SetupRow, columns: Vec<(String, ColumnKind, String)>) {
    if setup.identity.is_some() {
        let known = learned::Known {
            identity: setup.identity.clone(),
            columns,
            selectivity: setup.selectivity,
            mode: setup.mode.clone(),
            partition_index: setup.partition_index,
        };
        learned::remember(key.clone(), known);
    }
}

/// The search in its transaction, with what earlier searches learned about `key` (`known`, see [`learned`]).
async fn knn_in_transaction<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    filter: &F,
    key: &learned::Key,
    known: Option<&learned::Known>,
) -> Result<Found, SearchError> {
    let spec = plan.spec;
    if let Some(found) = learned_hnsw(conn, plan, filter, key, known).await? {
        return Ok(found);
    }
    let (setup, filters) = if plan.filters.is_empty() {
        let mut full = Setup::<false>::new(plan);
        full.identify = true;
        let setup: SetupRow = first_row(conn, full).await?;
        if !setup.table_exists {
            return Err(SearchError::UnknownTable { table: spec.table().to_owned(), postgres: true });
        }
        tracing::Span::current().record("catalog", "read");
        learn(key, &setup, Vec::new());
        (setup, Vec::new())
    } else {
        filtered_setup(conn, plan, key, known).await?
    };
    if let Some(ef_search) = &setup.ef_search {
        tracing::Span::current().record("ef_search", ef_search.as_str());
        if setup.partition_index {
            tracing::Span::current().record("partition_index", true);
        }
    }
    match setup.mode.as_str() {
        "hnsw" if spec.pg_index() == PgIndex::BinaryQuantized => binary(conn, plan, &filters, filter).await,
        "hnsw" => index_path(conn, plan, &filters, filter, PgIndex::Hnsw).await,
        "ivfflat" => index_path(conn, plan, &filters, filter, PgIndex::Ivfflat).await,
        "suspect" => {
            let lists = setup.lists.unwrap_or(100);
            if ivfflat_is_stale(conn, spec, lists).await? {
                tracing::warn!(
                    target: "diesel_vector::search",
                    index = spec.pg_index_name().unwrap_or_default(),
                    table = spec.table(),
                    lists,
                    "the ivfflat index has far more lists than its rows support (it was built on an empty or much \
                     smaller table) and recalls poorly: this search scans exactly; rebuild the index for the data \
                     (diesel_vector::pg::rebuild)"
                );
                conn.execute(sql(STALE_SETTINGS).bind::<Integer, _>(probes(plan, lists))).await?;
                exact(conn, plan, &filters, filter, SearchPath::StaleIvfflatExact).await
            } else {
                conn.execute(sql(IVFFLAT_SETTINGS).bind::<Integer, _>(probes(plan, lists))).await?;
                index_path(conn, plan, &filters, filter, PgIndex::Ivfflat).await
            }
        }
        _ => exact(conn, plan, &filters, filter, SearchPath::Exact).await,
    }
}

/// The settings of the ivfflat path, when the set-up could not decide it (see [`ivfflat_is_stale`]).
const IVFFLAT_SETTINGS: &str = "SELECT set_config('enable_seqscan', 'off', true) AS a, \
     set_config('ivfflat.probes', $1::text, true) AS b, set_config('ivfflat.iterative_scan', 'relaxed_order', true) AS c";
/// The settings of an exact search past a stale ivfflat index (the probes as a search would set them).
const STALE_SETTINGS: &str =
    "SELECT set_config('enable_indexscan', 'off', true) AS a, set_config('ivfflat.probes', $1::text, true) AS b";

fn probes(plan: &Plan<'_>, lists: i32) -> i32 {
    i32::try_from(plan.probes.unwrap_or_else(|| super::recommended_probes(lists)).max(1)).unwrap_or(i32::MAX)
}

/// Whether an ivfflat index of `lists` lists has far more lists than the table's rows support (pgvector
/// recommends `rows / 1000`): built on an empty or much smaller table, it recalls poorly. The set-up asks
/// only when the statistics say so, and they lag behind a bulk load (the row estimate is taken when the
/// index is built, the live-row count some time after a commit): the rows are counted, up to the number
/// that would make the lists fit.
async fn ivfflat_is_stale<E: Exec<Db = Pg>>(conn: &mut E, spec: &IndexSpec, lists: i32) -> Result<bool, SearchError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let enough = i64::from(lists).saturating_mul(500).saturating_add(1);
    let counted: Count = first(
        conn,
        sql(format!(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {table} t WHERE t.{column} IS NOT NULL LIMIT $1) s",
            table = quote(spec.table()),
            column = quote(spec.column()),
        ))
        .bind::<BigInt, _>(enough),
    )
    .await?;
    Ok(counted.n > 0 && lists > 2 * super::recommended_lists(counted.n))
}

/// [`indexed`] after the set-up chose the index.
async fn index_path<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
    method: PgIndex,
) -> Result<Found, SearchError> {
    match indexed(conn, plan, filters, filter, method, None).await? {
        Some(found) => Ok(found),
        // Without a check nothing is found stale; answered exactly all the same.
        None => exact(conn, plan, filters, filter, SearchPath::Exact).await,
    }
}

/// The index path: candidates in the index's order, re-ranked exactly when the index casts the column,
/// and exact again when they cannot be trusted. With `check`, the candidates' query also checks what the
/// search learned ([`Checked`]): `None` when it is stale, or no row came back to say.
async fn indexed<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
    method: PgIndex,
    check: Option<&Check>,
) -> Result<Option<Found>, SearchError> {
    let spec = plan.spec;
    let cast = spec.pg_cast().map(|element| (element, spec.dims()));
    // halfvec distances differ from the full-precision ones in the third or fourth digit: fetch more, so
    // that the exact ranking has room.
    let limit = if cast.is_some() { plan.limit.saturating_mul(2).saturating_add(10) } else { plan.limit };
    let knn = Knn::new(plan, &plan.query, cast, filters, filter)
        .ok_or(SearchError::MetricForType { metric: plan.metric, element: spec.element() })?
        .order(KnnOrder::Distance)
        .limit(limit);
    let rows: Vec<Row> = match check {
        None => conn.load_rows(knn).await?,
        Some(check) => {
            let rows: Vec<CheckedRow> = conn.load_rows(Checked { check, knn }).await?;
            if !rows.first().is_some_and(|r| r.fresh) {
                return Ok(None);
            }
            rows.into_iter().map(|r| Row { i: r.i, d: r.d }).collect()
        }
    };
    let returned = rows.len();
    let mut hits = hits_of(rows);
    let farthest = hits.iter().map(|h| h.distance).filter(|d| d.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let mut boundary = farthest;
    if cast.is_some() {
        let ids = crate::search::ids(&hits);
        hits = exact_rows(conn, plan, filters, filter, &ids).await?;
        // Rows beyond the candidates are at least this far by their halfvec distance, which may be
        // nearer than the exact one by the rounding of both vectors to 16 bits.
        boundary = farthest - 4e-3 * farthest.abs().max(1.0);
    }
    sort(&mut hits);
    let enough = if returned < limit {
        hits.iter().filter(|h| h.distance.is_finite()).count() >= plan.k
    } else {
        trusted(&hits, plan.k, Some(boundary))
    };
    if !enough {
        conn.batch_execute("SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off").await?;
        let path = if method == PgIndex::Hnsw { SearchPath::HnswThenExact } else { SearchPath::IvfflatThenExact };
        return exact(conn, plan, filters, filter, path).await.map(Some);
    }
    let path = if method == PgIndex::Hnsw { SearchPath::Hnsw } else { SearchPath::Ivfflat };
    Ok(Some(Found { hits, path }))
}

/// What the learned HNSW path checks ([`learned_hnsw`]): the table and index as the set-up names them, and the
/// identity remembered.
struct Check {
    table: String,
    index: Option<String>,
    identity: String,
}

/// `WITH p AS (SELECT to_regclass($t) AS t, to_regclass($i) AS i, true AS identify), id AS MATERIALIZED (<the
/// identity>), q AS (<knn>) SELECT q.i, q.d, id.identity IS NOT DISTINCT FROM $identity AS fresh FROM q CROSS
/// JOIN id`: the candidates, and whether the table and index are what the search learned, in one statement
/// (the identity is computed once).
struct Checked<'a, F> {
    check: &'a Check,
    knn: Knn<'a, F>,
}

impl<F: SearchFilter<Pg>> QueryFragment<Pg> for Checked<'_, F> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH p AS (SELECT to_regclass(");
        out.push_bind_param::<Text, String>(&self.check.table)?;
        out.push_sql(") AS t, to_regclass(");
        out.push_bind_param::<Nullable<Text>, Option<String>>(&self.check.index)?;
        out.push_sql(") AS i, true AS identify), ");
        out.push_sql(SETUP_IDENTITY);
        out.push_sql("q AS (");
        self.knn.walk_ast(out.reborrow())?;
        out.push_sql(") SELECT q.i, q.d, id.identity IS NOT DISTINCT FROM ");
        out.push_bind_param::<Text, String>(&self.check.identity)?;
        out.push_sql(" AS fresh FROM q CROSS JOIN id");
        Ok(())
    }
}

impl<F> QueryId for Checked<'_, F> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[derive(QueryableByName)]
struct CheckedRow {
    #[diesel(sql_type = BigInt)]
    i: i64,
    #[diesel(sql_type = Nullable<Double>)]
    d: Option<f64>,
    #[diesel(sql_type = Bool)]
    fresh: bool,
}

/// The binary-quantized path: `k` × the rerank factor candidates by the Hamming distance of their signs
/// (the HNSW index on `binary_quantize(column)::bit(N)`), ranked by their exact distance in the same
/// statement; exact again when fewer than `k` come back (filters the index's scan could not satisfy).
async fn binary<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
) -> Result<Found, SearchError> {
    let spec = plan.spec;
    let PlanVector::Vector(query) = &plan.query else {
        return exact(conn, plan, filters, filter, SearchPath::Exact).await;
    };
    let knn = Knn::new(plan, &plan.query, None, filters, filter)
        .ok_or(SearchError::MetricForType { metric: plan.metric, element: spec.element() })?
        .order(KnnOrder::None);
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let reranked = BinaryKnn {
        knn,
        table: spec.table(),
        column: spec.column(),
        query: query.as_ref(),
        bits: Element::Bit.pg_type(spec.dims()),
        candidates: count(binary_candidates(plan)),
        limit: count(plan.limit),
    };
    let rows: Vec<Row> = conn.load_rows(reranked).await?;
    let hits = hits_of(rows);
    if hits.iter().filter(|h| h.distance.is_finite()).count() < plan.k {
        conn.batch_execute("SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off").await?;
        return exact(conn, plan, filters, filter, SearchPath::BinaryQuantizedThenExact).await;
    }
    Ok(Found { hits, path: SearchPath::BinaryQuantized })
}

/// The candidates a binary-quantized search takes from its index.
fn binary_candidates(plan: &Plan<'_>) -> usize {
    plan.k.saturating_mul(plan.rerank as usize).max(plan.limit)
}

/// `SELECT s.i, s.d FROM (<knn> ORDER BY (binary_quantize(t.v)::bit(N)) <~> (binary_quantize($q)::bit(N))
/// LIMIT candidates) s ORDER BY s.d, s.i LIMIT limit`: the index's candidates, re-ranked.
struct BinaryKnn<'a, F> {
    knn: Knn<'a, F>,
    table: &'a str,
    column: &'a str,
    query: &'a crate::Vector,
    /// `bit(N)`, from the spec's dimensions.
    bits: String,
    candidates: i64,
    limit: i64,
}

impl<F: SearchFilter<Pg>> QueryFragment<Pg> for BinaryKnn<'_, F> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT s.i, s.d FROM (");
        self.knn.walk_ast(out.reborrow())?;
        out.push_sql(" ORDER BY (binary_quantize(");
        push_column(&mut out, self.table, self.column)?;
        out.push_sql(&format!(")::{}) <~> (binary_quantize(", self.bits));
        out.push_bind_param::<Vector, crate::Vector>(self.query)?;
        // The limits are the crate's numbers, in the text so that the plan is cached (see `Knn`).
        out.push_sql(&format!(")::{}) LIMIT {}) s ORDER BY s.d, s.i LIMIT {}", self.bits, self.candidates, self.limit));
        Ok(())
    }
}

impl<F> QueryId for BinaryKnn<'_, F> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F> Query for BinaryKnn<'_, F> {
    type SqlType = (BigInt, Nullable<diesel::sql_types::Double>);
}

/// The exact distances of the rows `ids` that pass every filter, on the full-precision column.
async fn exact_rows<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
    ids: &[i64],
) -> Result<Vec<Hit>, SearchError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let knn = Knn::new(plan, &plan.query, None, filters, filter)
        .ok_or(SearchError::MetricForType { metric: plan.metric, element: plan.spec.element() })?
        .only_ids(ids);
    Ok(hits_of(conn.load_rows(knn).await?))
}

/// The sequential scan (the set-up turned index scans off): `plan.limit` nearest, ties by id in SQL.
async fn exact<E: Exec<Db = Pg>, F: SearchFilter<Pg>>(
    conn: &mut E,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
    path: SearchPath,
) -> Result<Found, SearchError> {
    let knn = || {
        Knn::new(plan, &plan.query, None, filters, filter)
            .ok_or(SearchError::MetricForType { metric: plan.metric, element: plan.spec.element() })
            .map(|k| k.order(KnnOrder::DistanceThenId).limit(plan.limit))
    };
    let rows: Vec<Row> = conn.load_rows(knn()?).await?;
    let full = rows.len() >= plan.limit;
    let mut hits = hits_of(rows);
    if full && hits.iter().filter(|h| h.distance.is_finite()).count() < plan.k {
        // Distances that are not numbers (NaN sorts last, -Infinity first) filled the limit: ask again
        // for finite distances only.
        hits = hits_of(conn.load_rows(knn()?.finite_only(true)).await?);
    }
    Ok(Found { hits, path })
}

/// A row of [`Knn`]: the id and the distance (NULL for a NULL or zero vector under cosine).
#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    i: i64,
    #[diesel(sql_type = Nullable<Double>)]
    d: Option<f64>,
}

fn hits_of(rows: Vec<Row>) -> Vec<Hit> {
    rows.into_iter().filter_map(|r| r.d.map(|distance| Hit { id: r.i, distance })).collect()
}

impl<ST> QueryFragment<Pg> for VectorColumn<'_, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        match self.cast {
            Some((element, dims)) => {
                out.push_sql("(");
                push_column(&mut out, self.table, self.column)?;
                // The type and its dimensions come from the spec, never from input.
                out.push_sql(&format!(")::{}", element.pg_type(dims)));
                Ok(())
            }
            None => push_column(&mut out, self.table, self.column),
        }
    }
}

impl<V> QueryFragment<Pg> for QueryVector<'_, V>
where
    V: SearchValue + ToSql<V::SqlType, Pg>,
    Pg: diesel::sql_types::HasSqlType<V::SqlType>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<V::SqlType, V>(self.vector)?;
        if let Some((element, dims)) = self.cast {
            out.push_sql(&format!("::{}", element.pg_type(dims)));
        }
        Ok(())
    }
}

/// PostgreSQL's parts of [`Knn`]: a NaN distance (a zero vector under cosine) sorts after every number; a
/// filter on a column of another type than text, integer or bool compares its text form; ids as an array.
impl KnnDialect for Pg {
    const FINITE: &'static str = "s.d > '-Infinity' AND s.d < 'Infinity'";
    const NULLS_LAST: &'static str = "";

    fn push_stored_shape<'b, F>(_: &'b Knn<'_, F>, _: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        Ok(())
    }

    fn push_filter_column<'b>(out: &mut AstPass<'_, 'b, Pg>, table: &'b str, f: &'b EqFilter) -> QueryResult<()> {
        if f.kind == ColumnKind::Other && f.value != FilterValue::Null {
            out.push_sql("CAST(");
            push_column(out, table, &f.column)?;
            out.push_sql(" AS TEXT)");
            Ok(())
        } else {
            push_column(out, table, &f.column)
        }
    }

    fn push_bool_eq<'b>(out: &mut AstPass<'_, 'b, Pg>, value: &'b bool) -> QueryResult<()> {
        out.push_sql(" = ");
        out.push_bind_param::<Bool, bool>(value)
    }

    fn push_ids<'b, F>(knn: &'b Knn<'_, F>, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if let Some(ids) = &knn.ids {
            out.push_sql(" AND ");
            push_column(out, knn.table, knn.id)?;
            out.push_sql(" = ANY(");
            out.push_bind_param::<Array<BigInt>, &[i64]>(ids)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

/// The set-up statement's parameters (see the module's docs); its text is constant, so Diesel prepares
/// it once per connection (one statement with filters, one without).
struct Setup<const FILTERED: bool> {
    /// The table, quoted (`to_regclass` parses its argument as a possibly qualified name).
    table: String,
    /// The index, quoted; `None` when the spec has none.
    index: Option<String>,
    filter_columns: Vec<String>,
    /// The filters' values as text, as PostgreSQL prints them (for `pg_stats`); NULL for NULL.
    filter_values: Vec<Option<String>>,
    /// Per filter, the name of the partition index an HNSW index may have for it
    /// ([`super::partition_index_name`]): a filter such an index serves does not widen `ef_search`.
    partition_indexes: Vec<Option<String>>,
    ef_base: i32,
    ef_search: Option<i32>,
    probes: Option<i32>,
    use_index: bool,
    exact: bool,
    /// Whether to read the table's identity (for [`learned`]).
    identify: bool,
}

impl<const FILTERED: bool> Setup<FILTERED> {
    fn new(plan: &Plan<'_>) -> Self {
        let spec: &IndexSpec = plan.spec;
        let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            table: quote(spec.table()),
            index: spec.pg_index_name().map(quote),
            filter_columns: plan.filters.iter().map(|(c, _)| c.clone()).collect(),
            // Text holding a NUL cannot be sent (the search refuses it once the columns are read): its
            // selectivity is read as NULL's.
            filter_values: plan
                .filters
                .iter()
                .map(|(_, v)| crate::index::partition::value_text(v).filter(|t| !t.contains('\0')))
                .collect(),
            partition_indexes: plan
                .filters
                .iter()
                .map(|(c, v)| (spec.pg_index() == PgIndex::Hnsw).then(|| super::partition_index_name(spec, c, v))?)
                .collect(),
            // A binary-quantized index gives `k` x the rerank factor candidates: the graph keeps that many
            // (more costs time without finding better candidates by the signs' coarse distance).
            ef_base: clamp(if spec.pg_index() == PgIndex::BinaryQuantized {
                u32::try_from(binary_candidates(plan)).unwrap_or(u32::MAX).clamp(40, 1000)
            } else {
                default_ef_search(plan.k)
            }),
            ef_search: plan.ef_search.map(clamp),
            probes: plan.probes.map(|p| clamp(p.max(1))),
            use_index: plan.index_serves() && spec.pg_index() != PgIndex::None,
            exact: plan.strategy == crate::search::Strategy::Exact,
            identify: false,
        }
    }
}

/// The start of the set-up's SQL, around its eleven parameters (in this order: table, index, filter columns,
/// filter values, the filters' partition index names, base ef_search, explicit ef_search, explicit probes,
/// whether the index may serve, exact, whether to read the identity); [`SETUP_IDENTITY`], then
/// [`SETUP_FILTERED`] or [`SETUP_PLAIN`] follow.
const SETUP_PARAMETERS: [&str; 12] = [
    "WITH p AS (SELECT to_regclass(",
    ") AS t, to_regclass(",
    ") AS i, ",
    "::text[] AS fcols, ",
    "::text[] AS fvals, ",
    "::text[] AS pnames, ",
    "::int4 AS ef_base, ",
    "::int4 AS ef_fixed, ",
    "::int4 AS probes, ",
    "::bool AS use_index, ",
    "::bool AS exact, ",
    "::bool AS identify), ",
];

/// The table's identity for [`learned`], when asked: its oid, the version of its `pg_class` row and of its
/// columns' `pg_attribute` rows (the transaction that wrote each and where: DDL in the same transaction
/// writes a new version elsewhere), its `ANALYZE` count, the same of its index's `pg_class` and `pg_index`
/// rows (a rebuild, another method under the same name, validity), the server's start time, the database and
/// the role. Computed once per statement (`MATERIALIZED`), also in [`Checked`].
const SETUP_IDENTITY: &str = "\
     id AS MATERIALIZED (SELECT CASE WHEN p.identify THEN (SELECT concat_ws(':', tc.oid, tc.xmin, tc.ctid, \
              pg_stat_get_analyze_count(tc.oid) + pg_stat_get_autoanalyze_count(tc.oid), \
              (SELECT string_agg(a.xmin || '@' || a.ctid, ',' ORDER BY a.attnum) FROM pg_attribute a \
                  WHERE a.attrelid = tc.oid AND a.attnum > 0), \
              (SELECT concat_ws('@', ic.oid, ic.xmin, ic.ctid, ix.xmin, ix.ctid) FROM pg_class ic \
                  JOIN pg_index ix ON ix.indexrelid = ic.oid WHERE ic.oid = p.i AND ix.indrelid = tc.oid), \
              (SELECT string_agg(concat_ws('@', ox.indexrelid, ox.xmin, ox.ctid), ',' ORDER BY ox.indexrelid) \
                  FROM pg_index ox WHERE ox.indrelid = tc.oid), \
              pg_postmaster_start_time(), current_database(), current_user) \
           FROM pg_class tc WHERE tc.oid = p.t) END AS identity FROM p), ";

/// The set-up with filters: the columns (their types type the filters' values) and the filters'
/// selectivity from `pg_stats`.
const SETUP_FILTERED: &str = concat!(
    "\
     c AS (SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}') AS names, \
              coalesce(array_agg(",
    column_kind_sql!(),
    " ORDER BY a.attnum), '{}') AS kinds, \
              coalesce(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum), '{}') AS types \
           FROM p JOIN pg_attribute a ON a.attrelid = p.t ",
    column_base_type_sql!(),
    " WHERE a.attnum > 0 AND NOT a.attisdropped), \
     x AS (SELECT am.amname::text AS method, ix.indisvalid AS valid, \
              CASE WHEN am.amname = 'ivfflat' THEN coalesce((SELECT o.option_value::int \
                  FROM pg_options_to_table(ic.reloptions) o WHERE o.option_name = 'lists'), 100) END AS lists \
           FROM p JOIN pg_index ix ON ix.indexrelid = p.i AND ix.indrelid = p.t \
           JOIN pg_class ic ON ic.oid = p.i JOIN pg_am am ON am.oid = ic.relam), \
     r AS (SELECT greatest(tc.reltuples::float8, pg_stat_get_live_tuples(p.t)::float8, 0) AS n_rows, \
              tc.relname::text AS relname, ns.nspname::text AS nspname \
           FROM p JOIN pg_class tc ON tc.oid = p.t JOIN pg_namespace ns ON ns.oid = tc.relnamespace), \
     s AS (SELECT exp(sum(ln(greatest(least(coalesce(f.freq, 0.1), 1.0), 1e-9)))) AS sel, \
              coalesce(bool_or(f.covered), false) AS covered FROM ( \
              SELECT v.covered, CASE WHEN v.covered THEN 1.0::float8 ELSE (SELECT CASE \
                  WHEN w.val IS NULL THEN st.null_frac::float8 \
                  WHEN array_position(st.most_common_vals::text::text[], w.val) IS NOT NULL \
                      THEN st.most_common_freqs[array_position(st.most_common_vals::text::text[], w.val)]::float8 \
                  ELSE greatest(1 - st.null_frac - coalesce((SELECT sum(m) FROM unnest(st.most_common_freqs) m), 0), 0)::float8 \
                      / greatest(CASE WHEN st.n_distinct < 0 THEN -st.n_distinct * r.n_rows ELSE st.n_distinct END \
                          - coalesce(cardinality(st.most_common_freqs), 0), 1) END \
                  FROM pg_stats st WHERE st.schemaname = r.nspname AND st.tablename = r.relname AND st.attname = w.col) END \
                  AS freq \
              FROM p CROSS JOIN r CROSS JOIN unnest(p.fcols, p.fvals, p.pnames) AS w(col, val, pname) \
              CROSS JOIN LATERAL (SELECT ",
    partition_index_ready_sql!("w.pname"),
    " AS covered) v) f), \
     m AS (SELECT CASE \
              WHEN p.exact THEN 'exact' \
              WHEN NOT p.use_index OR x.method IS NULL OR NOT x.valid OR x.method NOT IN ('hnsw', 'ivfflat') THEN 'scan' \
              WHEN x.method = 'ivfflat' AND x.lists > 2 * greatest(CASE WHEN coalesce(r.n_rows, 0) <= 1000000 \
                  THEN floor(coalesce(r.n_rows, 0) / 1000) ELSE floor(sqrt(r.n_rows)) END, 1) THEN 'suspect' \
              ELSE x.method END AS mode \
           FROM p LEFT JOIN x ON true LEFT JOIN r ON true) \
     SELECT p.t IS NOT NULL AS table_exists, c.names, c.kinds, c.types, m.mode, x.lists, \
         coalesce(r.n_rows, 0) AS n_rows, s.sel AS selectivity, s.covered AS partition_index, id.identity, \
         CASE WHEN m.mode IN ('exact', 'scan') THEN set_config('enable_indexscan', 'off', true) END AS indexscan, \
         CASE WHEN m.mode IN ('hnsw', 'ivfflat') THEN set_config('enable_seqscan', 'off', true) END AS seqscan, \
         CASE WHEN m.mode = 'hnsw' THEN set_config('hnsw.ef_search', least(1000.0, greatest(1.0, \
             coalesce(p.ef_fixed::float8, ceil(p.ef_base / sqrt(coalesce(s.sel, 1.0))))))::int::text, true) END AS ef_search, \
         CASE WHEN m.mode = 'hnsw' THEN set_config('hnsw.iterative_scan', 'relaxed_order', true) END AS hnsw_scan, \
         CASE WHEN m.mode = 'hnsw' AND s.covered THEN set_config('plan_cache_mode', 'force_custom_plan', true) END \
             AS plan_cache, \
         CASE WHEN m.mode = 'ivfflat' THEN set_config('ivfflat.probes', coalesce(p.probes, \
             greatest(ceil(sqrt(x.lists))::int, least(x.lists, 10)))::text, true) END AS probes, \
         CASE WHEN m.mode = 'ivfflat' THEN set_config('ivfflat.iterative_scan', 'relaxed_order', true) END \
             AS ivfflat_scan \
     FROM p CROSS JOIN id CROSS JOIN c CROSS JOIN m CROSS JOIN s LEFT JOIN x ON true LEFT JOIN r ON true"
);

/// The set-up without filters: no columns (a missing one fails the query, and is then named from the
/// catalog) and no statistics: about half the time of [`SETUP_FILTERED`]. Filtered searches that learned
/// the columns and selectivity send it too, and it sets `plan_cache_mode` when a partition index serves one
/// of their filters.
const SETUP_PLAIN: &str = concat!(
    "\
     x AS (SELECT am.amname::text AS method, ix.indisvalid AS valid, \
              CASE WHEN am.amname = 'ivfflat' THEN coalesce((SELECT o.option_value::int \
                  FROM pg_options_to_table(ic.reloptions) o WHERE o.option_name = 'lists'), 100) END AS lists \
           FROM p JOIN pg_index ix ON ix.indexrelid = p.i AND ix.indrelid = p.t \
           JOIN pg_class ic ON ic.oid = p.i JOIN pg_am am ON am.oid = ic.relam), \
     r AS (SELECT greatest(tc.reltuples::float8, pg_stat_get_live_tuples(p.t)::float8, 0) AS n_rows \
           FROM p JOIN pg_class tc ON tc.oid = p.t), \
     pc AS (SELECT EXISTS (SELECT 1 FROM unnest(p.pnames) AS n(name) WHERE ",
    partition_index_ready_sql!("n.name"),
    ") AS covered FROM p), \
     m AS (SELECT CASE \
              WHEN p.exact THEN 'exact' \
              WHEN NOT p.use_index OR x.method IS NULL OR NOT x.valid OR x.method NOT IN ('hnsw', 'ivfflat') THEN 'scan' \
              WHEN x.method = 'ivfflat' AND x.lists > 2 * greatest(CASE WHEN coalesce(r.n_rows, 0) <= 1000000 \
                  THEN floor(coalesce(r.n_rows, 0) / 1000) ELSE floor(sqrt(r.n_rows)) END, 1) THEN 'suspect' \
              ELSE x.method END AS mode \
           FROM p LEFT JOIN x ON true LEFT JOIN r ON true) \
     SELECT p.t IS NOT NULL AS table_exists, '{}'::text[] AS names, '{}'::text[] AS kinds, '{}'::text[] AS types, \
         m.mode, x.lists, NULL::float8 AS selectivity, pc.covered AS partition_index, id.identity, \
         CASE WHEN m.mode IN ('exact', 'scan') THEN set_config('enable_indexscan', 'off', true) END AS indexscan, \
         CASE WHEN m.mode IN ('hnsw', 'ivfflat') THEN set_config('enable_seqscan', 'off', true) END AS seqscan, \
         CASE WHEN m.mode = 'hnsw' THEN set_config('hnsw.ef_search', least(1000, greatest(1, \
             coalesce(p.ef_fixed, p.ef_base)))::text, true) END AS ef_search, \
         CASE WHEN m.mode = 'hnsw' THEN set_config('hnsw.iterative_scan', 'relaxed_order', true) END AS hnsw_scan, \
         CASE WHEN m.mode = 'hnsw' AND pc.covered THEN set_config('plan_cache_mode', 'force_custom_plan', true) END \
             AS plan_cache, \
         CASE WHEN m.mode = 'ivfflat' THEN set_config('ivfflat.probes', coalesce(p.probes, \
             greatest(ceil(sqrt(x.lists))::int, least(x.lists, 10)))::text, true) END AS probes, \
         CASE WHEN m.mode = 'ivfflat' THEN set_config('ivfflat.iterative_scan', 'relaxed_order', true) END \
             AS ivfflat_scan \
     FROM p CROSS JOIN id CROSS JOIN m CROSS JOIN pc LEFT JOIN x ON true"
);

impl<const FILTERED: bool> QueryFragment<Pg> for Setup<FILTERED> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let [p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11] = SETUP_PARAMETERS;
        out.push_sql(p0);
        out.push_bind_param::<Text, String>(&self.table)?;
        out.push_sql(p1);
        out.push_bind_param::<Nullable<Text>, Option<String>>(&self.index)?;
        out.push_sql(p2);
        out.push_bind_param::<Array<Text>, Vec<String>>(&self.filter_columns)?;
        out.push_sql(p3);
        out.push_bind_param::<Array<Nullable<Text>>, Vec<Option<String>>>(&self.filter_values)?;
        out.push_sql(p4);
        out.push_bind_param::<Array<Nullable<Text>>, Vec<Option<String>>>(&self.partition_indexes)?;
        out.push_sql(p5);
        out.push_bind_param::<Integer, i32>(&self.ef_base)?;
        out.push_sql(p6);
        out.push_bind_param::<Nullable<Integer>, Option<i32>>(&self.ef_search)?;
        out.push_sql(p7);
        out.push_bind_param::<Nullable<Integer>, Option<i32>>(&self.probes)?;
        out.push_sql(p8);
        out.push_bind_param::<Bool, bool>(&self.use_index)?;
        out.push_sql(p9);
        out.push_bind_param::<Bool, bool>(&self.exact)?;
        out.push_sql(p10);
        out.push_bind_param::<Bool, bool>(&self.identify)?;
        out.push_sql(p11);
        out.push_sql(SETUP_IDENTITY);
        out.push_sql(if FILTERED { SETUP_FILTERED } else { SETUP_PLAIN });
        Ok(())
    }
}

impl<const FILTERED: bool> QueryId for Setup<FILTERED> {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const FILTERED: bool> Query for Setup<FILTERED> {
    type SqlType = Untyped;
}

#[derive(QueryableByName)]
struct SetupRow {
    #[diesel(sql_type = Bool)]
    table_exists: bool,
    #[diesel(sql_type = Array<Text>)]
    names: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    kinds: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    types: Vec<String>,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Nullable<Integer>)]
    lists: Option<i32>,
    #[diesel(sql_type = Nullable<Double>)]
    selectivity: Option<f64>,
    /// Whether a partition index serves one of the filters.
    #[diesel(sql_type = Bool)]
    partition_index: bool,
    #[diesel(sql_type = Nullable<Text>)]
    identity: Option<String>,
    /// The `hnsw.ef_search` set, on the HNSW path.
    #[diesel(sql_type = Nullable<Text>)]
    ef_search: Option<String>,
}

impl SetupRow {
    /// The table's columns as the full set-up read them: `(name, kind, type)`; none when the table does not
    /// exist.
    fn columns(&self) -> Vec<(String, ColumnKind, String)> {
        if !self.table_exists {
            return Vec::new();
        }
        (self.names.iter().zip(&self.kinds).zip(&self.types))
            .map(|((n, k), t)| (n.clone(), super::column_kind(k), t.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ef_search_grows_with_k_within_pgvectors_range() {
        assert_eq!(default_ef_search(1), 200);
        assert_eq!(default_ef_search(10), 200);
        assert_eq!(default_ef_search(20), 400);
        assert_eq!(default_ef_search(5000), 1000);
    }
}
