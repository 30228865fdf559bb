//! `HalfVector`, `SparseVector` and `Bit` through a `#[derive(MultiConnection)]` enum: the same values
//! round-trip through both backends, and the same queries give the same distances on both.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_vector::{sql_types, Bit, HalfVector, SparseVector, VectorExpressionMethods};

use super::AnyConnection;
use crate::common::types::{assert_half_bit_exact, assert_sparse_bit_exact, bit_sample, half_sample, sparse_sample};
use crate::common::Rng;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::{Bit, HalfVector, SparseVector};

    products (id) {
        id -> Integer,
        embedding -> Nullable<HalfVector>,
        terms -> Nullable<SparseVector>,
        code -> Nullable<Bit>,
    }
}

/// Both backends, each with an empty `products` table (PostgreSQL inside a test transaction).
fn connections() -> Vec<(&'static str, AnyConnection)> {
    let mut pg = crate::common::pg::shared_conn_with_pgvector();
    pg.begin_test_transaction().unwrap();
    pg.batch_execute(
        "CREATE TEMPORARY TABLE products (id integer PRIMARY KEY, embedding halfvec, terms sparsevec, code bit varying)",
    )
    .unwrap();
    let mut lite = diesel_vector::sqlite::establish(":memory:").unwrap();
    lite.batch_execute("CREATE TABLE products (id INTEGER PRIMARY KEY, embedding BLOB, terms BLOB, code BLOB)")
        .unwrap();
    vec![("postgresql", AnyConnection::Postgresql(pg)), ("sqlite", AnyConnection::Sqlite(lite))]
}

type Row = (i32, Option<HalfVector>, Option<SparseVector>, Option<Bit>);

fn insert(conn: &mut AnyConnection, rows: &[Row]) {
    for (id, e, t, c) in rows {
        diesel::insert_into(products::table)
            .values((products::id.eq(id), products::embedding.eq(e), products::terms.eq(t), products::code.eq(c)))
            .execute(conn)
            .unwrap();
    }
}

#[test]
fn each_type_round_trips_through_either_backend() {
    let rows: Vec<Row> = vec![
        (1, Some(half_sample(3072)), Some(sparse_sample(1_000_000_000, 300)), Some(bit_sample(1536, 1))),
        (2, None, None, None),
        (3, Some(half_sample(1)), Some(sparse_sample(1, 0)), Some(bit_sample(8, 2))),
    ];
    for (name, mut conn) in connections() {
        insert(&mut conn, &rows);
        let back: Vec<Row> = products::table.order(products::id).load(&mut conn).unwrap();
        assert_eq!(back.len(), rows.len(), "{name}");
        for ((_, e, t, c), (_, want_e, want_t, want_c)) in back.iter().zip(&rows) {
            match (e, want_e) {
                (Some(e), Some(want)) => assert_half_bit_exact(e, want),
                (e, want) => assert_eq!(e, want, "{name}"),
            }
            match (t, want_t) {
                (Some(t), Some(want)) => assert_sparse_bit_exact(t, want),
                (t, want) => assert_eq!(t, want, "{name}"),
            }
            assert_eq!(c, want_c, "{name}");
        }
        let v = half_sample(16);
        let direct: HalfVector =
            diesel::select(v.clone().into_sql::<sql_types::HalfVector>()).get_result(&mut conn).unwrap();
        assert_half_bit_exact(&direct, &v);
    }
}

/// Embedding-like data: a query and rows that are near it and far from it.
fn dataset(seed: u64) -> (Vec<Row>, HalfVector, SparseVector, Bit) {
    let mut rng = Rng::new(seed);
    let half = |rng: &mut Rng| HalfVector::from_f32_slice(&(0..384).map(|_| rng.unit()).collect::<Vec<_>>()).unwrap();
    let sparse = |rng: &mut Rng| {
        let map: std::collections::BTreeMap<i32, f32> =
            (0..60).map(|_| ((rng.next_u64() % 30_522) as i32, rng.unit() * 3.0)).collect();
        SparseVector::from_map(&map, 30_522).unwrap()
    };
    let rows = (1..=12)
        .map(|id| {
            let e = half(&mut rng);
            let t = sparse(&mut rng);
            let c = Bit::new(&e.as_slice().iter().map(|x| x.to_f32() > 0.0).collect::<Vec<_>>());
            (id, Some(e), Some(t), Some(c))
        })
        .collect();
    let q = half(&mut rng);
    let code = Bit::new(&q.as_slice().iter().map(|x| x.to_f32() > 0.0).collect::<Vec<_>>());
    (rows, q, sparse(&mut rng), code)
}

type Distances = Vec<(Option<f64>, Option<f64>, Option<f64>, Option<f64>)>;

fn half_distances(conn: &mut AnyConnection, q: &HalfVector) -> Distances {
    products::table
        .order(products::id)
        .select((
            products::embedding.l2_distance(q),
            products::embedding.cosine_distance(q),
            products::embedding.l1_distance(q),
            products::embedding.max_inner_product(q),
        ))
        .load(conn)
        .unwrap()
}

fn sparse_distances(conn: &mut AnyConnection, q: &SparseVector) -> Distances {
    products::table
        .order(products::id)
        .select((
            products::terms.l2_distance(q),
            products::terms.cosine_distance(q),
            products::terms.l1_distance(q),
            products::terms.max_inner_product(q),
        ))
        .load(conn)
        .unwrap()
}

fn bit_distances(conn: &mut AnyConnection, q: &Bit) -> Vec<(Option<f64>, Option<f64>)> {
    products::table
        .order(products::id)
        .select((products::code.hamming_distance(q), products::code.jaccard_distance(q)))
        .load(conn)
        .unwrap()
}

#[test]
fn sparse_and_bit_distances_agree_on_both_backends() {
    let (rows, _, sq, bq) = dataset(11);
    let mut results = Vec::new();
    for (name, mut conn) in connections() {
        insert(&mut conn, &rows);
        results.push((name, sparse_distances(&mut conn, &sq), bit_distances(&mut conn, &bq)));
    }
    let [(_, pg_sparse, pg_bits), (_, lite_sparse, lite_bits)] = &results[..] else { panic!("two backends") };
    // Bit distances are exact integer arithmetic on both.
    assert_eq!(pg_bits, lite_bits);
    assert!(pg_bits.iter().all(|(h, j)| h.is_some() && j.is_some()));
    // The crate runs pgvector's sparse loops in pgvector's order. L1 has no products and is the same to
    // the bit; in the others pgvector's build may fuse a multiply and an add (its default `-march=native`
    // allows FMA), so they agree to about 1e-7 of the terms' size.
    let norm = |v: &SparseVector| v.values().iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    for ((row, pg), lite) in rows.iter().zip(pg_sparse).zip(lite_sparse) {
        let t = row.2.as_ref().unwrap();
        assert_eq!(pg.2.map(f64::to_bits), lite.2.map(f64::to_bits), "L1");
        let scale = [pg.0.unwrap(), 1.0, 0.0, norm(t) * norm(&sq)];
        for (i, (p, l)) in [(pg.0, lite.0), (pg.1, lite.1), (pg.3, lite.3)].into_iter().enumerate() {
            let (p, l) = (p.unwrap(), l.unwrap());
            let scale = scale[if i == 2 { 3 } else { i }];
            assert!((p - l).abs() <= 1e-6 * scale, "metric {i}: {p} vs {l}");
        }
    }
}

#[test]
fn halfvec_distances_agree_on_both_backends() {
    let (rows, q, _, _) = dataset(12);
    let mut results = Vec::new();
    for (name, mut conn) in connections() {
        insert(&mut conn, &rows);
        results.push((name, half_distances(&mut conn, &q)));
    }
    let [(_, pg), (_, lite)] = &results[..] else { panic!("two backends") };
    // Both sum f32 products of the same halves; pgvector adds in 8 lanes (F16C) or one, the crate in 16:
    // the sums agree to about 1e-6 of the terms' size.
    let norms = |e: &HalfVector| {
        let dot = |a: &HalfVector| a.to_f32_vec().iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        dot(e) * dot(&q)
    };
    for ((row, pg), lite) in rows.iter().zip(pg).zip(lite) {
        let e = row.1.as_ref().unwrap();
        let scale = [pg.0.unwrap(), 1.0, pg.2.unwrap(), norms(e)];
        for (i, (p, l)) in [(pg.0, lite.0), (pg.1, lite.1), (pg.2, lite.2), (pg.3, lite.3)].into_iter().enumerate() {
            let (p, l) = (p.unwrap(), l.unwrap());
            assert!((p - l).abs() <= 1e-6 * scale[i], "metric {i}: {p} vs {l}");
        }
    }
}

#[test]
fn a_binary_quantized_search_then_rerank_gives_the_same_ids_on_both_backends() {
    let (rows, q, _, code) = dataset(13);
    let mut answers = Vec::new();
    for (name, mut conn) in connections() {
        insert(&mut conn, &rows);
        let candidates: Vec<i32> = products::table
            .select(products::id)
            .order((products::code.hamming_distance(&code), products::id))
            .limit(6)
            .load(&mut conn)
            .unwrap();
        let nearest: Vec<i32> = products::table
            .select(products::id)
            .filter(products::id.eq_any(&candidates))
            .order((products::embedding.cosine_distance(&q), products::id))
            .limit(3)
            .load(&mut conn)
            .unwrap();
        answers.push((name, candidates, nearest));
    }
    assert_eq!(answers[0].1, answers[1].1, "the same candidates");
    assert_eq!(answers[0].2, answers[1].2, "the same nearest");
}
