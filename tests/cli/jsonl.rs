//! `export` and `import`: JSON lines between the backends, bit-exact, idempotent, strict by default.

use std::io::Write;
use std::process::Stdio;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::Value;

use crate::{bin, count, dump, fails, ok, run, seed, sqlite_file, FreshDb};

fn import_stdin(url: &str, input: &[u8], extra: &[&str]) -> std::process::Output {
    let mut child = bin()
        .args(["--database-url", url, "import"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn export_and_import_move_rows_between_backends_bit_exact() {
    let (pg, pg_again) = (FreshDb::create(), FreshDb::create());
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_file(dir.path(), "imported.db");
    seed(&pg.url, 300, 3);
    let original = dump(&pg.url);

    let exported = ok(&["--database-url", &pg.url, "export", "--batch-size", "64"]);
    assert_eq!(exported.lines().count(), original.0.len(), "one line per fragment");
    let first: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], 1);
    assert!(first["content"].as_str().unwrap().contains("\"quoted\", accented \u{e9}, newline\n"));
    let embeddings = first["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 3);
    assert_eq!(embeddings[0]["embedding"].as_array().unwrap().len(), 1536);
    assert!(
        exported.contains("\"embedding\":[0,-0,1,-1,3.4028235e38,-3.4028235e38,1.1754944e-38,-1.1754944e-38,1e-45,")
    );

    // import needs an existing database: a mistyped path must not become a new one.
    ok(&["--database-url", &lite, "migration", "run"]);
    let out = import_stdin(&lite, exported.as_bytes(), &["--batch-size", "50"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dump(&lite), original, "PostgreSQL -> JSON lines -> SQLite is bit-exact");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("imported {} fragments", original.0.len())), "{stderr}");

    // The same rows give the same lines, whichever backend they come from.
    let file = dir.path().join("from-sqlite.jsonl");
    ok(&["--database-url", &lite, "export", "--output", file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported);

    ok(&["--database-url", &pg_again.url, "import", "--input", file.to_str().unwrap()]);
    assert_eq!(dump(&pg_again.url), original, "and into PostgreSQL again");

    // Importing again changes nothing.
    let out = run(&["--database-url", &lite, "import", "-i", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("(0 rows new)"));
    assert_eq!(dump(&lite), original);
}

#[test]
fn import_refuses_ids_taken_by_other_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = (sqlite_file(dir.path(), "a.db"), sqlite_file(dir.path(), "b.db"));
    seed(&source, 3, 1);
    seed(&target, 3, 1);
    let mut conn = diesel_vector::sqlite::establish(&target).unwrap();
    conn.batch_execute("UPDATE fragments SET content = 'changed' WHERE id = 2").unwrap();
    let exported = ok(&["--database-url", &source, "export"]);
    let out = import_stdin(&target, exported.as_bytes(), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fragments rows with ids [2] already exist on the target with other contents"), "{stderr}");
}

#[test]
fn a_line_repeated_in_one_batch_is_imported_once_into_postgresql() {
    // PostgreSQL loads a batch with COPY when its ids are free; a repeated id fails the COPY, which is
    // rolled back to its savepoint, and the batch goes in with INSERT ... ON CONFLICT DO NOTHING as before.
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "source.db");
    seed(&source, 3, 1);
    let exported = ok(&["--database-url", &source, "export"]);
    let second = exported.lines().nth(1).unwrap();
    let repeated = format!("{exported}{second}\n");
    let target = FreshDb::create();
    let out = import_stdin(&target.url, repeated.as_bytes(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dump(&target.url), dump(&source));
}

#[test]
fn invalid_rows_stop_export_and_import_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "bad.db");
    seed(&source, 6, 1);
    let mut conn = diesel::SqliteConnection::establish(&source).unwrap();
    conn.batch_execute(
        "PRAGMA foreign_keys = OFF; PRAGMA ignore_check_constraints = ON;
         UPDATE fragment_embeddings SET fragment_id = 77 WHERE id = 2;
         UPDATE fragment_embeddings SET embedding = x'00' WHERE id = 4;",
    )
    .unwrap();
    drop(conn);
    let (_, stderr) = fails(&["--database-url", &source, "export"]);
    assert!(stderr.contains("fragment_embeddings id 2: its fragment 77 does not exist"), "{stderr}");
    assert!(stderr.contains("fragment_embeddings id 4: BLOB of 1 bytes"), "{stderr}");

    let out = run(&["--database-url", &source, "export", "--skip-invalid"]);
    assert!(out.status.success());
    let exported = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped 2 invalid row(s)"), "{stderr}");
    assert_eq!(exported.lines().count(), 6);

    // A vector of the wrong size in a line: strict import names it, --skip-invalid leaves it out.
    let target = sqlite_file(dir.path(), "target.db");
    ok(&["--database-url", &target, "migration", "run"]);
    let line = r#"{"id":9,"content":"x","created_at":null,"updated_at":null,"embeddings":[{"id":5,"provider":"p","model":"m","dims":2,"content_hash":"h","created_at":null,"updated_at":null,"embedding":[1,2]}]}"#;
    let out = import_stdin(&target, line.as_bytes(), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fragment_embeddings id 5: the vector has 2 dimensions; the column holds 1536"),
        "{stderr}"
    );
    let out = import_stdin(&target, line.as_bytes(), &["--skip-invalid"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((count(&target, "fragments"), count(&target, "fragment_embeddings")), (1, 0));

    let out = import_stdin(&target, b"\n{\"id\":10,\"content\":\"ok\"}\nnot json\n", &["--skip-invalid"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: line 3: not a JSON object"), "{stderr}");
}
