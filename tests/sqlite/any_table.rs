//! A vector index on a table of the application's own: generated migrations, the registry, and the index
//! kept by every writer.
#![cfg_attr(not(feature = "sqlite-vec"), allow(dead_code, unused_imports))]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_vector::index::{generate, registry, IndexSpec, Metric, SqliteIndex};
use diesel_vector::{sqlite, Vector, VectorExpressionMethods};

use crate::common::{smooth, Rng};
use crate::EXTENSION_REGISTRATION;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    documents (id) {
        id -> BigInt,
        lang -> Text,
        body -> Text,
        embedding -> Nullable<Vector>,
    }
}

const DOCUMENTS: &str = "CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, body TEXT NOT NULL)";

fn spec(structures: SqliteIndex) -> IndexSpec {
    IndexSpec::builder("documents", "embedding", 8)
        .metric(Metric::L2)
        .partition_by(["lang"])
        .sqlite_index(structures)
        .build()
        .unwrap()
}

fn file_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db").to_str().unwrap().to_owned();
    (dir, path)
}

fn open(path: &str) -> SqliteConnection {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    sqlite::establish(path).unwrap()
}

/// A connection without sqlite-vec, like the diesel CLI's or the sqlite3 shell's.
#[cfg(feature = "sqlite-vec")]
fn open_without_extension(path: &str) -> SqliteConnection {
    let _exclusive = EXTENSION_REGISTRATION.write().unwrap();
    sqlite::deregister_sqlite_vec();
    let conn = SqliteConnection::establish(path);
    sqlite::register_sqlite_vec().unwrap();
    conn.unwrap()
}

fn vector(rng: &mut Rng) -> Vector {
    Vector::new((0..8).map(|_| rng.unit()).collect()).unwrap()
}

fn insert(conn: &mut SqliteConnection, id: i64, lang: &str, v: Option<&Vector>) {
    diesel::insert_into(documents::table)
        .values((
            documents::id.eq(id),
            documents::lang.eq(lang),
            documents::body.eq("text"),
            documents::embedding.eq(v),
        ))
        .execute(conn)
        .unwrap();
}

/// Every object in the schema with its SQL, leaving out SQLite's own and the crate's vec0 tables.
fn schema(conn: &mut SqliteConnection) -> Vec<(String, Option<String>)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        sql: Option<String>,
    }
    diesel::sql_query(
        "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name <> '__diesel_vector_indexes' \
         AND NOT (name LIKE '__dv_documents_embedding%' AND name NOT GLOB '*_queue' AND name NOT GLOB '*_state' \
                  AND name NOT GLOB '*_insert' AND name NOT GLOB '*_update' AND name NOT GLOB '*_delete' \
                  AND name NOT GLOB '*_check_*') ORDER BY name",
    )
    .load::<Row>(conn)
    .unwrap()
    .into_iter()
    .map(|r| (r.name, r.sql))
    .collect()
}

fn count(conn: &mut SqliteConnection, from: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("(SELECT count(*) FROM {from})"))).get_result(conn).unwrap()
}

/// The k nearest ids by L2 in `lang`, computed by the distance DSL (an exact scan).
fn exact(conn: &mut SqliteConnection, q: &Vector, lang: &str, k: i64) -> Vec<i64> {
    documents::table
        .filter(documents::lang.eq(lang).and(documents::embedding.is_not_null()))
        .select(documents::id)
        .order((documents::embedding.l2_distance(q), documents::id))
        .limit(k)
        .load(conn)
        .unwrap()
}

#[cfg(feature = "sqlite-vec")]
fn vec0_knn(conn: &mut SqliteConnection, q: &Vector, lang: &str, k: i64) -> Vec<i64> {
    #[derive(QueryableByName)]
    struct Hit {
        #[diesel(sql_type = BigInt)]
        rowid: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        distance: f64,
    }
    let mut hits = diesel::sql_query(
        "SELECT rowid, distance FROM __dv_documents_embedding WHERE embedding MATCH ? AND k = ? AND lang = ?",
    )
    .bind::<diesel_vector::sql_types::Vector, _>(q)
    .bind::<BigInt, _>(k)
    .bind::<Text, _>(lang)
    .load::<Hit>(conn)
    .unwrap();
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.rowid.cmp(&b.rowid)));
    hits.into_iter().map(|h| h.rowid).collect()
}

#[test]
fn the_generated_migration_registers_the_index_and_down_undoes_it() {
    let mut conn = crate::conn();
    conn.batch_execute(DOCUMENTS).unwrap();
    let before = schema(&mut conn);
    let spec = spec(SqliteIndex::CODES);
    let m = generate::render(&spec, &generate::Options::default().add_column(true));
    conn.batch_execute(&m.sqlite_up).unwrap();
    assert_eq!(registry::load(&mut conn).unwrap(), std::slice::from_ref(&spec));
    assert!(sqlite::status(&mut conn, &spec).unwrap().needs_rebuild, "a new index is built from the table first");
    conn.batch_execute(&m.sqlite_down).unwrap();
    assert_eq!(schema(&mut conn), before, "down undoes up (the shared registry table stays)");
    assert!(registry::load(&mut conn).unwrap().is_empty());
    // And up again, as `diesel migration redo` does.
    conn.batch_execute(&m.sqlite_up).unwrap();
    assert_eq!(registry::load(&mut conn).unwrap(), [spec]);
}

#[test]
fn blobs_of_the_wrong_shape_are_refused_by_the_column_or_its_triggers() {
    for add_column in [true, false] {
        let mut conn = crate::conn();
        conn.batch_execute(DOCUMENTS).unwrap();
        if !add_column {
            conn.batch_execute("ALTER TABLE documents ADD COLUMN embedding BLOB").unwrap();
        }
        let m = generate::render(&spec(SqliteIndex::CODES), &generate::Options::default().add_column(add_column));
        conn.batch_execute(&m.sqlite_up).unwrap();
        insert(&mut conn, 1, "en", Some(&smooth(8, 0.0)));
        insert(&mut conn, 2, "en", None);
        for (value, what) in [("x'00'", "short BLOB"), ("'[1,2,3,4,5,6,7,8]'", "TEXT"), ("1.5", "REAL")] {
            let err = conn
                .batch_execute(&format!(
                    "INSERT INTO documents (id, lang, body, embedding) VALUES (9, 'en', 'b', {value})"
                ))
                .unwrap_err()
                .to_string();
            // The same words either way (a named CHECK constraint, or the triggers' message).
            let expected = "documents.embedding must be NULL or a BLOB of 8 little-endian f32 (32 bytes)";
            if add_column {
                assert!(err.contains(&format!("CHECK constraint failed: {expected}")), "{what}: {err}");
            }
            assert!(err.contains(expected), "{what}, add_column {add_column}: {err}");
            let err =
                conn.batch_execute(&format!("UPDATE documents SET embedding = {value} WHERE id = 1")).unwrap_err();
            assert!(err.to_string().contains(expected), "{what}: {err}");
        }
        assert_eq!(count(&mut conn, "documents"), 2, "nothing of the refused writes stayed");
    }
}

#[test]
fn a_migration_for_columns_that_are_not_there_fails_naming_them_and_changes_nothing() {
    const ID_UNIQUE: &str =
        "documents.id must exist, be an INTEGER and unique by itself (the primary key, or a unique index of that column \
         alone)";
    let cases = [
        ("CREATE TABLE documents (id INTEGER PRIMARY KEY, body TEXT)", true, "documents.lang must exist"),
        (
            "CREATE TABLE documents (id TEXT PRIMARY KEY, lang TEXT)",
            true,
            ID_UNIQUE,
        ),
        (
            // Every lookup by id would scan the table.
            "CREATE TABLE documents (id INTEGER NOT NULL, lang TEXT)",
            true,
            ID_UNIQUE,
        ),
        (
            // The first column of a composite key identifies no row: searches would return ids twice.
            "CREATE TABLE documents (id INTEGER NOT NULL, chunk INTEGER NOT NULL, lang TEXT, PRIMARY KEY (id, chunk))",
            true,
            ID_UNIQUE,
        ),
        ("CREATE TABLE documents (id INTEGER NOT NULL, chunk INTEGER, lang TEXT, UNIQUE (id, chunk))", true, ID_UNIQUE),
        (
            "CREATE TABLE documents (id INTEGER NOT NULL, lang TEXT); CREATE UNIQUE INDEX one ON documents (id) WHERE id > 0",
            true,
            ID_UNIQUE,
        ),
        (
            "CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT)",
            false,
            "documents.embedding must exist and be declared BLOB",
        ),
        (
            "CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT, embedding TEXT)",
            false,
            "documents.embedding must exist and be declared BLOB",
        ),
    ];
    for (table, add_column, message) in cases {
        let mut conn = crate::conn();
        conn.batch_execute(table).unwrap();
        let before = schema(&mut conn);
        let m = generate::render(&spec(SqliteIndex::CODES), &generate::Options::default().add_column(add_column));
        // As the runner and the diesel CLI do: the migration in one transaction.
        let err = conn.transaction(|conn| conn.batch_execute(&m.sqlite_up)).unwrap_err().to_string();
        assert!(err.contains(message), "{table}: {err}");
        assert_eq!(schema(&mut conn), before, "{table}: nothing stays");
    }
}

#[test]
fn names_that_need_quoting_work_everywhere() {
    let mut conn = crate::conn();
    conn.batch_execute(r#"CREATE TABLE "my ""docs""" ("row id" INTEGER PRIMARY KEY, "select" TEXT)"#).unwrap();
    let spec = IndexSpec::builder(r#"my "docs""#, "em'bed ding", 4)
        .id_column("row id")
        .partition_by(["select"])
        .sqlite_index(SqliteIndex::VEC0)
        .build()
        .unwrap();
    let m = generate::render(&spec, &generate::Options::default().add_column(true));
    conn.batch_execute(&m.sqlite_up).unwrap();
    assert_eq!(registry::load(&mut conn).unwrap(), std::slice::from_ref(&spec));
    conn.batch_execute(r#"INSERT INTO "my ""docs""" ("row id", "select", "em'bed ding") VALUES (7, 'a', x'0000803f000000000000000000000000')"#)
        .unwrap();
    #[cfg(feature = "sqlite-vec")]
    {
        let report = sqlite::sync(&mut conn, &spec).unwrap();
        assert_eq!((report.rebuilt, report.applied), (true, 1));
        assert!(sqlite::status(&mut conn, &spec).unwrap().is_up_to_date());
    }
    conn.batch_execute(&m.sqlite_down).unwrap();
    assert!(registry::load(&mut conn).unwrap().is_empty());
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn every_writer_leaves_the_index_repairable_and_the_next_sync_applies_it() {
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    conn.batch_execute(DOCUMENTS).unwrap();
    let spec = spec(SqliteIndex::VEC0);
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    let mut rng = Rng::new(7);
    for id in 1..=60 {
        insert(&mut conn, id, if id % 3 == 0 { "fr" } else { "en" }, Some(&vector(&mut rng)));
    }
    let report = sqlite::sync(&mut conn, &spec).unwrap();
    assert_eq!((report.rebuilt, report.applied), (true, 60));

    // The sqlite3 shell, the diesel CLI or an application without the extension: plain writes.
    let mut plain = open_without_extension(&path);
    assert!(sqlite::sync(&mut plain, &spec).is_err(), "no vec0 without sqlite-vec");
    plain.batch_execute("DELETE FROM documents WHERE id IN (3, 4)").unwrap();
    plain.batch_execute("UPDATE documents SET lang = 'fr' WHERE id = 5").unwrap();
    plain.batch_execute("UPDATE documents SET embedding = NULL WHERE id = 6").unwrap();
    insert(&mut plain, 61, "fr", Some(&vector(&mut rng)));
    let status = sqlite::status(&mut conn, &spec).unwrap();
    assert_eq!(status.pending_changes, 5, "{status:?}");

    let report = sqlite::sync(&mut conn, &spec).unwrap();
    assert_eq!((report.rebuilt, report.applied), (false, 5));
    let status = sqlite::status(&mut conn, &spec).unwrap();
    assert!(status.is_up_to_date() && status.vec0_rows == Some(58) && status.embedded_rows == 58, "{status:?}");
    for lang in ["en", "fr"] {
        for _ in 0..5 {
            let q = vector(&mut rng);
            assert_eq!(vec0_knn(&mut conn, &q, lang, 7), exact(&mut conn, &q, lang, 7), "{lang}");
        }
    }
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn a_vec0_table_that_outlived_a_revert_is_never_served() {
    // The user's first version of this returned 10 ids from an empty table after `diesel migration redo`.
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    conn.batch_execute(DOCUMENTS).unwrap();
    let spec = spec(SqliteIndex::VEC0);
    let m = generate::render(&spec, &generate::Options::default().add_column(true));
    conn.batch_execute(&m.sqlite_up).unwrap();
    let mut rng = Rng::new(8);
    for id in 1..=10 {
        insert(&mut conn, id, "en", Some(&vector(&mut rng)));
    }
    sqlite::sync(&mut conn, &spec).unwrap();

    // `diesel migration redo` with the stock CLI: plain SQL, no sqlite-vec, so the vec0 table stays.
    let mut plain = open_without_extension(&path);
    plain.batch_execute(&m.sqlite_down).unwrap();
    plain.batch_execute("DELETE FROM documents").unwrap();
    plain.batch_execute(&m.sqlite_up).unwrap();
    assert_eq!(count(&mut conn, "__dv_documents_embedding"), 10, "the stale vec0 table is still there");

    let report = sqlite::sync(&mut conn, &spec).unwrap();
    assert!(report.rebuilt);
    assert_eq!(count(&mut conn, "__dv_documents_embedding"), 0);
    assert!(vec0_knn(&mut conn, &vector(&mut rng), "en", 10).is_empty());
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn rows_the_index_cannot_hold_are_left_out_instead_of_failing_every_sync() {
    let mut conn = crate::conn();
    // A table without the generated CHECK (the index declared on an existing column, with the refusing
    // triggers dropped by hand): the kind of data an index must survive.
    conn.batch_execute(
        "CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, body TEXT, embedding BLOB)",
    )
    .unwrap();
    let spec = spec(SqliteIndex::VEC0);
    conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).unwrap();
    conn.batch_execute(
        "DROP TRIGGER __dv_documents_embedding_check_insert; DROP TRIGGER __dv_documents_embedding_check_update",
    )
    .unwrap();
    insert(&mut conn, 1, "en", Some(&smooth(8, 0.0)));
    let nan = [f32::NAN; 8].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    diesel::sql_query(
        "INSERT INTO documents (id, lang, embedding) VALUES (2, 'en', ?), (3, 'en', x'00'), (4, 'en', 'text')",
    )
    .bind::<diesel::sql_types::Binary, _>(nan)
    .execute(&mut conn)
    .unwrap();
    let report = sqlite::sync(&mut conn, &spec).unwrap();
    assert_eq!(report.applied, 1, "only the valid row is indexed");
    let status = sqlite::status(&mut conn, &spec).unwrap();
    assert_eq!((status.vec0_rows, status.embedded_rows), (Some(1), 4));
}

/// The ids the index's default search returns for `q` in `lang`, with the path it took.
fn indexed_knn(conn: &mut SqliteConnection, spec: &IndexSpec, q: &Vector, lang: &str, k: usize) -> (Vec<i64>, String) {
    let (hits, events) =
        crate::common::telemetry::capture(|| spec.search(q).k(k).filter_eq("lang", lang).run(&mut *conn).unwrap());
    let path = events
        .iter()
        .find_map(|e| e.split(' ').find(|w| w.starts_with("path=")).map(str::to_owned))
        .unwrap_or_default();
    (hits.into_iter().map(|h| h.id).collect(), path)
}

#[test]
fn rows_appended_above_the_last_indexed_id_skip_the_queue_and_every_other_write_is_queued() {
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    conn.batch_execute(DOCUMENTS).unwrap();
    let spec = spec(SqliteIndex::CODES);
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    let queue = |conn: &mut SqliteConnection| count(conn, "__dv_documents_embedding_queue");
    let lang = |id: i64| if id % 3 == 0 { "fr" } else { "en" };
    let mut rng = Rng::new(31);
    // Ids with gaps (10, 20, ... 400), so that later rows can land below the largest one.
    for id in (10..=400).step_by(10) {
        insert(&mut conn, id, lang(id), Some(&vector(&mut rng)));
    }
    assert_eq!(queue(&mut conn), 0, "a fresh index is built from the table");
    let report = sqlite::sync(&mut conn, &spec).unwrap();
    assert_eq!((report.rebuilt, report.applied), (true, 40));

    for id in 401..=410 {
        insert(&mut conn, id, lang(id), Some(&vector(&mut rng)));
    }
    assert_eq!(queue(&mut conn), 0, "rows above the largest indexed id are not queued");
    assert_eq!(sqlite::status(&mut conn, &spec).unwrap().pending_changes, 10);

    // Plain SQL, as the sqlite3 shell would write it: a row in a gap below the largest indexed id, an
    // update and a delete of appended rows before any sync, a delete of an indexed row, and a REPLACE of an
    // appended id (SQLite deletes the old row without firing the delete trigger).
    conn.batch_execute(
        "INSERT INTO documents (id, lang, body, embedding) SELECT 15, 'en', 'gap', embedding FROM documents WHERE id = 400;
         UPDATE documents SET lang = 'fr' WHERE id = 405;
         DELETE FROM documents WHERE id = 406;
         DELETE FROM documents WHERE id = 20;
         INSERT OR REPLACE INTO documents (id, lang, body, embedding)
             SELECT 407, 'fr', 'replaced', embedding FROM documents WHERE id = 10;",
    )
    .unwrap();
    assert_eq!(queue(&mut conn), 4, "15, 405, 406 and 20 are queued; 407 is still above the mark");

    // Another connection holds the write lock: the search cannot sync, so it answers from the codes plus
    // every row they do not hold as it is, queued or appended, computed exactly.
    let mut other = open(&path);
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    for _ in 0..5 {
        let q = vector(&mut rng);
        for lang in ["en", "fr"] {
            let (found, path) = indexed_knn(&mut conn, &spec, &q, lang, 8);
            assert_eq!(found, exact(&mut conn, &q, lang, 8), "{lang} while another connection writes");
            assert_eq!(path, "path=codes_with_queue", "{lang}");
        }
    }
    for (id, lang) in [(15, "en"), (407, "fr"), (405, "fr")] {
        let v: Option<Vector> = documents::table.find(id).select(documents::embedding).first(&mut conn).unwrap();
        assert_eq!(indexed_knn(&mut conn, &spec, &v.unwrap(), lang, 1).0, [id]);
    }
    other.batch_execute("ROLLBACK").unwrap();

    let report = sqlite::sync(&mut conn, &spec).unwrap();
    assert!(!report.rebuilt);
    let status = sqlite::status(&mut conn, &spec).unwrap();
    assert!(status.is_up_to_date() && status.codes_rows == Some(49) && status.embedded_rows == 49, "{status:?}");
    assert_eq!(queue(&mut conn), 0);
    for _ in 0..5 {
        let q = vector(&mut rng);
        for lang in ["en", "fr"] {
            assert_eq!(
                indexed_knn(&mut conn, &spec, &q, lang, 8),
                (exact(&mut conn, &q, lang, 8), "path=codes".into())
            );
        }
    }
    // The mark moved to 410: a row in the gap below it is queued now, one above it is not.
    insert(&mut conn, 305, "en", Some(&vector(&mut rng)));
    insert(&mut conn, 411, "en", Some(&vector(&mut rng)));
    assert_eq!(queue(&mut conn), 1);
    assert_eq!(sqlite::status(&mut conn, &spec).unwrap().pending_changes, 2);
}

#[test]
fn an_id_that_leads_a_unique_index_serves_like_a_primary_key() {
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    conn.batch_execute(
        "CREATE TABLE documents (rowkey INTEGER PRIMARY KEY, id INTEGER NOT NULL UNIQUE, lang TEXT NOT NULL, \
         body TEXT NOT NULL)",
    )
    .unwrap();
    let spec = spec(SqliteIndex::CODES);
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    let mut rng = Rng::new(5);
    let mut rows = Vec::new();
    // Ids out of the rowid's order.
    for id in [50, 30, 90, 10, 70] {
        let v = vector(&mut rng);
        insert(&mut conn, id, "en", Some(&v));
        rows.push((id, v));
    }
    assert!(sqlite::sync(&mut conn, &spec).unwrap().rebuilt);
    for id in [40, 120] {
        let v = vector(&mut rng);
        insert(&mut conn, id, "en", Some(&v));
        rows.push((id, v));
    }
    assert_eq!(count(&mut conn, "__dv_documents_embedding_queue"), 1, "40 lies below the largest indexed id, 90");
    for (id, v) in &rows {
        assert_eq!(indexed_knn(&mut conn, &spec, v, "en", 1).0, [*id]);
    }
    assert!(sqlite::status(&mut conn, &spec).unwrap().is_up_to_date());
}

#[test]
fn an_index_trained_on_its_first_rows_is_measured_again_as_it_grows_and_rebuilt_only_if_they_were_unlike_the_rest() {
    let lang = |id: i64| if id % 3 == 0 { "fr" } else { "en" };
    for first_rows_alike in [true, false] {
        let (_dir, path) = file_db();
        let mut conn = open(&path);
        conn.batch_execute(DOCUMENTS).unwrap();
        let spec = spec(SqliteIndex::CODES);
        conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
        let mut rng = Rng::new(47);
        for id in 1..=500 {
            let mut v = vector(&mut rng);
            if !first_rows_alike {
                // All in one corner, far from where the later rows lie.
                v = Vector::new(v.as_slice().iter().map(|x| 0.05 * x + 3.0).collect()).unwrap();
            }
            insert(&mut conn, id, lang(id), Some(&v));
        }
        assert_eq!(sqlite::sync(&mut conn, &spec).unwrap().applied, 500, "trained on the first 500 rows");
        for id in 501..=2000 {
            insert(&mut conn, id, lang(id), Some(&vector(&mut rng)));
        }
        // Four times the rows it was trained on: trained again, on a sample of all 2000. Around the same
        // centre when it still holds (no row read or encoded again), from scratch when it moved.
        let report = sqlite::sync(&mut conn, &spec).unwrap();
        if first_rows_alike {
            assert_eq!((report.rebuilt, report.applied), (false, 1500));
        } else {
            assert_eq!((report.rebuilt, report.applied), (true, 2000));
        }
        let status = sqlite::status(&mut conn, &spec).unwrap();
        assert!(status.is_up_to_date() && status.codes_rows == Some(2000), "{status:?}");
        // The next growth syncs apply changes only: the training now holds.
        insert(&mut conn, 2001, "en", Some(&vector(&mut rng)));
        assert!(!sqlite::sync(&mut conn, &spec).unwrap().rebuilt);
        for _ in 0..10 {
            let q = vector(&mut rng);
            for lang in ["en", "fr"] {
                assert_eq!(indexed_knn(&mut conn, &spec, &q, lang, 10).0, exact(&mut conn, &q, lang, 10), "{lang}");
            }
        }
        // A new process loads the recalibrated codes from the file and answers alike.
        sqlite::clear_codes_cache();
        let q = vector(&mut rng);
        assert_eq!(indexed_knn(&mut conn, &spec, &q, "en", 10).0, exact(&mut conn, &q, "en", 10));
    }
}

#[test]
fn doctor_names_an_index_whose_id_column_is_not_unique_by_itself() {
    // Registered before the migrations checked it (the registry row written by hand here): the first column
    // of a composite key, which identifies no row.
    let mut conn = crate::conn();
    conn.batch_execute(
        "CREATE TABLE pairs (doc_id INTEGER NOT NULL, chunk INTEGER NOT NULL, emb BLOB, PRIMARY KEY (doc_id, chunk))",
    )
    .unwrap();
    let pairs = IndexSpec::builder("pairs", "emb", 3).id_column("doc_id").build().unwrap();
    let m = generate::render(&pairs, &generate::Options::default());
    let err = conn.transaction(|conn| conn.batch_execute(&m.sqlite_up)).unwrap_err().to_string();
    assert!(err.contains("pairs.doc_id must exist, be an INTEGER and unique by itself"), "{err}");
    conn.batch_execute(&format!("{}\n{}", registry::create_table_sql(), registry::insert_sql(&pairs))).unwrap();

    let mut db = diesel_vector::database::DatabaseConnection::Sqlite(conn);
    let report = diesel_vector::doctor::diagnose(&mut db).unwrap();
    let finding = report.findings.iter().find(|f| f.message.contains("is not unique by itself"));
    assert_eq!(
        finding.map(|f| f.message.as_str()),
        Some(
            "pairs.doc_id, the id column of the vector index __dv_pairs_emb, is not unique by itself: searches return \
             ids that stand for several rows, and may return a row twice or miss rows; make it the primary key or \
             give it a unique index of its own, or register the index on a column that is"
        ),
        "{:?}",
        report.findings
    );
    assert!(report.needs_action());

    // A unique index of that column alone satisfies it.
    let diesel_vector::database::DatabaseConnection::Sqlite(mut conn) = db else { unreachable!() };
    conn.batch_execute("CREATE UNIQUE INDEX pairs_doc ON pairs (doc_id)").unwrap();
    let mut db = diesel_vector::database::DatabaseConnection::Sqlite(conn);
    let report = diesel_vector::doctor::diagnose(&mut db).unwrap();
    assert!(!report.findings.iter().any(|f| f.message.contains("is not unique by itself")), "{:?}", report.findings);
}

#[test]
fn a_renamed_partition_column_is_named_by_doctor_and_by_the_sync() {
    let mut conn = crate::conn();
    conn.batch_execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, grp INTEGER, emb BLOB)").unwrap();
    let notes = IndexSpec::builder("notes", "emb", 3).partition_by(["grp"]).build().unwrap();
    conn.batch_execute(&generate::render(&notes, &generate::Options::default()).sqlite_up).unwrap();
    conn.batch_execute("INSERT INTO notes VALUES (1, 1, X'0000803F0000000000000000')").unwrap();
    diesel_vector::sqlite::sync(&mut conn, &notes).unwrap();
    conn.batch_execute("ALTER TABLE notes RENAME COLUMN grp TO grp2; UPDATE notes SET grp2 = 3 WHERE id = 1").unwrap();

    let err = diesel_vector::sqlite::sync(&mut conn, &notes).unwrap_err();
    assert!(matches!(&err, diesel_vector::sqlite::IndexError::ColumnsMissing { columns, .. } if columns == &["grp"]));
    assert_eq!(
        err.to_string(),
        "the vector index __dv_notes_emb reads grp of table notes, which it does not have (renamed or dropped since \
         the index's migration ran): restore the column, or revert that migration and generate one for the table as \
         it is now"
    );
    let mut db = diesel_vector::database::DatabaseConnection::Sqlite(conn);
    let report = diesel_vector::doctor::diagnose(&mut db).unwrap();
    let finding = report.findings.iter().find(|f| f.message.contains("which it does not have"));
    assert!(finding.is_some_and(|f| f.message.contains("reads grp of table notes")), "{:?}", report.findings);
    assert!(report.needs_action());
    let index = report.indexes.iter().find(|i| i.spec.name() == "__dv_notes_emb").unwrap();
    assert_eq!(index.missing_columns, ["grp"]);
}

#[test]
fn a_second_index_of_one_name_is_refused_before_anything_is_created() {
    let mut conn = crate::conn();
    conn.batch_execute("CREATE TABLE items (id INTEGER PRIMARY KEY, emb BLOB)").unwrap();
    let l2 = IndexSpec::builder("items", "emb", 3).metric(Metric::L2).build().unwrap();
    conn.batch_execute(&generate::render(&l2, &generate::Options::default()).sqlite_up).unwrap();
    let cosine = IndexSpec::builder("items", "emb", 3).build().unwrap();
    let m = generate::render(&cosine, &generate::Options::default());
    let err = conn.transaction(|conn| conn.batch_execute(&m.sqlite_up)).unwrap_err().to_string();
    assert!(
        err.contains(
            "an index named __dv_items_emb is registered already: give this index of items.emb a name of its own"
        ),
        "{err}"
    );
    // With a name of its own it is created beside the first.
    let named = IndexSpec::builder("items", "emb", 3).name("items_cos").build().unwrap();
    conn.batch_execute(&generate::render(&named, &generate::Options::default()).sqlite_up).unwrap();
    let specs = registry::load(&mut conn).unwrap();
    assert_eq!(specs.len(), 2);
    // A missing table is named as such.
    let ghost = IndexSpec::builder("ghost", "emb", 3).build().unwrap();
    let m = generate::render(&ghost, &generate::Options::default());
    let err = conn.transaction(|conn| conn.batch_execute(&m.sqlite_up)).unwrap_err().to_string();
    assert!(err.contains("table ghost must exist"), "{err}");
}

#[test]
fn the_generated_migration_quotes_odd_names_in_its_messages() {
    let mut conn = crate::conn();
    conn.batch_execute(r#"CREATE TABLE "Dé ""Docs""" (id INTEGER PRIMARY KEY, "Emb ""V"" ß" BLOB)"#).unwrap();
    // A partition column the table lacks: the check names it, quoted, and the table with it.
    let missing = IndexSpec::builder(r#"Dé "Docs""#, r#"Emb "V" ß"#, 3).partition_by(["k=v"]).build().unwrap();
    let m = generate::render(&missing, &generate::Options::default());
    let err = conn.transaction(|conn| conn.batch_execute(&m.sqlite_up)).unwrap_err().to_string();
    assert!(err.contains(r#""Dé ""Docs"""."k=v" must exist"#), "{err}");

    // A value of the wrong shape: the trigger's message names the column as one quoted name.
    let spec = IndexSpec::builder(r#"Dé "Docs""#, r#"Emb "V" ß"#, 3).build().unwrap();
    conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).unwrap();
    let err = conn.batch_execute(r#"INSERT INTO "Dé ""Docs""" VALUES (1, X'00')"#).unwrap_err().to_string();
    assert_eq!(err, r#""Dé ""Docs"""."Emb ""V"" ß" must be NULL or a BLOB of 3 little-endian f32 (12 bytes)"#);
}
