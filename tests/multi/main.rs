//! A `#[derive(MultiConnection)]` enum over both backends stores and loads vectors through either.

#[path = "../common/mod.rs"]
mod common;
mod search;

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

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    items (id) {
        id -> Integer,
        embedding -> Nullable<Vector>,
    }
}

fn connections() -> Vec<(&'static str, AnyConnection)> {
    let mut pg = PgConnection::establish(&common::pg_url()).unwrap();
    pg.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").unwrap();
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
