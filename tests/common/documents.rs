//! A table of the application's own for the search tests: `documents` with 768-dim embeddings, a `lang`
//! partition column (one row in five is French) and a `year` the tests filter on with Diesel.

use diesel_vector::index::{IndexSpec, Metric, PgIndex, SqliteIndex};
use diesel_vector::Vector;

/// The embeddings' dimensions.
pub const DIMS: usize = 768;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    documents (id) {
        id -> BigInt,
        lang -> Text,
        year -> Integer,
        body -> Text,
        embedding -> Nullable<Vector>,
    }
}

/// The application's table before any vector index: the generated migration adds `embedding`.
pub const SQLITE_TABLE: &str = "CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, \
     year INTEGER NOT NULL, body TEXT NOT NULL)";
/// The same on PostgreSQL.
pub const PG_TABLE: &str =
    "CREATE TABLE documents (id bigint PRIMARY KEY, lang text NOT NULL, year integer NOT NULL, body text NOT NULL)";

/// One row.
#[derive(Debug, Clone)]
pub struct Doc {
    pub id: i64,
    pub lang: &'static str,
    pub year: i32,
    pub embedding: Option<Vector>,
}

/// `n` documents with ids 1..=n: French when `id % 5 == 0` (20 %), years 2018-2025; every 97th has no
/// embedding (NULL) and ids 2 and 3 hold the zero vector (no direction: nobody's cosine neighbour).
pub fn docs(n: usize, seed: u64) -> Vec<Doc> {
    let vectors = super::clustered(seed, n, DIMS, (n / 50).max(4));
    vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let id = i as i64 + 1;
            let embedding = if id % 97 == 0 {
                None
            } else if id == 2 || id == 3 {
                Some(Vector::new(vec![0.0; DIMS]).unwrap())
            } else {
                Some(v)
            };
            Doc { id, lang: if id % 5 == 0 { "fr" } else { "en" }, year: 2018 + (id % 8) as i32, embedding }
        })
        .collect()
}

/// Queries from the same clusters as [`docs`] with `seed`.
pub fn queries(seed: u64, n_docs: usize, n: usize) -> Vec<Vector> {
    // The generator draws its centres first, so the same seed gives the same clusters.
    super::clustered(seed, n_docs + n, DIMS, (n_docs / 50).max(4)).split_off(n_docs)
}

/// The index a user declares for `documents`: `lang` as its partition column.
pub fn spec(metric: Metric, pg: PgIndex, sqlite: SqliteIndex) -> IndexSpec {
    IndexSpec::builder("documents", "embedding", DIMS as u64)
        .metric(metric)
        .partition_by(["lang"])
        .pg_index(pg)
        .sqlite_index(sqlite)
        .build()
        .unwrap()
}

/// The metrics of `vector` columns.
pub const METRICS: [Metric; 4] = [Metric::Cosine, Metric::L2, Metric::L1, Metric::InnerProduct];

/// Inserts `docs` in one transaction, 200 rows per statement (a macro: the two connections share no
/// trait for batch inserts).
#[macro_export]
macro_rules! insert_docs {
    ($conn:expr, $docs:expr) => {{
        use diesel::prelude::*;
        use $crate::common::documents::documents;
        let conn = $conn;
        let docs: &[$crate::common::documents::Doc] = $docs;
        let bodies: Vec<String> = docs.iter().map(|d| format!("document {}", d.id)).collect();
        conn.transaction(|conn| {
            for (chunk, bodies) in docs.chunks(200).zip(bodies.chunks(200)) {
                let rows: Vec<_> = chunk
                    .iter()
                    .zip(bodies)
                    .map(|(d, body)| {
                        (
                            documents::id.eq(d.id),
                            documents::lang.eq(d.lang),
                            documents::year.eq(d.year),
                            documents::body.eq(body),
                            documents::embedding.eq(d.embedding.as_ref()),
                        )
                    })
                    .collect();
                diesel::insert_into(documents::table).values(rows).execute(conn)?;
            }
            diesel::QueryResult::Ok(())
        })
        .unwrap();
    }};
}

/// The `k` nearest ids by the distance DSL (an exact scan written as a user would), among rows of
/// `lang` when given, ties by id, rows without a finite distance left out.
#[macro_export]
macro_rules! dsl_nearest {
    ($conn:expr, $q:expr, $metric:expr, $lang:expr, $k:expr) => {{
        use diesel::prelude::*;
        use diesel_vector::VectorExpressionMethods;
        use $crate::common::documents::documents as d;
        let q: &diesel_vector::Vector = $q;
        let lang: Option<&str> = $lang;
        let mut query = d::table.filter(d::embedding.is_not_null()).into_boxed();
        if let Some(lang) = lang {
            query = query.filter(d::lang.eq(lang.to_owned()));
        }
        let rows: Vec<(i64, Option<f64>)> = match $metric {
            diesel_vector::index::Metric::Cosine => {
                query.select((d::id, d::embedding.cosine_distance(q))).load($conn).unwrap()
            }
            diesel_vector::index::Metric::L2 => query.select((d::id, d::embedding.l2_distance(q))).load($conn).unwrap(),
            diesel_vector::index::Metric::L1 => query.select((d::id, d::embedding.l1_distance(q))).load($conn).unwrap(),
            _ => query.select((d::id, d::embedding.max_inner_product(q))).load($conn).unwrap(),
        };
        let mut rows: Vec<(i64, f64)> =
            rows.into_iter().filter_map(|(id, d)| d.filter(|d| d.is_finite()).map(|d| (id, d))).collect();
        rows.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        rows.truncate($k);
        rows.into_iter().map(|(id, _)| id).collect::<Vec<i64>>()
    }};
}

/// Runs `searches` on this thread while `writer`, on another, commits in a loop: each commit moves one of
/// the rows `pair` onto `target` and the other far off, the two swapping every time, and `after_commit`
/// follows it (a sync, say). Every committed state has exactly one of the two rows at `target`. The writer
/// stops when `searches` returns or panics.
#[cfg(feature = "sqlite")]
pub fn while_two_rows_swap(
    mut writer: diesel::SqliteConnection,
    pair: (i64, i64),
    target: &Vector,
    after_commit: impl Fn(&mut diesel::SqliteConnection) + Sync,
    searches: impl FnOnce(),
) {
    use diesel::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    let far = Vector::new(vec![50.0; DIMS]).unwrap();
    let swap = |conn: &mut diesel::SqliteConnection, near: i64, away: i64| {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            for (id, v) in [(near, target), (away, &far)] {
                diesel::update(documents::table.find(id)).set(documents::embedding.eq(Some(v))).execute(conn)?;
            }
            Ok(())
        })
        .unwrap();
        after_commit(conn);
    };
    swap(&mut writer, pair.0, pair.1);
    let stop = AtomicBool::new(false);
    /// Stops the writer however the searches end (a failed assertion included).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                let (near, away) = if flip { pair } else { (pair.1, pair.0) };
                swap(&mut writer, near, away);
                flip = !flip;
            }
        });
        let _stop = Stop(&stop);
        searches();
    });
}

/// The ids of `hits` at distance 0.
pub fn at_distance_zero(hits: &[diesel_vector::search::Hit]) -> Vec<i64> {
    hits.iter().filter(|h| h.distance == 0.0).map(|h| h.id).collect()
}

/// Inserts one English document of 2024 with `embedding`.
#[cfg(feature = "sqlite")]
pub fn insert_one(conn: &mut diesel::SqliteConnection, id: i64, embedding: &Vector) {
    use diesel::prelude::*;
    diesel::insert_into(documents::table)
        .values((
            documents::id.eq(id),
            documents::lang.eq("en"),
            documents::year.eq(2024),
            documents::body.eq("new"),
            documents::embedding.eq(Some(embedding)),
        ))
        .execute(conn)
        .unwrap();
}
