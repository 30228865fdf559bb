//! Workload 3 of issue 6, KNN top-10: the DSL and the search API against the same job written by hand in
//! SQL, on each backend and search path, with latency and recall@10 against an exact scan in Rust.

pub mod generic;
pub mod pg;
pub mod sqlite;

use std::time::Instant;

use diesel::sql_types::{BigInt, Double};
use diesel::QueryableByName;
use diesel_vector::Vector;

use crate::data::{self, Clusters};
use crate::db_harness::{Group, Measured};

/// Every stored embedding has this provider and model.
pub const PROVIDER: &str = "bench";
pub const MODEL: &str = "clustered-1536";
/// Neighbours per query.
pub const K: usize = 10;
/// `K` as SQL binds it.
pub const K_SQL: i64 = K as i64;

/// One data set: stored vectors (row `i` gets id `i + 1`), queries, and each query's exact top-`K` ids.
#[derive(Debug)]
pub struct DataSet {
    pub stored: Vec<Vector>,
    pub queries: Vec<Vector>,
    pub truth: Vec<Vec<i64>>,
    /// Seconds spent generating vectors and computing the ground truth.
    pub generate_s: f64,
}

impl DataSet {
    /// `size` stored vectors and `queries` queries from the same clusters (new noise), with ground truth.
    pub fn generate(size: usize, queries: usize) -> Self {
        let started = Instant::now();
        let clusters = Clusters::new(data::SEED, data::DIMS, data::clusters_for(size));
        let stored = clusters.vectors(data::SEED + 1, size);
        let queries = clusters.vectors(data::SEED + 2, queries);
        let truth = queries
            .iter()
            .map(|q| data::exact_knn(&stored, q, K).into_iter().map(|i| i as i64 + 1).collect())
            .collect();
        Self { stored, queries, truth, generate_s: started.elapsed().as_secs_f64() }
    }

    /// Mean recall@K of `m`'s answers.
    pub fn recall(&self, m: &Measured) -> f64 {
        let sum: f64 = m.ids.iter().zip(&self.truth).map(|(found, truth)| data::recall(found, truth)).sum();
        sum / self.truth.len().max(1) as f64
    }
}

/// Everything measured on one backend for one data size.
#[derive(Debug)]
pub struct BackendRun {
    pub backend: &'static str,
    pub size: usize,
    /// Set-up steps and their seconds (loading, index builds), for the report.
    pub setup: Vec<(String, f64)>,
    /// Facts found on the way (versions, plans), for the report.
    pub facts: Vec<String>,
    pub groups: Vec<Group>,
}

/// A result row of the hand-written queries.
#[derive(Debug, QueryableByName)]
pub struct Hit {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub fragment_id: i64,
    #[diesel(sql_type = Double)]
    pub distance: f64,
}

/// The ids of hits, in order.
pub fn ids(hits: Vec<Hit>) -> Vec<i64> {
    hits.into_iter().map(|h| h.id).collect()
}

/// The ids of `(id, fragment_id)` pairs, in order.
pub fn pair_ids(rows: Vec<(i64, i64)>) -> Vec<i64> {
    rows.into_iter().map(|(id, _)| id).collect()
}

/// Seconds since `started`.
pub fn seconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// Inserts one fragment and one embedding per stored vector, in order (ids 1..=n on a fresh database),
/// in one transaction; `$chunk` rows per statement. A macro because the two connections share no trait
/// that covers batch inserts.
macro_rules! load_rows {
    ($conn:expr, $stored:expr, $chunk:expr) => {{
        use diesel::prelude::*;
        use diesel_vector::models::NewFragmentEmbedding;
        use diesel_vector::schema::{fragment_embeddings, fragments};
        let conn = $conn;
        let stored: &[diesel_vector::Vector] = $stored;
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let contents: Vec<String> = (0..stored.len()).map(|i| format!("fragment {}", i + 1)).collect();
            for chunk in contents.chunks($chunk) {
                let rows: Vec<_> = chunk.iter().map(|c| fragments::content.eq(c)).collect();
                diesel::insert_into(fragments::table).values(rows).execute(conn)?;
            }
            for (start, chunk) in (0..).step_by($chunk).zip(stored.chunks($chunk)) {
                let rows: Vec<NewFragmentEmbedding<'_>> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, v)| NewFragmentEmbedding::new(start + i as i64 + 1, PROVIDER, MODEL, v, "hash"))
                    .collect();
                diesel::insert_into(fragment_embeddings::table).values(rows).execute(conn)?;
            }
            let (min, max, count): (Option<i64>, Option<i64>, i64) = fragment_embeddings::table
                .select((
                    diesel::dsl::min(fragment_embeddings::id),
                    diesel::dsl::max(fragment_embeddings::id),
                    diesel::dsl::count_star(),
                ))
                .first(conn)?;
            assert_eq!(
                (min, max, count),
                (Some(1), Some(stored.len() as i64), stored.len() as i64),
                "a fresh database numbers rows from 1"
            );
            Ok(())
        })
    }};
}
pub(crate) use load_rows;
