//! Values written through Diesel are what pgvector reads, and the reverse.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Text};
use diesel_vector::{sql_types, Vector};

use crate::common::{assert_bit_exact, cosine_distance, sample, smooth};
use crate::{conn, conn_with_items, items};

#[test]
fn pgvector_reads_what_diesel_writes() {
    let mut conn = conn_with_items();
    let v = smooth(1536, 0.25);
    diesel::insert_into(items::table).values((items::id.eq(1), items::embedding.eq(&v))).execute(&mut conn).unwrap();

    let dims: i32 = items::table.select(sql::<Integer>("vector_dims(embedding)")).first(&mut conn).unwrap();
    assert_eq!(dims, 1536);

    let text: String = items::table.select(sql::<Text>("embedding::text")).first(&mut conn).unwrap();
    assert_bit_exact(&text.parse().unwrap(), &v);

    let query = smooth(1536, 2.0);
    let distance: f64 =
        items::table.select(sql::<Double>(&format!("embedding <=> '{query}'::vector"))).first(&mut conn).unwrap();
    let expected = cosine_distance(v.as_slice(), query.as_slice());
    assert!((distance - expected).abs() < 1e-6, "{distance} vs {expected}");
}

#[test]
fn pgvectors_text_form_of_edge_values_parses_bit_exact() {
    let mut conn = conn();
    let v = sample(14);
    let text: String = diesel::select(sql::<Text>(&format!("'{v}'::vector::text"))).get_result(&mut conn).unwrap();
    assert_bit_exact(&text.parse().unwrap(), &v);
}

#[test]
fn vectors_made_by_pgvector_literals_load_through_diesel_unchanged() {
    let mut conn = conn_with_items();
    diesel::sql_query("INSERT INTO items VALUES (1, '[1, -0, 2.5, 1e-45, 3.4028235e38, -1.1754944e-38]')")
        .execute(&mut conn)
        .unwrap();
    let back: Option<Vector> = items::table.select(items::embedding).first(&mut conn).unwrap();
    let expected = Vector::new(vec![1.0, -0.0, 2.5, f32::from_bits(1), f32::MAX, -f32::MIN_POSITIVE]).unwrap();
    assert_bit_exact(&back.unwrap(), &expected);

    let v = sample(1536);
    let direct: Vector =
        diesel::select(sql::<sql_types::Vector>(&format!("'{v}'::vector"))).get_result(&mut conn).unwrap();
    assert_bit_exact(&direct, &v);
}

#[test]
fn a_fixed_dimension_column_rejects_other_dimensions_and_keeps_its_rows() {
    use diesel::connection::SimpleConnection;
    let mut conn = conn();
    conn.batch_execute("CREATE TEMPORARY TABLE items (id integer PRIMARY KEY, embedding vector(4))").unwrap();
    diesel::insert_into(items::table)
        .values((items::id.eq(1), items::embedding.eq(smooth(4, 0.0))))
        .execute(&mut conn)
        .unwrap();
    let err = conn
        .transaction(|conn| {
            diesel::insert_into(items::table)
                .values(&vec![
                    (items::id.eq(2), items::embedding.eq(smooth(4, 1.0))),
                    (items::id.eq(3), items::embedding.eq(smooth(3, 1.0))),
                ])
                .execute(conn)
        })
        .unwrap_err();
    assert!(err.to_string().contains("expected 4 dimensions, not 3"), "{err}");
    let count: i64 = items::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 1, "the failed batch wrote nothing");
}
