//! `diesel-vector generate vector-index` on an application of one's own: the stock diesel CLI runs,
//! reverts and redoes what it writes on both backends, and plain SQLite writers keep the index repairable.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_vector::index::{registry, Metric, SqliteIndex};

use crate::common::{diesel_cli, run_diesel};
use crate::{fails, ok, sqlite_file, FreshDb};

/// An application with its own `documents` table, as `diesel migration generate` would lay it out.
fn app(dir: &Path) {
    for (backend, id) in [("pg", "bigserial"), ("sqlite", "INTEGER")] {
        let folder = dir.join(format!("migrations_{backend}")).join("2026-01-01-000000_create_documents");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("up.sql"),
            format!("CREATE TABLE documents (id {id} PRIMARY KEY, lang TEXT NOT NULL, body TEXT NOT NULL);"),
        )
        .unwrap();
        std::fs::write(folder.join("down.sql"), "DROP TABLE documents;").unwrap();
    }
}

fn generate(dir: &Path, extra: &[&str]) -> String {
    let (pg, sqlite) = (dir.join("migrations_pg"), dir.join("migrations_sqlite"));
    let args = [
        &[
            "generate",
            "vector-index",
            "--table",
            "documents",
            "--column",
            "embedding",
            "--dims",
            "768",
            "--metric",
            "l2",
            "--partition-by",
            "lang",
            "--add-column",
            "--migrations-pg",
            pg.to_str().unwrap(),
            "--migrations-sqlite",
            sqlite.to_str().unwrap(),
            "--migration-version",
            "20260102000000",
        ][..],
        extra,
    ]
    .concat();
    ok(&args)
}

#[test]
fn it_writes_one_migration_per_backend_with_the_same_version_and_name() {
    let dir = tempfile::tempdir().unwrap();
    app(dir.path());
    let out = generate(dir.path(), &[]);
    let name = "2026-01-02-000000_create_vector_index_documents_embedding";
    for backend in ["pg", "sqlite"] {
        let folder = dir.path().join(format!("migrations_{backend}")).join(name);
        assert!(out.contains(folder.to_str().unwrap()), "{out}");
        assert!(folder.join("up.sql").is_file() && folder.join("down.sql").is_file());
    }
    // And how to apply them (`migration run` alone applies diesel-vector's own).
    let sqlite = dir.path().join("migrations_sqlite");
    assert!(out.contains(&format!("migration run --migration-dir {}", sqlite.display())), "{out}");
    // Again: the folders exist, nothing is overwritten.
    let args = ["generate", "vector-index", "--table", "documents", "--column", "embedding", "--dims", "768"];
    // From the application's folder, with the default folder names.
    let out = crate::bin()
        .current_dir(dir.path())
        .args([&args[..], &["--migration-version", "20260102000000"]].concat())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&format!("migrations_pg/{name} already exists")), "{stderr}");
}

#[test]
fn bad_declarations_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pg = dir.path().join("pg");
    let base = ["generate", "vector-index", "--table", "documents", "--column", "embedding", "--migrations-pg"];
    let cases: [(&[&str], &str); 6] = [
        (&["--dims", "0"], "0 dimensions for a `vector` column: expected 1 to 16000"),
        (&["--dims", "16001"], "16001 dimensions"),
        (&["--dims", "4001"], "pgvector's hnsw index takes at most 4000 dimensions"),
        (&["--dims", "8", "--metric", "l1", "--index", "ivfflat"], "pgvector has no ivfflat index for l1"),
        (
            &["--dims", "8", "--partition-by", "embedding"],
            "column `embedding` is both the vector column and a partition column",
        ),
        (&["--dims", "8", "--metric", "hamming"], "the hamming metric does not apply to `vector` columns"),
    ];
    for (args, message) in cases {
        let all = [&base[..], &[pg.to_str().unwrap()], args].concat();
        let (_, stderr) = fails(&all);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!pg.exists(), "{args:?}: nothing written");
    }
    let out = crate::run(&[&base[..], &[pg.to_str().unwrap(), "--dims", "8", "--metric", "dot"]].concat());
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'dot'"));
}

#[test]
fn the_diesel_cli_runs_reverts_and_redoes_it_on_both_backends() {
    let Some(cli) = diesel_cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    app(dir.path());
    generate(dir.path(), &["--sqlite-index", "vec0"]);
    let db = FreshDb::create();
    let sqlite = sqlite_file(dir.path(), "app.db");
    for (url, folder) in [(db.url.as_str(), "migrations_pg"), (sqlite.as_str(), "migrations_sqlite")] {
        let folder = dir.path().join(folder);
        let run = |args: &[&str]| {
            run_diesel(&cli, &[args, &["--migration-dir", folder.to_str().unwrap(), "--database-url", url]].concat())
        };
        run(&["migration", "run"]);
        run(&["migration", "redo"]);
        let specs = registry_of(url);
        assert_eq!(specs.len(), 1, "{url}");
        assert_eq!((specs[0].table(), specs[0].dims(), specs[0].metric()), ("documents", 768, Metric::L2));
        assert_eq!(specs[0].sqlite_index(), SqliteIndex::VEC0);
        run(&["migration", "revert"]);
        assert!(registry_of(url).is_empty(), "{url}");
        run(&["migration", "run"]);
        assert_eq!(registry_of(url).len(), 1);
    }
}

fn registry_of(url: &str) -> Vec<diesel_vector::index::IndexSpec> {
    match diesel_vector::database::DatabaseConnection::establish(url).unwrap() {
        diesel_vector::database::DatabaseConnection::Pg(mut c) => registry::load(&mut c).unwrap(),
        diesel_vector::database::DatabaseConnection::Sqlite(mut c) => registry::load(&mut c).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn plain_sqlite_writers_keep_the_generated_index_repairable_and_invalid_blobs_are_refused() {
    let Some(cli) = diesel_cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    app(dir.path());
    generate(dir.path(), &["--sqlite-index", "vec0"]);
    let path = sqlite_file(dir.path(), "app.db");
    let folder = dir.path().join("migrations_sqlite");
    run_diesel(&cli, &["migration", "run", "--migration-dir", folder.to_str().unwrap(), "--database-url", &path]);

    // The diesel CLI's connection has no sqlite-vec, like the sqlite3 shell's: it writes through the triggers.
    let mut plain = SqliteConnection::establish(&path).unwrap();
    let blob = |x: f32| format!("x'{}'", (0..768).map(|i| hex(if i == 0 { x } else { 0.5 })).collect::<String>());
    plain
        .batch_execute(&format!(
            "INSERT INTO documents (id, lang, body, embedding) VALUES (1, 'en', 'a', {}), (2, 'fr', 'b', {})",
            blob(1.0),
            blob(-1.0)
        ))
        .unwrap();
    for bad in ["x'00'", "'[1,2]'", "3"] {
        let err = plain
            .batch_execute(&format!("INSERT INTO documents (id, lang, body, embedding) VALUES (3, 'en', 'c', {bad})"))
            .unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{bad}: {err}");
    }
    let mut conn = diesel_vector::sqlite::establish(&path).unwrap();
    let spec = registry::load(&mut conn).unwrap().remove(0);
    let status = diesel_vector::sqlite::status(&mut conn, &spec).unwrap();
    assert_eq!((status.needs_rebuild, status.pending_changes), (true, 2), "{status:?}");
    let report = diesel_vector::sqlite::sync(&mut conn, &spec).unwrap();
    assert_eq!(report.applied, 2);
    assert!(diesel_vector::sqlite::status(&mut conn, &spec).unwrap().is_up_to_date());
}

fn hex(x: f32) -> String {
    x.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_binary_quantized_index_is_generated_registered_checked_and_rebuilt() {
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};

    let dir = tempfile::tempdir().unwrap();
    app(dir.path());
    generate(dir.path(), &["--index", "binary-quantized"]);
    let folder = std::fs::read_dir(dir.path().join("migrations_pg"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("vector_index"))
        .unwrap();
    let up = std::fs::read_to_string(folder.join("up.sql")).unwrap();
    assert!(up.contains(r#"USING hnsw ((binary_quantize("embedding")::bit(768)) bit_hamming_ops)"#), "{up}");
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.run_pending_migrations(FileBasedMigrations::from_path(dir.path().join("migrations_pg")).unwrap()).unwrap();
    let specs = diesel_vector::index::registry::load(&mut conn).unwrap();
    assert_eq!(specs[0].pg_index(), diesel_vector::index::PgIndex::BinaryQuantized);
    // pgvector 0.8.0 (this machine's) with an HNSW index is itself a finding: doctor may exit 1.
    let doctor = crate::run(&["--database-url", &db.url, "doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    for finding in report["findings"].as_array().unwrap() {
        let message = finding["message"].as_str().unwrap();
        assert!(message.starts_with("pgvector 0.8.0 can corrupt HNSW"), "{message}");
    }
    let index = &report["indexes"][0];
    assert_eq!(index["postgresql"]["operator_class_matches"], true, "{index}");
    let reindexed = crate::ok(&["--database-url", &db.url, "reindex"]);
    assert!(reindexed.contains("documents_embedding_bq_idx"), "{reindexed}");
}
