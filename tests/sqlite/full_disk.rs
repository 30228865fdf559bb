//! A full disk, made deterministic with `PRAGMA max_page_count`: every write operation of the crate
//! reports SQLite's own error ("database or disk is full"), keeps nothing of the failed transaction, and
//! leaves the connection usable once there is room again. A search, which only reads, still answers.
//!
//! SQLite rolls a transaction back by itself on SQLITE_FULL; Diesel's rollback then failed and its error
//! ("cannot rollback - no transaction is active", "Cannot perform this operation outside of a
//! transaction") replaced the real one.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::SqliteConnection;
use diesel_vector::models::{insert_embeddings, NewFragmentEmbedding};
use diesel_vector::schema::fragments;
use diesel_vector::{migrations, Vector};

use crate::common::smooth;
use crate::EXTENSION_REGISTRATION;

const DISK_FULL: &str = "database or disk is full";

fn file_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db").to_str().unwrap().to_owned();
    (dir, path)
}

fn open(path: &str) -> SqliteConnection {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    diesel_vector::sqlite::establish(path).unwrap()
}

fn pages(conn: &mut SqliteConnection) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        page_count: i64,
    }
    diesel::sql_query("SELECT page_count FROM pragma_page_count").get_result::<N>(conn).unwrap().page_count
}

/// No page beyond those the file has now (or `extra` more).
fn fill_disk(conn: &mut SqliteConnection, extra: i64) {
    let limit = pages(conn) + extra;
    conn.batch_execute(&format!("PRAGMA max_page_count = {limit}")).unwrap();
}

fn make_room(conn: &mut SqliteConnection) {
    conn.batch_execute("PRAGMA max_page_count = 1073741823").unwrap();
}

fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result::<N>(conn).unwrap().n
}

fn fragments_with_vectors(conn: &mut SqliteConnection, n: usize) -> (Vec<i64>, Vec<Vector>) {
    let ids = (0..n)
        .map(|i| {
            diesel::insert_into(fragments::table)
                .values(fragments::content.eq(format!("fragment {i}")))
                .returning(fragments::id)
                .get_result(conn)
                .unwrap()
        })
        .collect();
    (ids, (0..n).map(|i| smooth(1536, i as f32)).collect())
}

/// SQLite's own error, or sqlite-vec's for a failed write of its index (it replaces SQLite's message).
#[track_caller]
fn assert_disk_full(error: &dyn std::error::Error) {
    let text = error.to_string();
    let vec0 = "sqlite-vec error: Could not insert a new vector chunk";
    assert!(text.contains(DISK_FULL) || text.contains(vec0), "SQLite's own error is kept: {text}");
    assert!(!text.contains("rollback") && !text.contains("outside of a transaction"), "{text}");
}

#[test]
fn a_bulk_insert_into_a_full_database_reports_the_full_disk_and_writes_nothing() {
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    migrations::run_pending_migrations(&mut conn).unwrap();
    let (ids, vectors) = fragments_with_vectors(&mut conn, 40);
    let hashes: Vec<String> = (0..40).map(|i| format!("h{i}")).collect();
    let rows: Vec<NewFragmentEmbedding<'_>> =
        (0..40).map(|i| NewFragmentEmbedding::new(ids[i], "p", "m", &vectors[i], &hashes[i])).collect();
    fill_disk(&mut conn, 2);

    let err = insert_embeddings(&mut conn, &rows).unwrap_err();
    assert_disk_full(&err);
    assert_eq!(count(&mut conn, "fragment_embeddings"), 0, "all or nothing");

    make_room(&mut conn);
    assert_eq!(insert_embeddings(&mut conn, &rows).unwrap(), 40, "the connection works again");
}

#[test]
fn migrations_on_a_full_database_report_the_full_disk_and_run_once_there_is_room() {
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    fill_disk(&mut conn, 3);

    let err = migrations::run_pending_migrations(&mut conn).unwrap_err();
    assert_disk_full(&err);
    assert!(migrations::migration_status(&mut conn).unwrap().iter().all(|m| !m.applied));

    make_room(&mut conn);
    assert_eq!(migrations::run_pending_migrations(&mut conn).unwrap().len(), 4);
}

#[test]
fn reverting_on_a_full_database_reports_the_full_disk() {
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    migrations::run_pending_migrations(&mut conn).unwrap();
    let (ids, vectors) = fragments_with_vectors(&mut conn, 30);
    let hashes: Vec<String> = (0..30).map(|i| format!("h{i}")).collect();
    let rows: Vec<NewFragmentEmbedding<'_>> =
        (0..30).map(|i| NewFragmentEmbedding::new(ids[i], "p", "m", &vectors[i], &hashes[i])).collect();
    insert_embeddings(&mut conn, &rows).unwrap();
    // Dropping a table with rows writes pages (the freelist); with no page to spare that fails.
    fill_disk(&mut conn, 0);
    conn.batch_execute("PRAGMA journal_mode = DELETE").unwrap();
    match migrations::revert_last_migration(&mut conn) {
        Err(err) => {
            assert_disk_full(&err);
            make_room(&mut conn);
            assert_eq!(count(&mut conn, "fragment_embeddings"), 30, "nothing of the revert is kept");
        }
        // Reverting frees pages rather than taking some: SQLite may manage without a new page.
        Ok(reverted) => assert!(reverted.is_some()),
    }
    make_room(&mut conn);
    assert!(migrations::run_pending_migrations(&mut conn).is_ok(), "the connection still works");
}

#[cfg(feature = "sqlite-vec")]
#[test]
fn an_index_sync_on_a_full_database_reports_the_full_disk_and_keeps_the_queue() {
    use diesel_vector::sqlite::{index_status, sync_index};

    let (_dir, path) = file_db();
    let mut conn = open(&path);
    migrations::run_pending_migrations(&mut conn).unwrap();
    let (ids, vectors) = fragments_with_vectors(&mut conn, 60);
    let hashes: Vec<String> = (0..60).map(|i| format!("h{i}")).collect();
    let rows: Vec<NewFragmentEmbedding<'_>> =
        (0..60).map(|i| NewFragmentEmbedding::new(ids[i], "p", "m", &vectors[i], &hashes[i])).collect();
    insert_embeddings(&mut conn, &rows).unwrap();
    fill_disk(&mut conn, 1);

    let err = sync_index(&mut conn).unwrap_err();
    assert_disk_full(&err);
    let status = index_status(&mut conn).unwrap();
    assert!(status.codes_rows.is_none() && status.pending_changes == 60, "nothing of the sync is kept: {status:?}");

    make_room(&mut conn);
    let report = sync_index(&mut conn).unwrap();
    assert_eq!(report.applied, 60);
    assert!(index_status(&mut conn).unwrap().is_up_to_date());

    // More rows for a built index: the queue is applied in place, and a full disk must not be taken for
    // damaged codes (rebuilt after SQLite had already ended the transaction), nor leave this process's copy
    // of them ahead of the file.
    let (ids, vectors) = fragments_with_vectors(&mut conn, 60);
    let rows: Vec<NewFragmentEmbedding<'_>> =
        (0..60).map(|i| NewFragmentEmbedding::new(ids[i], "p", "m2", &vectors[i], &hashes[i])).collect();
    insert_embeddings(&mut conn, &rows).unwrap();
    fill_disk(&mut conn, 0);
    let err = sync_index(&mut conn).unwrap_err();
    assert_disk_full(&err);
    make_room(&mut conn);
    let status = index_status(&mut conn).unwrap();
    assert!(status.codes_current && status.pending_changes == 60, "{status:?}");
    assert_eq!(status.codes_rows, Some(60), "the index is as it was");
    assert_eq!(sync_index(&mut conn).unwrap().applied, 60);
    let q = &vectors[7];
    let hits = diesel_vector::search::Search::new("p", "m2", q).k(1).run(&mut conn).unwrap();
    assert_eq!(hits[0].fragment_id, ids[7]);
}

#[cfg(feature = "jsonl")]
#[test]
fn an_import_into_a_full_database_reports_the_full_disk_and_keeps_earlier_batches() {
    use diesel_vector::copy::CopyOptions;
    use diesel_vector::database::DatabaseConnection;

    // The lines: an export of 50 fragments with an embedding each.
    let (_source_dir, source) = file_db();
    let mut source = {
        let mut c = open(&source);
        migrations::run_pending_migrations(&mut c).unwrap();
        let (ids, vectors) = fragments_with_vectors(&mut c, 50);
        let rows: Vec<NewFragmentEmbedding<'_>> =
            (0..50).map(|i| NewFragmentEmbedding::new(ids[i], "p", "m", &vectors[i], "h")).collect();
        insert_embeddings(&mut c, &rows).unwrap();
        DatabaseConnection::Sqlite(c)
    };
    let mut lines = Vec::new();
    diesel_vector::jsonl::export(&mut source, &mut lines, &CopyOptions::default(), &mut |_, _| {}).unwrap();

    let (_dir, path) = file_db();
    let mut conn = DatabaseConnection::Sqlite(open(&path));
    conn.run_pending_migrations().unwrap();
    let DatabaseConnection::Sqlite(c) = &mut conn else { unreachable!() };
    fill_disk(c, 12);

    let options = CopyOptions::default().batch_size(10);
    let err = diesel_vector::jsonl::import(&mut conn, &mut lines.as_slice(), &options, &mut |_| {}).unwrap_err();
    assert_disk_full(&err);
    let DatabaseConnection::Sqlite(c) = &mut conn else { unreachable!() };
    // Tables come in their dependency order, fragments first, each in whole batches of 10.
    let (fragments, embeddings) = (count(c, "fragments"), count(c, "fragment_embeddings"));
    assert!(fragments % 10 == 0 && embeddings % 10 == 0, "whole batches only: {fragments}, {embeddings}");
    assert!(embeddings < 50 && (embeddings == 0 || fragments == 50), "{fragments}, {embeddings}");

    make_room(c);
    let report = diesel_vector::jsonl::import(&mut conn, &mut lines.as_slice(), &options, &mut |_| {}).unwrap();
    assert_eq!(report.inserted(), (100 - fragments - embeddings) as u64, "the rest, fragments and embeddings");
}

#[test]
fn a_search_on_a_full_disk_answers_from_what_it_can_read() {
    use diesel_vector::index::IndexSpec;
    use diesel_vector::search::Strategy;

    // A table of notes whose index is built; then more notes, and no room left for the index to take them.
    let (_dir, path) = file_db();
    let mut conn = open(&path);
    let notes = IndexSpec::builder("notes", "embedding", 64).build().unwrap();
    let vectors = crate::common::clustered(5, 3000, 64, 30);
    crate::common::vector_table(&mut conn, &notes, vectors[..2000].to_vec());
    let q = vectors[2500].clone();
    notes.search(&q).k(5).run(&mut conn).unwrap();
    let insert = "INSERT INTO notes (id, embedding) VALUES (?, ?)";
    conn.transaction(|conn| {
        for (id, v) in (2001i64..).zip(&vectors[2000..]) {
            diesel::sql_query(insert)
                .bind::<BigInt, _>(id)
                .bind::<diesel_vector::sql_types::Vector, _>(v)
                .execute(conn)?;
        }
        QueryResult::Ok(())
    })
    .unwrap();
    fill_disk(&mut conn, 0);
    assert_disk_full(&diesel_vector::sqlite::sync(&mut conn, &notes).unwrap_err());

    // The search reads: the codes as they stand and the 1000 rows they do not hold yet, computed exactly.
    let exact = notes.search(&q).k(5).strategy(Strategy::Exact).run(&mut conn).unwrap();
    assert_eq!(exact[0].id, 2501, "the query's own row, written after the index was built");
    let hits = notes.search(&q).k(5).run(&mut conn).unwrap();
    assert_eq!(hits, exact);

    // Once there is room, the next search brings the index up to date.
    make_room(&mut conn);
    assert_eq!(notes.search(&q).k(5).run(&mut conn).unwrap(), exact);
    let status = diesel_vector::sqlite::status(&mut conn, &notes).unwrap();
    assert!(status.is_up_to_date(), "{status:?}");
}
