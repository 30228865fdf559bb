//! Nearest-neighbour search on SQLite: the quantized codes, the exact path, with and without sqlite-vec.

use diesel::prelude::*;
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::schema::{fragment_embeddings, fragments};
use diesel_vector::search::{Metric, Search, SearchError, Strategy};
use diesel_vector::{migrations, Vector, VectorError};

use crate::common::{clustered, telemetry};

/// A migrated in-memory database with `n` clustered embeddings for ("p", "m") and a few for another model.
fn populated(n: usize) -> (SqliteConnection, Vec<Vector>) {
    let mut conn = crate::conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let vectors = clustered(7, n, 1536, 8);
    conn.transaction(|conn| {
        for (i, v) in vectors.iter().enumerate() {
            let id: i64 = diesel::insert_into(fragments::table)
                .values(fragments::content.eq(format!("f{i}")))
                .returning(fragments::id)
                .get_result(conn)?;
            NewFragmentEmbedding::new(id, "p", "m", v, "h").upsert(conn)?;
            if i % 10 == 0 {
                NewFragmentEmbedding::new(id, "p", "other", v, "h").upsert(conn)?;
            }
        }
        QueryResult::Ok(())
    })
    .unwrap();
    (conn, vectors)
}

/// The true k nearest fragment ids by cosine, computed in Rust.
fn brute_force(vectors: &[Vector], q: &Vector, k: usize) -> Vec<i64> {
    let mut all: Vec<(f64, i64)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (crate::common::cosine_distance(v.as_slice(), q.as_slice()), i as i64 + 1))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, id)| id).collect()
}

#[test]
fn the_default_path_and_the_exact_path_agree_with_a_brute_force_scan() {
    let (mut conn, vectors) = populated(300);
    for (qi, q) in clustered(99, 5, 1536, 8).iter().enumerate() {
        let (indexed, events) = telemetry::capture(|| Search::new("p", "m", q).k(10).run(&mut conn).unwrap());
        let exact = Search::new("p", "m", q).k(10).strategy(Strategy::Exact).run(&mut conn).unwrap();
        let ids = |hits: &[diesel_vector::search::Neighbor]| hits.iter().map(|h| h.fragment_id).collect::<Vec<_>>();
        assert_eq!(ids(&exact), brute_force(&vectors, q, 10), "query {qi}");
        assert_eq!(ids(&indexed), ids(&exact));
        for (a, b) in indexed.iter().zip(&exact) {
            assert!((a.distance - b.distance).abs() < 1e-6);
        }
        // The quantized codes answer, with or without sqlite-vec.
        assert!(events.iter().any(|e| e.contains("path=codes") && e.contains("rows=10")), "{events:#?}");
    }
}

#[test]
fn every_metric_runs_with_or_without_sqlite_vec() {
    let (mut conn, vectors) = populated(60);
    let q = &vectors[3];
    for metric in [Metric::Cosine, Metric::L2, Metric::L1] {
        let hits = Search::new("p", "m", q).k(5).metric(metric).run(&mut conn).unwrap();
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0].fragment_id, 4, "{metric:?}: a vector is its own nearest neighbour");
        assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
    }
}

#[test]
fn a_fragment_filter_returns_k_rows_when_k_match() {
    let (mut conn, vectors) = populated(200);
    let wanted: Vec<i64> = (1..=200).filter(|i| i % 17 == 0).collect();
    let hits = Search::new("p", "m", &vectors[0]).k(5).fragment_ids(&wanted).run(&mut conn).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| wanted.contains(&h.fragment_id)));
    let few = Search::new("p", "m", &vectors[0]).k(50).fragment_ids(&wanted).run(&mut conn).unwrap();
    assert_eq!(few.len(), wanted.len(), "all that match, when fewer than k");
}

#[test]
fn models_are_never_mixed() {
    let (mut conn, vectors) = populated(50);
    let hits = Search::new("p", "other", &vectors[1]).k(50).run(&mut conn).unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| (h.fragment_id - 1) % 10 == 0));
    assert!(Search::new("nobody", "m", &vectors[1]).run(&mut conn).unwrap().is_empty());
}

#[test]
fn upsert_replaces_the_vector_and_the_index_follows() {
    let (mut conn, vectors) = populated(30);
    let far = Vector::new(vectors[0].as_slice().iter().map(|x| -x).collect()).unwrap();
    let before = Search::new("p", "m", &vectors[0]).k(1).run(&mut conn).unwrap();
    assert_eq!(before[0].fragment_id, 1);
    let id = NewFragmentEmbedding::new(1, "p", "m", &far, "h").upsert(&mut conn).unwrap();
    assert_eq!(id, before[0].id, "the same row was updated");
    let count: i64 = fragment_embeddings::table
        .filter(fragment_embeddings::fragment_id.eq(1))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(count, 2, "one per model, no duplicate");
    let after = Search::new("p", "m", &vectors[0]).k(1).run(&mut conn).unwrap();
    assert_ne!(after[0].fragment_id, 1);
    let stored: Option<Vector> =
        fragment_embeddings::table.find(id).select(fragment_embeddings::embedding).first(&mut conn).unwrap();
    assert_eq!(stored, Some(far));
}

#[test]
fn invalid_queries_are_clear_errors() {
    let (mut conn, _) = populated(3);
    let short = Vector::new(vec![1.0; 768]).unwrap();
    let err = Search::new("p", "m", &short).run(&mut conn).unwrap_err();
    assert!(matches!(err, SearchError::InvalidQuery(VectorError::DimensionMismatch { expected: 1536, found: 768 })));
    assert!(err.to_string().contains("768 dimensions but 1536 are expected"), "{err}");
    let zero = Vector::new(vec![0.0; 1536]).unwrap();
    let err = Search::new("p", "m", &zero).run(&mut conn).unwrap_err();
    assert!(matches!(err, SearchError::ZeroQuery), "{err}");
    assert!(Search::new("p", "m", &zero).metric(Metric::L2).run(&mut conn).is_ok(), "zero is fine for L2");
    let ok = Vector::new(vec![1.0; 1536]).unwrap();
    assert!(matches!(Search::new("p", "m", &ok).k(0).run(&mut conn), Err(SearchError::InvalidK)));
}

#[test]
fn ties_are_broken_by_id() {
    let mut conn = crate::conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let v = clustered(3, 1, 1536, 1).remove(0);
    for i in 0..12 {
        let id: i64 = diesel::insert_into(fragments::table)
            .values(fragments::content.eq(format!("dup {i}")))
            .returning(fragments::id)
            .get_result(&mut conn)
            .unwrap();
        NewFragmentEmbedding::new(id, "p", "m", &v, "h").upsert(&mut conn).unwrap();
    }
    for strategy in [Strategy::Auto, Strategy::Exact] {
        let hits = Search::new("p", "m", &v).k(5).strategy(strategy).run(&mut conn).unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "{strategy:?}");
    }
}

#[test]
fn bulk_insert_round_trips_and_is_all_or_nothing() {
    crate::bulk_insert_round_trip!(&mut crate::conn());
}

#[test]
fn stored_zero_vectors_are_nobodys_cosine_neighbour() {
    for (mut conn, label) in
        [(crate::conn(), "sqlite-vec"), (crate::dsl::conn_without_sqlite_vec(), "crate's functions")]
    {
        migrations::run_pending_migrations(&mut conn).unwrap();
        let zero = Vector::new(vec![0.0; 1536]).unwrap();
        let vectors = clustered(4, 3, 1536, 1);
        // The zero vectors first, so that they hold the lowest ids.
        for (i, v) in std::iter::repeat_n(&zero, 4).chain(&vectors).enumerate() {
            let id: i64 = diesel::insert_into(fragments::table)
                .values(fragments::content.eq(format!("f{i}")))
                .returning(fragments::id)
                .get_result(&mut conn)
                .unwrap();
            NewFragmentEmbedding::new(id, "p", "m", v, "h").upsert(&mut conn).unwrap();
        }
        for strategy in [Strategy::Auto, Strategy::Exact] {
            let hits = Search::new("p", "m", &vectors[0]).k(10).strategy(strategy).run(&mut conn).unwrap();
            let mut ids: Vec<i64> = hits.iter().map(|h| h.id).collect();
            assert_eq!(ids[0], 5, "{label}, {strategy:?}");
            ids.sort_unstable();
            assert_eq!(ids, [5, 6, 7], "{label}, {strategy:?}: only the non-zero vectors");
        }
        let l2 = Search::new("p", "m", &vectors[0]).k(10).metric(Metric::L2).run(&mut conn).unwrap();
        assert_eq!(l2.len(), 7, "{label}: zero vectors have an L2 distance");
    }
}
