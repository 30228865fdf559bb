//! Nearest-neighbour search on SQLite: sqlite-vec's vec0 KNN, or an exact scan.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::SqliteConnection;

use super::index::sync_index;
use super::json_ids;
use crate::search::{
    candidates, sort_and_truncate, tie_may_be_cut, Metric, Neighbor, Row, Search, SearchError, SearchPath,
    SearchTarget, Strategy,
};
use crate::sql_types::Vector;

/// sqlite-vec's largest `k`.
const VEC0_MAX_K: usize = 4096;

fn function(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "vec_distance_cosine",
        Metric::L2 => "vec_distance_l2",
        Metric::L1 => "vec_distance_l1",
        Metric::InnerProduct => "diesel_vector_neg_inner_product",
        Metric::Hamming => "vec_distance_hamming",
        Metric::Jaccard => "diesel_vector_jaccard_distance",
    }
}

impl SearchTarget for SqliteConnection {
    const BACKEND: &'static str = "sqlite";

    fn nearest(&mut self, search: &Search<'_>) -> Result<(Vec<Neighbor>, SearchPath), SearchError> {
        let limit = candidates(search.k);
        if let Some(hits) = codes_search(self, search, limit)? {
            return Ok((hits, SearchPath::Codes));
        }
        let has_extension = super::sqlite_vec_version(self)?.is_some();
        let use_index = has_extension
            && crate::schema::fragment_embeddings_index().sqlite_index().vec0
            && search.strategy == Strategy::Auto
            && search.metric == Metric::Cosine
            && search.fragment_ids.is_none()
            && limit <= VEC0_MAX_K;
        if use_index {
            sync_index(self).map_err(SearchError::Index)?;
            let rows: Vec<Row> = diesel::sql_query(
                "SELECT e.id AS id, e.fragment_id AS fragment_id, i.distance AS distance \
                 FROM (SELECT rowid, distance FROM fragment_embeddings_idx \
                       WHERE embedding MATCH ? AND k = ? AND provider = ? AND model = ?) i \
                 JOIN fragment_embeddings e ON e.id = i.rowid",
            )
            .bind::<Vector, _>(search.query)
            .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind::<Text, _>(search.provider)
            .bind::<Text, _>(search.model)
            .load(self)?;
            let mut hits: Vec<Neighbor> = rows.into_iter().map(Neighbor::from).collect();
            sort_and_truncate(&mut hits, limit);
            if !tie_may_be_cut(&hits, search.k, limit) {
                return Ok((hits, SearchPath::Vec0));
            }
        }
        if let Some(hits) = exact_search(self, search, limit)? {
            return Ok((hits, SearchPath::ExactScan));
        }
        // Exact scan: sqlite-vec's functions, or the crate's when the extension is absent. NULL
        // distances (a zero vector under cosine) are nobody's neighbour: sorted last, then dropped here.
        // A `WHERE distance IS NOT NULL` would compute every row's distance twice (SQLite evaluates
        // the function for the filter and again for the result); NULLS LAST needs SQLite 3.30, and the
        // crate needs 3.35 for RETURNING anyway.
        let filter =
            if search.fragment_ids.is_some() { " AND fragment_id IN (SELECT value FROM json_each(?))" } else { "" };
        let sql = format!(
            "SELECT id, fragment_id, {}(embedding, ?) AS distance FROM fragment_embeddings \
             WHERE provider = ? AND model = ? AND embedding IS NOT NULL{filter} \
             ORDER BY distance NULLS LAST, id LIMIT ?",
            function(search.metric)
        );
        let query = diesel::sql_query(sql)
            .bind::<Vector, _>(search.query)
            .bind::<Text, _>(search.provider)
            .bind::<Text, _>(search.model);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<ScanRow> = match search.fragment_ids {
            Some(ids) => query.bind::<Text, _>(json_ids(ids)).bind::<BigInt, _>(limit).load(self)?,
            None => query.bind::<BigInt, _>(limit).load(self)?,
        };
        let hits = rows
            .into_iter()
            .filter_map(|r| r.distance.map(|distance| Neighbor { id: r.id, fragment_id: r.fragment_id, distance }))
            .collect();
        Ok((hits, SearchPath::ExactScan))
    }
}

/// A row of the exact scan: the distance is NULL for a zero vector under cosine.
#[derive(QueryableByName)]
struct ScanRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    fragment_id: i64,
    #[diesel(sql_type = Nullable<Double>)]
    distance: Option<f64>,
}

#[derive(QueryableByName)]
struct Exact {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    fragment_id: i64,
    #[diesel(sql_type = Nullable<Double>)]
    distance: Option<f64>,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The seed's search through the quantized codes: the provider and model filter the scan (they are the
/// index's partition columns), a fragment filter becomes the scan's allow list, and candidates get their
/// exact distances from the table, filters checked again. `None` when the codes cannot answer.
fn codes_search(
    conn: &mut SqliteConnection,
    search: &Search<'_>,
    limit: usize,
) -> Result<Option<Vec<Neighbor>>, SearchError> {
    let spec = crate::schema::fragment_embeddings_index();
    if search.strategy != Strategy::Auto || search.metric != spec.metric() || !spec.sqlite_index().codes {
        return Ok(None);
    }
    super::index::sync(conn, spec).map_err(SearchError::Index)?;
    let allow: Option<Vec<i64>> = match search.fragment_ids {
        None => None,
        Some(ids) => Some(
            diesel::sql_query(
                "SELECT e.id AS id FROM fragment_embeddings e \
                 WHERE e.fragment_id IN (SELECT value FROM json_each(?)) AND e.provider = ? AND e.model = ?",
            )
            .bind::<Text, _>(json_ids(ids))
            .bind::<Text, _>(search.provider)
            .bind::<Text, _>(search.model)
            .load::<Id>(conn)?
            .into_iter()
            .map(|r| r.id)
            .collect(),
        ),
    };
    let filter = crate::ann::Filter {
        partition: super::codes::partition_filter(spec, &[(0, Some(search.provider)), (1, Some(search.model))]),
        allow: allow.as_deref(),
    };
    let mut fragments = std::collections::HashMap::new();
    let sql = format!(
        "SELECT e.id AS id, e.fragment_id AS fragment_id, {}(e.embedding, ?) AS distance FROM fragment_embeddings e \
         WHERE e.id IN (SELECT value FROM json_each(?)) AND e.provider = ? AND e.model = ?",
        function(search.metric)
    );
    let mut fetch = |conn: &mut SqliteConnection, ids: &[i64], sink: &mut dyn FnMut(i64, f64)| {
        let rows: Vec<Exact> = diesel::sql_query(&sql)
            .bind::<Vector, _>(search.query)
            .bind::<Text, _>(json_ids(ids))
            .bind::<Text, _>(search.provider)
            .bind::<Text, _>(search.model)
            .load(conn)?;
        for row in rows {
            fragments.insert(row.id, row.fragment_id);
            sink(row.id, row.distance.unwrap_or(f64::NAN));
        }
        Ok::<(), SearchError>(())
    };
    let options = crate::ann::SearchOptions::default();
    let mut outcome = None;
    for attempt in 0..2 {
        match super::codes::search(conn, spec, search.query.as_slice(), limit, &filter, &options, &mut fetch)? {
            super::codes::Searched::Found(found) => {
                outcome = Some(found);
                break;
            }
            super::codes::Searched::Empty => return Ok(None),
            super::codes::Searched::NotCurrent if attempt == 0 => {
                super::index::sync(conn, spec).map_err(SearchError::Index)?;
            }
            super::codes::Searched::Damaged if attempt == 0 => {
                super::index::rebuild_codes(conn, spec).map_err(SearchError::Index)?;
            }
            _ => return Ok(None),
        }
    }
    let Some(outcome) = outcome else { return Ok(None) };
    crate::search::record_codes_stats(&outcome.stats);
    Ok(Some(
        outcome
            .neighbours
            .into_iter()
            .filter(|n| !n.distance.is_nan())
            .filter_map(|n| fragments.get(&n.id).map(|f| Neighbor { id: n.id, fragment_id: *f, distance: n.distance }))
            .collect(),
    ))
}

#[derive(QueryableByName)]
struct Fragment {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    fragment_id: i64,
}

/// The seed's exact search through the SIMD scan of the rows where SQLite holds them (`None` for a metric
/// the scan does not compute).
fn exact_search(
    conn: &mut SqliteConnection,
    search: &Search<'_>,
    limit: usize,
) -> Result<Option<Vec<Neighbor>>, SearchError> {
    if !crate::ann::supports(search.metric) {
        return Ok(None);
    }
    let filter =
        if search.fragment_ids.is_some() { " AND e.fragment_id IN (SELECT value FROM json_each(?))" } else { "" };
    let sql = format!(
        "SELECT e.id AS id, e.embedding AS embedding FROM fragment_embeddings e \
         WHERE e.provider = ? AND e.model = ?{filter}"
    );
    let query = diesel::sql_query(sql).bind::<Text, _>(search.provider).bind::<Text, _>(search.model);
    let found = match search.fragment_ids {
        Some(ids) => super::exact::top_k(
            conn,
            query.bind::<Text, _>(json_ids(ids)),
            search.query.as_slice(),
            search.metric,
            limit,
        ),
        None => super::exact::top_k(conn, query, search.query.as_slice(), search.metric, limit),
    };
    let found = match found {
        Ok(found) => found,
        Err(super::exact::ExactError::Query(e)) => return Err(e.into()),
        Err(super::exact::ExactError::Ann(e)) => return Err(e.into()),
    };
    let ids: Vec<i64> = found.neighbours.iter().map(|n| n.id).collect();
    let fragments: std::collections::HashMap<i64, i64> = diesel::sql_query(
        "SELECT e.id AS id, e.fragment_id AS fragment_id FROM fragment_embeddings e \
         WHERE e.id IN (SELECT value FROM json_each(?))",
    )
    .bind::<Text, _>(json_ids(&ids))
    .load::<Fragment>(conn)?
    .into_iter()
    .map(|f| (f.id, f.fragment_id))
    .collect();
    Ok(Some(
        found
            .neighbours
            .into_iter()
            .filter(|n| !n.distance.is_nan())
            .filter_map(|n| fragments.get(&n.id).map(|f| Neighbor { id: n.id, fragment_id: *f, distance: n.distance }))
            .collect(),
    ))
}
