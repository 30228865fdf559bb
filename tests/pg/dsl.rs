//! The distance DSL on a real PostgreSQL with pgvector: the SQL it renders and its results.

#[path = "../common/distance.rs"]
mod reference;

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::Nullable;
use diesel_vector::{sql_types, Vector, VectorExpressionMethods};

use crate::common::smooth;
use reference::{assert_close, exact, scattered, Metric, DIMS, METRICS};

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    articles (id) {
        id -> Integer,
        title_embedding -> Vector,
        body_embedding -> Nullable<Vector>,
    }
}

/// The SQL of a query, without its binds.
fn sql_of(query: impl QueryFragment<Pg>) -> String {
    let text = diesel::debug_query::<Pg, _>(&query).to_string();
    text.split(" -- binds:").next().unwrap().to_owned()
}

/// A connection (in a test transaction) with an empty `articles` table.
fn conn_with_articles() -> PgConnection {
    let mut conn = crate::conn();
    conn.batch_execute(
        "CREATE TEMPORARY TABLE articles (id integer PRIMARY KEY, title_embedding vector NOT NULL, body_embedding vector)",
    )
    .unwrap();
    conn
}

fn insert(conn: &mut PgConnection, rows: &[(i32, &Vector, Option<&Vector>)]) {
    for (id, title, body) in rows {
        diesel::insert_into(articles::table)
            .values((articles::id.eq(id), articles::title_embedding.eq(title), articles::body_embedding.eq(body)))
            .execute(conn)
            .unwrap();
    }
}

/// `(id, metric(title_embedding, q))` for every row, by id.
fn distances(conn: &mut PgConnection, metric: Metric, q: &Vector) -> Vec<(i32, f64)> {
    use articles::{id, title_embedding as title};
    let rows = articles::table.order(id);
    match metric {
        Metric::L2 => rows.select((id, title.l2_distance(q))).load(conn),
        Metric::Cosine => rows.select((id, title.cosine_distance(q))).load(conn),
        Metric::L1 => rows.select((id, title.l1_distance(q))).load(conn),
        Metric::NegInnerProduct => rows.select((id, title.max_inner_product(q))).load(conn),
    }
    .unwrap()
}

#[test]
fn each_metric_renders_its_pgvector_operator() {
    use articles::{body_embedding as body, title_embedding as title};
    let q = Vector::new(vec![1.0, 2.0]).unwrap();
    let select = |expr: &str| format!("SELECT {expr} FROM \"articles\"");
    let (title_sql, body_sql) = ("\"articles\".\"title_embedding\"", "\"articles\".\"body_embedding\"");
    assert_eq!(sql_of(articles::table.select(title.l2_distance(&q))), select(&format!("({title_sql} <-> $1)")));
    assert_eq!(sql_of(articles::table.select(title.cosine_distance(&q))), select(&format!("({title_sql} <=> $1)")));
    assert_eq!(sql_of(articles::table.select(title.l1_distance(&q))), select(&format!("({title_sql} <+> $1)")));
    assert_eq!(sql_of(articles::table.select(title.max_inner_product(&q))), select(&format!("({title_sql} <#> $1)")));

    // pgvector's operators are strict (NULL in, NULL out): nullable sides render the same.
    assert_eq!(sql_of(articles::table.select(body.l2_distance(&q))), select(&format!("({body_sql} <-> $1)")));
    assert_eq!(
        sql_of(articles::table.select(title.cosine_distance(body))),
        select(&format!("({title_sql} <=> {body_sql})"))
    );
    assert_eq!(sql_of(articles::table.select(body.l1_distance(body))), select(&format!("({body_sql} <+> {body_sql})")));
    assert_eq!(
        sql_of(articles::table.select(title.max_inner_product(q.into_sql::<Nullable<sql_types::Vector>>()))),
        select(&format!("({title_sql} <#> $1)"))
    );
}

#[test]
fn distances_filter_and_order_a_nearest_neighbour_search() {
    let mut conn = conn_with_articles();
    let (near, middle, far) = (smooth(64, 0.0), smooth(64, 0.3), smooth(64, 2.0));
    insert(&mut conn, &[(1, &far, None), (2, &near, Some(&near)), (3, &middle, None)]);
    let q = smooth(64, 0.05);

    let nearest: Vec<i32> = articles::table
        .select(articles::id)
        .order(articles::title_embedding.cosine_distance(&q))
        .limit(2)
        .load(&mut conn)
        .unwrap();
    assert_eq!(nearest, [2, 3]);

    let radius = exact(Metric::L2, &middle, &q) + 0.01;
    let within: Vec<i32> = articles::table
        .select(articles::id)
        .filter(articles::title_embedding.l2_distance(&q).lt(radius))
        .order(articles::title_embedding.l2_distance(&q).desc())
        .load(&mut conn)
        .unwrap();
    assert_eq!(within, [3, 2]);

    let best: (i32, f64) = articles::table
        .select((articles::id, articles::title_embedding.max_inner_product(&q)))
        .order(articles::title_embedding.max_inner_product(&q))
        .first(&mut conn)
        .unwrap();
    assert_eq!(best.0, 2);
}

#[test]
fn every_metric_matches_an_f64_reference() {
    let mut conn = conn_with_articles();
    for dims in DIMS {
        conn.batch_execute("DELETE FROM articles").unwrap();
        let rows: Vec<Vector> =
            (0..6).map(|i| if i % 2 == 0 { smooth(dims, i as f32 + 0.5) } else { scattered(dims, i) }).collect();
        for (i, v) in rows.iter().enumerate() {
            insert(&mut conn, &[(i as i32, v, None)]);
        }
        let q = scattered(dims, 99);
        for metric in METRICS {
            for (id, actual) in distances(&mut conn, metric, &q) {
                let v = &rows[id as usize];
                assert_close(metric, actual, exact(metric, v, &q), v, &q);
            }
        }
    }
}

#[test]
fn max_inner_product_is_the_negative_inner_product() {
    let mut conn = conn_with_articles();
    let a = Vector::new(vec![1.0, 2.0, 3.0]).unwrap();
    let b = Vector::new(vec![-1.0, 0.5, 0.25]).unwrap();
    insert(&mut conn, &[(1, &a, None), (2, &b, None)]);
    let q = Vector::new(vec![2.0, 1.0, 0.0]).unwrap();
    assert_eq!(distances(&mut conn, Metric::NegInnerProduct, &q), [(1, -4.0), (2, 1.5)]);
}

#[test]
fn a_null_vector_has_a_null_distance() {
    let mut conn = conn_with_articles();
    let v = smooth(8, 0.5);
    insert(&mut conn, &[(1, &v, Some(&v)), (2, &v, None)]);
    let q = smooth(8, 1.0);
    let rows: Vec<(i32, Option<f64>)> = articles::table
        .select((articles::id, articles::body_embedding.l2_distance(&q)))
        .order(articles::id)
        .load(&mut conn)
        .unwrap();
    assert!(rows[0].1.is_some() && rows[1].1.is_none(), "{rows:?}");
    let both: Vec<Option<f64>> = articles::table
        .select(articles::body_embedding.cosine_distance(articles::body_embedding))
        .order(articles::id)
        .load(&mut conn)
        .unwrap();
    assert!(both[0].unwrap().abs() < 1e-6 && both[1].is_none(), "{both:?}");
}

#[test]
fn the_cosine_distance_to_a_zero_vector_is_nan() {
    let mut conn = conn_with_articles();
    let zero = Vector::new(vec![0.0; 20]).unwrap();
    insert(&mut conn, &[(1, &zero, None)]);
    let distance: f64 =
        articles::table.select(articles::title_embedding.cosine_distance(&smooth(20, 0.5))).first(&mut conn).unwrap();
    assert!(distance.is_nan(), "{distance}");
}

#[test]
fn vectors_of_different_dimensions_are_an_error() {
    let mut conn = conn_with_articles();
    insert(&mut conn, &[(1, &smooth(3, 0.5), None)]);
    let err = articles::table
        .select(articles::title_embedding.l2_distance(&smooth(4, 0.5)))
        .first::<f64>(&mut conn)
        .unwrap_err()
        .to_string();
    assert!(err.contains("different vector dimensions 3 and 4"), "{err}");
}
