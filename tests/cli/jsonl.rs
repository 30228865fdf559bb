//! `export` and `import`: JSON lines between the backends, bit-exact, idempotent, strict by default.

use std::io::Write;
use std::process::Stdio;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::Value;

use crate::{bin, count, dump, fails, ok, run, seed, sqlite_file, FreshDb};

pub fn import_stdin(url: &str, input: &[u8], extra: &[&str]) -> std::process::Output {
    let mut child = bin()
        .args(["--database-url", url, "import"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The import may stop reading early (an error): a broken pipe here is its business.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// The row lines of an export (after the format line and the table headers).
pub fn rows(exported: &str) -> Vec<&str> {
    exported.lines().filter(|l| l.contains("\"row\":")).collect()
}

#[test]
fn export_and_import_move_rows_between_backends_bit_exact() {
    let (pg, pg_again) = (FreshDb::create(), FreshDb::create());
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_file(dir.path(), "imported.db");
    seed(&pg.url, 300, 3);
    let original = dump(&pg.url);

    let exported = ok(&["--database-url", &pg.url, "export", "--batch-size", "64"]);
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines[0], r#"{"format":"diesel-vector-jsonl","version":1,"crate_schema":true}"#);
    let header: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(header["table"], "fragments", "parents first");
    assert_eq!(header["key"], serde_json::json!(["id"]));
    assert_eq!(header["columns"][1], serde_json::json!({"name": "content", "type": "text"}));
    let header: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(header["table"], "fragment_embeddings");
    assert_eq!(header["columns"][5], serde_json::json!({"name": "embedding", "type": "vector(1536)"}));
    assert_eq!(rows(&exported).len(), original.0.len() + original.1.len(), "one line per row");
    let first: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(first["table"], "fragments");
    assert_eq!(first["row"]["id"], 1);
    assert!(first["row"]["content"].as_str().unwrap().contains("\"quoted\", accented \u{e9}, newline\n"));
    let embedding = lines.iter().find(|l| l.starts_with(r#"{"table":"fragment_embeddings","row":"#)).unwrap();
    let embedding: Value = serde_json::from_str(embedding).unwrap();
    assert_eq!(embedding["row"]["embedding"].as_array().unwrap().len(), 1536);
    assert!(
        exported.contains("\"embedding\":[0,-0,1,-1,3.4028235e38,-3.4028235e38,1.1754944e-38,-1.1754944e-38,1e-45,")
    );

    // import needs an existing database: a mistyped path must not become a new one.
    ok(&["--database-url", &lite, "migration", "run"]);
    let out = import_stdin(&lite, exported.as_bytes(), &["--batch-size", "50"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dump(&lite), original, "PostgreSQL -> JSON lines -> SQLite is bit-exact");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("imported fragments: {} rows", original.0.len())), "{stderr}");
    assert!(stderr.contains("index fragment_embeddings_idx on fragment_embeddings.embedding: codes"), "{stderr}");

    // The same rows give the same row lines, whichever backend they come from (the headers spell the
    // types of each: PostgreSQL's `dims` is an int32, SQLite's an int64).
    let file = dir.path().join("from-sqlite.jsonl");
    ok(&["--database-url", &lite, "export", "--output", file.to_str().unwrap()]);
    let again = std::fs::read_to_string(&file).unwrap();
    assert_eq!(rows(&again), rows(&exported));

    ok(&["--database-url", &pg_again.url, "import", "--input", file.to_str().unwrap()]);
    assert_eq!(dump(&pg_again.url), original, "and into PostgreSQL again");

    // Importing again changes nothing.
    let out = run(&["--database-url", &lite, "import", "-i", file.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(", 0 new"), "{stderr}");
    assert!(!stderr.contains(", 1 new"), "{stderr}");
    assert_eq!(dump(&lite), original);
}

#[test]
fn import_refuses_ids_taken_by_other_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = (sqlite_file(dir.path(), "a.db"), sqlite_file(dir.path(), "b.db"));
    seed(&source, 3, 1);
    let exported = ok(&["--database-url", &source, "export"]);
    assert!(import_stdin(&target, exported.as_bytes(), &[]).status.success());
    let mut conn = diesel_vector::sqlite::establish(&target).unwrap();
    conn.batch_execute("UPDATE fragments SET content = 'changed' WHERE id = 2").unwrap();
    let out = import_stdin(&target, exported.as_bytes(), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "fragments rows with id 2 already exist on the target with other contents; nothing of their batch was written"
        ),
        "{stderr}"
    );
}

#[test]
fn a_line_repeated_in_one_batch_is_imported_once_into_postgresql() {
    // PostgreSQL loads a batch with COPY when its keys are free; a repeated key fails the COPY, which is
    // rolled back to its savepoint, and the batch goes in with INSERT ... ON CONFLICT DO NOTHING instead.
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "source.db");
    seed(&source, 3, 1);
    let exported = ok(&["--database-url", &source, "export"]);
    let second = rows(&exported)[1];
    let last_fragment = exported.lines().position(|l| l == rows(&exported)[2]).unwrap();
    let mut lines: Vec<&str> = exported.lines().collect();
    lines.insert(last_fragment + 1, second);
    let repeated = lines.join("\n") + "\n";
    let target = FreshDb::create();
    let out = import_stdin(&target.url, repeated.as_bytes(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dump(&target.url), dump(&source));
}

/// A file of the crate's two tables, with a fragment and an embedding of 2 dimensions.
const WRONG_DIMS: &str = r#"{"format":"diesel-vector-jsonl","version":1,"crate_schema":true}
{"table":"fragments","key":["id"],"columns":[{"name":"id","type":"int64"},{"name":"content","type":"text"},{"name":"created_at","type":"timestamp"},{"name":"updated_at","type":"timestamp"}]}
{"table":"fragment_embeddings","key":["id"],"columns":[{"name":"id","type":"int64"},{"name":"fragment_id","type":"int64"},{"name":"provider","type":"text"},{"name":"model","type":"text"},{"name":"dims","type":"int32"},{"name":"embedding","type":"vector(1536)"},{"name":"content_hash","type":"text"},{"name":"created_at","type":"timestamp"},{"name":"updated_at","type":"timestamp"}]}
{"table":"fragments","row":{"id":9,"content":"x","created_at":null,"updated_at":null}}
{"table":"fragment_embeddings","row":{"id":5,"fragment_id":9,"provider":"p","model":"m","dims":2,"embedding":[1,2],"content_hash":"h","created_at":null,"updated_at":null}}
"#;

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
    assert!(stderr.contains("fragment_embeddings id 2: fragment_id 77: no fragments row has id 77"), "{stderr}");
    assert!(stderr.contains("fragment_embeddings id 4: embedding: BLOB of 1 bytes"), "{stderr}");

    let out = run(&["--database-url", &source, "export", "--skip-invalid"]);
    assert!(out.status.success());
    let exported = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped 2 invalid row(s)"), "{stderr}");
    assert_eq!(rows(&exported).len(), 6 + 4);

    // A vector of the wrong size in a line: strict import names it, --skip-invalid leaves it out.
    let target = sqlite_file(dir.path(), "target.db");
    ok(&["--database-url", &target, "migration", "run"]);
    let out = import_stdin(&target, WRONG_DIMS.as_bytes(), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fragment_embeddings id 5: embedding: the vector has 2 dimensions; the column holds 1536"),
        "{stderr}"
    );
    // Every invalid row of the batch is named, as `copy` names them, and nothing of it is written.
    let two_bad = format!(
        "{WRONG_DIMS}{}\n",
        WRONG_DIMS.lines().last().unwrap().replace("\"id\":5", "\"id\":6").replace("[1,2]", "[1,\"NaN\"]")
    );
    let out = import_stdin(&target, two_bad.as_bytes(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 invalid source row(s)"), "{stderr}");
    assert!(
        stderr.contains("fragment_embeddings id 5: embedding") && stderr.contains("fragment_embeddings id 6"),
        "{stderr}"
    );
    // (The `fragments` row, a batch of its own, was written by the first strict import.)
    assert_eq!((count(&target, "fragments"), count(&target, "fragment_embeddings")), (1, 0));
    let out = import_stdin(&target, WRONG_DIMS.as_bytes(), &["--skip-invalid"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((count(&target, "fragments"), count(&target, "fragment_embeddings")), (1, 0));

    // A line that is not a row is an error whatever the mode, naming its number.
    let broken = format!("{}\nnot json\n", WRONG_DIMS.lines().take(4).collect::<Vec<_>>().join("\n"));
    let out = import_stdin(&target, broken.as_bytes(), &["--skip-invalid"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: line 5: not a row line"), "{stderr}");
    // The nested fragments lines of earlier builds are not this format.
    let old = r#"{"id":10,"content":"ok","embeddings":[]}"#;
    let out = import_stdin(&target, old.as_bytes(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: line 1: not the first line of diesel-vector-jsonl"), "{stderr}");
}

#[test]
fn an_endless_line_is_refused_at_the_line_limit_with_bounded_memory() {
    // Issue 15, defect 13: `import -i /dev/zero` read one endless line (4.7 GB). Under a 512 MiB address
    // space the import must fail cleanly, naming the line, rather than abort on an allocation.
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_file(dir.path(), "zero.db");
    crate::ok(&["--database-url", &target, "migration", "run"]);
    let out = std::process::Command::new("bash")
        .args(["-c", "ulimit -v 524288; exec \"$0\" --database-url \"$1\" import -i /dev/zero"])
        .arg(env!("CARGO_BIN_EXE_diesel-vector"))
        .arg(&target)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: line 1: longer than 67108864 bytes, the most a line may hold"), "{stderr}");
}

#[test]
fn a_row_the_target_refuses_is_neither_counted_nor_checksummed_as_imported() {
    // Trial 6: `import --skip-invalid` reported a row the target refused (NOT NULL) among those imported.
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "source.db");
    let mut conn = diesel::SqliteConnection::establish(&source).unwrap();
    conn.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, NULL)")
        .unwrap();
    let exported = ok(&["--database-url", &source, "export"]);
    let only_first: String = exported.lines().filter(|l| !l.contains(r#""id":2"#)).map(|l| format!("{l}\n")).collect();
    let target = sqlite_file(dir.path(), "target.db");
    diesel::SqliteConnection::establish(&target)
        .unwrap()
        .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .unwrap();
    let out = import_stdin(&target, exported.as_bytes(), &["--skip-invalid"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("skipped 1 invalid row(s)"), "{report}");
    assert!(report.contains("t id 2: the target refused it"), "{report}");
    assert_eq!(count(&target, "t"), 1);
    // The count and checksum are those of the row imported: the same as importing it alone.
    let line = |report: &str| report.lines().find(|l| l.starts_with("imported t:")).map(str::to_owned);
    let alone = sqlite_file(dir.path(), "alone.db");
    diesel::SqliteConnection::establish(&alone)
        .unwrap()
        .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .unwrap();
    let out_alone = import_stdin(&alone, only_first.as_bytes(), &[]);
    let report_alone =
        String::from_utf8_lossy(&out_alone.stdout).into_owned() + &String::from_utf8_lossy(&out_alone.stderr);
    assert!(line(&report).is_some_and(|l| l.contains(": 1 rows")), "{report}");
    assert_eq!(line(&report), line(&report_alone), "{report}\n{report_alone}");
}
