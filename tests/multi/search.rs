//! The same data on PostgreSQL and SQLite gives the same neighbours, in the same order.

use diesel::prelude::*;
use diesel_vector::models::{NewFragment, NewFragmentEmbedding};
use diesel_vector::schema::{fragment_embeddings, fragments};
use diesel_vector::search::{Metric, Neighbor, Search, SearchTarget, Strategy};
use diesel_vector::{migrations, Vector};

use crate::common::clustered;

const PROVIDERS: [&str; 2] = ["openai", "cohere"];
const MODELS: [&str; 2] = ["small", "large"];

fn variant(v: &Vector, p: usize, m: usize) -> Vector {
    let shift = (p * 2 + m) as f32 * 0.37;
    Vector::new(v.as_slice().iter().enumerate().map(|(i, x)| x + ((i as f32 + shift).sin() * 0.05)).collect()).unwrap()
}

macro_rules! load_rows {
    ($conn:expr, $vectors:expr) => {{
        let conn = $conn;
        conn.transaction(|conn| {
            for chunk in $vectors.chunks(250) {
                let contents: Vec<String> = (0..chunk.len()).map(|i| format!("fragment {i}")).collect();
                let new: Vec<NewFragment> = contents.iter().map(|c| NewFragment { content: c }).collect();
                let ids: Vec<i64> =
                    diesel::insert_into(fragments::table).values(&new).returning(fragments::id).get_results(conn)?;
                for (pi, p) in PROVIDERS.iter().enumerate() {
                    for (mi, m) in MODELS.iter().enumerate() {
                        let variants: Vec<Vector> = chunk.iter().map(|v| variant(v, pi, mi)).collect();
                        let rows: Vec<NewFragmentEmbedding> = ids
                            .iter()
                            .zip(&variants)
                            .map(|(id, v)| NewFragmentEmbedding::new(*id, p, m, v, "h"))
                            .collect();
                        diesel::insert_into(fragment_embeddings::table).values(&rows).execute(conn)?;
                    }
                }
            }
            QueryResult::Ok(())
        })
        .unwrap();
    }};
}

fn search<C: SearchTarget>(
    conn: &mut C,
    p: &str,
    m: &str,
    q: &Vector,
    metric: Metric,
    strategy: Strategy,
) -> Vec<Neighbor> {
    Search::new(p, m, q).k(10).metric(metric).strategy(strategy).run(conn).unwrap()
}

#[test]
fn both_backends_return_the_same_neighbours_for_every_metric() {
    let db = crate::common::pg::FreshDb::create();
    let mut pg = PgConnection::establish(&db.url).unwrap();
    migrations::run_pending_migrations(&mut pg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut lite = diesel_vector::sqlite::establish(dir.path().join("same.db").to_str().unwrap()).unwrap();
    migrations::run_pending_migrations(&mut lite).unwrap();

    let vectors = clustered(42, 1500, 1536, 12);
    load_rows!(&mut pg, &vectors);
    load_rows!(&mut lite, &vectors);

    let queries = clustered(43, 4, 1536, 12);
    let mut compared = 0;
    for metric in [Metric::Cosine, Metric::L2, Metric::L1, Metric::InnerProduct] {
        for (p, m) in PROVIDERS.iter().flat_map(|p| MODELS.iter().map(move |m| (*p, *m))) {
            for q in &queries {
                let expected = search(&mut pg, p, m, q, metric, Strategy::Exact);
                for strategy in [Strategy::Auto, Strategy::Exact] {
                    let got = search(&mut lite, p, m, q, metric, strategy);
                    let ids = |h: &[Neighbor]| h.iter().map(|n| n.id).collect::<Vec<_>>();
                    assert_eq!(ids(&got), ids(&expected), "{metric:?} {p}/{m} {strategy:?}");
                    for (a, b) in got.iter().zip(&expected) {
                        let tolerance = 1e-5 * b.distance.abs().max(1.0);
                        assert!(
                            (a.distance - b.distance).abs() <= tolerance,
                            "{metric:?}: {} vs {}",
                            a.distance,
                            b.distance
                        );
                    }
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 4 * 4 * 4 * 2);
}

/// pgvector's ivfflat at the crate's defaults (index rebuilt for the data, `sqrt(lists)` probes) finds at
/// least 95% of the true 10 nearest neighbours on 20k clustered, embedding-like 1536-dim vectors.
#[test]
fn ivfflat_recall_at_10_is_at_least_95_percent_at_the_default_settings() {
    let db = crate::common::pg::FreshDb::create();
    let mut pg = PgConnection::establish(&db.url).unwrap();
    migrations::run_pending_migrations(&mut pg).unwrap();
    let vectors = clustered(2024, 20_000, 1536, 50);
    crate::common::pg::load(&mut pg, &vectors);
    let lists = diesel_vector::pg::rebuild_ivfflat_index(&mut pg).unwrap();
    assert_eq!(lists, 20);

    let queries = clustered(2025, 40, 1536, 50);
    let (mut found, mut total) = (0usize, 0usize);
    for q in &queries {
        let truth: Vec<i64> =
            search(&mut pg, "p", "m", q, Metric::Cosine, Strategy::Exact).iter().map(|n| n.id).collect();
        let got = search(&mut pg, "p", "m", q, Metric::Cosine, Strategy::Auto);
        found += got.iter().filter(|n| truth.contains(&n.id)).count();
        total += truth.len();
    }
    let recall = found as f64 / total as f64;
    eprintln!("ivfflat recall@10 on 20k clustered 1536-dim vectors (lists {lists}, default probes): {recall:.3}");
    assert!(recall >= 0.95, "recall@10 = {recall:.3}");
}
