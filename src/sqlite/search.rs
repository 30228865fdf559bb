//! Nearest-neighbour search on SQLite, over any registered index.
//!
//! A search goes through three steps:
//!
//! 1. **Check**: the table's columns are read (`pragma_table_info`) and the filters resolved against
//!    them, so that a missing column is an error naming the table's columns (SQLite would otherwise read a
//!    double-quoted name that matches no column as a string).
//! 2. **Candidates** from the index's structure ([`candidates`]): the crate's quantized codes
//!    ([`codes_candidates`]: partition filters filter the Hamming scan, other filters become its allow list,
//!    candidates are reranked until the error bound proves the result or the estimated recall reaches its
//!    target; a search that reaches its rerank cap, or runs out of candidates, before any of its stop rules
//!    holds is answered by the exact scan instead), else sqlite-vec's vec0 table. Either is brought up to date first without waiting for the
//!    write lock. When another connection holds it (or the database is read-only), the structure answers
//!    as it stands and the rows it does not hold as they are (queued, or appended above its last indexed
//!    id) are added as candidates (vec0 is asked for as many more rows as that; any stale entry of such a
//!    row is dropped).
//! 3. **Exact distances** of the candidates from the table itself ([`exact_rows`]), with every filter
//!    applied again, sorted by distance then id. Every candidate set (the codes', the queued rows, vec0's)
//!    gets them from the kernel the exact scan uses, so a sort never mixes two kernels' last bits. If vec0's cannot be trusted to hold the true first `k`
//!    (fewer than `k` while vec0 filled its limit, or a tie at the limit), an exact scan answers.
//!
//! Without a usable structure (an index that keeps none, codes not trained yet, another metric than the
//! index's, vec0 without sqlite-vec or beyond its `k`) the search is an exact scan ([`exact`]) of the values
//! where SQLite holds them (`super::exact`): the crate's SIMD kernel for `vector` and `halfvec` columns,
//! the crate's SQL functions' own kernels for `bit` and `sparsevec` columns.
//! Stored values that are not vectors of the index's dimensions are skipped by every path.

use std::borrow::Cow;
use std::collections::HashSet;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

use super::exact::{ScanQuery, Stored};
use super::index::{state, vec0_partition_column, IndexError};
use super::json_ids;
use crate::codec::SqliteBlobShape;
use crate::index::{Element, IndexSpec};
use crate::migrations::shape::Catalog;
use crate::search::query::{push_column, push_eq_filters, KnnDialect, QueryVector, SearchValue, VectorColumn};
use crate::search::{
    resolve_filters, sort, trusted, ColumnKind, EqFilter, Found, Hit, Knn, KnnOrder, Neighbor, Plan, PlanVector,
    Search, SearchError, SearchFilter, SearchPath, SearchTarget,
};
use crate::sql_types::Vector;
use diesel::serialize::ToSql;

/// sqlite-vec's largest `k`.
const VEC0_MAX_K: usize = 4096;

impl SearchTarget for SqliteConnection {
    const BACKEND: &'static str = "sqlite";

    fn knn<F: SearchFilter<Sqlite>>(&mut self, plan: &Plan<'_>, filter: &F) -> Result<Found, SearchError> {
        let columns: Vec<(String, ColumnKind, String)> = self
            .columns(plan.spec.table())?
            .into_iter()
            .map(|c| {
                let kind = kind(&c.ty);
                (c.name, kind, if c.ty.is_empty() { "untyped".to_owned() } else { c.ty })
            })
            .collect();
        let filters = resolve_filters(plan, &columns, false)?;
        let structures = structures_usable(self, plan.spec)?;
        if structures {
            if let Some(found) = candidates(self, plan, &filters, filter)? {
                return Ok(found);
            }
        }
        exact(self, plan, &filters, filter, SearchPath::ExactScan, structures)
    }

    fn search_fragments(&mut self, search: &Search<'_>) -> Result<Vec<Neighbor>, SearchError> {
        crate::search::seed::search_fragments!(self, search, crate::search::execute, diesel::RunQueryDsl::load)
    }
}

/// The storage-class kind SQLite compares a column with, from its declared type (SQLite's affinity
/// rules: `INT` anywhere is integer; `CHAR`, `CLOB`, `TEXT` text; booleans are stored as integers).
fn kind(declared: &str) -> ColumnKind {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") {
        ColumnKind::Integer
    } else if upper.contains("BOOL") {
        ColumnKind::Bool
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t)) {
        ColumnKind::Text
    } else {
        ColumnKind::Other
    }
}

fn exact_error(e: super::exact::ExactError) -> SearchError {
    match e {
        super::exact::ExactError::Query(e) => SearchError::Query(e),
        super::exact::ExactError::Ann(e) => SearchError::from(e),
    }
}

/// The query of a `vector` or `halfvec` column, as the crate's engine reads it (`f16` converted exactly),
/// with how the column stores its vectors; `None` for the other types.
fn f32_query<'p>(plan: &'p Plan<'_>) -> Option<(Cow<'p, [f32]>, Stored)> {
    match &plan.query {
        crate::search::element::PlanVector::Vector(v) => Some((Cow::Borrowed(v.as_slice()), Stored::F32)),
        crate::search::element::PlanVector::HalfVector(v) => Some((Cow::Owned(v.to_f32_vec()), Stored::F16)),
        _ => None,
    }
}

/// The shape of a valid stored value: other values are skipped.
fn blob_shape(spec: &IndexSpec) -> Option<SqliteBlobShape> {
    spec.element().sqlite_blob_shape(spec.dims() as usize).ok()
}

/// Whether the search may read the index's structures (codes, vec0, the copy of the vectors): they were
/// built for the registry's declaration of the index, and another one (a metric or partition columns changed
/// in the code and not migrated) would read them wrongly, or sync them so. Such a search scans the table,
/// as PostgreSQL answers it by its SQL. Checked once per search, before any structure is read or synced.
///
/// A declaration of another type or other dimensions than the registered one is [`SearchError::ColumnType`]:
/// the column's values are the registered type's (its migration's checks let no other in), and a scan by
/// the declared one would skip every row.
fn structures_usable(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<bool, SearchError> {
    let registered = super::index::registered(conn, spec)?;
    if let Some(Ok(r)) = &registered {
        let same_column = r.table() == spec.table() && r.column() == spec.column();
        if same_column && (r.element() != spec.element() || r.dims() != spec.dims()) {
            return Err(SearchError::ColumnType {
                table: spec.table().to_owned(),
                column: spec.column().to_owned(),
                column_type: r.element().pg_type(r.dims()),
                declared: spec.element().pg_type(spec.dims()),
                index: spec.name().to_owned(),
            });
        }
    }
    if !spec.sqlite_keeps_a_structure() {
        return Ok(false);
    }
    let differences = super::index::differences(spec, registered.as_ref());
    if !differences.is_empty() {
        tracing::warn!(
            target: "diesel_vector::search",
            index = spec.name(),
            differences = differences.join(", "),
            "the index is declared otherwise than registered: searching exactly"
        );
    }
    Ok(differences.is_empty())
}

/// Step 2 and 3 through the index's structure, or `None` when it cannot serve this search.
fn candidates<F: SearchFilter<Sqlite>>(
    conn: &mut SqliteConnection,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
) -> Result<Option<Found>, SearchError> {
    let spec = plan.spec;
    if !plan.index_serves() {
        return Ok(None);
    }
    if spec.sqlite_keeps_codes() {
        if let Some(found) = codes_candidates(conn, plan, filters, filter)? {
            return Ok(Some(found));
        }
    }
    // vec0 holds `vector` columns as float[N] and `bit` columns as bit[N].
    if !spec.sqlite_index().vec0 || !matches!(spec.element(), Element::Vector | Element::Bit) {
        return Ok(None);
    }
    if super::sqlite_vec_version(conn)?.is_none() {
        return Ok(None);
    }
    let vec0_exists = conn.exists(spec.vec0_table())?;
    if freshen(conn, spec, !vec0_exists)?.is_none() {
        return Ok(None);
    }
    // What vec0 answers, read in one snapshot with the rows changed since it was synced (computed exactly
    // beside it) and the candidates' rows; `Err(())` when it may have cut the top k, for the exact scan.
    let in_snapshot = |conn: &mut SqliteConnection| -> Result<Option<Result<Found, ()>>, SearchError> {
        let state = super::index::state(conn, spec)?;
        if state.needs_rebuild != 0 || !conn.exists(spec.vec0_table())? {
            // Nothing to answer from until the index is rebuilt.
            return Ok(None);
        }
        let queued: Vec<i64> = if state.pending() { queued_ids(conn, spec, &state)? } else { Vec::new() };
        let wanted = plan.limit.saturating_add(queued.len());
        if wanted > VEC0_MAX_K {
            return Ok(None);
        }
        let Some(knn) = Vec0Knn::new(plan, filters, filter, wanted) else { return Ok(None) };
        // Rows whose distance is not a number (overflowing values) come first with no distance: their
        // exact distance is computed again below, and they count as candidates fetched.
        let from_vec0: Vec<(i64, Option<f64>)> = knn.load(conn)?;
        // Every matching indexed row came back when vec0 returned fewer than asked; otherwise none nearer
        // than the farthest returned was left out (vec0's flat KNN is exact).
        let boundary = (from_vec0.len() >= wanted)
            .then(|| from_vec0.iter().filter_map(|(_, d)| *d).fold(f64::NEG_INFINITY, f64::max));
        let queued_set: HashSet<i64> = queued.iter().copied().collect();
        let mut ids: Vec<i64> = from_vec0.into_iter().map(|(id, _)| id).filter(|id| !queued_set.contains(id)).collect();
        ids.extend(&queued);
        let mut hits = exact_rows(conn, plan, filters, filter, &ids)?;
        sort(&mut hits);
        // The boundary is vec0's distance and the hits are the exact kernel's: the rows vec0 left out are at
        // least the boundary less the two kernels' possible difference away (see `kernel_margin`).
        let boundary = boundary.map(|b| b - kernel_margin(spec, b));
        if !trusted(&hits, plan.k, boundary) {
            return Ok(Some(Err(())));
        }
        let path = if queued.is_empty() { SearchPath::Vec0 } else { SearchPath::Vec0WithQueue };
        Ok(Some(Ok(Found { hits, path })))
    };
    match super::transaction::deferred(conn, in_snapshot)? {
        Some(Ok(found)) => Ok(Some(found)),
        Some(Err(())) => exact(conn, plan, filters, filter, SearchPath::Vec0ThenExact, true).map(Some),
        None => Ok(None),
    }
}

/// How far apart sqlite-vec's distance and the exact path's kernel may put the same row near `distance`: both
/// sum `dims` products of `f32`s in different orders, each rounding by at most 2^-24 relative, so their sums
/// differ by at most about `2 (dims + 3)` roundings of the magnitude (cosine distances are at most 2; L2 and
/// L1 sums have no cancellation); 5 (dims + 3) x 2^-24 of it, at least of 1, leaves room. Hamming distances
/// are whole numbers, counted exactly by both. Measured: 1.6e-6 at most between the two on 1536-dim rows,
/// against 4.6e-4 here; a near-tie within it is answered exactly.
fn kernel_margin(spec: &IndexSpec, distance: f64) -> f64 {
    if spec.element() == Element::Bit {
        return 0.0;
    }
    let dims = f64::from(spec.dims());
    5.0 * (dims + 3.0) * f64::from(f32::EPSILON) / 2.0 * distance.abs().max(1.0)
}

/// Step 2 and 3 through the crate's quantized codes (`SqliteIndex::codes`), or `None` when they cannot
/// answer (nothing trained yet, damaged codes that could not be rebuilt, another process writing fast).
///
/// The index is brought up to date without waiting for the write lock; when it cannot be, the codes
/// answer as they stand and the queued rows are computed exactly beside them (a queued row's codes are
/// not trusted). Equality filters on partition columns filter the scan by the rows' partition keys; any
/// other filter becomes the scan's allow list (the ids SQLite finds for it). Candidates get their exact
/// distance from the table with every filter applied again ([`exact_rows`]). What the search reads (the
/// rows changed since the codes, the filter's rows, the codes' generation, the candidates) is read in one
/// snapshot, so that a change another connection commits meanwhile is either all in it or not at all.
fn codes_candidates<F: SearchFilter<Sqlite>>(
    conn: &mut SqliteConnection,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
) -> Result<Option<Found>, SearchError> {
    use super::codes::Searched;
    let spec = plan.spec;
    if !crate::ann::supports(plan.metric) {
        return Ok(None);
    }
    let Some((query, _)) = f32_query(plan) else { return Ok(None) };
    // The scan of a large index's codes is divided between threads like a scan of the rows.
    let threads = plan.threads.unwrap_or_else(super::parallel::default_threads);
    let options = crate::ann::SearchOptions { threads, defer_unranked: true, ..crate::ann::SearchOptions::default() };
    /// What one attempt in a snapshot came to.
    enum Step {
        Found(Found),
        /// The index has changes to apply (or a rebuild due): sync it first, outside the snapshot.
        Sync,
        /// The codes could not answer.
        Codes(Searched),
        /// The codes answered short of the recall the search wants (or, trained on vectors they do not rank,
        /// did not search): the exact scan answers instead, on this path.
        Short(SearchPath),
        NotMigrated,
    }
    // The search in one read transaction. The first time the index is behind the table, the search
    // leaves it to bring the index up to date without waiting; after that it answers as the index stands,
    // with the changed rows computed exactly beside it.
    let in_snapshot = |conn: &mut SqliteConnection, sync_first: bool| -> Result<Step, SearchError> {
        let state = match super::index::state(conn, spec) {
            Ok(state) => state,
            Err(IndexError::NotMigrated { .. }) => return Ok(Step::NotMigrated),
            Err(e) => return Err(SearchError::Index(e)),
        };
        if sync_first && state.behind() {
            return Ok(Step::Sync);
        }
        let queued = if state.pending() { queued_ids(conn, spec, &state)? } else { Vec::new() };
        let (partition, allow) = scan_filter(conn, plan, filters, filter)?;
        let scan_filter = crate::ann::Filter { partition, allow: allow.as_deref() };
        // The candidates' exact distances, as the exact path computes them ([`exact_rows`]).
        let mut fetch = |conn: &mut SqliteConnection, ids: &[i64], sink: &mut dyn FnMut(i64, f64)| {
            for hit in exact_rows(conn, plan, filters, filter, ids)? {
                sink(hit.id, hit.distance);
            }
            Ok::<(), SearchError>(())
        };
        let outcome = match super::codes::search(conn, spec, &query, plan.limit, &scan_filter, &options, &mut fetch)? {
            Searched::Found(found) => found,
            Searched::Empty if queued.is_empty() => {
                return Ok(Step::Found(Found { hits: Vec::new(), path: SearchPath::Codes }))
            }
            other => return Ok(Step::Codes(other)),
        };
        crate::search::record_codes_stats(&outcome.stats);
        if outcome.stats.deferred {
            return Ok(Step::Short(SearchPath::CodesUnfitExact));
        }
        if !outcome.stats.confident {
            return Ok(Step::Short(SearchPath::CodesThenExact));
        }
        let queued_set: HashSet<i64> = queued.iter().copied().collect();
        let mut hits: Vec<Hit> = outcome
            .neighbours
            .into_iter()
            .filter(|n| n.distance.is_finite() && !queued_set.contains(&n.id))
            .map(|n| Hit { id: n.id, distance: n.distance })
            .collect();
        if queued.is_empty() {
            return Ok(Step::Found(Found { hits, path: SearchPath::Codes }));
        }
        hits.extend(exact_rows(conn, plan, filters, filter, &queued)?);
        sort(&mut hits);
        Ok(Step::Found(Found { hits, path: SearchPath::CodesWithQueue }))
    };
    // Whether this connection may write the index (nothing was due, or a sync without waiting went
    // through): only then are codes that cannot answer synced or rebuilt, once.
    let (mut synced, mut fresh, mut repaired) = (false, true, false);
    loop {
        match super::transaction::deferred(conn, |conn| in_snapshot(conn, !synced))? {
            Step::Found(found) => return Ok(Some(found)),
            Step::Short(path) => return exact(conn, plan, filters, filter, path, true).map(Some),
            Step::Sync => {
                synced = true;
                fresh = sync_without_waiting(conn, spec)?;
            }
            Step::Codes(Searched::NotCurrent) if fresh && !repaired => {
                repaired = true;
                if !written(spec, super::index::sync_declared(conn, spec))? {
                    return Ok(None);
                }
            }
            Step::Codes(Searched::Damaged) if fresh && !repaired => {
                repaired = true;
                if !written(spec, super::index::rebuild_codes(conn, spec))? {
                    return Ok(None);
                }
            }
            Step::Codes(_) | Step::NotMigrated => return Ok(None),
        }
    }
}

/// The filters as the codes' scan takes them: equality filters on partition columns as a partition key
/// mask, and any other filter as an allow list (the ids of the rows SQLite finds passing every filter).
fn scan_filter<F: SearchFilter<Sqlite>>(
    conn: &mut SqliteConnection,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
) -> Result<(Option<crate::ann::Partition>, Option<Vec<i64>>), SearchError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        i: i64,
    }
    let spec = plan.spec;
    let mut partition = Vec::new();
    let mut others = !filter.is_empty();
    for f in filters {
        match f.partition {
            Some(i) => partition.push((i, f.value.text(false))),
            None => others = true,
        }
    }
    let partition: Vec<(usize, Option<&str>)> = partition.iter().map(|(i, v)| (*i, v.as_deref())).collect();
    let allow = if others {
        let knn = Knn::new(plan, &plan.query, None, filters, filter)
            .ok_or(SearchError::MetricForType { metric: plan.metric, element: spec.element() })?
            .blob_shape(blob_shape(spec));
        let ids: Vec<Id> = Rows { knn: &knn, of: RowsOf::Ids, part: None }.load(conn)?;
        Some(ids.into_iter().map(|r| r.i).collect())
    } else {
        None
    };
    Ok((super::codes::partition_filter(spec, &partition), allow))
}

/// The exact path from the index's contiguous copy of the vectors (`SqliteIndex::vectors`), or `None` when
/// it cannot answer: the index keeps no copy, it cannot be brought up to date without waiting, or a row it
/// returned does not pass the filters in the table (a partition key's hash collision). The filters' rows,
/// the copy and the rows returned are read in one snapshot.
fn exact_from_vectors<F: SearchFilter<Sqlite>>(
    conn: &mut SqliteConnection,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
    path: SearchPath,
) -> Result<Option<Found>, SearchError> {
    let spec = plan.spec;
    let Some((_, fresh)) = freshen(conn, spec, false)? else { return Ok(None) };
    if !fresh {
        return Ok(None);
    }
    let Some((query, _)) = f32_query(plan) else { return Ok(None) };
    let rows_in = |conn: &mut SqliteConnection| -> Result<super::codes::ScanFilter, SearchError> {
        let (partition, allow) = scan_filter(conn, plan, filters, filter)?;
        Ok(super::codes::ScanFilter {
            partition,
            allow: allow.map(|ids| std::sync::Arc::new(ids.into_iter().collect())),
        })
    };
    let rows =
        |conn: &mut SqliteConnection, found: Vec<crate::ann::Neighbour>| -> Result<Option<Vec<Hit>>, SearchError> {
            let ids: Vec<i64> = found.iter().map(|n| n.id).collect();
            let mut hits = exact_rows(conn, plan, filters, filter, &ids)?;
            if hits.len() != ids.len() {
                return Ok(None);
            }
            sort(&mut hits);
            Ok(Some(hits))
        };
    let hits = super::codes::exact_from_vectors(conn, spec, &query, plan.limit, plan.threads, rows_in, rows)?;
    if hits.is_some() {
        tracing::Span::current().record("vectors_copy", true);
    }
    Ok(hits.map(|hits| Found { hits, path }))
}

/// The index's state before, and whether it is up to date now: nothing was due (no queued change, no
/// rebuild, no `missing` structure), or [`sync_without_waiting`] applied it. `None` when the index's queue
/// and state are not there (a spec built by hand): the table alone answers.
fn freshen(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    missing: bool,
) -> Result<Option<(super::index::State, bool)>, SearchError> {
    let before = match state(conn, spec) {
        Ok(state) => state,
        Err(IndexError::NotMigrated { .. }) => return Ok(None),
        Err(e) => return Err(SearchError::Index(e)),
    };
    let fresh = if !before.behind() && !missing { true } else { sync_without_waiting(conn, spec)? };
    Ok(Some((before, fresh)))
}

/// Applies the index's queue if the write lock can be taken at once; `false` when it cannot (another
/// connection writes, or the database is read-only), so that the search answers instead of waiting.
fn sync_without_waiting(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<bool, SearchError> {
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = BigInt)]
        timeout: i64,
    }
    let previous: Timeout = diesel::sql_query("PRAGMA busy_timeout").get_result(conn)?;
    conn.batch_execute("PRAGMA busy_timeout = 0")?;
    let result = super::index::sync_declared(conn, spec);
    conn.batch_execute(&format!("PRAGMA busy_timeout = {}", previous.timeout.max(0)))?;
    written(spec, result)
}

/// Whether a write to the index (a sync, or a rebuild of codes that do not load) went through: false when
/// this connection cannot write now (a read-only database or directory, a lock held elsewhere, a full
/// disk), and inside the application's transaction, where the index is not written (that would commit the
/// transaction's own writes to it). The search then answers from what it can read: the index as it stands
/// with the queued rows computed exactly, or the exact scan.
fn written(spec: &IndexSpec, result: Result<super::index::SyncReport, IndexError>) -> Result<bool, SearchError> {
    match result {
        Ok(_) => Ok(true),
        Err(IndexError::Query(e)) if disk_full(&e) => {
            // Not this search's to fix, and every search until there is room would meet it: said once per
            // search, at a level an operator sees.
            tracing::warn!(
                target: "diesel_vector::search",
                index = spec.name(),
                reason = %e,
                "the vector index cannot be updated (the disk is full); the search reads what is there"
            );
            Ok(false)
        }
        Err(IndexError::Query(e)) if cannot_write(&e) || in_a_transaction(&e) => {
            tracing::debug!(
                target: "diesel_vector::search",
                index = spec.name(),
                reason = %e,
                "index not written without waiting; the search reads what is there"
            );
            Ok(false)
        }
        Err(e) => Err(SearchError::Index(e)),
    }
}

/// The sync's refusal to begin its transaction inside another one (Diesel's, or one opened by hand).
fn in_a_transaction(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::AlreadyInTransaction) || super::transaction::opened_by_hand(e)
}

/// SQLite's error for a write that found no room (`SQLITE_FULL`: the disk, or `PRAGMA max_page_count`).
fn disk_full(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info) if info.message().contains("database or disk is full"))
}

/// SQLite's errors for a write that would have to wait, or may not happen at all.
fn cannot_write(e: &diesel::result::Error) -> bool {
    match e {
        diesel::result::Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked")
                || message.contains("database table is locked")
                || message.contains("readonly database")
        }
        _ => false,
    }
}

/// The ids of the rows the index does not hold as they are: the queued ones and, when the state has
/// `indexed_through` (`state`, read before), the rows inserted above it.
fn queued_ids(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    state: &super::index::State,
) -> Result<Vec<i64>, SearchError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let queue = format!("SELECT q.id AS id FROM {} q", crate::index::quote(&spec.queue_table()));
    let sql = if state.indexed_through.is_some() {
        format!(
            "{queue} UNION SELECT t.{id} AS id FROM {table} t WHERE {appended} ORDER BY id",
            id = crate::index::quote(spec.id_column()),
            table = crate::index::quote(spec.table()),
            appended = super::index::appended(spec),
        )
    } else {
        format!("{queue} ORDER BY id")
    };
    let rows: Vec<Id> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The query as the crate's scan of the rows in place takes it: `f32` values for the SIMD kernel (a `vector`
/// or `halfvec` column under a metric the engine supports), or the BLOB for the SQL functions' own kernels
/// (`bit`, `sparsevec`); `None` when the type has no kernel for the metric, and the SQL functions are asked
/// (which refuse it). The one place that choice is made: [`exact`] and [`exact_rows`] both follow it, so
/// that every distance a search sorts comes from one kernel.
fn scan_query<'p>(plan: &'p Plan<'_>) -> Option<ScanQuery<'p>> {
    match &plan.query {
        PlanVector::Bit(bits) => encoded(plan, Cow::Borrowed(bits.as_bytes()), Element::Bit),
        PlanVector::SparseVector(v) => {
            encoded(plan, Cow::Owned(crate::codec::sparsevec::encode_sqlite(v)), Element::SparseVector)
        }
        _ => f32_query(plan)
            .filter(|_| crate::ann::supports(plan.metric))
            .map(|(values, stored)| ScanQuery::Floats(values, stored)),
    }
}

/// A `bit` or `sparsevec` query for the scan, when the crate's SQL functions have a kernel for its metric.
fn encoded<'p>(plan: &Plan<'_>, query: Cow<'p, [u8]>, element: Element) -> Option<ScanQuery<'p>> {
    super::functions::blob_kernel(element, plan.metric).map(|kernel| ScanQuery::Encoded(query, kernel))
}

/// The exact distances of the rows `ids` that pass every filter, computed as the exact path computes
/// them ([`scan_query`]): every candidate set a search sorts (the codes' candidates, the rows waiting in
/// the index's queue, vec0's candidates, the rows the contiguous vectors returned) goes through here, so
/// ties and near-ties order as [`exact`] orders them, to the last bit. Rows without a finite distance are
/// left out.
fn exact_rows<F: SearchFilter<Sqlite>>(
    conn: &mut SqliteConnection,
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
        .only_ids(ids)
        .ids_json(json_ids(ids))
        .blob_shape(blob_shape(plan.spec));
    match scan_query(plan) {
        Some(query) => {
            let rows = Rows { knn: &knn, of: RowsOf::Vectors, part: None };
            let found = super::exact::top_k(conn, rows, &query, plan.metric, ids.len()).map_err(exact_error)?;
            Ok(finite_hits(found.neighbours))
        }
        None => Ok(hits_of(knn.load(conn)?)),
    }
}

/// The engine's neighbours with a finite distance, as hits.
fn finite_hits(neighbours: Vec<crate::ann::Neighbour>) -> Vec<Hit> {
    neighbours.into_iter().filter(|n| n.distance.is_finite()).map(|n| Hit { id: n.id, distance: n.distance }).collect()
}

/// The exact scan: every matching row's distance, `plan.limit` nearest first (ties by id); from the index's
/// copy of the vectors when it keeps one and `structures` says the search may read it.
fn exact<F: SearchFilter<Sqlite>>(
    conn: &mut SqliteConnection,
    plan: &Plan<'_>,
    filters: &[EqFilter],
    filter: &F,
    path: SearchPath,
    structures: bool,
) -> Result<Found, SearchError> {
    if let Some(query) = scan_query(plan) {
        if structures && plan.spec.sqlite_index().vectors && plan.metric == plan.spec.metric() {
            if let Some(found) = exact_from_vectors(conn, plan, filters, filter, path)? {
                return Ok(found);
            }
        }
        // The crate's SIMD scan over the vectors where SQLite holds them, divided between connections
        // when the table is large enough.
        let knn = Knn::new(plan, &plan.query, None, filters, filter)
            .ok_or(SearchError::MetricForType { metric: plan.metric, element: plan.spec.element() })?
            .blob_shape(blob_shape(plan.spec));
        let rows = |part| Rows { knn: &knn, of: RowsOf::Vectors, part };
        let divided = super::parallel::top_k_divided(
            conn,
            plan.spec.table(),
            plan.threads,
            rows,
            &query,
            plan.metric,
            plan.limit,
        )
        .map_err(exact_error)?;
        let found = match divided {
            Some(found) => found,
            None => super::exact::top_k(conn, rows(None), &query, plan.metric, plan.limit).map_err(exact_error)?,
        };
        return Ok(Found { hits: finite_hits(found.neighbours), path });
    }
    let knn = || {
        Knn::new(plan, &plan.query, None, filters, filter)
            .ok_or(SearchError::MetricForType { metric: plan.metric, element: plan.spec.element() })
            .map(|k| k.blob_shape(blob_shape(plan.spec)).order(KnnOrder::DistanceThenId).limit(plan.limit))
    };
    let rows: Vec<(i64, Option<f64>)> = knn()?.load(conn)?;
    let full = rows.len() >= plan.limit;
    let mut hits = hits_of(rows);
    if full && hits.iter().filter(|h| h.distance.is_finite()).count() < plan.k {
        // Rows without a finite distance (an overflow to infinity, sorted first or last) filled the limit:
        // ask again for finite distances only.
        hits = hits_of(knn()?.finite_only(true).load(conn)?);
    }
    Ok(Found { hits, path })
}

/// Rows with a distance; NULL (no distance: a zero vector under cosine, NaN elements) is left out.
fn hits_of(rows: Vec<(i64, Option<f64>)>) -> Vec<Hit> {
    rows.into_iter().filter_map(|(id, d)| d.map(|distance| Hit { id, distance })).collect()
}

impl<ST> QueryFragment<Sqlite> for VectorColumn<'_, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        push_column(&mut out, self.table, self.column)
    }
}

impl<V> QueryFragment<Sqlite> for QueryVector<'_, V>
where
    V: SearchValue + ToSql<V::SqlType, Sqlite>,
    Sqlite: diesel::sql_types::HasSqlType<V::SqlType>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_bind_param::<V::SqlType, V>(self.vector)
    }
}

/// ` AND length(t.v) = ?` for a fixed length; ` AND substr(t.v, 1, 4) = ? AND (length(t.v) - 4) % 8 = 0
/// AND length(t.v) <= ?` for a sparse vector's dimensions prefix and its items.
fn push_blob_shape<'b>(
    out: &mut AstPass<'_, 'b, Sqlite>,
    table: &'b str,
    column: &'b str,
    shape: &'b SqliteBlobShape,
) -> QueryResult<()> {
    // Lengths are bounded by the types' limits (at most a few hundred kB): they fit an i64; the SQL
    // text holds only these integers, never input.
    let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    match shape {
        SqliteBlobShape::Exact { len } => {
            out.push_sql(" AND length(");
            push_column(out, table, column)?;
            out.push_sql(&format!(") = {}", int(*len)));
        }
        SqliteBlobShape::Prefixed { prefix, stride, .. } => {
            let (_, max) = shape.len_range();
            out.push_sql(" AND substr(");
            push_column(out, table, column)?;
            out.push_sql(&format!(", 1, {}) = ", prefix.len()));
            out.push_bind_param::<Binary, Vec<u8>>(prefix)?;
            out.push_sql(" AND (length(");
            push_column(out, table, column)?;
            out.push_sql(&format!(") - {}) % {} = 0 AND length(", prefix.len(), int(*stride)));
            push_column(out, table, column)?;
            out.push_sql(&format!(") <= {}", int(max)));
        }
    }
    Ok(())
}

/// SQLite's parts of [`Knn`]: NULL distances (a zero vector under cosine) sort last; only BLOBs of the index's
/// shape (other stored values are skipped rather than failing the distance function); booleans are the
/// integers 1 and 0; ids through `json_each`.
impl KnnDialect for Sqlite {
    // 9e999 is SQLite's infinity; NULL fails both comparisons.
    const FINITE: &'static str = "s.d > -9e999 AND s.d < 9e999";
    const NULLS_LAST: &'static str = " NULLS LAST";

    fn push_stored_shape<'b, F>(knn: &'b Knn<'_, F>, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        if let Some(shape) = &knn.blob_shape {
            out.push_sql(" AND typeof(");
            push_column(out, knn.table, knn.column)?;
            out.push_sql(") = 'blob'");
            push_blob_shape(out, knn.table, knn.column, shape)?;
        }
        Ok(())
    }

    fn push_filter_column<'b>(out: &mut AstPass<'_, 'b, Sqlite>, table: &'b str, f: &'b EqFilter) -> QueryResult<()> {
        push_column(out, table, &f.column)
    }

    /// SQLite stores booleans as the integers 1 and 0.
    fn push_bool_eq<'b>(out: &mut AstPass<'_, 'b, Sqlite>, value: &'b bool) -> QueryResult<()> {
        out.push_sql(if *value { " = 1" } else { " = 0" });
        Ok(())
    }

    fn push_ids<'b, F>(knn: &'b Knn<'_, F>, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(" AND ");
        push_column(out, knn.table, knn.id)?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, String>(&knn.ids_json)?;
        out.push_sql("))");
        Ok(())
    }
}

/// What [`Rows`] selects beside the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowsOf {
    /// Nothing: the ids of the rows that pass every filter (the codes' allow list).
    Ids,
    /// The stored vector: the rows the exact scan reads.
    Vectors,
}

/// `SELECT CAST(t.id AS BIGINT) AS i[, t.vector AS v] FROM t WHERE ...`, with [`Knn`]'s conditions.
struct Rows<'k, 'a, F> {
    knn: &'k Knn<'a, F>,
    of: RowsOf,
    /// Only this part of the table's rowids (a scan divided between connections).
    part: Option<super::parallel::Part>,
}

impl<F: SearchFilter<Sqlite>> QueryFragment<Sqlite> for Rows<'_, '_, F> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("SELECT CAST(");
        push_column(&mut out, self.knn.table, self.knn.id)?;
        out.push_sql(" AS BIGINT) AS i");
        if self.of == RowsOf::Vectors {
            out.push_sql(", ");
            push_column(&mut out, self.knn.table, self.knn.column)?;
            out.push_sql(" AS v");
        }
        out.push_sql(" FROM ");
        out.push_identifier(self.knn.table)?;
        self.knn.push_where(&mut out)?;
        match &self.part {
            Some(part) => part.walk_ast(self.knn.table, &mut out),
            None => Ok(()),
        }
    }
}

impl<F> QueryId for Rows<'_, '_, F> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F> Query for Rows<'_, '_, F> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<F, C> RunQueryDsl<C> for Rows<'_, '_, F> {}

/// vec0's KNN: `SELECT rowid, distance FROM vec0 WHERE embedding MATCH ? AND k = ?`, with the partition
/// filters as its partition keys and every other filter as `rowid IN (SELECT id FROM table WHERE ...)`,
/// which sqlite-vec's flat index applies before choosing the nearest.
struct Vec0Knn<'a, F> {
    vec0: &'a str,
    table: &'a str,
    id: &'a str,
    query: &'a PlanVector<'a>,
    k: i64,
    /// Partition filters: vec0's column name and the value as text (vec0's partition keys hold
    /// `CAST(value AS TEXT)`).
    partitions: Vec<(String, String)>,
    /// The other equality filters, applied through the rowid subquery.
    others: Vec<&'a EqFilter>,
    filter: &'a F,
}

impl<'a, F: SearchFilter<Sqlite>> Vec0Knn<'a, F> {
    /// The KNN of `wanted` rows, or `None` when vec0 cannot take `k` that large.
    fn new(plan: &'a Plan<'_>, filters: &'a [EqFilter], filter: &'a F, wanted: usize) -> Option<Self> {
        let spec = plan.spec;
        let mut partitions = Vec::new();
        let mut others = Vec::new();
        for f in filters {
            match (f.partition, f.value.text(false)) {
                (Some(i), Some(text)) => partitions.push((vec0_partition_column(i, &f.column), text)),
                // A NULL partition value has no partition key to match: filtered through the subquery.
                _ => others.push(f),
            }
        }
        Some(Self {
            vec0: spec.vec0_table(),
            table: spec.table(),
            id: spec.id_column(),
            query: match &plan.query {
                q @ (PlanVector::Vector(_) | PlanVector::Bit(_)) => q,
                _ => return None,
            },
            k: i64::try_from(wanted).ok()?,
            partitions,
            others,
            filter,
        })
    }
}

impl<F: SearchFilter<Sqlite>> QueryFragment<Sqlite> for Vec0Knn<'_, F> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_identifier(self.vec0)?;
        out.push_sql(".rowid, ");
        push_column(&mut out, self.vec0, "distance")?;
        out.push_sql(" FROM ");
        out.push_identifier(self.vec0)?;
        out.push_sql(" WHERE ");
        push_column(&mut out, self.vec0, "embedding")?;
        out.push_sql(" MATCH ");
        match self.query {
            PlanVector::Bit(b) => {
                out.push_sql("vec_bit(");
                out.push_bind_param::<crate::sql_types::Bit, crate::Bit>(b)?;
                out.push_sql(")");
            }
            PlanVector::Vector(v) => out.push_bind_param::<Vector, crate::Vector>(v)?,
            // Vec0Knn::new takes only these two.
            _ => return Err(diesel::result::Error::QueryBuilderError("vec0 holds vector and bit only".into())),
        }
        out.push_sql(" AND ");
        push_column(&mut out, self.vec0, "k")?;
        out.push_sql(" = ");
        out.push_bind_param::<BigInt, i64>(&self.k)?;
        for (column, value) in &self.partitions {
            out.push_sql(" AND ");
            push_column(&mut out, self.vec0, column)?;
            out.push_sql(" = ");
            out.push_bind_param::<Text, String>(value)?;
        }
        if !self.others.is_empty() || !self.filter.is_empty() {
            out.push_sql(" AND ");
            out.push_identifier(self.vec0)?;
            out.push_sql(".rowid IN (SELECT ");
            push_column(&mut out, self.table, self.id)?;
            out.push_sql(" FROM ");
            out.push_identifier(self.table)?;
            out.push_sql(" WHERE 1");
            push_eq_filters(&mut out, self.table, self.others.iter().copied())?;
            if !self.filter.is_empty() {
                out.push_sql(" AND ");
                self.filter.walk_filter(out.reborrow())?;
            }
            out.push_sql(")");
        }
        Ok(())
    }
}

impl<F> QueryId for Vec0Knn<'_, F> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F> Query for Vec0Knn<'_, F> {
    type SqlType = (BigInt, Nullable<Double>);
}

impl<F, C> RunQueryDsl<C> for Vec0Knn<'_, F> {}

/// The search on diesel-async's SQLite wrapper: the sync search above, whole, in one call on the
/// wrapper's blocking thread, so the index sync it may start never blocks the async runtime and always
/// puts the connection's busy timeout back (a dropped future does not stop the blocking call). What the
/// call needs is moved there: the plan as an [`OwnedPlan`](crate::search::OwnedPlan) and a typed filter
/// rendered to its SQL and binds, so the filter itself need not be `'static`.
#[cfg(feature = "async")]
mod asynchronous {
    use std::future::Future;

    use diesel::query_builder::{AstPass, CollectedQuery, QueryFragment};
    use diesel::sqlite::Sqlite;
    use diesel::{QueryResult, SqliteConnection};
    use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};

    use super::super::parallel::{collect, Binds};
    use crate::search::{
        AsyncSearchTarget, Found, Neighbor, NoFilter, OwnedPlan, Plan, Search, SearchError, SearchFilter, SearchTarget,
    };

    /// `filter`'s condition as SQL and owned binds (`None` when there is none).
    fn render<F: SearchFilter<Sqlite>>(filter: &F) -> QueryResult<Option<CollectedQuery<Binds>>> {
        struct Condition<'f, F>(&'f F);
        impl<F: SearchFilter<Sqlite>> QueryFragment<Sqlite> for Condition<'_, F> {
            fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
                self.0.walk_filter(out)
            }
        }
        if filter.is_empty() {
            return Ok(None);
        }
        collect(&Condition(filter)).map(Some)
    }

    impl<S: SpawnBlocking + Send> AsyncSearchTarget for SyncConnectionWrapper<SqliteConnection, S> {
        type Db = Sqlite;
        const BACKEND: &'static str = "sqlite";

        fn knn_async<'a, F: SearchFilter<Sqlite>>(
            &'a mut self,
            plan: &'a Plan<'a>,
            filter: &'a F,
        ) -> impl Future<Output = Result<Found, SearchError>> + Send + 'a {
            let owned = OwnedPlan::new(plan);
            let condition = render(filter);
            // The search's span, entered on the blocking thread too, so the sync search's events nest in it.
            let span = tracing::Span::current();
            let future = self.spawn_blocking(move |conn| {
                let _entered = span.enter();
                let plan = owned.plan();
                Ok(match condition? {
                    None => conn.knn(&plan, &NoFilter),
                    Some(condition) => conn.knn(&plan, &crate::search::typed::filtered(condition)),
                })
            });
            async move { future.await? }
        }

        async fn search_fragments_async<'a>(
            &'a mut self,
            search: &'a Search<'a>,
        ) -> Result<Vec<Neighbor>, SearchError> {
            crate::search::seed::search_fragments!(
                self,
                search,
                crate::search::execute_async,
                diesel_async::RunQueryDsl::load,
                .await
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_give_sqlites_affinity() {
        assert_eq!(kind("INTEGER"), ColumnKind::Integer);
        assert_eq!(kind("bigint"), ColumnKind::Integer);
        assert_eq!(kind("VARCHAR(10)"), ColumnKind::Text);
        assert_eq!(kind("BOOLEAN"), ColumnKind::Bool);
        assert_eq!(kind(""), ColumnKind::Other);
        assert_eq!(kind("REAL"), ColumnKind::Other);
    }
}
