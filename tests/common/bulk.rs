//! The bulk insert path, written once for both backends' test binaries.

/// Inserts 500 embeddings (edge values, a NULL) with `insert_embeddings`, reads them back bit-exact,
/// then checks that a batch with one duplicate writes nothing.
#[macro_export]
macro_rules! bulk_insert_round_trip {
    ($conn:expr) => {{
        use diesel::prelude::*;
        use diesel_vector::models::{insert_embeddings, NewFragment, NewFragmentEmbedding};
        use diesel_vector::schema::{fragment_embeddings, fragments};
        use diesel_vector::Vector;

        let conn = $conn;
        diesel_vector::migrations::run_pending_migrations(conn).unwrap();
        let fragment: i64 = diesel::insert_into(fragments::table)
            .values(NewFragment { content: "bulk" })
            .returning(fragments::id)
            .get_result(conn)
            .unwrap();
        let vectors: Vec<Vector> = (0..500).map(|i| $crate::common::sample_1536(i)).collect();
        let hashes: Vec<String> = (0..500).map(|i| format!("h{i}")).collect();
        let mut rows: Vec<NewFragmentEmbedding> =
            vectors.iter().zip(&hashes).map(|(v, h)| NewFragmentEmbedding::new(fragment, "p", "m", v, h)).collect();
        rows[7].embedding = None;
        assert_eq!(insert_embeddings(conn, &rows).unwrap(), 500);

        let stored: Vec<(String, Option<Vector>)> = fragment_embeddings::table
            .select((fragment_embeddings::content_hash, fragment_embeddings::embedding))
            .order(fragment_embeddings::id)
            .load(conn)
            .unwrap();
        assert_eq!(stored.len(), 500);
        for (i, (hash, v)) in stored.iter().enumerate() {
            assert_eq!(hash, &hashes[i]);
            match v {
                None => assert_eq!(i, 7),
                Some(v) => $crate::common::assert_bit_exact(v, &vectors[i]),
            }
        }

        // All or nothing: a batch whose last row duplicates an existing one writes nothing.
        let extra: Vec<String> = (0..20).map(|i| format!("new{i}")).collect();
        let mut batch: Vec<NewFragmentEmbedding> =
            extra.iter().map(|h| NewFragmentEmbedding::new(fragment, "p", "m", &vectors[0], h)).collect();
        batch.push(NewFragmentEmbedding::new(fragment, "p", "m", &vectors[0], "h3"));
        assert!(insert_embeddings(conn, &batch).is_err());
        let count: i64 = fragment_embeddings::table.count().get_result(conn).unwrap();
        assert_eq!(count, 500);
    }};
}
