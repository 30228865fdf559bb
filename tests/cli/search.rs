//! `search`, `doctor` and `reindex` tried as a new user would: an application of its own (`documents`,
//! 768 dims, a `lang` partition column, one row in five French) with its own migrations, on both backends.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use diesel_vector::Vector;
use serde_json::Value;

use crate::common::documents::{self as fixture, Doc, PG_TABLE, SQLITE_TABLE};
use crate::{dsl_nearest, fails, insert_docs, ok, run, sqlite_file, FreshDb};

/// The application's migration folder for `backend`: its table, then its vector index as `diesel-vector
/// generate vector-index` writes it.
fn migrations(dir: &Path, backend: &str, sqlite_index: &str) -> PathBuf {
    for (b, table) in [("pg", PG_TABLE), ("sqlite", SQLITE_TABLE)] {
        let folder = dir.join(format!("migrations_{b}")).join("2026-01-01-000000_create_documents");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("up.sql"), format!("{table};")).unwrap();
        std::fs::write(folder.join("down.sql"), "DROP TABLE documents;").unwrap();
    }
    let (pg, sqlite) = (dir.join("migrations_pg"), dir.join("migrations_sqlite"));
    ok(&[
        "generate",
        "vector-index",
        "--table",
        "documents",
        "--column",
        "embedding",
        "--dims",
        "768",
        "--partition-by",
        "lang",
        "--add-column",
        "--sqlite-index",
        sqlite_index,
        "--migrations-pg",
        pg.to_str().unwrap(),
        "--migrations-sqlite",
        sqlite.to_str().unwrap(),
        "--migration-version",
        "20260102000000",
    ]);
    dir.join(format!("migrations_{backend}"))
}

fn write_query(dir: &Path, q: &diesel_vector::Vector) -> String {
    let file = dir.join("query.json");
    std::fs::write(&file, serde_json::to_string(q.as_slice()).unwrap()).unwrap();
    format!("@{}", file.display())
}

fn json_ids(out: &str) -> Vec<i64> {
    let hits: Value = serde_json::from_str(out).unwrap();
    hits.as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect()
}

/// An SQLite file at `path` holding a table of the user's own ([`crate::common::vector_table`]).
fn vector_table(path: &str, spec: &diesel_vector::index::IndexSpec, vectors: impl IntoIterator<Item = Vector>) {
    crate::common::vector_table(&mut diesel_vector::sqlite::establish(path).unwrap(), spec, vectors);
}

/// Migrates with Diesel's own harness (as the application would) and loads `docs`; returns the exact
/// answers to `q` (French rows, 10 nearest by cosine) computed with the distance DSL.
macro_rules! app_database {
    ($conn:expr, $dir:expr, $docs:expr, $q:expr) => {{
        let conn = $conn;
        conn.run_pending_migrations(FileBasedMigrations::from_path($dir).unwrap()).unwrap();
        insert_docs!(&mut *conn, $docs);
        dsl_nearest!(&mut *conn, $q, diesel_vector::index::Metric::Cosine, Some("fr"), 10)
    }};
}

#[test]
fn a_new_user_searches_their_own_table_on_both_backends() {
    let docs: Vec<Doc> = fixture::docs(1000, 51);
    let q = fixture::queries(51, 1000, 1).remove(0);
    let work = tempfile::tempdir().unwrap();
    let query = write_query(work.path(), &q);
    let pg = FreshDb::create();
    let lite = sqlite_file(work.path(), "app.db");
    let mut answers = Vec::new();
    for (backend, url) in [("pg", pg.url.clone()), ("sqlite", lite.clone())] {
        let dir = migrations(&work.path().join(backend), backend, "vec0");
        let expected = match backend {
            "pg" => app_database!(&mut pg.conn(), &dir, &docs, &q),
            _ => app_database!(&mut diesel_vector::sqlite::establish(&lite).unwrap(), &dir, &docs, &q),
        };
        let url = url.as_str();
        let search = |extra: &[&str]| {
            let args =
                [&["--database-url", url, "search", "--table", "documents", "--vector", &query][..], extra].concat();
            ok(&args)
        };
        let exact = json_ids(&search(&["--where", "lang=fr", "--exact", "--json"]));
        assert_eq!(exact, expected, "{backend}: --exact is the exact answer");
        let auto = json_ids(&search(&["--where", "lang=fr", "--json"]));
        assert_eq!(auto.len(), 10, "{backend}");
        let recalled = auto.iter().filter(|id| expected.contains(id)).count();
        assert!(recalled >= 9, "{backend}: {auto:?} against {expected:?}");
        assert!(auto.iter().all(|id| id % 5 == 0), "{backend}: French rows only");
        let hits: Value = serde_json::from_str(&search(&["-k", "3", "--metric", "l2", "--json"])).unwrap();
        assert_eq!(hits.as_array().unwrap().len(), 3, "{backend}");
        assert_eq!(hits[0]["rank"], 1);
        assert!(hits[0]["distance"].as_f64().unwrap() >= 0.0);
        let text = search(&["-k", "2", "--where", "lang=fr", "--where", "year=2020"]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{backend}: {text}");
        assert!(lines[0].contains("rank") && lines[0].ends_with("id"), "{text}");
        answers.push(exact);
    }
    assert_eq!(answers[0], answers[1], "the same ids in the same order on both backends");
}

#[test]
fn bad_input_is_named_on_both_backends() {
    let docs = fixture::docs(60, 52);
    let q = fixture::queries(52, 60, 1).remove(0);
    let work = tempfile::tempdir().unwrap();
    let query = write_query(work.path(), &q);
    let pg = FreshDb::create();
    let lite = sqlite_file(work.path(), "app.db");
    for (backend, url) in [("pg", pg.url.clone()), ("sqlite", lite.clone())] {
        let dir = migrations(&work.path().join(backend), backend, "codes");
        match backend {
            "pg" => app_database!(&mut pg.conn(), &dir, &docs, &q),
            _ => app_database!(&mut diesel_vector::sqlite::establish(&lite).unwrap(), &dir, &docs, &q),
        };
        let url = url.as_str();
        let base = ["--database-url", url, "search", "--vector", &query];
        let cases: [(&[&str], &str); 6] = [
            (&["--table", "nope"], "table nope does not exist in this database"),
            (&["--table", "documents", "--column", "nope"], "no vector index is registered for documents.nope"),
            (
                &["--table", "documents", "--where", "language=fr"],
                "documents has no column language (the filter column)",
            ),
            (&["--table", "documents", "--where", "year=recent"], "cannot be compared with it; give an integer"),
            (&["--table", "documents", "--where", "lang"], "--where \"lang\": expected COLUMN=VALUE"),
            (&["--table", "body", "--metric", "hamming"], "table body does not exist"),
        ];
        for (extra, message) in cases {
            let (_, stderr) = fails(&[&base[..], extra].concat());
            assert!(stderr.contains(message), "{backend} {extra:?}: {stderr}");
        }
        let (_, stderr) = fails(&["--database-url", url, "search", "--table", "documents", "--vector", "[1,2,3]"]);
        assert!(stderr.contains("3 dimensions but 768 are expected"), "{backend}: {stderr}");
        let (_, stderr) =
            fails(&["--database-url", url, "search", "--table", "documents", "--vector", "[1,2,", "--exact"]);
        assert!(stderr.contains("--vector: "), "{backend}: {stderr}");
        let (_, stderr) =
            fails(&["--database-url", url, "search", "--table", "documents", "--vector", "@/nonexistent"]);
        assert!(stderr.contains("cannot read the query vector from /nonexistent"), "{backend}: {stderr}");
        let out = run(&["--database-url", url, "search", "--vector", &query]);
        assert_eq!(out.status.code(), Some(2), "{backend}: neither --table nor --provider is a usage error");
    }
}

#[test]
fn a_plain_sqlite3_write_is_seen_by_the_next_search() {
    let Ok(shell) = std::process::Command::new("sqlite3").arg("--version").output() else {
        eprintln!("SKIPPED: the sqlite3 shell is not installed");
        return;
    };
    assert!(shell.status.success());
    let docs = fixture::docs(300, 53);
    let q = fixture::queries(53, 300, 1).remove(0);
    let work = tempfile::tempdir().unwrap();
    let query = write_query(work.path(), &q);
    let lite = sqlite_file(work.path(), "app.db");
    let dir = migrations(work.path(), "sqlite", "vec0");
    let _ = app_database!(&mut diesel_vector::sqlite::establish(&lite).unwrap(), &dir, &docs, &q);
    ok(&["--database-url", &lite, "reindex"]);
    let before =
        json_ids(&ok(&["--database-url", &lite, "search", "--table", "documents", "--vector", &query, "--json"]));

    // The sqlite3 shell, without sqlite-vec: a copy of the query vector as a new row, and a deletion.
    let hex: String = q.as_slice().iter().flat_map(|x| x.to_le_bytes()).map(|b| format!("{b:02x}")).collect();
    let sql = format!(
        "INSERT INTO documents (id, lang, year, body, embedding) VALUES (5000, 'en', 2024, 'new', x'{hex}'); \
         DELETE FROM documents WHERE id = {};",
        before[1]
    );
    let out = std::process::Command::new("sqlite3").arg(&lite).arg(&sql).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let after =
        json_ids(&ok(&["--database-url", &lite, "search", "--table", "documents", "--vector", &query, "--json"]));
    assert_eq!(after[0], 5000, "the new row is its own nearest neighbour");
    assert!(!after.contains(&before[1]), "the deleted row is gone");
}

/// `doctor` on a database that needs nothing but, perhaps, the pgvector upgrade this machine's pgvector calls
/// for when the database has an HNSW index (versions before 0.8.3 can corrupt them): its standard output.
fn doctor_healthy(args: &[&str]) -> String {
    let out = run(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let actions = stdout.matches("ACTION:").count() + stdout.matches("\"level\":\"action\"").count();
    let upgrades = stdout.matches("can corrupt HNSW indexes").count();
    assert_eq!(actions, upgrades, "only the pgvector upgrade may need action: {stdout}");
    assert_eq!(out.status.success(), actions == 0, "{stdout}");
    stdout
}

#[test]
fn doctor_checks_an_application_database_and_reindex_repairs_it() {
    let docs = fixture::docs(200, 54);
    let q = fixture::queries(54, 200, 1).remove(0);
    let work = tempfile::tempdir().unwrap();
    let pg = FreshDb::create();
    let lite = sqlite_file(work.path(), "app.db");
    for (backend, url) in [("pg", pg.url.clone()), ("sqlite", lite.clone())] {
        let dir = migrations(&work.path().join(backend), backend, "vec0");
        match backend {
            "pg" => app_database!(&mut pg.conn(), &dir, &docs, &q),
            _ => app_database!(&mut diesel_vector::sqlite::establish(&lite).unwrap(), &dir, &docs, &q),
        };
        let url = url.as_str();
        let dir_arg = dir.to_str().unwrap();
        if backend == "sqlite" {
            // Loaded with the index never built: the next search would stall building it.
            let (stdout, _) = fails(&["--database-url", url, "doctor"]);
            assert!(
                stdout.contains(
                    "ACTION:  the vec0 index __dv_documents_embedding is missing for 198 row(s) of \
                                 documents.embedding"
                ) && stdout.contains("run `diesel-vector reindex --table documents`"),
                "{stdout}"
            );
            let out = ok(&["--database-url", url, "reindex", "--table", "documents"]);
            assert_eq!(out, "rebuilt __dv_documents_embedding (documents.embedding): vec0, 196 rows\n");
        }
        let report = doctor_healthy(&["--database-url", url, "doctor", "--migration-dir", dir_arg]);
        assert!(report.contains(&format!("migrations   2 applied, 0 pending in {dir_arg}")), "{backend}: {report}");
        assert!(
            report.contains("indexes      documents.embedding: __dv_documents_embedding, ")
                && report.contains("partitioned by lang"),
            "{backend}: {report}"
        );
        assert!(!report.contains("migration run") && !report.contains("fragments"), "{backend}: {report}");
        assert!(
            report.contains("verdict      healthy") || report.contains("can corrupt HNSW indexes"),
            "{backend}: {report}"
        );
        let json: Value = serde_json::from_str(&doctor_healthy(&["--database-url", url, "doctor", "--json"])).unwrap();
        let index = &json["indexes"][0];
        assert_eq!(index["table"], "documents", "{json}");
        assert_eq!(index["rows"], 198, "{json}");
        assert_eq!(json["fragments"], Value::Null, "{json}");
        assert_eq!(json["migrations"]["applied"].as_array().unwrap().len(), 2, "{json}");
        if backend == "pg" {
            assert_eq!(index["column_type"], "vector(768)");
            assert_eq!(index["postgresql"]["method"], "hnsw");
            assert_eq!(index["postgresql"]["operator_class_matches"], true);
        } else {
            assert_eq!(index["sqlite"]["up_to_date"], true);
            assert_eq!(index["sqlite"]["invalid_rows"]["count"], 0);
        }

        // A migration not applied yet, in the application's folder.
        let next = dir.join("2026-02-01-000000_add_tags");
        std::fs::create_dir_all(&next).unwrap();
        std::fs::write(next.join("up.sql"), "ALTER TABLE documents ADD COLUMN tags TEXT;").unwrap();
        std::fs::write(next.join("down.sql"), "ALTER TABLE documents DROP COLUMN tags;").unwrap();
        let (stdout, _) = fails(&["--database-url", url, "doctor", "--migration-dir", dir_arg]);
        assert!(stdout.contains("[ ] 2026-02-01-000000_add_tags"), "{backend}: {stdout}");
        assert!(
            stdout.contains("ACTION:  1 pending migration(s) in ")
                && stdout.contains("run `diesel-vector migration run --migration-dir"),
            "{backend}: {stdout}"
        );
        std::fs::remove_dir_all(&next).unwrap();
    }
}

#[test]
fn doctor_names_what_the_registry_does_not_know_and_what_changed_by_hand() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(PG_TABLE).unwrap();
    let spec = fixture::spec(
        diesel_vector::index::Metric::Cosine,
        diesel_vector::index::PgIndex::Ivfflat,
        diesel_vector::index::SqliteIndex::VEC0,
    );
    conn.batch_execute(
        &diesel_vector::index::generate::render(
            &spec,
            &diesel_vector::index::generate::Options::default().add_column(true),
        )
        .pg_up,
    )
    .unwrap();
    insert_docs!(&mut conn, &fixture::docs(2500, 55));
    // The user's own table and index, made without diesel-vector (issue 11's first attempt).
    conn.batch_execute(
        "CREATE TABLE notes (id serial PRIMARY KEY, embedding vector(3), topic text); \
         INSERT INTO notes (embedding) SELECT ARRAY[i, 1, 1]::real[]::vector FROM generate_series(1, 3000) i; \
         CREATE INDEX notes_embedding_idx ON notes USING ivfflat (embedding vector_l2_ops) WITH (lists = 100); \
         CREATE INDEX notes_recipes_idx ON notes USING hnsw (embedding vector_l2_ops) WHERE topic = 'recipes';",
    )
    .unwrap();
    let (stdout, _) = fails(&["--database-url", &db.url, "doctor"]);
    assert!(stdout.contains("ivfflat documents_embedding_cosine_idx: valid, 100 lists for 2475 rows"), "{stdout}");
    assert!(
        stdout.contains("ACTION:  the ivfflat index documents_embedding_cosine_idx has 100 lists for 2475 rows"),
        "{stdout}"
    );
    assert!(stdout.contains("unregistered public.notes.embedding vector(3)"), "{stdout}");
    assert!(
        stdout
            .contains("ACTION:  the ivfflat index notes_embedding_idx on notes.embedding has 100 lists for 3000 rows"),
        "{stdout}"
    );
    assert!(stdout.contains("info:    notes.embedding (vector(3)) is not in diesel-vector's registry"), "{stdout}");
    // A partial index's condition names a column it does not index: that column is no vector column.
    assert!(stdout.contains("hnsw notes_recipes_idx"), "{stdout}");
    assert!(!stdout.contains("notes.topic"), "{stdout}");
    assert!(!stdout.contains("migration run"), "never told to create the fragments schema: {stdout}");

    let out = ok(&["--database-url", &db.url, "reindex"]);
    assert!(
        out.starts_with(
            "rebuilt __dv_documents_embedding (documents.embedding): ivfflat documents_embedding_cosine_idx, 2 lists"
        ),
        "{out}"
    );
    // A dimension changed by hand is named.
    conn.batch_execute(
        "DROP INDEX notes_embedding_idx; DROP INDEX notes_recipes_idx; \
         ALTER TABLE documents ALTER COLUMN embedding TYPE vector(768) USING embedding",
    )
    .unwrap();
    let report = ok(&["--database-url", &db.url, "doctor"]);
    assert!(report.contains("verdict      healthy"), "{report}");
    conn.batch_execute(
        "DROP INDEX documents_embedding_cosine_idx; UPDATE documents SET embedding = NULL; \
                        ALTER TABLE documents ALTER COLUMN embedding TYPE vector(3)",
    )
    .unwrap();
    let (stdout, _) = fails(&["--database-url", &db.url, "doctor"]);
    assert!(
        stdout.contains("documents.embedding is vector(3) but the vector index __dv_documents_embedding is registered for vector(768)"),
        "{stdout}"
    );
    assert!(stdout.contains("ivfflat documents_embedding_cosine_idx: MISSING"), "{stdout}");
}

#[test]
fn doctor_on_sqlite_names_rows_the_index_leaves_out() {
    let work = tempfile::tempdir().unwrap();
    let lite = sqlite_file(work.path(), "app.db");
    let mut conn = diesel_vector::sqlite::establish(&lite).unwrap();
    conn.batch_execute(SQLITE_TABLE).unwrap();
    conn.batch_execute("ALTER TABLE documents ADD COLUMN embedding BLOB").unwrap();
    let spec = fixture::spec(
        diesel_vector::index::Metric::Cosine,
        diesel_vector::index::PgIndex::Hnsw,
        diesel_vector::index::SqliteIndex::VEC0,
    );
    conn.batch_execute(&diesel_vector::index::generate::render(&spec, &Default::default()).sqlite_up).unwrap();
    conn.batch_execute(
        "DROP TRIGGER __dv_documents_embedding_check_insert; DROP TRIGGER __dv_documents_embedding_check_update",
    )
    .unwrap();
    insert_docs!(&mut conn, &fixture::docs(50, 56));
    conn.batch_execute(
        "INSERT INTO documents (id, lang, year, body, embedding) VALUES (101, 'en', 2020, 'a', x'00'), \
         (102, 'en', 2020, 'b', 'text'), (103, 'en', 2020, 'c', 1.5)",
    )
    .unwrap();
    let out = ok(&["--database-url", &lite, "reindex"]);
    assert_eq!(
        out,
        "rebuilt __dv_documents_embedding (documents.embedding): vec0, 48 rows; left out 3 row(s) whose value the \
         index cannot hold (not a vector of its dimensions with finite elements; ids 101, 102, 103)\n"
    );
    let (stdout, _) = fails(&["--database-url", &lite, "doctor"]);
    assert!(
        stdout.contains(
            "ACTION:  3 row(s) of documents hold a value in embedding that is not a vector of 768 dimensions \
                         (another length or type, or a NaN or infinite element; ids 101, 102, 103)"
        ),
        "{stdout}"
    );
    let q = fixture::queries(56, 50, 1).remove(0);
    let query = write_query(work.path(), &q);
    let hits =
        json_ids(&ok(&["--database-url", &lite, "search", "--table", "documents", "--vector", &query, "--json"]));
    assert_eq!(hits.len(), 10, "searches skip the malformed rows");
}

#[test]
fn a_photo_librarys_hash_and_tags_are_searched_from_the_command_line_on_both_backends() {
    use crate::common::images::{self as photos, images};
    use crate::insert_images;
    use diesel::prelude::*;
    use diesel_vector::index::{generate, Metric, PgIndex};

    let library = photos::images(200, 81);
    let (bits, _, sparse) = photos::queries(81, 200, 1).remove(0);
    let work = tempfile::tempdir().unwrap();
    let pg = FreshDb::create();
    let lite = sqlite_file(work.path(), "photos.db");
    let phash = photos::spec("phash", Metric::Hamming, PgIndex::Hnsw);
    let tags = photos::spec("tags", Metric::InnerProduct, PgIndex::Hnsw);
    let mut answers = Vec::new();
    for url in [pg.url.clone(), lite.clone()] {
        let expected = if url == lite {
            let mut conn = diesel_vector::sqlite::establish(&lite).unwrap();
            conn.batch_execute(photos::SQLITE_TABLE).unwrap();
            for spec in [&phash, &tags] {
                conn.batch_execute(&generate::render(spec, &generate::Options::default()).sqlite_up).unwrap();
            }
            insert_images!(&mut conn, &library);
            images::table
                .filter(images::album.eq("travel").and(images::phash.is_not_null()))
                .order((diesel_vector::VectorExpressionMethods::hamming_distance(images::phash, &bits), images::id))
                .select(images::id)
                .limit(5)
                .load::<i64>(&mut conn)
                .unwrap()
        } else {
            let mut conn = pg.conn();
            conn.batch_execute(photos::PG_TABLE).unwrap();
            for spec in [&phash, &tags] {
                conn.batch_execute(&generate::render(spec, &generate::Options::default()).pg_up).unwrap();
            }
            insert_images!(&mut conn, &library);
            images::table
                .filter(images::album.eq("travel").and(images::phash.is_not_null()))
                .order((diesel_vector::VectorExpressionMethods::hamming_distance(images::phash, &bits), images::id))
                .select(images::id)
                .limit(5)
                .load::<i64>(&mut conn)
                .unwrap()
        };
        let hash = bits.to_string();
        let out = ok(&[
            "--database-url",
            &url,
            "search",
            "--table",
            "images",
            "--column",
            "phash",
            "--vector",
            &hash,
            "-k",
            "5",
            "--where",
            "album=travel",
            "--json",
        ]);
        assert_eq!(json_ids(&out), expected, "{url}");
        let terms = sparse.to_string();
        let out = ok(&[
            "--database-url",
            &url,
            "search",
            "--table",
            "images",
            "--column",
            "tags",
            "--vector",
            &terms,
            "--json",
        ]);
        assert_eq!(json_ids(&out).len(), 10);
        let (_, stderr) =
            fails(&["--database-url", &url, "search", "--table", "images", "--column", "phash", "--vector", "[1,0]"]);
        assert!(stderr.contains("--vector"), "{stderr}");
        answers.push(json_ids(&out));
    }
    assert_eq!(answers[0], answers[1], "the same tags neighbours on both backends");
}

/// `doctor` and `reindex` on a table with a `halfvec` and a `bit` column, each with a generated index:
/// the `halfvec` index keeps codes, the `bit` one keeps no structure and says so (text and JSON).
#[test]
fn doctor_tells_which_index_keeps_codes_on_a_table_of_halfvec_and_bit_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_file(dir.path(), "photos.db");
    let mut conn = diesel_vector::sqlite::establish(&db).unwrap();
    conn.batch_execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, clip BLOB, phash BLOB)").unwrap();
    let migrations = dir.path().join("migrations_sqlite");
    for (column, kind, dims, version) in
        [("clip", "halfvec", "8", "20260102000000"), ("phash", "bit", "16", "20260103000000")]
    {
        ok(&[
            "generate",
            "vector-index",
            "--table",
            "photos",
            "--column",
            column,
            "--type",
            kind,
            "--dims",
            dims,
            "--migrations-pg",
            dir.path().join("migrations_pg").to_str().unwrap(),
            "--migrations-sqlite",
            migrations.to_str().unwrap(),
            "--migration-version",
            version,
        ]);
    }
    ok(&["--database-url", &db, "migration", "run", "--migration-dir", migrations.to_str().unwrap()]);
    for id in 1..=40u8 {
        let values: Vec<f32> = (0..8u8).map(|j| f32::from(id ^ j) - 20.0).collect();
        let clip = diesel_vector::HalfVector::from_f32_slice(&values).unwrap();
        let phash = diesel_vector::Bit::from_bytes(&[id, 255 - id]);
        diesel::sql_query("INSERT INTO photos (id, clip, phash) VALUES (?, ?, ?)")
            .bind::<diesel::sql_types::Integer, _>(i32::from(id))
            .bind::<diesel_vector::sql_types::HalfVector, _>(&clip)
            .bind::<diesel_vector::sql_types::Bit, _>(&phash)
            .execute(&mut conn)
            .unwrap();
    }
    // Rows written without the crate: the codes are due, the bit index has nothing to build.
    let (report, _) = fails(&["--database-url", &db, "doctor"]);
    assert!(
        report.contains(
            "photos.clip: __dv_photos_clip, halfvec(8) as BLOB, cosine\n               codes: marked for rebuild"
        ),
        "{report}"
    );
    assert!(
        report.contains(
            "photos.phash: __dv_photos_phash, bit(16) as BLOB, hamming\n               no structure (exact scans), 40 rows"
        ),
        "{report}"
    );
    assert_eq!(report.matches("ACTION").count(), 1, "only the codes are due: {report}");
    let out = ok(&["--database-url", &db, "reindex"]);
    assert!(out.contains("rebuilt __dv_photos_clip (photos.clip): codes, 40 rows"), "{out}");
    assert!(out.contains("rebuilt __dv_photos_phash (photos.phash): queue cleared (no structure"), "{out}");
    let report = ok(&["--database-url", &db, "doctor"]);
    assert!(report.contains("codes: up to date, 40 indexed, 40 rows"), "{report}");
    let json: Value = serde_json::from_str(&ok(&["--database-url", &db, "doctor", "--json"])).unwrap();
    let keeps = |column: &str| {
        let index = json["indexes"].as_array().unwrap().iter().find(|i| i["column"] == column).unwrap();
        (index["sqlite"]["structures"].clone(), index["sqlite"]["keeps_codes"].clone())
    };
    assert_eq!(keeps("clip"), (Value::from("codes"), Value::from(true)), "{json}");
    assert_eq!(keeps("phash"), (Value::from("none"), Value::from(false)), "{json}");

    // Two indexes on the table: `search` asks which one.
    let (_, err) = fails(&["--database-url", &db, "search", "--table", "photos", "--vector", "[1,2,3,4,5,6,7,8]"]);
    assert!(err.contains("table photos has a vector index on each of clip, phash: choose one with --column"), "{err}");
    let out = ok(&[
        "--database-url",
        &db,
        "search",
        "--table",
        "photos",
        "--column",
        "phash",
        "--vector",
        "0000010111111010",
        "-k",
        "1",
    ]);
    assert!(out.contains(" 5\n") || out.trim_end().ends_with(" 5"), "row 5's hash is the query: {out}");
}

#[test]
fn an_operator_builds_and_drops_a_partition_index_from_the_command_line() {
    let docs: Vec<Doc> = fixture::docs(1000, 53);
    let q = fixture::queries(53, 1000, 1).remove(0);
    let work = tempfile::tempdir().unwrap();
    let query = write_query(work.path(), &q);
    let pg = FreshDb::create();
    let expected = app_database!(&mut pg.conn(), &migrations(&work.path().join("pg"), "pg", "codes"), &docs, &q);
    let url = pg.url.as_str();
    let partition_index = |extra: &[&str]| {
        ok(&[&["--database-url", url, "partition-index", "--table", "documents", "--where", "lang=fr"][..], extra]
            .concat())
    };
    let out = partition_index(&[]);
    assert!(out.starts_with("partition index documents_embedding_cosine_idx_p"), "{out}");
    assert!(out.contains("of documents.embedding where lang = \"fr\" is in place"), "{out}");
    // Again: the same index, still in place.
    assert_eq!(partition_index(&[]), out);
    let name = out.split_whitespace().nth(2).unwrap().to_owned();
    let indexes: Vec<String> = diesel::sql_query("SELECT indexdef AS d FROM pg_indexes WHERE indexname = $1")
        .bind::<diesel::sql_types::Text, _>(&name)
        .load::<Def>(&mut pg.conn())
        .unwrap()
        .into_iter()
        .map(|d| d.d)
        .collect();
    assert_eq!(indexes.len(), 1);
    assert!(indexes[0].contains("USING hnsw") && indexes[0].contains("WHERE (lang = 'fr'::text)"), "{indexes:?}");
    // Searches filtered on French rows answer from it, as well as before.
    let search = ok(&[
        "--database-url",
        url,
        "search",
        "--table",
        "documents",
        "--vector",
        &query,
        "--where",
        "lang=fr",
        "--json",
    ]);
    let found = json_ids(&search);
    assert_eq!(found.len(), 10);
    assert!(found.iter().all(|id| id % 5 == 0));
    assert!(found.iter().filter(|id| expected.contains(id)).count() >= 9, "{found:?} against {expected:?}");
    // `doctor` shows it under the registered index: neither an unregistered index nor a vector column.
    // (Its verdict may ask for a newer pgvector than this machine's: only the report is read.)
    let doctor = String::from_utf8(run(&["--database-url", url, "doctor"]).stdout).unwrap();
    assert!(doctor.contains("hnsw documents_embedding_cosine_idx: valid"), "{doctor}");
    assert!(doctor.contains(&format!("partition index hnsw {name}: (lang = 'fr'::text), valid")), "{doctor}");
    assert!(!doctor.contains("unregistered"), "{doctor}");
    let report: Value = serde_json::from_slice(&run(&["--database-url", url, "doctor", "--json"]).stdout).unwrap();
    assert_eq!(report["indexes"][0]["postgresql"]["partition_indexes"][0]["name"], name.as_str(), "{report}");
    // One that is not valid (as a failed concurrent build leaves it) is an action.
    let invalidate = |valid: bool| {
        diesel::sql_query("UPDATE pg_index SET indisvalid = $1 WHERE indexrelid = to_regclass($2)")
            .bind::<diesel::sql_types::Bool, _>(valid)
            .bind::<diesel::sql_types::Text, _>(&name)
            .execute(&mut pg.conn())
            .unwrap()
    };
    invalidate(false);
    let doctor = String::from_utf8(run(&["--database-url", url, "doctor"]).stdout).unwrap();
    assert!(doctor.contains(&format!("{name}: (lang = 'fr'::text), NOT VALID")), "{doctor}");
    assert!(
        doctor.contains(&format!("ACTION:  the partition index {name} of documents.embedding is not valid")),
        "{doctor}"
    );
    invalidate(true);
    // Built again: nothing changes.
    assert_eq!(partition_index(&[]), out);
    assert!(partition_index(&["--drop"]).starts_with("dropped the partition index of documents.embedding"));
    assert!(partition_index(&["--drop"]).contains("has no partition index: nothing dropped"));

    // What cannot be built is named.
    let base = ["--database-url", url, "partition-index", "--table", "documents"];
    let (_, stderr) = fails(&[&base[..], &["--where", "year=2020"]].concat());
    assert!(stderr.contains("year is not a partition column of the vector index"), "{stderr}");
    let (_, stderr) = fails(&[&base[..], &["--where", "lang"]].concat());
    assert!(stderr.contains("--where \"lang\": expected COLUMN=VALUE"), "{stderr}");
    let lite = sqlite_file(work.path(), "app.db");
    let _ = app_database!(
        &mut diesel_vector::sqlite::establish(&lite).unwrap(),
        &migrations(&work.path().join("sqlite"), "sqlite", "codes"),
        &docs,
        &q
    );
    let (_, stderr) =
        fails(&["--database-url", &lite, "partition-index", "--table", "documents", "--where", "lang=fr"]);
    assert!(stderr.contains("partition indexes are PostgreSQL's"), "{stderr}");
}

#[derive(diesel::QueryableByName)]
struct Def {
    #[diesel(sql_type = diesel::sql_types::Text)]
    d: String,
}

#[test]
fn random_vectors_are_searched_exactly_and_doctor_says_why() {
    // A table of random vectors (32 independent Gaussian elements, L2), written by the application: the
    // codes' training finds they do not rank them, every search scans exactly, and doctor says so.
    let work = tempfile::tempdir().unwrap();
    let path = sqlite_file(work.path(), "noise.db");
    let spec = diesel_vector::index::IndexSpec::builder("samples", "value", 32)
        .metric(diesel_vector::index::Metric::L2)
        .build()
        .unwrap();
    let mut rng = crate::common::Rng::new(5);
    let mut gaussian = move || {
        let u = f64::from(rng.unit()).abs().max(1e-9);
        let v = f64::from(rng.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::PI * v).cos()) as f32
    };
    let mut vector = move || diesel_vector::Vector::new((0..32).map(|_| gaussian()).collect()).unwrap();
    vector_table(&path, &spec, std::iter::repeat_with(&mut vector).take(3000));
    let query = write_query(work.path(), &vector());
    let search = |extra: &[&str]| {
        json_ids(&ok(&[
            &["--database-url", &path, "search", "--table", "samples", "--vector", &query, "--json"][..],
            extra,
        ]
        .concat()))
    };
    assert_eq!(search(&[]), search(&["--exact"]));
    let doctor = run(&["--database-url", &path, "doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("(the codes do not rank these vectors: searches scan every row)"), "{text}");
    assert!(text.contains("info:    the quantized codes of the vector index __dv_samples_value do not rank"), "{text}");
    let json: Value = serde_json::from_slice(&run(&["--database-url", &path, "doctor", "--json"]).stdout).unwrap();
    assert_eq!(json["indexes"][0]["sqlite"]["codes_rank_neighbours"], false, "{json}");
}

#[test]
fn a_k_beyond_the_table_gives_every_row_and_a_reader_that_leaves_early_ends_the_command_cleanly() {
    // A table of the user's own (`notes`, 16 dims, cosine), 300 rows with vectors.
    let work = tempfile::tempdir().unwrap();
    let path = sqlite_file(work.path(), "notes.db");
    let spec = diesel_vector::index::IndexSpec::builder("notes", "embedding", 16).build().unwrap();
    let rows = (1..=300i64).map(|id| Vector::new((0..16).map(|d| ((id * 7 + d * 13) % 29) as f32 - 14.0).collect()));
    vector_table(&path, &spec, rows.map(Result::unwrap));
    let query = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]";
    let search = ["--database-url", path.as_str(), "search", "--table", "notes", "--vector", query];
    let every = json_ids(&ok(&[&search[..], &["-k", "300", "--json"]].concat()));
    assert_eq!(every.len(), 300);
    for k in ["1000000000", "18446744073709551615"] {
        for exact in [&[][..], &["--exact"][..]] {
            let got = json_ids(&ok(&[&search[..], &["-k", k, "--json"], exact].concat()));
            assert_eq!(got, every, "-k {k} {exact:?}");
        }
    }
    // `| head`: the reader closes its end before the command writes; the command stops quietly (no message:
    // the user asked for the first lines), with exit status 1 (the output was cut short), never a panic.
    let with_stdout_closed = |args: &[&str]| {
        let mut child = crate::bin()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for extra in [&["-k", "300"][..], &["-k", "300", "--json"][..]] {
        let (code, stderr) = with_stdout_closed(&[&search[..], extra].concat());
        assert_eq!(code, Some(1), "{extra:?}: {stderr}");
        assert_eq!(stderr, "", "{extra:?}");
    }
    let (code, stderr) = with_stdout_closed(&["--database-url", path.as_str(), "doctor"]);
    assert_eq!(code, Some(1), "doctor: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn two_indexes_of_one_column_are_searched_and_rebuilt_by_name() {
    use diesel_vector::index::{generate, IndexSpec, Metric};
    let work = tempfile::tempdir().unwrap();
    let url = sqlite_file(work.path(), "two.db");
    let mut conn = diesel_vector::sqlite::establish(&url).unwrap();
    // A partition column whose name holds `=`.
    conn.batch_execute(
        r#"CREATE TABLE items (id INTEGER PRIMARY KEY, "k=v" TEXT, emb BLOB); CREATE TABLE "My T" (id INTEGER PRIMARY KEY, emb BLOB)"#,
    )
    .unwrap();
    let l2 = IndexSpec::builder("items", "emb", 3).metric(Metric::L2).partition_by(["k=v"]).build().unwrap();
    let cosine = IndexSpec::builder("items", "emb", 3).partition_by(["k=v"]).name("items_cos").build().unwrap();
    for spec in [&l2, &cosine] {
        conn.batch_execute(&generate::render(spec, &generate::Options::default()).sqlite_up).unwrap();
    }
    // Nearest to [1, 0, 0] among the rows of `a`: by L2, row 2 (itself) then 4 (at 1.41, row 1 at 9); by
    // cosine, 1 and 2 tie (the same direction) and the id breaks it.
    conn.batch_execute(
        "INSERT INTO items VALUES
             (1, 'a', X'000020410000000000000000'), (2, 'a', X'0000803F0000000000000000'),
             (3, 'b', X'0000803F0000000000000000'), (4, 'a', X'000000000000803F00000000')",
    )
    .unwrap();
    drop(conn);
    let (_, stderr) = fails(&["--database-url", &url, "search", "--table", "items", "--vector", "[1,0,0]"]);
    assert!(stderr.contains("choose one with --index NAME"), "{stderr}");
    assert!(stderr.contains("__dv_items_emb, items_cos"), "{stderr}");
    let search = |index: &str| {
        json_ids(&ok(&[
            "--database-url",
            &url,
            "search",
            "--index",
            index,
            "--vector",
            "[1,0,0]",
            "--where",
            "k=v=a",
            "-k",
            "2",
            "--json",
        ]))
    };
    assert_eq!(search("__dv_items_emb"), [2, 4]);
    assert_eq!(search("items_cos"), [1, 2]);
    // NULL, which `--where` cannot say (it compares with the text "NULL").
    let mut conn = diesel_vector::sqlite::establish(&url).unwrap();
    conn.batch_execute(r#"INSERT INTO items VALUES (6, NULL, X'0000803F0000000000000000')"#).unwrap();
    drop(conn);
    let null = ["--database-url", &url, "search", "--index", "items_cos", "--vector", "[1,0,0]", "--json"];
    assert_eq!(json_ids(&ok(&[&null[..], &["--where-null", "k=v"]].concat())), [6]);
    assert!(json_ids(&ok(&[&null[..], &["--where", "k=v=NULL"]].concat())).is_empty());
    let (_, stderr) = fails(&["--database-url", &url, "search", "--index", "nope", "--vector", "[1,0,0]"]);
    assert!(stderr.contains("no vector index is registered for index nope;"), "{stderr}");
    let out = ok(&["--database-url", &url, "reindex", "--index", "items_cos"]);
    assert!(out.contains("items_cos") && !out.contains("__dv_items_emb"), "{out}");
    // A table without an index: the hint is a command the shell runs as shown.
    let (_, stderr) = fails(&["--database-url", &url, "search", "--table", "My T", "--vector", "[1,0,0]"]);
    assert!(stderr.contains("generate vector-index --table 'My T' --column"), "{stderr}");
    // The partition column renamed behind the indexes' back: doctor names it, and so does the next search.
    let mut conn = diesel_vector::sqlite::establish(&url).unwrap();
    conn.batch_execute(r#"ALTER TABLE items RENAME COLUMN "k=v" TO kv; INSERT INTO items VALUES (5, 'a', NULL)"#)
        .unwrap();
    drop(conn);
    let (stdout, _) = fails(&["--database-url", &url, "doctor"]);
    // Names that need quoting are shown quoted, so that `table.column` reads one way.
    assert!(stdout.contains(r#"items.emb: items_cos, vector(3) as BLOB, cosine, partitioned by "k=v""#), "{stdout}");
    assert!(stdout.contains(r#"the table lacks the index's column "k=v""#), "{stdout}");
    assert!(stdout.contains(r#"ACTION:  the vector index items_cos reads "k=v" of table items"#), "{stdout}");
    let (_, stderr) = fails(&["--database-url", &url, "search", "--index", "items_cos", "--vector", "[1,0,0]"]);
    assert!(stderr.contains(r#"reads "k=v" of table items, which it does not have"#), "{stderr}");
    let (_, stderr) = fails(&["--database-url", &url, "search", "--table", "My T", "--column", "e", "--vector", "[1]"]);
    assert!(stderr.contains(r#"no vector index is registered for "My T".e; registered: items.emb (index"#), "{stderr}");
}
