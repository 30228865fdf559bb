//! A `#[derive(MultiConnection)]` enum over both backends stores and loads vectors through either.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/distance.rs"]
mod reference;
mod rows;
mod search;
mod search_any;
mod search_types;
mod vector_types;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_vector::{sql_types, Vector};

use common::{assert_bit_exact, sample};

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

diesel_vector::multi_connection_support!(MultiBackend);
diesel_vector::multi_connection_dispatch!(AnyConnection { Postgresql => pg, Sqlite => sqlite });

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    items (id) {
        id -> Integer,
        embedding -> Nullable<Vector>,
    }
}

fn connections() -> Vec<(&'static str, AnyConnection)> {
    let mut pg = common::pg::shared_conn_with_pgvector();
    pg.begin_test_transaction().unwrap();
    pg.batch_execute("CREATE TEMPORARY TABLE items (id integer PRIMARY KEY, embedding vector)").unwrap();
    let mut lite = diesel_vector::sqlite::establish(":memory:").unwrap();
    lite.batch_execute("CREATE TABLE items (id INTEGER PRIMARY KEY, embedding BLOB)").unwrap();
    vec![("postgresql", AnyConnection::Postgresql(pg)), ("sqlite", AnyConnection::Sqlite(lite))]
}

#[test]
fn vectors_round_trip_through_either_backend() {
    for (name, mut conn) in connections() {
        let rows = vec![(1, Some(sample(1536))), (2, None), (3, Some(sample(1)))];
        for (id, v) in &rows {
            diesel::insert_into(items::table)
                .values((items::id.eq(id), items::embedding.eq(v)))
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let back: Vec<(i32, Option<Vector>)> = items::table.order(items::id).load(&mut conn).unwrap();
        assert_eq!(back.len(), 3, "{name}");
        for ((_, got), (_, want)) in back.iter().zip(&rows) {
            match (got, want) {
                (Some(got), Some(want)) => assert_bit_exact(got, want),
                (None, None) => {}
                _ => panic!("{name}: NULL-ness differs"),
            }
        }
        let v = sample(16);
        let direct: Vector = diesel::select(v.clone().into_sql::<sql_types::Vector>()).get_result(&mut conn).unwrap();
        assert_bit_exact(&direct, &v);
    }
}

/// The distance DSL through the enum: the same queries give the same answers on both backends.
mod dsl {
    use diesel::prelude::*;
    use diesel_vector::{Vector, VectorExpressionMethods};

    use super::{connections, items, AnyConnection};
    use crate::common::smooth;
    use crate::reference::{assert_close, exact, scattered, Metric, METRICS};

    fn insert(conn: &mut AnyConnection, rows: &[Vector]) {
        for (id, v) in (1..).zip(rows) {
            diesel::insert_into(items::table).values((items::id.eq(id), items::embedding.eq(v))).execute(conn).unwrap();
        }
    }

    /// `metric(embedding, q)` for every row, by id.
    fn distances(conn: &mut AnyConnection, metric: Metric, q: &Vector) -> Vec<Option<f64>> {
        let rows = items::table.order(items::id);
        match metric {
            Metric::L2 => rows.select(items::embedding.l2_distance(q)).load(conn),
            Metric::Cosine => rows.select(items::embedding.cosine_distance(q)).load(conn),
            Metric::L1 => rows.select(items::embedding.l1_distance(q)).load(conn),
            Metric::NegInnerProduct => rows.select(items::embedding.max_inner_product(q)).load(conn),
        }
        .unwrap()
    }

    #[test]
    fn every_metric_gives_the_same_distances_on_both_backends() {
        let rows: Vec<Vector> = (0..8).map(|i| scattered(384, i)).collect();
        let q = scattered(384, 42);
        let mut results = Vec::new();
        for (name, mut conn) in connections() {
            insert(&mut conn, &rows);
            results.push((name, METRICS.map(|metric| distances(&mut conn, metric, &q))));
        }
        let [(_, pg), (_, lite)] = &results[..] else { panic!("expected two backends") };
        for (m, metric) in METRICS.into_iter().enumerate() {
            for ((v, pg), lite) in rows.iter().zip(&pg[m]).zip(&lite[m]) {
                let (pg, lite) = (pg.unwrap(), lite.unwrap());
                assert_close(metric, pg, exact(metric, v, &q), v, &q);
                assert_close(metric, lite, pg, v, &q);
            }
        }
    }

    #[test]
    fn max_inner_product_on_sqlite_is_pgvectors_negative_inner_product() {
        let rows = [smooth(16, 0.5), smooth(16, 1.5), scattered(16, 3)];
        let q = smooth(16, 0.7);
        let mut answers = Vec::new();
        for (name, mut conn) in connections() {
            insert(&mut conn, &rows);
            let ranked: Vec<(i32, Option<f64>)> = items::table
                .select((items::id, items::embedding.max_inner_product(&q)))
                .order(items::embedding.max_inner_product(&q))
                .load(&mut conn)
                .unwrap();
            answers.push((name, ranked));
        }
        let [(_, pg), (_, lite)] = &answers[..] else { panic!("expected two backends") };
        assert_eq!(pg.iter().map(|(id, _)| id).collect::<Vec<_>>(), lite.iter().map(|(id, _)| id).collect::<Vec<_>>());
        for ((id, pg), (_, lite)) in pg.iter().zip(lite) {
            let v = &rows[*id as usize - 1];
            assert_close(Metric::NegInnerProduct, lite.unwrap(), pg.unwrap(), v, &q);
        }
    }

    #[test]
    fn a_nearest_neighbour_search_with_nulls_filtered_out_runs_on_both_backends() {
        let q = smooth(32, 0.05);
        for (name, mut conn) in connections() {
            insert(&mut conn, &[smooth(32, 2.0), smooth(32, 0.0), smooth(32, 0.3)]);
            diesel::insert_into(items::table)
                .values((items::id.eq(4), items::embedding.eq(None::<Vector>)))
                .execute(&mut conn)
                .unwrap();
            let nearest: Vec<i32> = items::table
                .select(items::id)
                .filter(items::embedding.is_not_null())
                .filter(items::embedding.l1_distance(&q).lt(100.0))
                .order(items::embedding.cosine_distance(&q))
                .limit(2)
                .load(&mut conn)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(nearest, [2, 3], "{name}");
        }
    }
}
