//! Searching a photo library's `bit`, `halfvec` and `sparsevec` columns on SQLite: exact scans through
//! sqlite-vec's Hamming distance or the crate's functions, the same answers with and without the
//! extension, typed searches with Diesel filters, and stored values of another shape skipped.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::SqliteConnection;
use diesel_vector::index::{generate, IndexSpec, Metric};
use diesel_vector::search::{self, SearchError, SearchVector, Strategy};
use diesel_vector::{Bit, HalfVector, VectorExpressionMethods};

use crate::common::images::{self as fixture, images, CLIP, PHASH, SQLITE_TABLE, TAGS};
use crate::insert_images;

fn library(conn: &mut SqliteConnection, specs: &[&IndexSpec], n: usize, seed: u64) {
    conn.batch_execute(SQLITE_TABLE).unwrap();
    for spec in specs {
        conn.batch_execute(&generate::render(spec, &generate::Options::default()).sqlite_up).unwrap();
    }
    insert_images!(&mut *conn, &fixture::images(n, seed));
}

#[cfg(feature = "sqlite-vec")]
const CASES: [(&str, Metric); 10] = [
    ("phash", Metric::Hamming),
    ("phash", Metric::Jaccard),
    ("clip", Metric::Cosine),
    ("clip", Metric::L2),
    ("clip", Metric::L1),
    ("clip", Metric::InnerProduct),
    ("tags", Metric::Cosine),
    ("tags", Metric::L2),
    ("tags", Metric::L1),
    ("tags", Metric::InnerProduct),
];

#[cfg(feature = "sqlite-vec")]
#[test]
fn every_type_and_metric_gives_the_same_answer_with_and_without_sqlite_vec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photos.db").to_string_lossy().into_owned();
    let specs: Vec<IndexSpec> = CASES
        .iter()
        .map(|(c, m)| {
            IndexSpec::builder("images", *c, fixture::spec(c, *m, PgIndex::None).dims().into())
                .element(fixture::spec(c, *m, PgIndex::None).element())
                .metric(*m)
                .partition_by(["album"])
                .name(format!("photos_{c}_{}", m.name()))
                .sqlite_index(diesel_vector::index::SqliteIndex::NONE)
                .build()
                .unwrap()
        })
        .collect();
    use crate::EXTENSION_REGISTRATION;
    use diesel_vector::index::PgIndex;
    use diesel_vector::sqlite;
    let mut with = {
        let _guard = EXTENSION_REGISTRATION.read().unwrap();
        sqlite::establish(&path).unwrap()
    };
    library(&mut with, &specs.iter().collect::<Vec<_>>(), 300, 71);
    let mut without = {
        let _exclusive = EXTENSION_REGISTRATION.write().unwrap();
        sqlite::deregister_sqlite_vec();
        let conn = SqliteConnection::establish(&path);
        sqlite::register_sqlite_vec().unwrap();
        let mut conn = conn.unwrap();
        // The crate's functions, with its stand-ins for sqlite-vec's.
        sqlite::ConnectionOptions::default().apply(&mut conn).unwrap();
        conn
    };
    assert!(sqlite::sqlite_vec_version(&mut without).unwrap().is_none());
    for (bits, half, sparse) in &fixture::queries(71, 300, 3) {
        for spec in &specs {
            let q = match spec.column() {
                "phash" => SearchVector::from(bits),
                "clip" => SearchVector::from(half),
                _ => SearchVector::from(sparse),
            };
            for album in [None, Some("travel")] {
                let mut search = spec.search(q).k(10);
                if let Some(album) = album {
                    search = search.filter_eq("album", album);
                }
                let a = search.run(&mut with).unwrap();
                let b = search.run(&mut without).unwrap();
                assert_eq!(a.len(), 10, "{} {album:?}", spec.name());
                assert_eq!(search::ids(&a), search::ids(&b), "{} {album:?}", spec.name());
                for (x, y) in a.iter().zip(&b) {
                    assert!((x.distance - y.distance).abs() <= 1e-6 * y.distance.abs().max(1.0), "{x:?} {y:?}");
                }
            }
        }
    }
}

#[test]
fn typed_searches_on_a_photo_library_match_the_distance_dsl() {
    let mut conn = crate::conn();
    library(&mut conn, &[&PHASH, &CLIP, &TAGS], 300, 72);
    let (bits, half, sparse) = &fixture::queries(72, 300, 1)[0];
    for spec in [&PHASH, &CLIP, &TAGS] {
        assert_eq!(diesel_vector::sqlite::invalid_rows(&mut conn, spec, 10).unwrap().count, 0, "{}", spec.name());
    }

    let hits = PHASH.search(bits).k(8).partition(images::album, "family").run(&mut conn).unwrap();
    let expected: Vec<(i64, Option<f64>)> = images::table
        .filter(images::album.eq("family").and(images::phash.is_not_null()))
        .order((images::phash.hamming_distance(bits), images::id))
        .select((images::id, images::phash.hamming_distance(bits)))
        .limit(8)
        .load(&mut conn)
        .unwrap();
    assert_eq!(hits.iter().map(|h| (h.id, Some(h.distance))).collect::<Vec<_>>(), expected);
    // Jaccard, over the whole table: the scan's kernel gives the SQL function's distances to the bit.
    let hits = PHASH.search(bits).k(12).metric(Metric::Jaccard).run(&mut conn).unwrap();
    let expected: Vec<(i64, Option<f64>)> = images::table
        .filter(images::phash.is_not_null())
        .order((images::phash.jaccard_distance(bits), images::id))
        .select((images::id, images::phash.jaccard_distance(bits)))
        .limit(12)
        .load(&mut conn)
        .unwrap();
    assert_eq!(hits.iter().map(|h| (h.id, Some(h.distance))).collect::<Vec<_>>(), expected);

    let hits = CLIP.search(half).k(5).filter(images::taken.between(2016, 2020)).run(&mut conn).unwrap();
    let expected: Vec<i64> = images::table
        .filter(images::taken.between(2016, 2020))
        .filter(images::clip.cosine_distance(half).is_not_null())
        .order((images::clip.cosine_distance(half), images::id))
        .select(images::id)
        .limit(5)
        .load(&mut conn)
        .unwrap();
    assert_eq!(search::ids(&hits), expected);
    assert!(!search::ids(&hits).contains(&7), "the all-zero embedding has no cosine distance");

    // The sparse scan reads the rows in place with the SQL functions' kernels: the same distances.
    let hits = TAGS.search(sparse).k(4).strategy(Strategy::Exact).run(&mut conn).unwrap();
    let expected: Vec<(i64, Option<f64>)> = images::table
        .filter(images::tags.is_not_null())
        .order((images::tags.max_inner_product(sparse), images::id))
        .select((images::id, images::tags.max_inner_product(sparse)))
        .limit(4)
        .load(&mut conn)
        .unwrap();
    assert_eq!(hits.iter().map(|h| (h.id, Some(h.distance))).collect::<Vec<_>>(), expected);
    let hits = TAGS.search(sparse).k(6).metric(Metric::L2).run(&mut conn).unwrap();
    let expected: Vec<(i64, Option<f64>)> = images::table
        .filter(images::tags.is_not_null())
        .order((images::tags.l2_distance(sparse), images::id))
        .select((images::id, images::tags.l2_distance(sparse)))
        .limit(6)
        .load(&mut conn)
        .unwrap();
    assert_eq!(hits.iter().map(|h| (h.id, Some(h.distance))).collect::<Vec<_>>(), expected);
}

#[test]
fn stored_values_of_another_shape_are_skipped_and_bad_queries_are_typed_errors() {
    let mut conn = crate::conn();
    // Rows written before the indexes (whose migrations add triggers that refuse such values): a TEXT,
    // a shorter hash, a sparse vector of another vocabulary, a truncated sparse BLOB; and three no trigger
    // can refuse, sparse vectors of the right vocabulary and length whose indices are out of order or
    // beyond the vocabulary, or with a NaN value (the crate's SQL functions refuse or give no distance,
    // and so must the scan), or with a zero stored as a non-zero element (which pgvector's binary input and
    // the crate's decoder refuse: a search must not return a row that cannot be loaded).
    conn.batch_execute(SQLITE_TABLE).unwrap();
    conn.batch_execute(
        "INSERT INTO images (id, album, taken, phash, clip, tags) VALUES \
         (101, 'family', 2020, x'00ff', 'not a vector', x'e8030000010000000000803f'), \
         (102, 'family', 2020, 'text', x'0000', x'3075000001000000'), \
         (103, 'family', 2020, NULL, NULL, x'3075000001000000'), \
         (104, 'family', 2020, NULL, NULL, x'3075000005000000020000000000004000004040'), \
         (105, 'family', 2020, NULL, NULL, x'3075000002000000307500000000004000004040'), \
         (106, 'family', 2020, NULL, NULL, x'3075000001000000020000000000803f0000c07f'), \
         (107, 'family', 2020, NULL, NULL, x'307500000200000000000000')",
    )
    .unwrap();
    for spec in [&PHASH, &CLIP, &TAGS] {
        conn.batch_execute(&generate::render(spec, &generate::Options::default()).sqlite_up).unwrap();
    }
    insert_images!(&mut conn, &fixture::images(40, 73));
    let (bits, half, sparse) = &fixture::queries(73, 40, 1)[0];
    for (spec, q) in
        [(&PHASH, SearchVector::from(bits)), (&CLIP, SearchVector::from(half)), (&TAGS, SearchVector::from(sparse))]
    {
        let hits = spec.search(q).k(50).run(&mut conn).unwrap();
        assert!(hits.iter().all(|h| h.id <= 40), "{}: {hits:?}", spec.name());
        assert!(hits.len() >= 30, "{}: {}", spec.name(), hits.len());
    }
    // Under L2 the stored zero would be a vector like any other (under cosine it has no direction).
    for strategy in [Strategy::Auto, Strategy::Exact] {
        let hits = TAGS.search(sparse).metric(Metric::L2).k(50).strategy(strategy).run(&mut conn).unwrap();
        assert!(hits.iter().all(|h| h.id <= 40), "{strategy:?}: {hits:?}");
    }

    // doctor and reindex name them, per index, and nothing else.
    for (spec, ids) in [(&PHASH, &[101, 102][..]), (&CLIP, &[101, 102]), (&TAGS, &[101, 102, 103, 104, 105, 106, 107])]
    {
        let invalid = diesel_vector::sqlite::invalid_rows(&mut conn, spec, 10).unwrap();
        assert_eq!(invalid.ids, ids, "{}", spec.name());
        assert_eq!(invalid.count, ids.len() as i64, "{}", spec.name());
    }
    // doctor's finding says what can be wrong with a value of each type.
    let mut db = diesel_vector::database::DatabaseConnection::Sqlite(conn);
    let report = diesel_vector::doctor::diagnose(&mut db).unwrap();
    let diesel_vector::database::DatabaseConnection::Sqlite(mut conn) = db else { unreachable!() };
    let finding = |column: &str| {
        let prefix = format!("row(s) of images hold a value in {column} that is not a ");
        report.findings.iter().find(|f| f.message.contains(&prefix)).map(|f| f.message.clone()).unwrap_or_default()
    };
    assert!(
        finding("tags").starts_with(
            "7 row(s) of images hold a value in tags that is not a sparsevec of 30000 dimensions (another length or \
             type, indices out of order or beyond the dimensions, or a NaN, infinite or zero value; ids 101, 102, \
             103, 104, 105, ...)"
        ),
        "{:?}",
        report.findings
    );
    assert!(
        finding("phash").contains("not a bit of 256 dimensions (another length or type; ids 101, 102)"),
        "{:?}",
        report.findings
    );
    assert!(
        finding("clip").contains("not a halfvec of 384 dimensions (another length or type, or a NaN or infinite"),
        "{:?}",
        report.findings
    );

    let err = PHASH.search(half).run(&mut conn).unwrap_err();
    assert!(matches!(err, SearchError::QueryType { .. }), "{err}");
    assert!(matches!(PHASH.search(&Bit::new(&[false; 264])).run(&mut conn), Err(SearchError::InvalidQuery(_))));
    let err = CLIP.search(&HalfVector::from_f32_slice(&[1.0; 384]).unwrap()).metric(Metric::Jaccard).run(&mut conn);
    assert!(matches!(err, Err(SearchError::MetricForType { .. })));
    assert!(matches!(TAGS.search(sparse).k(0).run(&mut conn), Err(SearchError::InvalidK)));
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn perceptual_hashes_are_searched_through_sqlite_vecs_bit_vectors() {
    use crate::common::telemetry;
    use diesel_vector::index::{Element, SqliteIndex};

    let spec = IndexSpec::builder("images", "phash", fixture::HASH_BITS as u64)
        .element(Element::Bit)
        .partition_by(["album"])
        .sqlite_index(SqliteIndex::VEC0)
        .build()
        .unwrap();
    let mut conn = crate::conn();
    conn.batch_execute(SQLITE_TABLE).unwrap();
    conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).unwrap();
    let photos = fixture::images(400, 74);
    insert_images!(&mut conn, &photos[..300]);
    let queries = fixture::queries(74, 400, 3);
    let mut paths = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // Written after the first searches: the index's queue brings them in.
            insert_images!(&mut conn, &photos[300..]);
        }
        for (bits, _, _) in &queries {
            for album in [None, Some("travel")] {
                let mut search = spec.search(bits).k(10);
                if let Some(album) = album {
                    search = search.filter_eq("album", album);
                }
                let exact = search.clone().strategy(Strategy::Exact).run(&mut conn).unwrap();
                let (hits, events) = telemetry::capture(|| search.run(&mut conn).unwrap());
                assert_eq!(hits, exact, "{album:?}");
                let path = events
                    .iter()
                    .find_map(|e| e.split(' ').find_map(|f| f.strip_prefix("path=")))
                    .unwrap_or("none")
                    .to_owned();
                paths.push(path);
            }
        }
    }
    // Hamming distances are integers: when the 10th ties with the next, the search scans exactly.
    assert!(paths.iter().all(|p| p == "vec0" || p == "vec0_then_exact"), "{paths:?}");
    assert!(paths.iter().any(|p| p == "vec0"), "{paths:?}");
    let vec0_rows: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "(SELECT count(*) FROM \"{}\")",
        spec.vec0_table()
    )))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(vec0_rows, photos.iter().filter(|p| p.phash.is_some()).count() as i64);
}

/// A `halfvec` column's index keeps the crate's codes as a `vector` column's does: the default search goes
/// through them and answers what the exact scan answers, under partition and Diesel filters; a plain
/// writer's changes are searched at once; a stored infinity is left out of both, and named.
#[test]
fn a_halfvec_index_keeps_codes_and_answers_what_the_exact_scan_answers() {
    use crate::common::telemetry;

    let mut conn = crate::conn();
    library(&mut conn, &[&CLIP], 3000, 74);
    let queries = fixture::queries(74, 3000, 12);
    let search = |conn: &mut SqliteConnection, q: &HalfVector, album: Option<&str>, strategy: Strategy| {
        let mut s = CLIP.search(q).k(10).strategy(strategy).filter(images::taken.ge(2016));
        if let Some(album) = album {
            s = s.partition(images::album, album);
        }
        s.run(conn).unwrap()
    };
    for (_, half, _) in &queries {
        for album in [None, Some("travel")] {
            let (fast, events) = telemetry::capture(|| search(&mut conn, half, album, Strategy::Auto));
            assert!(events.iter().any(|e| e.contains("path=codes")), "{events:#?}");
            let exact = search(&mut conn, half, album, Strategy::Exact);
            assert_eq!(fast.len(), 10);
            assert_eq!(fast, exact, "{album:?}: the same ids and the same distances");
        }
    }
    // The SIMD kernel's distances are the SQL function's to 1e-6.
    let (_, q, _) = &queries[1];
    for hit in search(&mut conn, q, None, Strategy::Auto) {
        let dsl: Option<f64> =
            images::table.find(hit.id).select(images::clip.cosine_distance(q)).first(&mut conn).unwrap();
        assert!((dsl.unwrap() - hit.distance).abs() <= 1e-6, "{hit:?} {dsl:?}");
    }
    let status = diesel_vector::sqlite::status(&mut conn, &CLIP).unwrap();
    assert!(status.codes_current, "{status:?}");
    // Rows 7 (all zeros: no cosine distance) and every 31st (NULL) are not in the codes.
    let with_clip = 3000 - 3000 / 31 - 1;
    assert_eq!(status.codes_rows, Some(with_clip as u64), "{status:?}");

    // A writer without the crate moves row 5 onto the first query and stores an infinity in row 6.
    let (_, target, _) = &queries[0];
    let blob: String =
        target.as_slice().iter().flat_map(|h| h.to_bits().to_le_bytes()).map(|b| format!("{b:02x}")).collect();
    conn.batch_execute(&format!("UPDATE images SET clip = x'{blob}', taken = 2019 WHERE id = 5")).unwrap();
    let infinity = format!("00fc{}", "0000".repeat(fixture::CLIP_DIMS - 1));
    conn.batch_execute(&format!("UPDATE images SET clip = x'{infinity}' WHERE id = 6")).unwrap();
    let hits = search(&mut conn, target, None, Strategy::Auto);
    assert_eq!(hits[0].id, 5, "{hits:?}");
    assert!(hits[0].distance.abs() < 1e-6, "{hits:?}");
    assert_eq!(hits, search(&mut conn, target, None, Strategy::Exact));
    for (_, half, _) in &queries {
        assert!(!search::ids(&search(&mut conn, half, None, Strategy::Auto)).contains(&6));
    }
    let invalid = diesel_vector::sqlite::invalid_rows(&mut conn, &CLIP, 10).unwrap();
    assert_eq!(invalid.ids, [6]);
}

/// A `halfvec` index that also keeps the contiguous copy (`codes,vectors`) keeps one group per 16 coded
/// rows, and its exact searches answer what the scan of the table does for an index without the copy
/// (the copy's own answers are checked in the crate's unit tests).
#[test]
fn a_halfvec_index_with_the_contiguous_copy_answers_exact_searches_from_it() {
    use diesel_vector::index::{Element, SqliteIndex};

    let with_copy = IndexSpec::builder("images", "clip", fixture::CLIP_DIMS as u64)
        .element(Element::HalfVector)
        .partition_by(["album"])
        .sqlite_index(SqliteIndex::CODES_AND_VECTORS)
        .name("clip_with_copy")
        .build()
        .unwrap();
    let mut conn = crate::conn();
    library(&mut conn, &[&CLIP, &with_copy], 1500, 75);
    diesel_vector::sqlite::sync(&mut conn, &with_copy).unwrap();
    let groups: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "(SELECT count(*) FROM \"{}\")",
        with_copy.vectors_table()
    )))
    .get_result(&mut conn)
    .unwrap();
    let coded = diesel_vector::sqlite::status(&mut conn, &with_copy).unwrap().codes_rows.unwrap();
    assert_eq!(groups, coded.div_ceil(16) as i64, "groups of 16 rows hold the {coded} coded rows");
    for (_, half, _) in &fixture::queries(75, 1500, 8) {
        for album in [None, Some("family")] {
            let run = |conn: &mut SqliteConnection, spec: &IndexSpec| {
                let mut s = spec.search(half).k(10).strategy(Strategy::Exact);
                if let Some(album) = album {
                    s = s.filter_eq("album", album);
                }
                s.run(conn).unwrap()
            };
            let from_copy = run(&mut conn, &with_copy);
            assert_eq!(from_copy.len(), 10);
            assert_eq!(from_copy, run(&mut conn, &CLIP), "{album:?}");
        }
    }
}

#[test]
fn indexes_that_keep_no_structure_queue_nothing_and_have_nothing_pending() {
    // The perceptual hashes and the tags keep no structure on SQLite by default (the quantized codes index
    // `vector` and `halfvec` columns): their searches scan the table, and writes queue nothing for them.
    let mut conn = crate::conn();
    library(&mut conn, &[&PHASH, &CLIP, &TAGS], 300, 80);
    conn.batch_execute(
        "UPDATE images SET phash = NULL, tags = NULL, clip = NULL WHERE id % 3 = 0; \
         DELETE FROM images WHERE id % 5 = 0; UPDATE images SET album = 'elsewhere' WHERE id % 7 = 0",
    )
    .unwrap();
    let (bits, _, sparse) = &fixture::queries(80, 300, 1)[0];
    for spec in [&*PHASH, &*TAGS] {
        assert_eq!(spec.sqlite_index(), diesel_vector::index::SqliteIndex::NONE, "{}", spec.name());
        let status = diesel_vector::sqlite::status(&mut conn, spec).unwrap();
        assert!(!status.needs_rebuild && status.pending_changes == 0, "{}: {status:?}", spec.name());
        let queued: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT count(*) FROM \"{}\")",
            spec.queue_table()
        )))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(queued, 0, "{}", spec.name());
    }
    // The halfvec column's codes follow the same writes through the queue.
    let clip = diesel_vector::sqlite::status(&mut conn, &CLIP).unwrap();
    assert!(clip.needs_rebuild && clip.pending_changes > 0, "{clip:?}");
    diesel_vector::sqlite::sync(&mut conn, &CLIP).unwrap();
    // The searches read the table as it is now.
    let hits = PHASH.search(bits).k(300).run(&mut conn).unwrap();
    assert!(hits.iter().all(|h| h.id % 3 != 0 && h.id % 5 != 0), "{hits:?}");
    let hits = TAGS.search(sparse).k(5).partition(images::album, "elsewhere").run(&mut conn).unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|h| h.id % 7 == 0 && h.id % 3 != 0 && h.id % 5 != 0), "{hits:?}");
    // Doctor finds nothing to do.
    let report =
        diesel_vector::doctor::diagnose(&mut diesel_vector::database::DatabaseConnection::Sqlite(conn)).unwrap();
    assert!(!report.needs_action(), "{:?}", report.findings);
}
