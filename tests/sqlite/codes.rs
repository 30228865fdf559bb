//! The crate's quantized codes on SQLite, through the seed's index (`fragment_embeddings_idx` keeps codes):
//! never a stale copy whoever writes (another process, the sqlite3 shell, a revert and redo), damaged
//! codes rebuilt, partition filters that still give `k` rows, recall against the exact path, and the
//! portable SIMD fallback forced in a child process.

use std::process::Command;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::schema::{fragment_embeddings, fragments};
use diesel_vector::search::{Search, Strategy};
use diesel_vector::sqlite::{self, index_status, sync_index};
use diesel_vector::{migrations, Vector};

use crate::common::{clustered, spawn_helper, telemetry};
use crate::EXTENSION_REGISTRATION;

const DIMS: usize = 1536;

fn open(path: &str) -> SqliteConnection {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    sqlite::establish(path).unwrap()
}

/// A migrated database file holding `vectors` for provider "p", model `model` (fragment ids from 1).
fn database(vectors: &[Vector], model: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codes.db").to_str().unwrap().to_owned();
    let mut conn = open(&path);
    migrations::run_pending_migrations(&mut conn).unwrap();
    insert(&mut conn, vectors, model);
    (dir, path)
}

fn insert(conn: &mut SqliteConnection, vectors: &[Vector], model: &str) -> Vec<i64> {
    conn.transaction(|conn| {
        vectors
            .iter()
            .map(|v| {
                let fragment: i64 = diesel::insert_into(fragments::table)
                    .values(fragments::content.eq("f"))
                    .returning(fragments::id)
                    .get_result(conn)?;
                diesel::insert_into(fragment_embeddings::table)
                    .values(NewFragmentEmbedding::new(fragment, "p", model, v, "h"))
                    .returning(fragment_embeddings::id)
                    .get_result(conn)
            })
            .collect::<QueryResult<Vec<i64>>>()
    })
    .unwrap()
}

/// The ids of the `k` nearest for model `model`, and the search's telemetry.
fn search(conn: &mut SqliteConnection, model: &str, q: &Vector, k: usize) -> (Vec<i64>, Vec<String>) {
    let (hits, events) = telemetry::capture(|| Search::new("p", model, q).k(k).run(conn).unwrap());
    (hits.into_iter().map(|h| h.id).collect(), events)
}

fn codes_search(conn: &mut SqliteConnection, model: &str, q: &Vector, k: usize) -> Vec<i64> {
    let (ids, events) = search(conn, model, q, k);
    assert_eq!(telemetry::search_path(&events), Some("codes"), "{events:#?}");
    ids
}

fn exact(conn: &mut SqliteConnection, model: &str, q: &Vector, k: usize) -> Vec<i64> {
    Search::new("p", model, q).k(k).strategy(Strategy::Exact).run(conn).unwrap().into_iter().map(|h| h.id).collect()
}

fn blob_literal(v: &Vector) -> String {
    let bytes = diesel_vector::codec::encode_sqlite(v);
    format!("X'{}'", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Runs SQL through the sqlite3 shell: a writer with no diesel-vector and no extension at all.
fn sqlite3(path: &str, sql: &str) {
    use std::io::Write;
    let mut child = Command::new("sqlite3")
        .args(["-bail", path])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell is installed");
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
}

fn scalar(conn: &mut SqliteConnection, sql: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>(sql)).get_result(conn).unwrap()
}

#[test]
fn another_process_that_writes_and_syncs_is_never_served_stale() {
    let data = clustered(31, 600, DIMS, 6);
    let (_dir, path) = database(&data, "m");
    let mut conn = open(&path);
    let q = &clustered(31, 601, DIMS, 6)[600];
    let before = codes_search(&mut conn, "m", q, 5);
    assert_eq!(before, exact(&mut conn, "m", q, 5));

    // Another process inserts the query itself and deletes the nearest row, then syncs (moving the
    // codes and the generation on): this process's copy in memory is now behind.
    let child = spawn_helper(
        "codes::helper_process_writes_and_syncs",
        &[("DV_CODES_DB", &path), ("DV_CODES_DELETE", &before[0].to_string())],
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(index_status(&mut conn).unwrap().pending_changes, 0, "the other process drained the queue");

    let after = codes_search(&mut conn, "m", q, 5);
    let newest = scalar(&mut conn, "(SELECT max(id) FROM fragment_embeddings)");
    assert_eq!(after[0], newest, "the row the other process added is found");
    assert!(!after.contains(&before[0]), "the row it deleted is gone");
    assert_eq!(after, exact(&mut conn, "m", q, 5));
}

#[test]
#[ignore = "run in a child process by another_process_that_writes_and_syncs_is_never_served_stale"]
fn helper_process_writes_and_syncs() {
    let path = std::env::var("DV_CODES_DB").expect("spawned with DV_CODES_DB");
    let delete: i64 = std::env::var("DV_CODES_DELETE").unwrap().parse().unwrap();
    let mut conn = open(&path);
    let q = clustered(31, 601, DIMS, 6).remove(600);
    insert(&mut conn, &[q], "m");
    diesel::delete(fragment_embeddings::table.find(delete)).execute(&mut conn).unwrap();
    let report = sync_index(&mut conn).unwrap();
    assert_eq!((report.rebuilt, report.applied), (false, 2));
}

#[test]
fn writes_by_the_sqlite3_shell_are_seen_by_the_next_search() {
    let data = clustered(32, 400, DIMS, 4);
    let (_dir, path) = database(&data, "m");
    let mut conn = open(&path);
    let q = &clustered(32, 401, DIMS, 4)[400];
    let before = codes_search(&mut conn, "m", q, 3);

    // A row equal to the query and a deletion, by a writer that knows nothing of diesel-vector: the
    // triggers queue both, and the next search applies the queue first.
    sqlite3(
        &path,
        &format!(
            "INSERT INTO fragments (id, content) VALUES (9001, 'shell'); \
             INSERT INTO fragment_embeddings (id, fragment_id, provider, model, dims, embedding, content_hash) \
             VALUES (9001, 9001, 'p', 'm', {DIMS}, {}, 'h'); \
             DELETE FROM fragment_embeddings WHERE id = {};",
            blob_literal(q),
            before[0]
        ),
    );
    let after = codes_search(&mut conn, "m", q, 3);
    assert_eq!(after[0], 9001);
    assert!(!after.contains(&before[0]));
    assert_eq!(after, exact(&mut conn, "m", q, 3));
}

#[test]
fn a_queue_drained_behind_the_codes_back_forces_a_rebuild() {
    let data = clustered(33, 300, DIMS, 3);
    let (_dir, path) = database(&data, "m");
    let mut conn = open(&path);
    let q = &clustered(33, 301, DIMS, 3)[300];
    codes_search(&mut conn, "m", q, 3);
    // What an older diesel-vector (which kept vec0 only) would do: apply the queue elsewhere, empty it
    // and move the generation on, leaving the codes as they were.
    sqlite3(
        &path,
        &format!(
            "INSERT INTO fragments (id, content) VALUES (9002, 'old'); \
             INSERT INTO fragment_embeddings (id, fragment_id, provider, model, dims, embedding, content_hash) \
             VALUES (9002, 9002, 'p', 'm', {DIMS}, {}, 'h'); \
             DELETE FROM fragment_embeddings_idx_queue; \
             UPDATE fragment_embeddings_idx_state SET generation = generation + 1;",
            blob_literal(q)
        ),
    );
    assert!(!index_status(&mut conn).unwrap().codes_current);
    let (ids, events) = search(&mut conn, "m", q, 3);
    assert_eq!(ids[0], 9002, "the codes were rebuilt from the table, not trusted");
    let span = events.iter().find(|e| e.starts_with("SPAN diesel_vector::search search")).expect("the span");
    for field in ["path=codes", "scanned=", "reranked=", "recall_estimate=", "simd=", "duration_ms="] {
        assert!(span.contains(field), "{field} in {span}");
    }
    // A few hundred rows are scanned on this thread alone (the scan is divided from 2^18 rows).
    assert!(span.contains("scan_threads=1"), "{span}");
    assert!(events.iter().any(|e| e.contains("quantized codes rebuilt")), "{events:#?}");
    assert!(index_status(&mut conn).unwrap().is_up_to_date());
}

#[test]
fn a_revert_and_redo_by_plain_sql_is_never_served_from_the_old_codes() {
    let data = clustered(34, 300, DIMS, 3);
    let (_dir, path) = database(&data, "m");
    let mut conn = open(&path);
    let q = &clustered(34, 301, DIMS, 3)[300];
    let before = codes_search(&mut conn, "m", q, 3);

    // Revert and redo the embeddings migrations with plain SQL, then new rows under the same ids, in
    // another order: a copy of the old codes would answer with ids that now hold other vectors.
    let mut sql = String::new();
    for part in [
        include_str!("../../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/down.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000002_create_fragment_embeddings/down.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000002_create_fragment_embeddings/up.sql"),
        include_str!("../../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/up.sql"),
    ] {
        sql.push_str(part);
        sql.push('\n');
    }
    sqlite3(&path, &sql);
    let mut reversed = data.clone();
    reversed.reverse();
    {
        let mut writer = open(&path);
        writer
            .transaction(|c| {
                for (i, v) in reversed.iter().enumerate() {
                    diesel::insert_into(fragment_embeddings::table)
                        .values(NewFragmentEmbedding::new(i as i64 + 1, "p", "m", v, "h"))
                        .execute(c)?;
                }
                QueryResult::Ok(())
            })
            .unwrap();
    }
    let after = codes_search(&mut conn, "m", q, 3);
    assert_eq!(after, exact(&mut conn, "m", q, 3));
    let mirrored: Vec<i64> = before.iter().map(|id| 301 - id).collect();
    assert_eq!(after, mirrored, "the same vectors, found under their new ids");
}

#[test]
fn damaged_or_truncated_codes_are_rebuilt_never_trusted() {
    let data = clustered(35, 700, DIMS, 7);
    let (_dir, path) = database(&data, "m");
    let q = &clustered(35, 701, DIMS, 7)[700];
    let mut conn = open(&path);
    let want = exact(&mut conn, "m", q, 5);
    assert_eq!(codes_search(&mut conn, "m", q, 5), want);
    for damage in [
        "UPDATE fragment_embeddings_idx_codes SET data = substr(data, 1, 100) WHERE chunk = 0",
        "UPDATE fragment_embeddings_idx_codes SET data = substr(data, 1, length(data) - 1) || X'00' WHERE chunk = 1",
        "DELETE FROM fragment_embeddings_idx_codes WHERE chunk = 1",
        "UPDATE fragment_embeddings_idx_codes SET data = X'00' WHERE chunk = -1",
        "UPDATE fragment_embeddings_idx_codes SET data = zeroblob(48) WHERE chunk = -2",
        "DELETE FROM fragment_embeddings_idx_codes WHERE chunk = -2",
        "DROP TABLE fragment_embeddings_idx_codes",
    ] {
        sqlite3(&path, damage);
        // A process that has not loaded them yet (this one's copy is of the codes before the damage).
        sqlite::clear_codes_cache();
        let (ids, events) = search(&mut conn, "m", q, 5);
        assert_eq!(ids, want, "after {damage}");
        assert!(events.iter().any(|e| e.contains("path=codes")), "after {damage}: {events:#?}");
        assert!(events.iter().any(|e| e.contains("quantized codes rebuilt")), "after {damage}: {events:#?}");
        let status = index_status(&mut conn).unwrap();
        assert!(status.is_up_to_date(), "after {damage}: {status:?}");
        assert_eq!(status.codes_rows, Some(700));
    }
}

#[test]
fn a_partition_filter_gives_k_rows_when_k_rows_match() {
    // 2000 rows of a common model, 12 of a rare one, all alike: the rare ones must come from the scan's
    // filter, not from a top-k of everything filtered afterwards.
    let mut data = clustered(36, 2012, DIMS, 4);
    let rare = data.split_off(2000);
    let (_dir, path) = database(&data, "common");
    let mut conn = open(&path);
    let rare_ids = insert(&mut conn, &rare, "rare");
    let q = &data[0];
    let found = codes_search(&mut conn, "rare", q, 10);
    assert_eq!(found.len(), 10);
    assert!(found.iter().all(|id| rare_ids.contains(id)));
    assert_eq!(found, exact(&mut conn, "rare", q, 10));
    assert_eq!(codes_search(&mut conn, "rare", q, 50).len(), 12, "every matching row, no more");
    assert!(codes_search(&mut conn, "none", q, 5).is_empty());

    // A fragment filter (an allow list in the scan) among the common model.
    let wanted: Vec<i64> = (1..=2000).filter(|i| i % 97 == 0).collect();
    let hits = Search::new("p", "common", q).k(7).fragment_ids(&wanted).run(&mut conn).unwrap();
    assert_eq!(hits.len(), 7);
    assert!(hits.iter().all(|h| wanted.contains(&h.fragment_id)));
    let exact_hits =
        Search::new("p", "common", q).k(7).fragment_ids(&wanted).strategy(Strategy::Exact).run(&mut conn).unwrap();
    let ids = |hits: &[diesel_vector::search::Neighbor]| hits.iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids(&hits), ids(&exact_hits));
}

#[test]
fn recall_against_the_exact_path_on_generated_data() {
    // 4000 rows of the tests' clustered generator (a shared direction, topics and subtopics), queries
    // drawn from the same structure. Measured recall@10 is 1.000 (BENCHMARKS.md); the threshold leaves
    // room for a different CPU's SIMD level, never for a broken index.
    let all = clustered(37, 4030, DIMS, 40);
    let (data, queries) = all.split_at(4000);
    let (_dir, path) = database(data, "m");
    let mut conn = open(&path);
    let mut hits = 0;
    for q in queries {
        let want = exact(&mut conn, "m", q, 10);
        let got = codes_search(&mut conn, "m", q, 10);
        hits += got.iter().filter(|id| want.contains(id)).count();
    }
    let recall = hits as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "recall@10 {recall}");
}

#[test]
fn the_portable_fallback_finds_what_the_detected_level_finds() {
    let all = clustered(38, 3010, DIMS, 30);
    let (data, queries) = all.split_at(3000);
    let (_dir, path) = database(data, "m");
    let mut conn = open(&path);
    let mut here = Vec::new();
    for q in queries {
        let (ids, events) = search(&mut conn, "m", q, 10);
        assert!(events.iter().any(|e| e.contains("path=codes")));
        here.push(ids);
    }
    let child = spawn_helper(
        "codes::helper_process_searches_with_portable_kernels",
        &[("DV_CODES_DB", &path), (diesel_vector::simd::LEVEL_ENV, "portable")],
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The test harness prints its own prefix on the same line.
    let line = stdout.lines().find_map(|l| l.split_once("ids [").map(|(_, rest)| rest));
    let line = line.unwrap_or_else(|| panic!("no results in {stdout}"));
    assert_eq!(format!("ids [{line}"), format!("ids {here:?}"));
}

#[test]
#[ignore = "run in a child process by the_portable_fallback_finds_what_the_detected_level_finds"]
fn helper_process_searches_with_portable_kernels() {
    let path = std::env::var("DV_CODES_DB").expect("spawned with DV_CODES_DB");
    assert_eq!(diesel_vector::simd::Simd::detect().level(), diesel_vector::simd::Level::Portable);
    let mut conn = open(&path);
    let all = clustered(38, 3010, DIMS, 30);
    let mut found = Vec::new();
    for q in &all[3000..] {
        let (ids, events) = search(&mut conn, "m", q, 10);
        let span = events.iter().find(|e| e.starts_with("SPAN diesel_vector::search search")).expect("the span");
        assert!(span.contains("path=codes") && span.contains("simd=portable"), "{span}");
        assert!(span.contains("recall_estimate=") && span.contains("duration_ms="), "{span}");
        found.push(ids);
    }
    println!("ids {found:?}");
}

#[test]
fn connections_of_one_process_share_one_copy_and_see_each_others_writes() {
    let data = clustered(39, 500, DIMS, 5);
    let (_dir, path) = database(&data, "m");
    let mut a = open(&path);
    let mut b = open(&path);
    let q = &clustered(39, 501, DIMS, 5)[500];
    assert_eq!(codes_search(&mut a, "m", q, 3), codes_search(&mut b, "m", q, 3));
    let added = insert(&mut a, std::slice::from_ref(q), "m")[0];
    assert_eq!(codes_search(&mut b, "m", q, 3)[0], added, "b sees a's write (b's search syncs it)");
    diesel::delete(fragment_embeddings::table.find(added)).execute(&mut b).unwrap();
    assert!(!codes_search(&mut a, "m", q, 3).contains(&added));
}

#[test]
fn an_in_memory_database_searches_through_its_own_codes() {
    let mut conn = crate::conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let data = clustered(40, 1200, DIMS, 6);
    insert(&mut conn, &data, "m");
    let q = &clustered(40, 1201, DIMS, 6)[1200];
    let got = codes_search(&mut conn, "m", q, 10);
    assert_eq!(got, exact(&mut conn, "m", q, 10));
    // A second in-memory database has codes of its own: nothing is shared by the empty file name.
    let mut other = crate::conn();
    migrations::run_pending_migrations(&mut other).unwrap();
    insert(&mut other, &data[..600], "m");
    let theirs = codes_search(&mut other, "m", q, 10);
    assert!(theirs.iter().all(|id| *id <= 600));
    assert_eq!(theirs, exact(&mut other, "m", q, 10));
    other.batch_execute("SELECT 1").unwrap();
}
