//! Values written through Diesel are what sqlite-vec reads, and the reverse.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Text};
use diesel_vector::{sql_types, Vector};

use crate::common::{assert_bit_exact, cosine_distance, sample, smooth};
use crate::{conn_with_items, items};

#[test]
fn sqlite_vec_reads_what_diesel_writes() {
    let mut conn = conn_with_items();
    let v = sample(1536);
    diesel::insert_into(items::table).values((items::id.eq(1), items::embedding.eq(&v))).execute(&mut conn).unwrap();

    let len: i32 =
        items::table.filter(items::id.eq(1)).select(sql::<Integer>("vec_length(embedding)")).first(&mut conn).unwrap();
    assert_eq!(len, 1536);

    let json: String =
        items::table.filter(items::id.eq(1)).select(sql::<Text>("vec_to_json(embedding)")).first(&mut conn).unwrap();
    let from_json: Vec<f32> = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json.len(), 1536);
    // vec_to_json prints six decimals; compare as numbers, not bits.
    for (a, b) in from_json.iter().zip(v.as_slice()) {
        assert!((a - b).abs() <= b.abs() * 1e-5 + 1e-6, "{a} vs {b}");
    }

    // Distances need vectors whose norms do not overflow: store a second, moderate one.
    let w = smooth(1536, 0.5);
    diesel::insert_into(items::table).values((items::id.eq(2), items::embedding.eq(&w))).execute(&mut conn).unwrap();
    let query: Vec<f32> = (0..1536).map(|i| ((i % 7) as f32) - 3.0).collect();
    let literal = Vector::new(query.clone()).unwrap().to_string();
    let distance: f64 = items::table
        .filter(items::id.eq(2))
        .select(sql::<Double>(&format!("vec_distance_cosine(embedding, vec_f32('{literal}'))")))
        .first(&mut conn)
        .unwrap();
    let expected = cosine_distance(w.as_slice(), &query);
    assert!((distance - expected).abs() < 1e-5, "{distance} vs {expected}");
}

#[test]
fn vectors_made_by_sqlite_vec_load_through_diesel_unchanged() {
    let mut conn = conn_with_items();
    diesel::sql_query("INSERT INTO items (id, embedding) VALUES (1, vec_f32('[1, -0.0, 2.5, 1e-45, 3.4028235e38]'))")
        .execute(&mut conn)
        .unwrap();
    let back: Option<Vector> = items::table.select(items::embedding).first(&mut conn).unwrap();
    let expected = Vector::new(vec![1.0, -0.0, 2.5, f32::from_bits(1), f32::MAX]).unwrap();
    assert_bit_exact(&back.unwrap(), &expected);

    let direct: Vector =
        diesel::select(sql::<sql_types::Vector>("vec_f32('[0.5, -2]')")).get_result(&mut conn).unwrap();
    assert_eq!(direct.as_slice(), &[0.5, -2.0]);
}

#[test]
fn the_text_form_is_what_vec_f32_parses() {
    let mut conn = crate::conn();
    let v = sample(64);
    let back: Vector =
        diesel::select(sql::<sql_types::Vector>(&format!("vec_f32('{v}')"))).get_result(&mut conn).unwrap();
    assert_bit_exact(&back, &v);
}
