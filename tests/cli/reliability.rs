//! Defects an adversarial run of the binary found, each reproduced on real databases: an export over its
//! own database, empty URLs, partial exports, control characters from the database on the terminal,
//! unbounded query files, WAL databases in read-only directories, path forms, mistyped paths.

use std::path::Path;
use std::process::Command;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::Value;

use crate::jsonl::rows;
use crate::{bin, count, dump, fails, ok, run, seed, seed_smooth, smooth, sqlite_file, FreshDb};

/// Runs the binary in `dir` (for relative paths), returning (success, stdout, stderr).
fn run_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = bin().current_dir(dir).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The files in `dir`, SQLite's `-wal` and `-shm` files left out.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    names.sort();
    names
}

// Defect 1: `export -o` onto its own database truncated it to 0 bytes.
#[test]
fn export_refuses_to_write_over_the_database_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_file(dir.path(), "self.db");
    seed(&db, 20, 1);
    let before = dump(&db);
    let size = std::fs::metadata(&db).unwrap().len();
    std::fs::hard_link(&db, dir.path().join("hard.db")).unwrap();
    std::os::unix::fs::symlink(&db, dir.path().join("link.db")).unwrap();

    let cases: Vec<(String, String)> = vec![
        (db.clone(), db.clone()),
        (format!("sqlite://{db}"), format!("{}/./self.db", dir.path().display())),
        (db.clone(), sqlite_file(dir.path(), "hard.db")),
        (db.clone(), sqlite_file(dir.path(), "link.db")),
        (format!("file:{db}?mode=ro"), db.clone()),
        (db.clone(), format!("{db}-wal")),
    ];
    for (url, output) in &cases {
        if !Path::new(output).exists() {
            std::fs::write(output, b"").unwrap(); // a WAL file, as an open writer would leave
        }
        let (_, stderr) = fails(&["--database-url", url, "export", "-o", output]);
        assert!(stderr.contains("refusing to export into"), "{url} -> {output}: {stderr}");
        assert!(stderr.contains("it is the database being exported"), "{stderr}");
    }
    let _ = std::fs::remove_file(format!("{db}-wal"));
    assert_eq!(std::fs::metadata(&db).unwrap().len(), size, "the database is untouched");
    assert_eq!(dump(&db), before);

    // Another file in the same folder is fine, and is complete.
    let out = sqlite_file(dir.path(), "out.jsonl");
    ok(&["--database-url", &db, "export", "-o", &out]);
    assert_eq!(rows(&std::fs::read_to_string(&out).unwrap()).len(), before.0.len() + before.1.len());
}

// Defect 2: an empty URL was a silent temporary database ("verified", exit 0, data gone).
#[test]
fn an_empty_database_url_is_an_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "a.db");
    seed(&source, 5, 1);
    let listing = files_in(dir.path());
    let q = smooth(1).to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["copy", "--from", &source, "--to", ""],
        vec!["copy", "--from", &source, "--to", "sqlite://"],
        vec!["copy", "--from", "", "--to", &source],
        vec!["copy", "--from", &source, "--to", "file:"],
        vec!["--database-url", "", "doctor"],
        vec!["--database-url", "sqlite://", "migration", "run"],
        vec!["--database-url", " ", "export"],
        vec!["--database-url", "file:?mode=rwc", "import"],
        vec!["--database-url", "", "reindex"],
        vec!["--database-url", "", "search", "--provider", "p", "--model", "m", "--vector", &q],
        vec!["--database-url", "", "migration", "status"],
    ];
    for args in cases {
        let (ok, _, stderr) = run_in(dir.path(), &args);
        assert!(!ok, "{args:?} must fail");
        assert!(stderr.contains("the database URL is empty"), "{args:?}: {stderr}");
    }
    let out = bin().current_dir(dir.path()).args(["migration", "run"]).env("DATABASE_URL", "").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the database URL is empty"));
    assert_eq!(files_in(dir.path()), listing, "nothing was created");
    assert_eq!(count(&source, "fragments"), 5);

    // The library refuses too.
    for url in ["", "sqlite://", "file:"] {
        let err = diesel_vector::database::DatabaseConnection::establish(url).err().unwrap();
        assert!(matches!(err, diesel_vector::migrations::MigrationError::EmptyUrl), "{url:?}: {err}");
    }
    let err = diesel_vector::sqlite::establish("").err().unwrap();
    assert!(err.to_string().contains("the SQLite path is empty"), "{err}");
}

// Defect 10: a failed export left a well-formed partial file that imported with exit 0.
#[test]
fn a_failed_export_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_file(dir.path(), "app.db");
    seed(&db, 60, 1);
    // An invalid row late in the id order: the first batches are written before the export stops.
    let mut conn = diesel::SqliteConnection::establish(&db).unwrap();
    conn.batch_execute(
        "PRAGMA ignore_check_constraints = ON; UPDATE fragment_embeddings SET embedding = x'00' WHERE id = 55",
    )
    .unwrap();

    let out = sqlite_file(dir.path(), "out.jsonl");
    let (_, stderr) = fails(&["--database-url", &db, "export", "-o", &out, "--batch-size", "10"]);
    assert!(stderr.contains("fragment_embeddings id 55"), "{stderr}");
    assert!(stderr.contains(&format!("no file was written at {out}")), "{stderr}");
    assert!(!Path::new(&out).exists());

    // An existing output stays as it was.
    std::fs::write(&out, "previous export\n").unwrap();
    let (_, stderr) = fails(&["--database-url", &db, "export", "-o", &out, "--batch-size", "10"]);
    assert!(stderr.contains(&format!("{out} was left as it was")), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous export\n");
    assert!(files_in(dir.path()).iter().all(|f| !f.ends_with(".tmp")), "no temporary file left");

    // Skipping the invalid row, the export completes and replaces the file.
    ok(&["--database-url", &db, "export", "-o", &out, "--skip-invalid"]);
    // 60 fragments and the 59 valid embeddings.
    assert_eq!(rows(&std::fs::read_to_string(&out).unwrap()).len(), 119);
}

/// Stored text that would forge a result line, clear the screen, set the terminal's title and hide a
/// word behind a right-to-left override.
const HOSTILE: &str =
    "benign\r   1    0.000000           1           1  forged\x1b[2J\x1b]0;pwned\x07\u{202e}desrever\u{85}end";

// Defect 11: stored text with CR/ESC/BEL was printed raw.
#[test]
fn control_characters_from_the_database_are_escaped_on_the_terminal() {
    for (backend, url, _keep) in databases() {
        seed_smooth(&url, 3, 1);
        let mut conn = diesel_vector::database::DatabaseConnection::establish(&url).unwrap();
        let update = format!("UPDATE fragments SET content = '{}' WHERE id = 1", HOSTILE.replace('\'', "''"));
        match &mut conn {
            diesel_vector::database::DatabaseConnection::Pg(c) => c.batch_execute(&update).unwrap(),
            diesel_vector::database::DatabaseConnection::Sqlite(c) => c.batch_execute(&update).unwrap(),
            _ => unreachable!(),
        }
        let query = smooth(0).to_string();
        let args =
            ["--database-url", &url, "search", "--provider", "provider", "--model", "model-0", "--vector", &query];
        let text = ok(&args);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n' || c == '\u{202e}'), "{backend}: {text:?}");
        assert_eq!(text.lines().count(), 4, "{backend}: a header and one line per hit: {text}");
        assert!(
            text.contains(r"benign\r   1    0.000000           1           1  forged\x1b[2J\x1b]0;pwned\x07\u{202e}desrever\x85end"),
            "{backend}: {text}"
        );

        let mut json_args = args.to_vec();
        json_args.push("--json");
        let json = ok(&json_args);
        assert!(!json.trim_end().chars().any(|c| c.is_control() || c == '\u{202e}'), "{backend}: {json:?}");
        let hits: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(hits[0]["content"], HOSTILE, "{backend}: JSON keeps the text exactly");
    }

    // PostgreSQL names in doctor's report: pgvector in a schema named with escapes.
    let db = FreshDb::create();
    db.conn()
        .batch_execute("CREATE SCHEMA \"vec\x1b[2J\x07\"; CREATE EXTENSION vector SCHEMA \"vec\x1b[2J\x07\";")
        .unwrap();
    let out = run(&["--database-url", &db.url, "doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r#"in schema "vec\x1b[2J\x07""#), "{stdout}");
    assert!(!stdout.chars().any(|c| c.is_control() && c != '\n'), "{stdout:?}");
    let json = String::from_utf8(run(&["--database-url", &db.url, "doctor", "--json"]).stdout).unwrap();
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["extension"]["schema"], "\"vec\x1b[2J\x07\"");
}

fn databases() -> Vec<(&'static str, String, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "app.db");
    let pg = FreshDb::create();
    vec![("postgresql", pg.url.clone(), Box::new(pg)), ("sqlite", path, Box::new(dir))]
}

// Defect 13: `--vector @/dev/zero` read without bound (4.3 GB in 5 s).
#[test]
fn a_query_file_is_read_up_to_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_file(dir.path(), "app.db");
    seed_smooth(&db, 3, 1);
    let search = |vector: &str| {
        run(&["--database-url", &db, "search", "--provider", "provider", "--model", "model-0", "--vector", vector])
    };
    let started = std::time::Instant::now();
    let out = search("@/dev/zero");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/dev/zero holds more than 512 KiB, more than any query vector"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "bounded: {:?}", started.elapsed());

    // The largest text of a valid vector fits: 16000 numbers of the longest form, with spaces.
    let widest = format!("[{}]", vec!["-1.1754944e-38"; 16_000].join(", "));
    assert!(widest.len() < 512 * 1024);
    let file = dir.path().join("wide.txt");
    std::fs::write(&file, &widest).unwrap();
    let stderr = String::from_utf8_lossy(&search(&format!("@{}", file.display())).stderr).into_owned();
    assert!(
        stderr.contains("16000 dimensions") || stderr.contains("1536 are expected"),
        "parsed, then judged: {stderr}"
    );

    let file = dir.path().join("big.txt");
    std::fs::write(&file, vec![b' '; 512 * 1024 + 1]).unwrap();
    assert!(String::from_utf8_lossy(&search(&format!("@{}", file.display())).stderr).contains("more than 512 KiB"));
    let (_, stderr) = fails(&[
        "--database-url",
        &db,
        "search",
        "--provider",
        "p",
        "--model",
        "m",
        "--vector",
        &format!("@{}", dir.path().join("missing.txt").display()),
    ]);
    assert!(stderr.contains("cannot read the query vector from"), "{stderr}");
}

/// A directory nobody can write to, root included: `chattr +i`, or a read-only bind mount where that
/// is not available. Undone on drop.
struct ReadOnlyDir {
    path: std::path::PathBuf,
    how: &'static str,
}

impl ReadOnlyDir {
    fn new(path: &Path) -> Option<Self> {
        let probe = path.join(".probe");
        let writable = || match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                true
            }
            Err(_) => false,
        };
        let status = |cmd: &mut Command| cmd.output().map(|o| o.status.success()).unwrap_or(false);
        if status(Command::new("chattr").arg("+i").arg(path)) && !writable() {
            return Some(Self { path: path.to_owned(), how: "chattr" });
        }
        let _ = Command::new("chattr").arg("-i").arg(path).status();
        if status(Command::new("mount").args(["--bind"]).arg(path).arg(path))
            && status(Command::new("mount").args(["-o", "remount,ro,bind"]).arg(path))
            && !writable()
        {
            return Some(Self { path: path.to_owned(), how: "mount" });
        }
        let required = std::env::var_os("DIESEL_VECTOR_REQUIRE_MOUNT").is_some_and(|v| v == "1");
        assert!(!required, "cannot make a read-only directory, and DIESEL_VECTOR_REQUIRE_MOUNT=1");
        eprintln!("SKIPPED: cannot make a directory read-only for root (chattr +i or a bind mount)");
        None
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        match self.how {
            "chattr" => drop(Command::new("chattr").arg("-i").arg(&self.path).status()),
            _ => drop(Command::new("umount").arg(&self.path).status()),
        }
    }
}

// Defect 14: WAL databases in a read-only directory could not even be read.
#[test]
fn a_wal_database_in_a_read_only_directory_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let db = sqlite_file(&ro, "app.db");
    seed(&db, 30, 1);
    ok(&["--database-url", &db, "reindex"]);
    let expected = dump(&db);
    // The last connection checkpointed the log; SQLite leaves an empty -wal and the -shm behind.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db}{suffix}"));
    }
    let Some(_ro) = ReadOnlyDir::new(&ro) else { return };

    let status = ok(&["--database-url", &db, "migration", "status"]);
    assert!(status.contains("[X] 2025-01-01-000002"), "{status}");
    let report = ok(&["--database-url", &db, "doctor"]);
    assert!(report.contains("verdict      healthy"), "{report}");
    let exported = ok(&["--database-url", &db, "export"]);
    assert_eq!(rows(&exported).len(), expected.0.len() + expected.1.len());
    // A search too, as the index stands (it cannot be written here).
    let found = ok(&[
        "--database-url",
        &db,
        "search",
        "--provider",
        "provider",
        "--model",
        "model-0",
        "--vector",
        &smooth(3).to_string(),
        "-k",
        "3",
        "--json",
    ]);
    assert_eq!(found.matches("\"fragment_id\"").count(), 3, "{found}");
    let target = sqlite_file(dir.path(), "copy.db");
    ok(&["copy", "--from", &db, "--to", &target]);
    assert_eq!(dump(&target), expected);
    let beside: Vec<_> = std::fs::read_dir(&ro).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(beside, ["app.db"], "nothing was written beside it");
}

#[test]
fn a_wal_database_with_changes_in_its_log_in_a_read_only_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_file(dir.path(), "app.db");
    seed(&db, 10, 1);
    // A writer that has not checkpointed: copy the database and its log while it is open.
    let mut writer = diesel_vector::sqlite::establish(&db).unwrap();
    writer.batch_execute("PRAGMA wal_autocheckpoint = 0; DELETE FROM fragments WHERE id = 1;").unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::copy(&db, ro.join("app.db")).unwrap();
    std::fs::copy(format!("{db}-wal"), ro.join("app.db-wal")).unwrap();
    drop(writer);
    let copied = sqlite_file(&ro, "app.db");
    let Some(_ro) = ReadOnlyDir::new(&ro) else { return };

    let (_, stderr) = fails(&["--database-url", &copied, "doctor"]);
    assert!(stderr.contains("has changes in its write-ahead log"), "{stderr}");
    assert!(stderr.contains("Open the database once where its directory is writable"), "{stderr}");
    drop(_ro);
    // Where it can be written, the log is read: the deletion is there.
    assert_eq!(count(&copied, "fragments"), 9);
}

// Defect 16: `//abs/path` and `sqlite:////abs/path` failed for read-only commands ("SQL logic error").
#[test]
fn every_path_form_opens_for_reading_and_writing() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap().to_owned();
    let forms: Vec<(String, String)> = vec![
        // (URL as given, file it names)
        (format!("/{base}/double.db"), format!("{base}/double.db")),
        (format!("sqlite:///{base}/four.db"), format!("{base}/four.db")),
        (format!("sqlite://{base}/three.db"), format!("{base}/three.db")),
        ("relative.db".into(), format!("{base}/relative.db")),
        ("./sub/../dot.db".into(), format!("{base}/dot.db")),
        (format!("{base}/what?.db"), format!("{base}/what?.db")),
        (format!("{base}/hash#tag.db"), format!("{base}/hash#tag.db")),
        (format!("{base}/100%25 %41.db"), format!("{base}/100%25 %41.db")),
        (format!("{base}/with space.db"), format!("{base}/with space.db")),
        (format!("{base}/unicodé ☃.db"), format!("{base}/unicodé ☃.db")),
        (format!("file:{base}/uri%20form.db"), format!("{base}/uri form.db")),
    ];
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for (url, file) in &forms {
        let cmd = |args: &[&str]| {
            let mut full = vec!["--database-url", url.as_str()];
            full.extend_from_slice(args);
            run_in(dir.path(), &full)
        };
        let (created, _, stderr) = cmd(&["migration", "run"]);
        assert!(created, "{url}: {stderr}");
        assert!(Path::new(file).exists(), "{url} names {file}");
        for args in [&["migration", "status"][..], &["doctor"], &["export"], &["reindex"]] {
            let (success, stdout, stderr) = cmd(args);
            assert!(success, "{url} {args:?}: {stdout}{stderr}");
        }
        let (success, _, stderr) =
            cmd(&["search", "--provider", "p", "--model", "m", "--vector", &smooth(0).to_string()]);
        assert!(success, "{url} search: {stderr}");
    }
}

// Defect 17: search, reindex and import on a mistyped path created an empty database before failing,
// with errors naming a library function.
#[test]
fn commands_that_need_a_database_never_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let typo = sqlite_file(dir.path(), "tpyo.db");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "").unwrap();
    let q = smooth(0).to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["search", "--provider", "p", "--model", "m", "--vector", &q],
        vec!["reindex"],
        vec!["import", "-i", input.to_str().unwrap()],
        vec!["doctor"],
        vec!["export"],
        vec!["migration", "status"],
    ];
    for args in &cases {
        let mut full = vec!["--database-url", typo.as_str()];
        full.extend_from_slice(args);
        let (_, stderr) = fails(&full);
        assert!(stderr.contains(&format!("no database at {typo}: check the path")), "{args:?}: {stderr}");
        assert!(stderr.contains("migration run"), "says how to create one: {stderr}");
        assert!(!Path::new(&typo).exists(), "{args:?} created the file");
    }
    let (_, stderr) = fails(&["--database-url", &typo, "import", "-i", "/nonexistent.jsonl"]);
    assert!(stderr.contains("cannot read /nonexistent.jsonl"), "{stderr}");
    assert!(!Path::new(&typo).exists());

    // An existing database without the tables: say which command fixes it, not which function.
    let empty = sqlite_file(dir.path(), "empty.db");
    std::fs::File::create(&empty).unwrap();
    let (_, stderr) = fails(&["--database-url", &empty, "search", "--provider", "p", "--model", "m", "--vector", &q]);
    assert!(stderr.contains("run `diesel-vector migration run` first"), "{stderr}");
    assert!(!stderr.contains("run_pending_migrations") && !stderr.contains("diesel_vector::"), "{stderr}");
    let (_, stderr) = fails(&["--database-url", &empty, "reindex"]);
    assert!(stderr.contains("no vector index is registered for any table"), "{stderr}");
    assert!(!stderr.contains("diesel_vector::"), "{stderr}");
}

#[test]
fn a_killed_reindex_stops_building_on_the_server_and_leaves_the_old_index() {
    // Trial 6: after `kill -9` of a PostgreSQL `reindex`, the server built on to the end, holding the lock
    // that blocks the table's writes. It now notices within about a second that its client is gone.
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;
    use std::process::Stdio;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let pg = FreshDb::create();
    let mut conn = pg.conn();
    conn.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE docs (id bigint PRIMARY KEY, emb vector(256))",
    )
    .unwrap();
    let spec = diesel_vector::index::IndexSpec::builder("docs", "emb", 256).build().unwrap();
    conn.batch_execute(&diesel_vector::index::generate::render(&spec, &Default::default()).pg_up).unwrap();
    // 10k random rows (written without the index, then indexed), and a rebuild made slow on purpose (its
    // graph spilling from 1 MB: about 20 s).
    let index = diesel_vector::index::Ident::new(spec.pg_index_name().unwrap(), "index").unwrap().quoted();
    conn.batch_execute(&format!(
        "DROP INDEX {index};
         INSERT INTO docs SELECT i, (SELECT array_agg(random())::real[] FROM generate_series(1, 256) WHERE i > 0)::vector
           FROM generate_series(1, 10000) i;"
    ))
    .unwrap();
    diesel_vector::pg::rebuild(&mut conn, &spec, diesel_vector::pg::Rebuild::Hnsw).unwrap();
    conn.batch_execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET maintenance_work_mem = ''1MB''', current_database());
                     EXECUTE format('ALTER DATABASE %I SET max_parallel_maintenance_workers = 0', current_database()); END $$;",
    )
    .unwrap();
    let building = |conn: &mut diesel::PgConnection| {
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND query LIKE 'CREATE INDEX%'",
        )
        .get_result::<N>(conn)
        .unwrap()
        .n
    };
    let mut child =
        bin().args(["--database-url", &pg.url, "reindex", "--table", "docs"]).stdout(Stdio::null()).spawn().unwrap();
    let start = std::time::Instant::now();
    while building(&mut conn) == 0 {
        assert!(start.elapsed().as_secs() < 60, "the rebuild never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    while building(&mut conn) > 0 {
        assert!(killed.elapsed().as_secs() < 8, "the server went on building for its killed client");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The rebuild's transaction rolled back: the old index stands, and the table takes writes.
    let index = diesel_vector::pg::status(&mut conn, &spec).unwrap();
    assert_eq!(index.method.as_deref(), Some("hnsw"));
    assert!(index.valid);
    conn.batch_execute("INSERT INTO docs VALUES (10001, NULL)").unwrap();
}
