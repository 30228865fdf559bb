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
fn migrations_generated_in_the_same_second_get_versions_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let generate = |column: &str, extra: &[&str]| {
        let args = ["generate", "vector-index", "--table", "documents", "--column", column, "--dims", "8"];
        crate::bin().current_dir(dir.path()).args([&args[..], extra].concat()).output().unwrap()
    };
    for column in ["title_embedding", "body_embedding"] {
        let out = generate(column, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for folder in ["migrations_pg", "migrations_sqlite"] {
        let mut versions: Vec<String> = std::fs::read_dir(dir.path().join(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .map(|name| name.split('_').next().unwrap().to_owned())
            .collect();
        versions.sort();
        versions.dedup();
        assert_eq!(versions.len(), 2, "{folder}: {versions:?}");
    }
    // A version another migration already has is refused, naming it, and nothing is written.
    std::fs::create_dir_all(dir.path().join("migrations_sqlite/2030-01-01-000000_by_hand")).unwrap();
    let out = generate("summary_embedding", &["--migration-version", "20300101000000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is already used by") && stderr.contains("2030-01-01-000000_by_hand"), "{stderr}");
    // The same index generated again would fail when it runs (its name is taken): refused now, saying how
    // to name another.
    let out = generate("title_embedding", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already creates a vector index named __dv_documents_title_embedding"), "{stderr}");
    assert!(stderr.contains("(--name NAME)"), "{stderr}");
    assert!(generate("title_embedding", &["--name", "documents_title_l2"]).status.success());
    assert!(!dir
        .path()
        .join("migrations_pg/2030-01-01-000000_create_vector_index_documents_summary_embedding")
        .exists());
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

#[derive(diesel::QueryableByName)]
struct IndexDef {
    #[diesel(sql_type = diesel::sql_types::Text)]
    indexdef: String,
}

/// The definitions of the indexes named `name`.
fn index_defs(conn: &mut PgConnection, name: &str) -> Vec<String> {
    diesel::sql_query("SELECT indexdef FROM pg_indexes WHERE indexname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .load::<IndexDef>(conn)
        .unwrap()
        .into_iter()
        .map(|d| d.indexdef)
        .collect()
}

/// The application's `documents` with an integer `year` too, indexed by `embedding` (768, L2, filtered by
/// `lang` and `year`), and a partition index's migration generated for `args` (version `version`).
fn app_with_partition_index(dir: &Path, version: &str, args: &[&str]) -> String {
    app(dir);
    for (backend, ty) in [("pg", "integer"), ("sqlite", "INTEGER")] {
        let folder = dir.join(format!("migrations_{backend}")).join("2026-01-01-000001_add_year");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("up.sql"), format!("ALTER TABLE documents ADD COLUMN year {ty};")).unwrap();
        std::fs::write(folder.join("down.sql"), "ALTER TABLE documents DROP COLUMN year;").unwrap();
    }
    generate(dir, &["--partition-by", "year"]);
    partition_index_migration(dir, version, args)
}

fn partition_index_migration(dir: &Path, version: &str, args: &[&str]) -> String {
    let (pg, sqlite) = (dir.join("migrations_pg"), dir.join("migrations_sqlite"));
    let declaration = [
        "--table",
        "documents",
        "--column",
        "embedding",
        "--dims",
        "768",
        "--partition-by",
        "lang",
        "--partition-by",
        "year",
    ];
    let output = [
        "--migrations-pg",
        pg.to_str().unwrap(),
        "--migrations-sqlite",
        sqlite.to_str().unwrap(),
        "--migration-version",
        version,
    ];
    ok(&[&["generate", "partition-index"][..], &declaration, args, &output].concat())
}

#[test]
fn a_partition_index_migration_builds_what_the_command_builds_and_both_backends_run_and_revert_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = app_with_partition_index(dir.path(), "20260103000000", &["--metric", "l2", "--where", "lang=fr"]);
    assert!(out.contains("2026-01-03-000000_create_partition_index_documents_embedding_lang_fr"), "{out}");
    partition_index_migration(dir.path(), "20260104000000", &["--metric", "l2", "--where", "year=2024"]);
    let db = FreshDb::create();
    let sqlite = sqlite_file(dir.path(), "app.db");
    for (url, folder) in [(db.url.as_str(), "migrations_pg"), (sqlite.as_str(), "migrations_sqlite")] {
        let folder = dir.path().join(folder);
        let migration = |command: &str| {
            ok(&["--database-url", url, "migration", command, "--migration-dir", folder.to_str().unwrap()])
        };
        let run = migration("run");
        assert!(run.contains("create_partition_index_documents_embedding_year_2024"), "{url}: {run}");
        migration("redo");
    }

    // The migrations built the indexes `create_partition_index` builds, under the names it finds them by.
    let mut conn = db.conn();
    let spec = registry::load(&mut conn).unwrap().remove(0);
    for (column, value, condition) in
        [("lang", "fr", "WHERE (lang = 'fr'::text)"), ("year", "2024", "WHERE (year = '2024'::bigint)")]
    {
        let name = diesel_vector::pg::partition_index_name(&spec, column, &value.into()).unwrap();
        let migrated = index_defs(&mut conn, &name);
        assert_eq!(migrated.len(), 1, "{name}");
        assert!(
            migrated[0].contains("USING hnsw (embedding vector_l2_ops)") && migrated[0].ends_with(condition),
            "{migrated:?}"
        );
        assert!(diesel_vector::pg::drop_partition_index(&mut conn, &spec, column, value).unwrap());
        assert_eq!(diesel_vector::pg::create_partition_index(&mut conn, &spec, column, value).unwrap(), name);
        assert_eq!(index_defs(&mut conn, &name), migrated);
    }
    // doctor lists them under the index, valid (pgvector 0.8.0 with an HNSW index is itself a finding, so it may
    // exit 1).
    let doctor = crate::run(&["--database-url", &db.url, "doctor"]);
    let doctor = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.matches("partition index hnsw ").count(), 2, "{doctor}");
    assert_eq!(doctor.matches("), valid").count(), 2, "{doctor}");

    // Reverted, they are gone; SQLite's did nothing either way.
    let pg_folder = dir.path().join("migrations_pg");
    for _ in 0..2 {
        ok(&["--database-url", &db.url, "migration", "revert", "--migration-dir", pg_folder.to_str().unwrap()]);
    }
    for (column, value) in [("lang", "fr"), ("year", "2024")] {
        let name = diesel_vector::pg::partition_index_name(&spec, column, &value.into()).unwrap();
        assert!(index_defs(&mut conn, &name).is_empty(), "{name}");
    }
    assert_eq!(registry::load(&mut conn).unwrap(), vec![spec.clone()], "the vector index stays");

    // Partition indexes built at run time go with the vector index's own revert; the application's other
    // indexes stay, even one whose name starts like theirs.
    let built: Vec<String> = [("lang", "de"), ("year", "2023")]
        .iter()
        .map(|&(column, value)| diesel_vector::pg::create_partition_index(&mut conn, &spec, column, value).unwrap())
        .collect();
    let own = format!("{}_pinned", spec.pg_index_name().unwrap());
    conn.batch_execute(&format!(
        "CREATE INDEX documents_lang_idx ON documents (lang); CREATE INDEX \"{own}\" ON documents (year)"
    ))
    .unwrap();
    ok(&["--database-url", &db.url, "migration", "revert", "--migration-dir", pg_folder.to_str().unwrap()]);
    assert!(registry::load(&mut conn).unwrap().is_empty());
    for name in &built {
        assert!(index_defs(&mut conn, name).is_empty(), "{name} outlived its vector index");
    }
    assert_eq!(index_defs(&mut conn, "documents_lang_idx").len(), 1);
    assert_eq!(index_defs(&mut conn, &own).len(), 1);
    let doctor = String::from_utf8_lossy(&crate::run(&["--database-url", &db.url, "doctor"]).stdout).into_owned();
    assert!(!doctor.contains("unregistered"), "{doctor}");
}

#[test]
fn a_partition_index_migration_that_does_not_fit_the_database_stops_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Generated from a declaration that differs from the registered index's (cosine, the default).
    app_with_partition_index(dir.path(), "20260103000000", &["--where", "lang=fr"]);
    let db = FreshDb::create();
    let folder = dir.path().join("migrations_pg");
    let run = || fails(&["--database-url", &db.url, "migration", "run", "--migration-dir", folder.to_str().unwrap()]).1;
    let err = run();
    assert!(
        err.contains("is not registered as this migration expects: apply the vector index's migration first"),
        "{err}"
    );
    let pending = ok(&["--database-url", &db.url, "migration", "list", "--migration-dir", folder.to_str().unwrap()]);
    assert!(pending.contains("create_partition_index_documents_embedding_lang_fr"), "{pending}");

    // A value the column's type cannot hold.
    let dir = tempfile::tempdir().unwrap();
    app_with_partition_index(dir.path(), "20260103000000", &["--metric", "l2", "--where", "year=recent"]);
    let db = FreshDb::create();
    let folder = dir.path().join("migrations_pg");
    let err = fails(&["--database-url", &db.url, "migration", "run", "--migration-dir", folder.to_str().unwrap()]).1;
    assert!(err.contains("\"recent\" does not fit documents.year; give an integer"), "{err}");
    let mut conn = db.conn();
    let spec = registry::load(&mut conn).unwrap().remove(0);
    let name = diesel_vector::pg::partition_index_name(&spec, "year", &"recent".into()).unwrap();
    assert!(index_defs(&mut conn, &name).is_empty());

    // What has no partition index is refused when generating, and nothing is written.
    let refused = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let (pg, sqlite) = (dir.path().join("migrations_pg"), dir.path().join("migrations_sqlite"));
        let base = ["generate", "partition-index", "--table", "documents", "--column", "embedding", "--dims", "8"];
        let out = [pg.to_str().unwrap(), sqlite.to_str().unwrap()];
        let (_, stderr) =
            fails(&[&base[..], args, &["--migrations-pg", out[0], "--migrations-sqlite", out[1]]].concat());
        assert!(!pg.exists() && !sqlite.exists(), "{args:?}: nothing written");
        stderr
    };
    assert!(refused(&["--partition-by", "lang", "--where", "body=x"]).contains("body is not a partition column"));
    assert!(refused(&["--partition-by", "lang", "--index", "ivfflat", "--where", "lang=x"])
        .contains("partition indexes are HNSW indexes"));
    assert!(refused(&["--partition-by", "lang", "--where", "lang"]).contains("expected COLUMN=VALUE"));
}
