//! The distance DSL on real SQLite: the SQL it renders, and its results with sqlite-vec and without it.

#[path = "../common/distance.rs"]
mod reference;

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{Double, Nullable};
use diesel::sqlite::Sqlite;
use diesel_vector::sqlite::{self, ConnectionOptions};
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
fn sql_of(query: impl QueryFragment<Sqlite>) -> String {
    let text = diesel::debug_query::<Sqlite, _>(&query).to_string();
    text.split(" -- binds:").next().unwrap().to_owned()
}

/// An in-memory database without sqlite-vec, set up by [`ConnectionOptions::apply`], which registers
/// the crate's own distance functions in its place.
pub(crate) fn conn_without_sqlite_vec() -> SqliteConnection {
    #[cfg(feature = "sqlite-vec")]
    let mut conn = {
        let _exclusive = crate::EXTENSION_REGISTRATION.write().unwrap();
        sqlite::deregister_sqlite_vec();
        let conn = SqliteConnection::establish(":memory:");
        sqlite::register_sqlite_vec().unwrap();
        conn.unwrap()
    };
    #[cfg(not(feature = "sqlite-vec"))]
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    ConnectionOptions::default().apply(&mut conn).unwrap();
    assert_eq!(sqlite::sqlite_vec_version(&mut conn).unwrap(), None);
    conn
}

/// Every SQLite set-up the DSL must run on, each with an `articles` table: with sqlite-vec (when it is
/// compiled in) and without it.
fn flavours() -> Vec<(&'static str, SqliteConnection)> {
    let mut flavours = vec![("no extension", conn_without_sqlite_vec())];
    if sqlite::SQLITE_VEC_COMPILED_IN {
        let mut conn = crate::conn();
        assert!(sqlite::sqlite_vec_version(&mut conn).unwrap().is_some());
        flavours.push(("sqlite-vec", conn));
    }
    for (_, conn) in &mut flavours {
        conn.batch_execute(
            "CREATE TABLE articles (id INTEGER PRIMARY KEY, title_embedding BLOB NOT NULL, body_embedding BLOB)",
        )
        .unwrap();
    }
    flavours
}

fn insert(conn: &mut SqliteConnection, rows: &[(i32, &Vector, Option<&Vector>)]) {
    for (id, title, body) in rows {
        diesel::insert_into(articles::table)
            .values((articles::id.eq(id), articles::title_embedding.eq(title), articles::body_embedding.eq(body)))
            .execute(conn)
            .unwrap();
    }
}

/// `(id, metric(title_embedding, q))` for every row, by id.
fn distances(conn: &mut SqliteConnection, metric: Metric, q: &Vector) -> Vec<(i32, f64)> {
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
fn each_metric_renders_its_sqlite_function() {
    use articles::title_embedding as title;
    let q = Vector::new(vec![1.0, 2.0]).unwrap();
    let select = |expr: &str| format!("SELECT {expr} FROM `articles`");
    let column = "`articles`.`title_embedding`";
    assert_eq!(sql_of(articles::table.select(title.l2_distance(&q))), select(&format!("vec_distance_l2({column}, ?)")));
    assert_eq!(
        sql_of(articles::table.select(title.cosine_distance(&q))),
        select(&format!("vec_distance_cosine({column}, ?)"))
    );
    assert_eq!(sql_of(articles::table.select(title.l1_distance(&q))), select(&format!("vec_distance_l1({column}, ?)")));
    assert_eq!(
        sql_of(articles::table.select(title.max_inner_product(&q))),
        select(&format!("diesel_vector_neg_inner_product({column}, ?)"))
    );
    // Distances take Diesel's arithmetic like any `Double` expression.
    assert_eq!(
        sql_of(articles::table.select(title.cosine_distance(&q) * 0.5)),
        select(&format!("(vec_distance_cosine({column}, ?) * ?)"))
    );
}

#[test]
fn a_nullable_side_is_guarded_so_that_null_gives_null() {
    use articles::{body_embedding as body, title_embedding as title};
    let q = Vector::new(vec![1.0, 2.0]).unwrap();
    let (title_sql, body_sql) = ("`articles`.`title_embedding`", "`articles`.`body_embedding`");
    assert_eq!(
        sql_of(articles::table.select(body.l2_distance(&q))),
        format!("SELECT CASE WHEN {body_sql} IS NOT NULL THEN vec_distance_l2({body_sql}, ?) END FROM `articles`")
    );
    assert_eq!(
        sql_of(articles::table.select(title.cosine_distance(body))),
        format!(
            "SELECT CASE WHEN {body_sql} IS NOT NULL THEN vec_distance_cosine({title_sql}, {body_sql}) END \
             FROM `articles`"
        )
    );
    assert_eq!(
        sql_of(articles::table.select(body.l1_distance(body))),
        format!(
            "SELECT CASE WHEN {body_sql} IS NOT NULL AND {body_sql} IS NOT NULL \
             THEN vec_distance_l1({body_sql}, {body_sql}) END FROM `articles`"
        )
    );
    assert_eq!(
        sql_of(articles::table.select(title.max_inner_product(q.into_sql::<Nullable<sql_types::Vector>>()))),
        format!(
            "SELECT CASE WHEN ? IS NOT NULL THEN diesel_vector_neg_inner_product({title_sql}, ?) END FROM `articles`"
        )
    );
}

#[test]
fn distances_filter_and_order_a_nearest_neighbour_search() {
    for (flavour, mut conn) in flavours() {
        let (near, middle, far) = (smooth(64, 0.0), smooth(64, 0.3), smooth(64, 2.0));
        insert(&mut conn, &[(1, &far, None), (2, &near, Some(&near)), (3, &middle, None)]);
        let q = smooth(64, 0.05);

        let nearest: Vec<i32> = articles::table
            .select(articles::id)
            .order(articles::title_embedding.cosine_distance(&q))
            .limit(2)
            .load(&mut conn)
            .unwrap();
        assert_eq!(nearest, [2, 3], "{flavour}");

        let radius = exact(Metric::L2, &middle, &q) + 0.01;
        let within: Vec<i32> = articles::table
            .select(articles::id)
            .filter(articles::title_embedding.l2_distance(&q).lt(radius))
            .order(articles::title_embedding.l2_distance(&q).desc())
            .load(&mut conn)
            .unwrap();
        assert_eq!(within, [3, 2], "{flavour}");

        let best: (i32, f64) = articles::table
            .select((articles::id, articles::title_embedding.max_inner_product(&q)))
            .order(articles::title_embedding.max_inner_product(&q))
            .first(&mut conn)
            .unwrap();
        assert_eq!(best.0, 2, "{flavour}");
    }
}

#[test]
fn the_readme_s_nearest_query_keeps_null_and_zero_vectors_out() {
    // A zero vector has no cosine distance: NULL here (SQLite has no NaN), NaN on PostgreSQL, where it sorts
    // after every number. Ordered as they are, SQLite's NULL would come first and fail to load as `f64`; the
    // README's query filters rows without a distance out, so both backends return the same rows.
    for (flavour, mut conn) in flavours() {
        let (near, middle, zero) = (smooth(64, 0.0), smooth(64, 0.3), Vector::new(vec![0.0; 64]).unwrap());
        insert(
            &mut conn,
            &[(1, &near, Some(&zero)), (2, &near, Some(&middle)), (3, &near, None), (4, &near, Some(&near))],
        );
        let q = smooth(64, 0.05);
        let body = articles::body_embedding;
        let nearest: Vec<(i32, f64)> = articles::table
            .filter(body.is_not_null().and(body.cosine_distance(&q).is_not_null()))
            .select((articles::id, body.cosine_distance(&q).assume_not_null()))
            .order(body.cosine_distance(&q))
            .limit(10)
            .load(&mut conn)
            .unwrap();
        assert_eq!(nearest.iter().map(|r| r.0).collect::<Vec<_>>(), [4, 2], "{flavour}");
    }
}

#[test]
fn every_metric_matches_an_f64_reference() {
    for (flavour, mut conn) in flavours() {
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
                    let expected = exact(metric, v, &q);
                    assert!(actual.is_finite(), "{flavour}: {metric:?} {actual}");
                    assert_close(metric, actual, expected, v, &q);
                }
            }
        }
    }
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn the_crates_functions_agree_with_sqlite_vecs() {
    let mut flavours = flavours();
    let (_, mut with) = flavours.pop().unwrap();
    let (_, mut without) = flavours.pop().unwrap();
    for dims in DIMS {
        let rows: Vec<Vector> = (0..20).map(|i| scattered(dims, 1000 + i)).collect();
        for conn in [&mut with, &mut without] {
            conn.batch_execute("DELETE FROM articles").unwrap();
            for (i, v) in rows.iter().enumerate() {
                insert(conn, &[(i as i32, v, None)]);
            }
        }
        let q = scattered(dims, 7);
        for metric in [Metric::L2, Metric::Cosine, Metric::L1] {
            let theirs = distances(&mut with, metric, &q);
            let ours = distances(&mut without, metric, &q);
            for ((id, theirs), (_, ours)) in theirs.iter().zip(&ours) {
                let v = &rows[*id as usize];
                // The crate clamps the cosine similarity to [-1, 1] as pgvector does; sqlite-vec does not.
                let theirs = if metric == Metric::Cosine { &theirs.clamp(0.0, 2.0) } else { theirs };
                if dims < 16 || metric == Metric::L1 {
                    // Shorter than one block of partial sums, the crate adds in sqlite-vec's order; L1 sums
                    // in f64 on both sides.
                    assert!((ours - theirs).abs() <= 1e-12 * theirs.abs(), "{metric:?} {dims}: {ours} vs {theirs}");
                } else {
                    assert_close(metric, *ours, *theirs, v, &q);
                }
            }
        }
    }
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn with_sqlite_vec_loaded_its_functions_are_kept() {
    // sqlite-vec also reads JSON text; the crate's functions take BLOBs only.
    let text_distance = |conn: &mut SqliteConnection| {
        diesel::select(sql::<Double>("vec_distance_l1('[1, 2]', '[2, 4]')")).get_result::<f64>(conn)
    };
    let mut flavours = flavours();
    let (_, mut with) = flavours.pop().unwrap();
    let (_, mut without) = flavours.pop().unwrap();
    assert_eq!(text_distance(&mut with).unwrap(), 3.0);
    let err = text_distance(&mut without).unwrap_err().to_string();
    assert!(err.starts_with("vec_distance_l1(): argument 1: expected a BLOB"), "{err}");
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn sqlite_vecs_functions_fail_on_null_which_is_why_nullable_sides_are_guarded() {
    let mut conn = crate::conn();
    let err = diesel::select(sql::<Nullable<Double>>("vec_distance_l2(NULL, x'0000803f')"))
        .get_result::<Option<f64>>(&mut conn)
        .unwrap_err()
        .to_string();
    assert!(err.contains("found NULL"), "{err}");
}

#[test]
fn max_inner_product_is_the_negative_inner_product_like_pgvectors() {
    for (flavour, mut conn) in flavours() {
        let a = Vector::new(vec![1.0, 2.0, 3.0]).unwrap();
        let b = Vector::new(vec![-1.0, 0.5, 0.25]).unwrap();
        insert(&mut conn, &[(1, &a, None), (2, &b, None)]);
        let q = Vector::new(vec![2.0, 1.0, 0.0]).unwrap();
        assert_eq!(distances(&mut conn, Metric::NegInnerProduct, &q), [(1, -4.0), (2, 1.5)], "{flavour}");
    }
}

#[test]
fn a_null_vector_has_a_null_distance() {
    for (flavour, mut conn) in flavours() {
        let v = smooth(8, 0.0);
        insert(&mut conn, &[(1, &v, Some(&v)), (2, &v, None)]);
        let q = smooth(8, 1.0);
        let rows: Vec<(i32, Option<f64>)> = articles::table
            .select((articles::id, articles::body_embedding.l2_distance(&q)))
            .order(articles::id)
            .load(&mut conn)
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].1.is_some() && rows[1].1.is_none(), "{flavour}: {rows:?}");

        // Nullable on either side, or both.
        let both: Vec<Option<f64>> = articles::table
            .select(articles::body_embedding.cosine_distance(articles::body_embedding))
            .order(articles::id)
            .load(&mut conn)
            .unwrap();
        assert!(both[0].unwrap().abs() < 1e-6 && both[1].is_none(), "{flavour}: {both:?}");
        let right: Vec<Option<f64>> = articles::table
            .select(articles::title_embedding.max_inner_product(articles::body_embedding))
            .order(articles::id)
            .load(&mut conn)
            .unwrap();
        assert!(right[0].is_some() && right[1].is_none(), "{flavour}: {right:?}");
    }
}

#[test]
fn the_cosine_distance_to_a_zero_vector_is_null() {
    for (flavour, mut conn) in flavours() {
        let zero = Vector::new(vec![0.0; 20]).unwrap();
        insert(&mut conn, &[(1, &zero, None)]);
        let distance: Option<f64> = articles::table
            .select(articles::title_embedding.cosine_distance(&smooth(20, 0.0)).nullable())
            .first(&mut conn)
            .unwrap();
        assert_eq!(distance, None, "{flavour}");
    }
}

#[test]
fn vectors_of_different_dimensions_are_an_error() {
    for (flavour, mut conn) in flavours() {
        insert(&mut conn, &[(1, &smooth(3, 0.0), None)]);
        let q = smooth(4, 0.0);
        let err = articles::table
            .select(articles::title_embedding.l2_distance(&q))
            .first::<f64>(&mut conn)
            .unwrap_err()
            .to_string();
        let expected = match flavour {
            "sqlite-vec" => "Vector dimension mistmatch. First vector has 3 dimensions, while the second has 4",
            _ => "vec_distance_l2(): argument 2 has 4 dimensions but argument 1 has 3",
        };
        assert!(err.contains(expected), "{flavour}: {err}");

        let err = articles::table
            .select(articles::title_embedding.max_inner_product(&q))
            .first::<f64>(&mut conn)
            .unwrap_err()
            .to_string();
        assert!(err.contains("diesel_vector_neg_inner_product(): argument 2 has 4 dimensions"), "{flavour}: {err}");
    }
}

#[test]
fn the_crates_functions_reject_what_is_not_a_vector_blob() {
    let mut conn = conn_without_sqlite_vec();
    let call = |conn: &mut SqliteConnection, function: &str, args: &str| {
        diesel::select(sql::<Nullable<Double>>(&format!("{function}({args})")))
            .get_result::<Option<f64>>(conn)
            .unwrap_err()
            .to_string()
    };
    let one = "x'0000803f'"; // [1.0]
    for function in ["vec_distance_l2", "vec_distance_cosine", "vec_distance_l1", "diesel_vector_neg_inner_product"] {
        let err = call(&mut conn, function, &format!("NULL, {one}"));
        assert!(err.starts_with(&format!("{function}(): argument 1: expected a BLOB")), "{err}");
        assert!(err.contains("SQLite holds a NULL value"), "{err}");
        let err = call(&mut conn, function, &format!("{one}, '[1]'"));
        assert!(err.starts_with(&format!("{function}(): argument 2: expected a BLOB")), "{err}");
        assert!(err.contains("holds a TEXT value"), "{err}");
        let err = call(&mut conn, function, &format!("{one}, 1.5"));
        assert!(err.contains("argument 2: expected a BLOB") && err.contains("REAL"), "{err}");
        let err = call(&mut conn, function, &format!("x'', {one}"));
        assert!(err.starts_with(&format!("{function}(): argument 1: vector is empty")), "{err}");
        let err = call(&mut conn, function, &format!("{one}, x'0000803f00'"));
        assert!(err.contains("argument 2: BLOB of 5 bytes is not a whole number of 4-byte floats"), "{err}");
    }
}
