//! Searching a photo library's `bit`, `halfvec` and `sparsevec` columns on PostgreSQL: pgvector's indexes
//! with the types' operator classes serve the searches and give the exact answer; typed searches compose
//! with Diesel filters; queries of the wrong type or size are typed errors.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use diesel_vector::database::DatabaseConnection;
use diesel_vector::doctor::{self, IndexState};
use diesel_vector::index::{generate, Element, IndexSpec, Metric, PgIndex};
use diesel_vector::pg::{self, Rebuild};
use diesel_vector::search::{self, SearchError, SearchVector, Strategy};
use diesel_vector::{Bit, HalfVector, SparseVector, Vector, VectorExpressionMethods};

use crate::common::images::{self as fixture, images, CLIP, PG_TABLE, PHASH, TAGS};
use crate::common::pg::Recall;
use crate::common::telemetry;
use crate::{insert_images, FreshDb};

fn path(events: &[String]) -> String {
    events.iter().find_map(|e| e.split(' ').find_map(|f| f.strip_prefix("path="))).unwrap_or("none").to_owned()
}

/// The library with the indexes of `specs`, loaded and analysed.
fn library(conn: &mut PgConnection, specs: &[&IndexSpec], n: usize, seed: u64) {
    conn.batch_execute(PG_TABLE).unwrap();
    for spec in specs {
        conn.batch_execute(&generate::render(spec, &generate::Options::default()).pg_up).unwrap();
    }
    insert_images!(&mut *conn, &fixture::images(n, seed));
    conn.batch_execute("ANALYZE images").unwrap();
}

#[test]
fn halfvec_and_sparsevec_columns_are_searched_through_their_hnsw_index() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    let clip = fixture::spec("clip", Metric::Cosine, PgIndex::Hnsw);
    let tags = fixture::spec("tags", Metric::InnerProduct, PgIndex::Hnsw);
    library(&mut conn, &[&clip, &tags], 1500, 61);
    let mut paths = Vec::new();
    let mut recall = (Recall::default(), Recall::default());
    for (n, (_, half, sparse)) in fixture::queries(61, 1500, 4).iter().enumerate() {
        for (spec, q) in [(&clip, SearchVector::from(half)), (&tags, SearchVector::from(sparse))] {
            for album in [None, Some("travel")] {
                let mut search = spec.search(q).k(10);
                if let Some(album) = album {
                    search = search.filter_eq("album", album);
                }
                let exact = search.clone().strategy(Strategy::Exact).run(&mut conn).unwrap();
                let (hits, events) = telemetry::capture(|| search.run(&mut conn).unwrap());
                let recall = if spec.column() == "clip" { &mut recall.0 } else { &mut recall.1 };
                recall.add(format!("{} {album:?} query {n}", spec.column()), &search::ids(&hits), &search::ids(&exact));
                paths.push((spec.column().to_owned(), path(&events)));
            }
        }
    }
    recall.0.assert_at_least(0.95);
    recall.1.assert_at_least(0.9);
    // The index answers; rarely (tags of unrelated scenes share no term, so the graph links them
    // poorly) it returns too few rows of an album and the search runs again exactly.
    for column in ["clip", "tags"] {
        let of = |p: &str| paths.iter().filter(|(c, q)| c == column && q == p).count();
        assert!(of("hnsw") >= 6 && of("hnsw") + of("hnsw_then_exact") == 8, "{column}: {paths:?}");
    }
    let report = doctor::diagnose(&mut DatabaseConnection::Pg(conn)).unwrap();
    for index in &report.indexes {
        let Some(IndexState::Pg { operator_class_matches, definition, .. }) = &index.state else { panic!() };
        assert_eq!(*operator_class_matches, Some(true), "{definition:?}");
    }
    let definitions: Vec<_> = report
        .indexes
        .iter()
        .filter_map(|i| match &i.state {
            Some(IndexState::Pg { definition, .. }) => definition.clone(),
            _ => None,
        })
        .collect();
    assert!(definitions.iter().any(|d| d.contains("halfvec_cosine_ops")), "{definitions:?}");
    assert!(definitions.iter().any(|d| d.contains("sparsevec_ip_ops")), "{definitions:?}");
}

#[test]
fn bit_hashes_are_searched_by_hamming_through_hnsw_and_ivfflat_and_by_jaccard() {
    let queries = fixture::queries(62, 1500, 4);
    for (metric, index) in
        [(Metric::Hamming, PgIndex::Hnsw), (Metric::Hamming, PgIndex::Ivfflat), (Metric::Jaccard, PgIndex::Hnsw)]
    {
        let db = FreshDb::create();
        let mut conn = db.conn();
        let spec = fixture::spec("phash", metric, index);
        library(&mut conn, &[&spec], 1500, 62);
        if index == PgIndex::Ivfflat {
            // Built by the migration on the empty table: rebuilt for the data, as after a bulk load.
            pg::rebuild(&mut conn, &spec, Rebuild::Ivfflat { lists: None }).unwrap();
        }
        let mut paths = Vec::new();
        for (bits, _, _) in &queries {
            let exact = spec.search(bits).k(10).strategy(Strategy::Exact).run(&mut conn).unwrap();
            let (hits, events) = telemetry::capture(|| spec.search(bits).k(10).run(&mut conn).unwrap());
            assert_eq!(search::ids(&hits), search::ids(&exact), "{metric} {index}");
            assert_eq!(hits, exact, "{metric} {index}");
            paths.push(path(&events));
        }
        // Hamming distances are integers: a tie at the 10th is common, and then the search runs again
        // exactly; the index still answers some.
        assert!(paths.iter().all(|p| p.starts_with(index.name())), "{metric} {index}: {paths:?}");
        let report = doctor::diagnose(&mut DatabaseConnection::Pg(conn)).unwrap();
        let Some(IndexState::Pg { operator_class_matches, definition, .. }) = &report.indexes[0].state else {
            panic!()
        };
        assert_eq!(*operator_class_matches, Some(true));
        assert!(definition.as_deref().unwrap().contains(&format!("bit_{}_ops", metric.name())), "{definition:?}");
    }
}

#[test]
fn typed_searches_take_the_columns_value_type_and_diesel_filters() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    library(&mut conn, &[&PHASH, &CLIP, &TAGS], 600, 63);
    let (bits, half, sparse) = &fixture::queries(63, 600, 1)[0];

    let hits = CLIP
        .search(half)
        .k(5)
        .partition(images::album, "travel")
        .filter(images::taken.ge(2018))
        .run(&mut conn)
        .unwrap();
    // The same, as a user writes it with the distance DSL.
    let expected: Vec<i64> = images::table
        .filter(images::album.eq("travel").and(images::taken.ge(2018)))
        .filter(images::clip.cosine_distance(half).is_not_null())
        .order((images::clip.cosine_distance(half), images::id))
        .select(images::id)
        .limit(5)
        .load(&mut conn)
        .unwrap();
    assert_eq!(search::ids(&hits), expected);

    let hits = PHASH.search(bits).k(8).filter(images::taken.lt(2020)).run(&mut conn).unwrap();
    let expected: Vec<(i64, Option<f64>)> = images::table
        .filter(images::taken.lt(2020).and(images::phash.is_not_null()))
        .order((images::phash.hamming_distance(bits), images::id))
        .select((images::id, images::phash.hamming_distance(bits)))
        .limit(8)
        .load(&mut conn)
        .unwrap();
    assert_eq!(hits.iter().map(|h| (h.id, Some(h.distance))).collect::<Vec<_>>(), expected);

    let hits = TAGS.search(sparse).k(3).partition(images::album, "family").run(&mut conn).unwrap();
    let expected: Vec<i64> = images::table
        .filter(images::album.eq("family").and(images::tags.is_not_null()))
        .order((images::tags.max_inner_product(sparse), images::id))
        .select(images::id)
        .limit(3)
        .load(&mut conn)
        .unwrap();
    assert_eq!(search::ids(&hits), expected);
}

#[test]
fn a_query_of_the_wrong_type_size_or_metric_is_a_typed_error() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    library(&mut conn, &[&PHASH, &CLIP, &TAGS], 50, 64);
    let as_vector = Vector::new(vec![0.5; fixture::CLIP_DIMS]).unwrap();
    let err = CLIP.search(&as_vector).run(&mut conn).unwrap_err();
    assert!(matches!(err, SearchError::QueryType { expected: Element::HalfVector, found: Element::Vector }), "{err}");
    assert!(err.to_string().contains("the query is a `vector` but the index's column is `halfvec`"), "{err}");

    let short = HalfVector::from_f32_slice(&[0.5; 383]).unwrap();
    assert!(matches!(CLIP.search(&short).run(&mut conn), Err(SearchError::InvalidQuery(_))));
    let short_hash = Bit::new(&[true; 255]);
    assert!(matches!(PHASH.search(&short_hash).run(&mut conn), Err(SearchError::InvalidQuery(_))));
    let other_vocabulary = SparseVector::new(1000, vec![3], vec![1.0]).unwrap();
    assert!(matches!(TAGS.search(&other_vocabulary).run(&mut conn), Err(SearchError::InvalidQuery(_))));

    // NaN and values beyond f16 never make a query: the constructors refuse them.
    assert!(HalfVector::from_f32_slice(&[f32::NAN; 384]).is_err());
    assert!(HalfVector::from_f32_slice(&[70_000.0; 384]).is_err());
    assert!(SparseVector::new(30_000, vec![1], vec![f32::NAN]).is_err());

    let hash = Bit::new(&[true; 256]);
    let err = PHASH.search(&hash).metric(Metric::Cosine).run(&mut conn).unwrap_err();
    assert!(matches!(err, SearchError::MetricForType { metric: Metric::Cosine, element: Element::Bit }), "{err}");
    let half = HalfVector::from_f32_slice(&[0.5; 384]).unwrap();
    let err = CLIP.search(&half).metric(Metric::Hamming).run(&mut conn).unwrap_err();
    assert!(matches!(err, SearchError::MetricForType { .. }), "{err}");
    let zero = HalfVector::from_f32_slice(&[0.0; 384]).unwrap();
    assert!(matches!(CLIP.search(&zero).run(&mut conn), Err(SearchError::ZeroQuery)));
    // Another metric than the index's is answered exactly.
    let hits = CLIP.search(&half).metric(Metric::L1).k(3).run(&mut conn).unwrap();
    assert_eq!(hits.len(), 3);
}

#[test]
fn a_binary_quantized_index_gives_candidates_that_are_reranked_exactly() {
    use crate::common::documents::{self as docs, PG_TABLE as DOCUMENTS};
    use crate::insert_docs;
    use diesel_vector::doctor::ReindexOptions;
    use diesel_vector::index::registry;

    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS).unwrap();
    let spec = IndexSpec::builder("documents", "embedding", docs::DIMS as u64)
        .partition_by(["lang"])
        .pg_index(PgIndex::BinaryQuantized)
        .build()
        .unwrap();
    let migration = generate::render(&spec, &generate::Options::default().add_column(true));
    assert!(migration.pg_up.contains("USING hnsw ((binary_quantize(\"embedding\")::bit(768)) bit_hamming_ops)"));
    conn.batch_execute(&migration.pg_up).unwrap();
    insert_docs!(&mut conn, &docs::docs(2000, 91));
    conn.batch_execute("ANALYZE documents").unwrap();
    let registered = registry::load(&mut conn).unwrap();
    assert_eq!(registered, std::slice::from_ref(&spec), "the registry keeps the index kind");

    let queries = docs::queries(91, 2000, 5);
    let mut recall = Recall::default();
    for (n, q) in queries.iter().enumerate() {
        for lang in [None, Some("fr")] {
            let mut search = spec.search(q).k(10);
            if let Some(lang) = lang {
                search = search.filter_eq("lang", lang);
            }
            let exact = search.clone().strategy(Strategy::Exact).run(&mut conn).unwrap();
            let (hits, events) = telemetry::capture(|| search.run(&mut conn).unwrap());
            assert_eq!(path(&events), "binary_quantized", "{events:#?}");
            assert_eq!(hits.len(), 10);
            // Re-ranked exactly: each hit's distance is its exact one, in order.
            let every = search.clone().strategy(Strategy::Exact).k(2000).run(&mut conn).unwrap();
            for h in &hits {
                let d = every.iter().find(|e| e.id == h.id).unwrap().distance;
                assert!((d - h.distance).abs() < 1e-9, "{h:?} vs {d}");
            }
            assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
            recall.add(format_args!("{lang:?} query {n}"), &search::ids(&hits), &search::ids(&exact));
            // With candidates enough for every row, the answer is the exact one.
            let all = search.clone().rerank(300).run(&mut conn).unwrap();
            assert_eq!(search::ids(&all), search::ids(&exact), "{lang:?}");
        }
    }
    eprintln!("binary quantization, rerank x10: recall@10 {:.3}", recall.value());
    recall.assert_at_least(0.9);
    // The searches went through the index (PostgreSQL's statistics count its scans).
    #[derive(QueryableByName)]
    struct Scans {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    conn.batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
    let scans: Scans = diesel::sql_query(
        "SELECT idx_scan AS n FROM pg_stat_user_indexes WHERE indexrelname = 'documents_embedding_bq_idx'",
    )
    .get_result(&mut conn)
    .unwrap();
    assert!(scans.n >= 20, "{}", scans.n);

    let mut any = DatabaseConnection::Pg(conn);
    let report = doctor::diagnose(&mut any).unwrap();
    let Some(IndexState::Pg { operator_class_matches, .. }) = &report.indexes[0].state else { panic!() };
    assert_eq!(*operator_class_matches, Some(true));
    assert!(
        report.findings.iter().all(|f| !f.message.contains("documents_embedding_bq_idx")),
        "{:#?}",
        report.findings
    );
    doctor::reindex(&mut any, &ReindexOptions::default()).unwrap();
    let report = doctor::diagnose(&mut any).unwrap();
    let Some(IndexState::Pg { definition, .. }) = &report.indexes[0].state else { panic!() };
    assert!(definition.as_deref().unwrap().contains("binary_quantize"), "rebuilt as it was declared: {definition:?}");

    // A plain HNSW index put in its place by hand is named as not the declared one.
    let DatabaseConnection::Pg(conn) = &mut any else { unreachable!() };
    conn.batch_execute(
        "DROP INDEX documents_embedding_bq_idx; \
         CREATE INDEX documents_embedding_bq_idx ON documents USING hnsw (embedding vector_cosine_ops)",
    )
    .unwrap();
    let report = doctor::diagnose(&mut any).unwrap();
    assert!(
        report.findings.iter().any(|f| f.message.contains("is not the binary-quantized index declared")
            && f.message.contains("bit_hamming_ops")),
        "{:#?}",
        report.findings
    );
}
