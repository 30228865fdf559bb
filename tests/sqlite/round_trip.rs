use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Binary, Integer, Nullable, Text};
use diesel_vector::{sql_types, Vector};

use crate::common::{assert_bit_exact, sample, ROUND_TRIP_DIMS};
use crate::{conn, conn_with_items, items};

#[test]
fn vectors_round_trip_bit_exact_through_a_bind() {
    let mut conn = conn();
    for dims in ROUND_TRIP_DIMS {
        let v = sample(dims);
        let back: Vector = diesel::select(v.clone().into_sql::<sql_types::Vector>()).get_result(&mut conn).unwrap();
        assert_bit_exact(&back, &v);
    }
}

#[test]
fn vectors_round_trip_bit_exact_through_a_table() {
    let mut conn = conn_with_items();
    for (id, dims) in (1..).zip(ROUND_TRIP_DIMS) {
        diesel::insert_into(items::table)
            .values((items::id.eq(id), items::embedding.eq(sample(dims))))
            .execute(&mut conn)
            .unwrap();
    }
    let rows: Vec<(i32, Option<Vector>)> = items::table.order(items::id).load(&mut conn).unwrap();
    for ((_, back), dims) in rows.iter().zip(ROUND_TRIP_DIMS) {
        assert_bit_exact(back.as_ref().unwrap(), &sample(dims));
    }
}

#[test]
fn stored_vectors_are_blobs_of_four_bytes_per_dimension() {
    let mut conn = conn_with_items();
    diesel::insert_into(items::table)
        .values((items::id.eq(1), items::embedding.eq(sample(1536))))
        .execute(&mut conn)
        .unwrap();
    let (kind, len): (String, i32) = items::table
        .select((sql::<Text>("typeof(embedding)"), sql::<Integer>("length(embedding)")))
        .first(&mut conn)
        .unwrap();
    assert_eq!((kind.as_str(), len), ("blob", 1536 * 4));
    let raw: Vec<u8> = items::table.select(sql::<Binary>("embedding")).first(&mut conn).unwrap();
    let expected: Vec<u8> = sample(1536).as_slice().iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(raw, expected);
}

#[test]
fn null_round_trips_as_none() {
    let mut conn = conn_with_items();
    diesel::insert_into(items::table)
        .values((items::id.eq(1), items::embedding.eq(None::<Vector>)))
        .execute(&mut conn)
        .unwrap();
    let back: Option<Vector> = items::table.select(items::embedding).first(&mut conn).unwrap();
    assert_eq!(back, None);
    let none: Option<Vector> =
        diesel::select(None::<Vector>.into_sql::<Nullable<sql_types::Vector>>()).get_result(&mut conn).unwrap();
    assert_eq!(none, None);
}
