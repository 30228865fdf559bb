//! `copy` between the backends: bit-exact round trips, resuming after `kill -9`, an application writing
//! to the target meanwhile, and invalid source rows.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary};
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::schema::fragments;

use crate::{bin, count, dump, fails, ok, seed, sqlite_file, vector, FreshDb};

fn copy(from: &str, to: &str, extra: &[&str]) -> String {
    let mut args = vec!["copy", "--from", from, "--to", to];
    args.extend_from_slice(extra);
    ok(&args)
}

/// Every table line of a copy's report says `verified`.
#[track_caller]
fn assert_verified(report: &str) {
    let tables: Vec<&str> = report.lines().filter(|l| l.starts_with("fragment")).collect();
    assert_eq!(tables.len(), 2, "{report}");
    assert!(tables.iter().all(|l| l.contains(" verified ")), "{report}");
}

fn max_id(url: &str, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let q = diesel::sql_query(format!("SELECT coalesce(max(id), 0) AS n FROM {table}"));
    match &mut diesel_vector::database::DatabaseConnection::establish(url).unwrap() {
        diesel_vector::database::DatabaseConnection::Pg(c) => q.get_result::<N>(c).unwrap().n,
        diesel_vector::database::DatabaseConnection::Sqlite(c) => q.get_result::<N>(c).unwrap().n,
        _ => unreachable!(),
    }
}

#[test]
fn ten_thousand_embeddings_go_postgresql_to_sqlite_to_postgresql_bit_exact() {
    let (first, second) = (FreshDb::create(), FreshDb::create());
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_file(dir.path(), "middle.db");
    // 2526 fragments of 4 embeddings, every 97th fragment deleted: 2500 fragments, 10000 embeddings,
    // 1000 of them NULL, each vector carrying -0.0, subnormals, f32::MAX, f32::MIN_POSITIVE...
    seed(&first.url, 2526, 4);
    assert_eq!(count(&first.url, "fragment_embeddings"), 10_000);
    let original = dump(&first.url);
    assert_eq!(original.1.iter().filter(|e| e.5.is_none()).count(), 1000);
    assert!(original.1.iter().any(|e| e.5.as_ref().is_some_and(|b| b.contains(&(-0f32).to_bits()))));

    let report = copy(&first.url, &lite, &["--batch-size", "700"]);
    assert_verified(&report);
    assert!(
        report.contains("index fragment_embeddings_idx on fragment_embeddings.embedding: codes rebuilt, 9000 rows"),
        "{report}"
    );
    assert_eq!(dump(&lite), original, "PostgreSQL -> SQLite is bit-exact, timestamps included");
    let sqlite_bytes = std::fs::read(&lite).unwrap();

    let report = copy(&lite, &second.url, &[]);
    assert_verified(&report);
    assert_eq!(dump(&second.url), original, "and back to PostgreSQL");
    assert_eq!(std::fs::read(&lite).unwrap(), sqlite_bytes, "the SQLite source was only read");

    // A copy again finds everything there, inserts nothing and verifies.
    let again = copy(&lite, &second.url, &[]);
    assert_verified(&again);
    assert!(again.contains("(inserted 0, resumed after id"), "{again}");

    // The sequences moved past the copied ids: the application's next insert works.
    let mut conn = second.conn();
    let id: i64 = diesel::insert_into(fragments::table)
        .values(fragments::content.eq("after the copy"))
        .returning(fragments::id)
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(id, original.0.last().unwrap().0 + 1);
    let v = vector(1);
    NewFragmentEmbedding::new(id, "provider", "model-0", &v, "new").upsert(&mut conn).unwrap();
    // The ivfflat index made by the migration on the empty target needs a rebuild for the data.
    assert!(
        report.contains(
            "index fragment_embeddings_idx on fragment_embeddings.embedding: ivfflat with 100 lists for 9000 rows: built \
             with little data, searches recall poorly until `diesel-vector reindex` on the target"
        ),
        "{report}"
    );
    let (doctor, _) = fails(&["--database-url", &second.url, "doctor", "--json"]);
    assert!(doctor.contains("\"embeddings\":10001"), "{doctor}");
    assert_eq!(
        ok(&["--database-url", &second.url, "reindex"]),
        "rebuilt fragment_embeddings_idx (fragment_embeddings.embedding): ivfflat fragment_embeddings_cosine_idx, 9 \
         lists for 9001 rows\n"
    );
    ok(&["--database-url", &second.url, "doctor"]);
}

/// Starts a copy with small batches, kills it (`kill -9`) once `after_rows` embeddings went across, and
/// returns the rows the target holds then.
fn copy_killed_halfway(from: &str, to: &str, after_rows: u64) -> i64 {
    let mut child = bin()
        .args(["copy", "--from", from, "--to", to, "--batch-size", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        let line = line.unwrap();
        // copy: fragment_embeddings: 400/2972 rows (13.5%), last id 412, 5000 rows/s
        let Some(rest) = line.strip_prefix("copy: fragment_embeddings: ") else { continue };
        let Some((done, _)) = rest.split_once('/') else { continue };
        if done.parse::<u64>().unwrap() >= after_rows {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the copy was killed before it finished");
    count(to, "fragment_embeddings")
}

#[test]
fn a_copy_killed_halfway_resumes_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_file(dir.path(), "source.db");
    let pg = FreshDb::create();
    seed(&lite, 750, 4);
    let total = count(&lite, "fragment_embeddings");

    // SQLite -> PostgreSQL.
    let copied = copy_killed_halfway(&lite, &pg.url, 400);
    assert!((400..total).contains(&copied), "killed halfway: {copied} of {total}");
    let resume_after = max_id(&pg.url, "fragment_embeddings");
    let report = copy(&lite, &pg.url, &["--batch-size", "20"]);
    assert_verified(&report);
    assert!(report.contains(&format!("resumed after id {resume_after})")), "{report}");
    assert_eq!(dump(&pg.url), dump(&lite));

    // PostgreSQL -> SQLite.
    let back = sqlite_file(dir.path(), "back.db");
    let copied = copy_killed_halfway(&pg.url, &back, 400);
    assert!((400..total).contains(&copied), "killed halfway: {copied} of {total}");
    let report = copy(&pg.url, &back, &["--batch-size", "20"]);
    assert_verified(&report);
    assert!(report.contains("resumed after id"), "{report}");
    assert_eq!(dump(&back), dump(&lite));
    let doctor = ok(&["--database-url", &back, "doctor"]);
    assert!(doctor.contains("up to date"), "the vec0 index was brought up to date: {doctor}");
}

#[test]
fn an_application_writing_to_the_sqlite_target_during_a_copy_keeps_its_rows() {
    let source = FreshDb::create();
    seed(&source.url, 400, 4);
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_file(dir.path(), "live.db");
    let mut child = bin()
        .args(["copy", "--from", &source.url, "--to", &target, "--batch-size", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("copy: fragment_embeddings: 100/") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the copy ended before the application wrote");
    }
    // The application inserts while the copy goes on, with ids from SQLite's AUTOINCREMENT.
    let mut app = diesel_vector::sqlite::establish(&target).unwrap();
    let fragment: i64 = diesel::insert_into(fragments::table)
        .values(fragments::content.eq("written during the copy"))
        .returning(fragments::id)
        .get_result(&mut app)
        .unwrap();
    let v = vector(7);
    let embedding = NewFragmentEmbedding::new(fragment, "provider", "app", &v, "app").upsert(&mut app).unwrap();
    drop(app);
    std::io::copy(&mut stderr, &mut std::io::sink()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert_verified(&report);

    // The application's rows got ids above the source's, which were reserved before the copy wrote.
    assert!(fragment > max_id(&source.url, "fragments"), "{fragment}");
    assert!(embedding > max_id(&source.url, "fragment_embeddings"), "{embedding}");
    let (mut fragments_now, mut embeddings_now) = dump(&target);
    assert_eq!(fragments_now.pop().unwrap().0, fragment);
    assert_eq!(embeddings_now.pop().unwrap().0, embedding);
    assert_eq!((fragments_now, embeddings_now), dump(&source.url), "every source row, once");

    // sqlite_sequence follows: the next AUTOINCREMENT id is above everything.
    let mut app = diesel_vector::sqlite::establish(&target).unwrap();
    let next: i64 = diesel::insert_into(fragments::table)
        .values(fragments::content.eq("after the copy"))
        .returning(fragments::id)
        .get_result(&mut app)
        .unwrap();
    assert_eq!(next, fragment + 1);
    let doctor = ok(&["--database-url", &target, "doctor"]);
    assert!(doctor.contains("verdict      healthy"), "{doctor}");
}

#[test]
fn sqlite_sequence_follows_rows_inserted_with_explicit_ids() {
    // What the copy relies on besides its own reservation: AUTOINCREMENT remembers explicit ids.
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "seq.db");
    let mut conn = diesel_vector::sqlite::establish(&path).unwrap();
    diesel_vector::migrations::run_pending_migrations(&mut conn).unwrap();
    conn.batch_execute("INSERT INTO fragments (id, content) VALUES (41, 'explicit'); DELETE FROM fragments;").unwrap();
    let id: i64 = diesel::insert_into(fragments::table)
        .values(fragments::content.eq("next"))
        .returning(fragments::id)
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(id, 42);
}

/// A source with five invalid embeddings among 40: ids 15 (NaN), 17 (dims 768), 23 (fragment missing),
/// 25 (stored as TEXT), 27 (a BLOB of 3 bytes). Returns the embeddings as they were before.
fn source_with_invalid_rows(path: &str) -> Vec<crate::EmbeddingDump> {
    seed(path, 40, 1);
    let before = dump(path).1;
    let mut conn = diesel::SqliteConnection::establish(path).unwrap();
    conn.batch_execute("PRAGMA ignore_check_constraints = ON; PRAGMA foreign_keys = OFF;").unwrap();
    let mut nan: Vec<u8> = vector(14).as_slice().iter().flat_map(|x| x.to_le_bytes()).collect();
    nan[20..24].copy_from_slice(&f32::NAN.to_le_bytes());
    diesel::sql_query("UPDATE fragment_embeddings SET embedding = ? WHERE id = 15")
        .bind::<Binary, _>(nan)
        .execute(&mut conn)
        .unwrap();
    conn.batch_execute(
        "UPDATE fragment_embeddings SET dims = 768 WHERE id = 17;
         UPDATE fragment_embeddings SET fragment_id = 999 WHERE id = 23;
         UPDATE fragment_embeddings SET embedding = '[1,2,3]' WHERE id = 25;
         UPDATE fragment_embeddings SET embedding = x'000000' WHERE id = 27;",
    )
    .unwrap();
    before
}

#[test]
fn invalid_source_rows_stop_a_strict_copy_and_are_skipped_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "bad.db");
    let before = source_with_invalid_rows(&source);
    let target = FreshDb::create();

    let (_, stderr) = fails(&["copy", "--from", &source, "--to", &target.url, "--batch-size", "10"]);
    assert!(stderr.contains("error: 2 invalid source row(s); nothing of their batch was written"), "{stderr}");
    assert!(stderr.contains("fragment_embeddings id 15: embedding: vector element 5 is NaN"), "{stderr}");
    assert!(stderr.contains("(--skip-invalid leaves them out, writes the rest and reports them)"), "{stderr}");
    assert!(stderr.contains("fragment_embeddings id 17: dims is 768 but the vector has 1536 dimensions"), "{stderr}");
    let ids: Vec<i64> = dump(&target.url).1.iter().map(|e| e.0).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>(), "the batches before were written, not the one with the bad rows");

    let report = copy(&source, &target.url, &["--batch-size", "10", "--skip-invalid"]);
    assert_verified(&report);
    assert!(report.contains("skipped 5 invalid row(s):"), "{report}");
    for (id, reason) in [
        (15, "embedding: vector element 5 is NaN"),
        (17, "dims is 768"),
        (23, "fragment_id 999: no fragments row has id 999"),
        (25, "embedding: a TEXT (\"[1,2,3]\") where a `vector` BLOB belongs"),
        (27, "embedding: BLOB of 3 bytes is not a whole number of 4-byte floats"),
    ] {
        assert!(report.contains(&format!("fragment_embeddings id {id}: {reason}")), "{id}: {report}");
    }
    assert_eq!(count(&target.url, "fragment_embeddings"), 35);
    let expected: Vec<_> = before.into_iter().filter(|e| ![15, 17, 23, 25, 27].contains(&e.0)).collect();
    assert_eq!(dump(&target.url).1, expected);
}

#[test]
fn a_target_holding_other_rows_in_the_source_range_is_refused_before_anything_is_written() {
    // Issue 15, defect 19: equal row counts used to be taken for an earlier copy of this source.
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "source.db");
    seed(&source, 5, 1);
    let pg = FreshDb::create();
    for target in [sqlite_file(dir.path(), "target.db"), pg.url.clone()] {
        // Someone else's rows hold ids 1 and 2 on the target: as many as the source has up to 2, the
        // first one even equal to the source's.
        ok(&["--database-url", &target, "migration", "run"]);
        let insert = "INSERT INTO fragments (id, content, created_at, updated_at) \
                      SELECT 2, 'not from the source', NULL, NULL";
        match &mut diesel_vector::database::DatabaseConnection::establish(&target).unwrap() {
            diesel_vector::database::DatabaseConnection::Pg(c) => c.batch_execute(insert).unwrap(),
            diesel_vector::database::DatabaseConnection::Sqlite(c) => c.batch_execute(insert).unwrap(),
            _ => unreachable!(),
        }
        let (stdout, stderr) = fails(&["copy", "--from", &source, "--to", &target]);
        assert_eq!(stdout, "", "{stderr}");
        assert!(
            stderr.contains(
                "error: the target's fragments already holds rows that differ from the source's (first: id 2): it is \
                 not an earlier copy of this source, and nothing was written"
            ),
            "{stderr}"
        );
        assert_eq!((count(&target, "fragments"), count(&target, "fragment_embeddings")), (1, 0), "nothing written");
    }
}

#[test]
fn rows_missing_in_the_middle_of_a_postgresql_target_are_copied_again_with_inserts() {
    // PostgreSQL targets load batches with COPY unless the target already holds one of their keys: after
    // rows in the middle were deleted, the resumed batch takes the INSERT ... ON CONFLICT DO NOTHING path.
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_file(dir.path(), "source.db");
    let target = FreshDb::create();
    seed(&source, 8, 1);
    copy(&source, &target.url, &[]);
    target.conn().batch_execute("DELETE FROM fragments WHERE id IN (3, 5)").unwrap();
    assert_eq!(count(&target.url, "fragment_embeddings"), 6, "the embeddings went with them");
    let report = copy(&source, &target.url, &["--batch-size", "4"]);
    assert_verified(&report);
    assert!(report.contains("(inserted 2, resumed after id 2)"), "{report}");
    assert_eq!(dump(&target.url), dump(&source));
}

#[test]
fn copies_from_nothing_or_onto_themselves_are_refused_before_the_target_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "same.db");
    seed(&path, 2, 1);
    let (_, stderr) = fails(&["copy", "--from", &path, "--to", &format!("sqlite://{path}")]);
    assert!(stderr.contains("the source and the target are the same database"), "{stderr}");

    let target = sqlite_file(dir.path(), "target.db");
    let (_, stderr) = fails(&["copy", "--from", &sqlite_file(dir.path(), "typo.db"), "--to", &target]);
    assert!(stderr.contains("error: source: no database at "), "{stderr}");
    let empty = sqlite_file(dir.path(), "empty.db");
    std::fs::File::create(&empty).unwrap();
    let (_, stderr) = fails(&["copy", "--from", &empty, "--to", &target]);
    assert!(stderr.contains("error: the source has no tables to copy"), "{stderr}");
    assert!(!std::path::Path::new(&target).exists());
    let (_, stderr) = fails(&["copy", "--from", &path, "--to", "mysql://localhost/app"]);
    assert!(stderr.contains("error: target: Unsupported driver: mysql"), "{stderr}");
    let (_, stderr) = fails(&["copy", "--from", "mysql://localhost/app", "--to", &target]);
    assert!(stderr.contains("error: source: Unsupported driver: mysql"), "{stderr}");
    assert!(!std::path::Path::new(&target).exists());
}
