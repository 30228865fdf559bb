//! `migration`, `doctor`, `reindex` and `search` on both backends, and the URL rules.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::Value;

use crate::{fails, ok, run, seed, seed_smooth, smooth, sqlite_file, FreshDb};

/// Both backends, fresh: (name, URL, what keeps it alive).
fn databases() -> Vec<(&'static str, String, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "app.db");
    let pg = FreshDb::create();
    vec![("postgresql", pg.url.clone(), Box::new(pg)), ("sqlite", path, Box::new(dir))]
}

#[test]
fn migration_run_status_revert_redo_on_both_backends() {
    for (backend, url, _keep) in databases() {
        let url = url.as_str();
        if backend == "sqlite" {
            let (_, stderr) = fails(&["--database-url", url, "migration", "status"]);
            assert!(stderr.contains("error: no database at "), "listing never creates a file: {stderr}");
            std::fs::File::create(url).unwrap();
        }
        let status = ok(&["--database-url", url, "migration", "status"]);
        assert!(status.contains("[ ] 2025-01-01-000001_create_fragments"), "{backend}: {status}");
        // SQLite's set has one more: its index stopped queueing appended rows.
        let last = (backend == "sqlite").then_some("2025-01-01-000004_queue_only_changed_fragment_embeddings");
        let out = ok(&["--database-url", url, "migration", "run"]);
        let mut expected = "Ran migration 2025-01-01-000001_create_fragments\n\
                            Ran migration 2025-01-01-000002_create_fragment_embeddings\n\
                            Ran migration 2025-01-01-000003_register_fragment_embeddings_index\n"
            .to_owned();
        expected.extend(last.map(|l| format!("Ran migration {l}\n")));
        assert_eq!(out, expected, "{backend}");
        assert_eq!(ok(&["--database-url", url, "migrate", "run"]), "No pending migrations\n", "{backend}: the alias");
        let status = ok(&["--database-url", url, "migration", "list"]);
        let mut expected = "Migrations:\n  [X] 2025-01-01-000001_create_fragments\n  [X] 2025-01-01-000002_create_fragment_embeddings\n  \
                            [X] 2025-01-01-000003_register_fragment_embeddings_index\n"
            .to_owned();
        expected.extend(last.map(|l| format!("  [X] {l}\n")));
        assert_eq!(status, expected, "{backend}");
        let out = ok(&["--database-url", url, "migration", "redo"]);
        assert!(
            out.contains(last.unwrap_or("2025-01-01-000003_register_fragment_embeddings_index")),
            "{backend}: {out}"
        );
        if let Some(last) = last {
            let out = ok(&["--database-url", url, "migration", "revert"]);
            assert_eq!(out, format!("Rolled back migration {last}\n"), "{backend}");
        }
        let out = ok(&["--database-url", url, "migration", "revert"]);
        assert_eq!(out, "Rolled back migration 2025-01-01-000003_register_fragment_embeddings_index\n", "{backend}");
        let out = ok(&["--database-url", url, "migration", "revert"]);
        assert_eq!(out, "Rolled back migration 2025-01-01-000002_create_fragment_embeddings\n", "{backend}");
        let status = ok(&["--database-url", url, "migration", "status"]);
        assert!(
            status.contains("[X] 2025-01-01-000001") && status.contains("[ ] 2025-01-01-000002"),
            "{backend}: {status}"
        );
    }
}

#[test]
fn database_url_falls_back_to_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "env.db");
    let out = crate::bin().args(["migration", "run"]).env("DATABASE_URL", &path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, stderr) = fails(&["migration", "run"]);
    assert_eq!(stderr, "error: no database: pass --database-url or set DATABASE_URL\n");
}

#[test]
fn sqlite_urls_in_every_form_name_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "forms.db");
    ok(&["--database-url", &format!("sqlite://{path}"), "migration", "run"]);
    for url in [path.clone(), format!("file:{path}"), format!("sqlite://{path}")] {
        let status = ok(&["--database-url", &url, "migration", "status"]);
        assert!(status.contains("[X] 2025-01-01-000002"), "{url}: {status}");
    }
    assert!(ok(&["--database-url", ":memory:", "migration", "run"]).contains("Ran migration"));
}

#[test]
fn unsupported_drivers_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_file(dir.path(), "never.db");
    let cases: [&[&str]; 3] = [
        &["--database-url", "mysql://localhost/app", "doctor"],
        &["--database-url", "mysql://localhost/app", "migration", "run"],
        &["copy", "--from", "mysql://localhost/app", "--to", &target],
    ];
    for args in cases {
        let (_, stderr) = fails(args);
        assert!(stderr.contains("Unsupported driver: mysql"), "{args:?}: {stderr}");
    }
    assert!(!std::path::Path::new(&target).exists(), "nothing is created when the source is refused");
}

#[test]
fn doctor_reads_only_and_gives_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let missing = sqlite_file(dir.path(), "missing.db");
    let (_, stderr) = fails(&["--database-url", &missing, "doctor"]);
    assert!(stderr.contains("error: no database at "), "{stderr}");
    assert!(!std::path::Path::new(&missing).exists(), "doctor never creates a database");

    for (backend, url, _keep) in databases() {
        let url = url.as_str();
        if backend == "sqlite" {
            std::fs::File::create(url).unwrap();
        }
        // An empty database is not told to create diesel-vector's fragments schema.
        let stdout = ok(&["--database-url", url, "doctor"]);
        assert!(stdout.contains("verdict      healthy\n"), "{backend}: {stdout}");
        assert!(stdout.contains("no vector index is registered"), "{backend}: {stdout}");
        assert!(!stdout.contains("migration run"), "{backend}: {stdout}");

        seed(url, 50, 2);
        // Loaded without the index: PostgreSQL's ivfflat was built on the empty table, SQLite's codes were
        // never built.
        let (stdout, _) = fails(&["--database-url", url, "doctor"]);
        let finding = if backend == "postgresql" {
            "it was built with little data"
        } else {
            "the quantized codes of the vector index fragment_embeddings_idx are marked for rebuild"
        };
        assert!(stdout.contains(finding), "{backend}: {stdout}");
        ok(&["--database-url", url, "reindex"]);
        let report = ok(&["--database-url", url, "doctor"]);
        let applied = if backend == "sqlite" { 4 } else { 3 };
        assert!(
            report.contains(&format!("fragments    diesel-vector's schema: {applied} applied, 0 pending")),
            "{backend}: {report}"
        );
        assert!(report.contains("foreign key  declared, enforced"), "{backend}: {report}");
        assert!(
            report.contains("indexes      fragment_embeddings.embedding: fragment_embeddings_idx, "),
            "{backend}: {report}"
        );
        let json: Value = serde_json::from_str(&ok(&["--database-url", url, "doctor", "--json"])).unwrap();
        assert_eq!(json["backend"], backend);
        assert_eq!(json["needs_action"], false, "{json}");
        // 50 fragments, one deleted (id 97 does not exist here: none), 2 embeddings each, every 10th NULL.
        let rows = &json["fragments"]["rows"];
        assert_eq!(rows["fragments"], 50, "{json}");
        assert_eq!(rows["embeddings"], 100);
        assert_eq!(rows["with_vector"], 90);
        assert_eq!(rows["orphans"], 0);
        let index = &json["indexes"][0];
        assert_eq!(index["name"], "fragment_embeddings_idx", "{json}");
        assert_eq!(index["rows"], 90, "{json}");
        if backend == "postgresql" {
            assert!(report.contains("pgvector     0.8"), "{report}");
            assert_eq!(json["extension"]["schema"], "public");
            assert_eq!(index["postgresql"]["method"], "ivfflat");
            assert_eq!(index["postgresql"]["lists"], 1);
        } else {
            assert!(report.contains("sqlite-vec   v0.1.9"), "{report}");
            assert!(report.contains("SQLite 3."), "{report}");
            assert_eq!(index["sqlite"]["structures"], "codes");
            assert_eq!(index["sqlite"]["keeps_codes"], true);
            assert_eq!(index["sqlite"]["codes_rows"], 90);
            assert_eq!(index["sqlite"]["codes_current"], true);
        }
    }
}

#[test]
fn doctor_flags_an_ivfflat_index_built_with_little_data_and_reindex_repairs_it() {
    let db = FreshDb::create();
    seed(&db.url, 600, 2);
    let (stdout, _) = fails(&["--database-url", &db.url, "doctor"]);
    assert!(stdout.contains("(recommended 1)"), "{stdout}");
    assert!(
        stdout.contains("ACTION:  the ivfflat index fragment_embeddings_cosine_idx has 100 lists for "),
        "{stdout}"
    );
    assert!(stdout.contains("run `diesel-vector reindex --table fragment_embeddings`"), "{stdout}");

    let out = ok(&["--database-url", &db.url, "reindex"]);
    assert!(
        out.starts_with(
            "rebuilt fragment_embeddings_idx (fragment_embeddings.embedding): ivfflat fragment_embeddings_cosine_idx, \
             1 lists for "
        ),
        "{out}"
    );
    let json: Value = serde_json::from_str(&ok(&["--database-url", &db.url, "doctor", "--json"])).unwrap();
    assert_eq!(json["indexes"][0]["postgresql"]["lists"], 1, "{json}");
    assert_eq!(json["verdict"], "healthy");

    let out = ok(&["--database-url", &db.url, "reindex", "--hnsw", "--table", "fragment_embeddings"]);
    assert!(
        out.starts_with(
            "rebuilt fragment_embeddings_idx (fragment_embeddings.embedding): hnsw fragment_embeddings_cosine_idx for "
        ),
        "{out}"
    );
    // pgvector before 0.8.3 can corrupt HNSW indexes: doctor says to upgrade (Debian trixie's 0.8.0 here).
    let out = run(&["--database-url", &db.url, "doctor", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["indexes"][0]["postgresql"]["method"], "hnsw", "{json}");
    assert_eq!(json["indexes"][0]["postgresql"]["registered_method"], "ivfflat", "{json}");
    let installed = json["extension"]["installed"].as_str().unwrap().to_owned();
    let old = installed.split('.').map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>() < vec![0, 8, 3];
    let upgrade = format!("pgvector {installed} can corrupt HNSW indexes");
    let findings = json["findings"].as_array().unwrap();
    let flagged =
        findings.iter().any(|f| f["level"] == "action" && f["message"].as_str().unwrap().starts_with(&upgrade));
    assert_eq!(flagged, old, "{json}");
    // Another kind than registered is worth knowing, not a problem: the only action is the upgrade.
    assert_eq!(json["verdict"], if old { "needs action" } else { "healthy" }, "{json}");
    assert_eq!(out.status.success(), !old);
    let mut conn = db.conn();
    #[derive(QueryableByName)]
    struct Def {
        #[diesel(sql_type = diesel::sql_types::Text)]
        def: String,
    }
    let def: Def = diesel::sql_query("SELECT pg_get_indexdef('fragment_embeddings_cosine_idx'::regclass) AS def")
        .get_result(&mut conn)
        .unwrap();
    assert!(def.def.contains("USING hnsw (embedding vector_cosine_ops)"), "{}", def.def);
    let (_, stderr) = fails(&["--database-url", &db.url, "reindex", "--table", "documents"]);
    assert!(
        stderr.contains("no vector index is registered for table documents; registered: fragment_embeddings.embedding"),
        "{stderr}"
    );
}

#[test]
fn doctor_flags_a_stale_index_and_reindex_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "stale.db");
    seed(&path, 40, 1);
    // Seeded rows are queued and the codes were never built: the next search would build them.
    let (stdout, _) = fails(&["--database-url", &path, "doctor"]);
    assert!(
        stdout.contains(
            "ACTION:  the quantized codes of the vector index fragment_embeddings_idx are marked for rebuild for 36 \
             row(s) of fragment_embeddings.embedding"
        ),
        "{stdout}"
    );
    assert_eq!(
        ok(&["--database-url", &path, "reindex"]),
        "rebuilt fragment_embeddings_idx (fragment_embeddings.embedding): codes, 36 rows\n"
    );
    let report = ok(&["--database-url", &path, "doctor"]);
    assert!(report.contains("up to date, 36 indexed"), "{report}");
    assert!(report.contains("verdict      healthy\n"), "{report}");

    // A write without the index applied is a warning, not an action: the next search applies it.
    let mut conn = diesel_vector::sqlite::establish(&path).unwrap();
    conn.batch_execute("DELETE FROM fragments WHERE id = 1").unwrap();
    let report = ok(&["--database-url", &path, "doctor"]);
    assert!(
        report.contains(
            "warning: 1 change(s) to fragment_embeddings.embedding are not in the vector index \
             fragment_embeddings_idx yet"
        ),
        "{report}"
    );
    assert!(report.contains("verdict      healthy, with warnings"), "{report}");

    let (_, stderr) = fails(&["--database-url", &path, "reindex", "--hnsw"]);
    assert!(stderr.contains("HNSW is a pgvector index"), "{stderr}");
}

#[test]
fn doctor_flags_orphans_written_without_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "orphans.db");
    seed(&path, 5, 1);
    let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
    conn.batch_execute("PRAGMA foreign_keys = OFF; DELETE FROM fragments WHERE id = 2;").unwrap();
    let (stdout, _) = fails(&["--database-url", &path, "doctor"]);
    assert!(stdout.contains("1 embedding(s) refer to fragments that do not exist"), "{stdout}");
}

#[test]
fn search_prints_the_nearest_fragments_on_both_backends() {
    for (backend, url, _keep) in databases() {
        let url = url.as_str();
        seed_smooth(url, 30, 2);
        // Fragment 5's first embedding is the 8th (seeding numbers embeddings in order from 0).
        let query = smooth(8).to_string();
        let json: Value = serde_json::from_str(&ok(&[
            "--database-url",
            url,
            "search",
            "--provider",
            "provider",
            "--model",
            "model-0",
            "--vector",
            &query,
            "-k",
            "3",
            "--json",
        ]))
        .unwrap();
        let hits = json.as_array().unwrap();
        assert_eq!(hits.len(), 3, "{backend}: {json}");
        assert_eq!(hits[0]["fragment_id"], 5, "{backend}: {json}");
        assert_eq!(hits[0]["rank"], 1);
        assert!(hits[0]["distance"].as_f64().unwrap().abs() < 1e-6, "{json}");
        assert!(hits[0]["content"].as_str().unwrap().starts_with("fragment 4: \"quoted\""), "{json}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.txt");
        std::fs::write(&file, &query).unwrap();
        let text = ok(&[
            "--database-url",
            url,
            "search",
            "--provider",
            "provider",
            "--model",
            "model-0",
            "--vector",
            &format!("@{}", file.display()),
            "-k",
            "2",
            "--metric",
            "l2",
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{backend}: {text}");
        assert!(lines[0].starts_with("rank"), "{text}");
        assert!(lines[1].contains("fragment 4: \"quoted\""), "{backend}: {text}");

        let out = run(&["--database-url", url, "search", "--provider", "p", "--model", "m", "--vector", "[1,2]"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("1536 are expected"), "{backend}");
    }
}
