//! Nearest-neighbour search on PostgreSQL: pgvector's operators, the ivfflat index or a sequential scan.

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Text};
use diesel::PgConnection;

use crate::search::{
    candidates, sort_and_truncate, tie_may_be_cut, Metric, Neighbor, Row, Search, SearchError, SearchPath,
    SearchTarget, Strategy,
};
use crate::sql_types::Vector;

fn operator(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "<=>",
        Metric::L2 => "<->",
        Metric::L1 => "<+>",
        Metric::InnerProduct => "<#>",
        Metric::Hamming => "<~>",
        Metric::Jaccard => "<%>",
    }
}

/// The search's SQL: only fixed fragments are spliced in (the operator, whether a fragment filter is
/// bound); every value is a bind parameter.
fn sql(metric: Metric, filtered: bool, exact: bool) -> String {
    let op = operator(metric);
    let filter = if filtered { " AND fragment_id = ANY($5)" } else { "" };
    // An index scan can only order by the distance; an exact scan breaks ties by id in SQL.
    let tie_break = if exact { ", id" } else { "" };
    // A zero stored vector has a NaN cosine distance: it is nobody's neighbour. NaN sorts after every
    // number, so such rows can only come last and `run` drops them; a `<> 'NaN'` filter here would
    // compute (and detoast) every scanned row's distance twice.
    format!(
        "SELECT id, fragment_id, (embedding {op} $1)::float8 AS distance FROM fragment_embeddings \
         WHERE provider = $2 AND model = $3 AND embedding IS NOT NULL{filter} \
         ORDER BY embedding {op} $1{tie_break} LIMIT $4"
    )
}

/// One statement that sets the index scan up for the current transaction, as the search does by default:
/// relaxed iterative scans, and [`super::index::recommended_probes`] of the index's lists (the same
/// formula in SQL, so that no round trip is spent reading the lists first), or the current value of
/// `ivfflat.probes` when there is no such index.
const DEFAULT_IVFFLAT_SETTINGS: &str = "SELECT set_config('ivfflat.iterative_scan', 'relaxed_order', true), \
     set_config('ivfflat.probes', coalesce( \
         (SELECT greatest(ceil(sqrt(lists))::int, least(lists, 10)) FROM (SELECT greatest(coalesce(( \
              SELECT option_value::int FROM pg_options_to_table(c.reloptions) WHERE option_name = 'lists'), 100), 1) AS lists \
          FROM pg_class c WHERE c.oid = to_regclass('fragment_embeddings_cosine_idx')) l), \
         current_setting('ivfflat.probes', true)::int)::text, true)";

/// [`DEFAULT_IVFFLAT_SETTINGS`] as a query of its own type, so that Diesel prepares it once per connection
/// and keeps it in its statement cache (`sql_query` is parsed and planned on every call, which cost about
/// 0.2 ms here: as much as the rest of an HNSW search on 10k rows).
#[derive(QueryId)]
struct DefaultIvfflatSettings;

impl QueryFragment<Pg> for DefaultIvfflatSettings {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(DEFAULT_IVFFLAT_SETTINGS);
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for DefaultIvfflatSettings {}

fn run(conn: &mut PgConnection, search: &Search<'_>, limit: usize, exact: bool) -> QueryResult<Vec<Neighbor>> {
    if exact {
        conn.batch_execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")?;
    }
    let filtered = search.fragment_ids.is_some();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let query = diesel::sql_query(sql(search.metric, filtered, exact))
        .bind::<Vector, _>(search.query)
        .bind::<Text, _>(search.provider)
        .bind::<Text, _>(search.model)
        .bind::<BigInt, _>(limit);
    let rows: Vec<Row> = match search.fragment_ids {
        Some(ids) => query.bind::<Array<BigInt>, _>(ids).load(conn)?,
        None => query.load(conn)?,
    };
    let cosine = search.metric == Metric::Cosine;
    Ok(rows.into_iter().map(Neighbor::from).filter(|n| !(cosine && n.distance.is_nan())).collect())
}

impl SearchTarget for PgConnection {
    const BACKEND: &'static str = "postgresql";

    fn nearest(&mut self, search: &Search<'_>) -> Result<(Vec<Neighbor>, SearchPath), SearchError> {
        let limit = candidates(search.k);
        let exact = |conn: &mut PgConnection| conn.transaction(|conn| run(conn, search, limit, true));
        if search.strategy == Strategy::Exact || search.metric != Metric::Cosine {
            return Ok((exact(self)?, SearchPath::Exact));
        }
        let mut hits = self.transaction(|conn| {
            // Iterative scans (pgvector 0.8) keep probing lists until enough rows pass the filters.
            // Unless told otherwise, probe sqrt(lists) lists (at least 10), see recommended_probes.
            match search.probes {
                Some(p) => conn.batch_execute(&format!(
                    "SET LOCAL ivfflat.iterative_scan = relaxed_order; SET LOCAL ivfflat.probes = {}",
                    p.max(1)
                ))?,
                None => {
                    DefaultIvfflatSettings.execute(conn)?;
                }
            }
            run(conn, search, limit, false)
        })?;
        sort_and_truncate(&mut hits, limit);
        // Fewer than k (fewer rows match, or the index missed some), or a tie the index may have cut:
        // only an exact scan can tell.
        if hits.len() < search.k || tie_may_be_cut(&hits, search.k, limit) {
            return Ok((exact(self)?, SearchPath::IvfflatThenExact));
        }
        Ok((hits, SearchPath::Ivfflat))
    }
}
