//! The exact scan of a database file divided between connections (`threads`): the same rows as one
//! connection finds, in the same order, with filters and gaps in the ids; on this connection alone where
//! another could not see the same rows (a transaction, a function only this connection knows, a table of
//! its `temp` schema, a database in memory).

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_vector::index::{generate, IndexSpec, Metric, PgIndex, SqliteIndex};
use diesel_vector::search::{self, Hit, Strategy};
use diesel_vector::{sqlite, Vector};

use crate::common::documents::{self as fixture, documents, Doc, SQLITE_TABLE};
use crate::common::telemetry;
use crate::insert_docs;
use crate::EXTENSION_REGISTRATION;

fn open(path: &str) -> SqliteConnection {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    sqlite::establish(path).unwrap()
}

/// The rows a search under `metric` can return: those with a vector, and under cosine a direction too.
fn searchable(docs: &[Doc], metric: Metric) -> usize {
    let has_direction = |v: &diesel_vector::Vector| v.as_slice().iter().any(|x| *x != 0.0);
    docs.iter().filter(|d| d.embedding.as_ref().is_some_and(|v| metric != Metric::Cosine || has_direction(v))).count()
}

/// A database file with `docs` in `documents`, its index declared `codes`.
fn database(docs: &[Doc], metric: Metric) -> (tempfile::TempDir, String, IndexSpec) {
    database_keeping(docs, metric, SqliteIndex::CODES)
}

/// The same, its index keeping the structures `kept`.
fn database_keeping(docs: &[Doc], metric: Metric, kept: SqliteIndex) -> (tempfile::TempDir, String, IndexSpec) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db").to_str().unwrap().to_owned();
    let spec = fixture::spec(metric, PgIndex::Hnsw, kept);
    let mut conn = open(&path);
    conn.batch_execute(SQLITE_TABLE).unwrap();
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    insert_docs!(&mut conn, docs);
    (dir, path, spec)
}

/// The search's `connections` as its span recorded it (absent: one connection, never divided).
fn connections(events: &[String]) -> Option<usize> {
    let line = events.iter().find(|e| e.contains("connections="))?;
    let value = line.split("connections=").nth(1)?;
    value.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn exact<'a>(spec: &'a IndexSpec, q: &'a Vector, k: usize, threads: usize) -> diesel_vector::search::IndexSearch<'a> {
    spec.search(q).k(k).strategy(Strategy::Exact).threads(threads)
}

fn pairs(hits: &[Hit]) -> Vec<(i64, u64)> {
    hits.iter().map(|h| (h.id, h.distance.to_bits())).collect()
}

#[test]
fn a_divided_scan_finds_the_rows_one_connection_finds_in_the_same_order() {
    let mut docs = fixture::docs(1200, 31);
    // Gaps and far-apart ids: parts divide the rowids' span, not the rows.
    docs.retain(|d| !(300..700).contains(&d.id));
    docs.push(Doc { id: 1_000_000, lang: "fr", year: 2020, embedding: docs[10].embedding.clone() });
    for metric in [Metric::Cosine, Metric::L2] {
        let (_dir, path, spec) = database(&docs, metric);
        let mut conn = open(&path);
        for q in fixture::queries(31, 1200, 3) {
            for k in [1, 10, 40] {
                let one = exact(&spec, &q, k, 1).run(&mut conn).unwrap();
                assert_eq!(one.len(), k);
                for threads in [2, 3, 7] {
                    let (hits, events) = telemetry::capture(|| exact(&spec, &q, k, threads).run(&mut conn).unwrap());
                    assert_eq!(pairs(&hits), pairs(&one), "{metric} k={k} threads={threads}");
                    assert_eq!(connections(&events), Some(threads), "{events:?}");
                    let fr = exact(&spec, &q, k, threads).filter_eq("lang", "fr").run(&mut conn).unwrap();
                    let fr_one = exact(&spec, &q, k, 1).filter_eq("lang", "fr").run(&mut conn).unwrap();
                    assert_eq!(pairs(&fr), pairs(&fr_one));
                    assert!(fr.iter().all(|h| h.id % 5 == 0 || h.id == 1_000_000), "{fr:?}");
                }
            }
        }
        // A `k` beyond the rows (up to `usize::MAX`) gives every row, divided or not.
        let q = docs[10].embedding.clone().unwrap();
        let searchable = searchable(&docs, metric);
        for k in [1_000_000_000, usize::MAX] {
            let all = exact(&spec, &q, k, 3).run(&mut conn).unwrap();
            assert_eq!(all.len(), searchable, "k={k}");
            assert_eq!(pairs(&all), pairs(&exact(&spec, &q, k, 1).run(&mut conn).unwrap()), "k={k}");
        }
        // The row far from the others is found by the part that holds it.
        let hits = exact(&spec, &q, 2, 4).run(&mut conn).unwrap();
        assert_eq!(
            search::ids(&hits).iter().copied().collect::<std::collections::BTreeSet<_>>(),
            [11, 1_000_000].into()
        );
    }
}

#[test]
fn an_index_keeping_a_copy_of_the_vectors_divides_its_exact_scan_too() {
    let docs = fixture::docs(1500, 34);
    let (_dir, path, spec) = database_keeping(&docs, Metric::Cosine, SqliteIndex::CODES_AND_VECTORS);
    let mut conn = open(&path);
    sqlite::sync(&mut conn, &spec).unwrap();
    for q in fixture::queries(34, 1500, 3) {
        let one = exact(&spec, &q, 10, 1).run(&mut conn).unwrap();
        assert_eq!(one.len(), 10);
        for threads in [2, 3] {
            let (hits, events) = telemetry::capture(|| exact(&spec, &q, 10, threads).run(&mut conn).unwrap());
            assert_eq!(pairs(&hits), pairs(&one), "threads={threads}");
            assert_eq!(connections(&events), Some(threads), "{events:?}");
            assert!(events.iter().any(|e| e.contains("vectors_copy=true")), "read from the copy: {events:?}");
            let fr = exact(&spec, &q, 10, threads).filter_eq("lang", "fr").run(&mut conn).unwrap();
            assert_eq!(pairs(&fr), pairs(&exact(&spec, &q, 10, 1).filter_eq("lang", "fr").run(&mut conn).unwrap()));
        }
    }
    let q = fixture::queries(34, 1500, 1).remove(0);
    let every = exact(&spec, &q, usize::MAX, 3).run(&mut conn).unwrap();
    assert_eq!(pairs(&every), pairs(&exact(&spec, &q, usize::MAX, 1).run(&mut conn).unwrap()));
    assert_eq!(every.len(), searchable(&docs, Metric::Cosine));
    // Another connection writes and syncs: the next divided scan reads the new rows, not the old copy.
    let q = fixture::queries(34, 1500, 1).remove(0);
    let mut writer = open(&path);
    fixture::insert_one(&mut writer, 9000, &q);
    sqlite::sync(&mut writer, &spec).unwrap();
    let hits = exact(&spec, &q, 3, 3).run(&mut conn).unwrap();
    assert_eq!(hits[0].id, 9000);
    assert_eq!(pairs(&hits), pairs(&exact(&spec, &q, 3, 1).run(&mut conn).unwrap()));
}

#[test]
fn a_search_inside_a_transaction_reads_what_the_transaction_wrote() {
    let docs = fixture::docs(600, 32);
    let (_dir, path, spec) = database(&docs, Metric::Cosine);
    let mut conn = open(&path);
    let q = fixture::queries(32, 600, 1).remove(0);
    let insert = |conn: &mut SqliteConnection, id: i64| fixture::insert_one(conn, id, &q);
    // Diesel's transaction.
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        insert(conn, 5000);
        let (hits, events) = telemetry::capture(|| exact(&spec, &q, 3, 4).run(conn).unwrap());
        assert_eq!(hits[0].id, 5000);
        assert_eq!(connections(&events), None, "inside a transaction, one connection: {events:?}");
        Err::<(), _>(diesel::result::Error::RollbackTransaction)
    })
    .unwrap_err();
    // One opened by hand, which Diesel does not know of.
    conn.batch_execute("BEGIN").unwrap();
    insert(&mut conn, 5001);
    let hits = exact(&spec, &q, 3, 4).run(&mut conn).unwrap();
    assert_eq!(hits[0].id, 5001);
    conn.batch_execute("ROLLBACK").unwrap();
    // Neither row is left, and the connection divides again.
    let (hits, events) = telemetry::capture(|| exact(&spec, &q, 3, 4).run(&mut conn).unwrap());
    assert!(hits.iter().all(|h| h.id < 5000), "{hits:?}");
    assert_eq!(connections(&events), Some(4));
}

diesel::define_sql_function! {
    /// Known only to the connection that registers it.
    fn only_here(id: BigInt) -> Bool;
}

#[test]
fn what_other_connections_cannot_read_is_read_on_this_one() {
    diesel_vector::vector_index! {
        static DOCUMENTS: documents {
            column: embedding,
            dims: 768,
            partition_by: [lang],
            sqlite_index: CODES,
        }
    }
    let docs = fixture::docs(600, 33);
    let (_dir, path, _) = database(&docs, Metric::Cosine);
    let mut conn = open(&path);
    only_here_utils::register_impl(&mut conn, |id: i64| id % 3 == 0).unwrap();
    let q = fixture::queries(33, 600, 1).remove(0);
    let typed = |conn: &mut SqliteConnection, threads: usize| {
        DOCUMENTS.search(&q).k(10).strategy(Strategy::Exact).threads(threads).filter(only_here(documents::id)).run(conn)
    };
    let one = typed(&mut conn, 1).unwrap();
    let divided = typed(&mut conn, 3).unwrap();
    assert_eq!(pairs(&divided), pairs(&one));
    assert!(divided.iter().all(|h| h.id % 3 == 0), "{divided:?}");

    // A temporary table of the same name is what this connection reads: the others would read another.
    let spec = DOCUMENTS.spec();
    conn.batch_execute("CREATE TEMP TABLE documents AS SELECT * FROM main.documents WHERE id <= 100").unwrap();
    let (hits, events) = telemetry::capture(|| exact(spec, &q, 10, 3).run(&mut conn).unwrap());
    assert!(hits.iter().all(|h| h.id <= 100), "{hits:?}");
    assert_eq!(connections(&events), None);
}

#[test]
fn a_database_in_memory_and_a_table_with_a_rowid_column_are_searched_alike() {
    let docs = fixture::docs(300, 34);
    let spec = fixture::spec(Metric::L2, PgIndex::Hnsw, SqliteIndex::CODES);
    let mut memory = crate::conn();
    memory.batch_execute(SQLITE_TABLE).unwrap();
    memory.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    insert_docs!(&mut memory, &docs);
    let q = fixture::queries(34, 300, 1).remove(0);
    let (hits, events) = telemetry::capture(|| exact(&spec, &q, 10, 4).run(&mut memory).unwrap());
    assert_eq!(pairs(&hits), pairs(&exact(&spec, &q, 10, 1).run(&mut memory).unwrap()));
    assert_eq!(connections(&events), None);

    // A table whose own column is named `rowid`: the parts are divided by `_rowid_`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rowid.db").to_str().unwrap().to_owned();
    let mut conn = open(&path);
    let table = "CREATE TABLE items (id INTEGER PRIMARY KEY, \"rowid\" INTEGER NOT NULL)";
    let items = IndexSpec::builder("items", "embedding", 4).metric(Metric::L2).build().unwrap();
    conn.batch_execute(table).unwrap();
    conn.batch_execute(&generate::render(&items, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    for id in 1..=500_i64 {
        let v = Vector::new(vec![id as f32, 0.0, 1.0, 2.0]).unwrap();
        diesel::sql_query("INSERT INTO items (id, \"rowid\", embedding) VALUES (?, ?, ?)")
            .bind::<BigInt, _>(id)
            .bind::<BigInt, _>(1000 - id)
            .bind::<diesel_vector::sql_types::Vector, _>(&v)
            .execute(&mut conn)
            .unwrap();
    }
    let q = Vector::new(vec![250.2, 0.0, 1.0, 2.0]).unwrap();
    let (hits, events) =
        telemetry::capture(|| items.search(&q).k(3).strategy(Strategy::Exact).threads(4).run(&mut conn).unwrap());
    assert_eq!(search::ids(&hits), [250, 251, 249]);
    assert_eq!(connections(&events), Some(4));
}

#[test]
fn a_database_file_replaced_at_its_path_is_read_anew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db").to_str().unwrap().to_owned();
    let spec = fixture::spec(Metric::L2, PgIndex::Hnsw, SqliteIndex::CODES);
    let q = fixture::queries(35, 400, 1).remove(0);
    for (round, seed) in [(0, 35), (1, 36)] {
        // The second file replaces the first at the same path while this process keeps connections to it.
        let _ = std::fs::remove_file(&path);
        let docs = fixture::docs(400, seed);
        let mut conn = open(&path);
        conn.batch_execute(SQLITE_TABLE).unwrap();
        conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
        insert_docs!(&mut conn, &docs);
        let expected = exact(&spec, &q, 10, 1).run(&mut conn).unwrap();
        for _ in 0..2 {
            let (hits, events) = telemetry::capture(|| exact(&spec, &q, 10, 3).run(&mut conn).unwrap());
            assert_eq!(pairs(&hits), pairs(&expected), "round {round}");
            assert_eq!(connections(&events), Some(3), "round {round}");
        }
    }
    sqlite::close_scan_connections();
}

#[test]
fn a_divided_scan_never_mixes_two_snapshots_while_another_connection_commits() {
    never_mixes_two_snapshots(SqliteIndex::CODES);
}

#[test]
fn a_divided_scan_of_the_copy_of_the_vectors_never_mixes_two_snapshots() {
    never_mixes_two_snapshots(SqliteIndex::CODES_AND_VECTORS);
}

/// Searches while another connection moves a row to the query and another away from it in each commit
/// (and syncs the index after each, when it keeps a copy of the vectors that the exact scan reads: between
/// the two commits the copy is behind the table, and the search must not answer from it).
fn never_mixes_two_snapshots(kept: SqliteIndex) {
    let docs = fixture::docs(1200, 37);
    let (_dir, path, spec) = database_keeping(&docs, Metric::L2, kept);
    let target = fixture::queries(37, 1200, 1).remove(0);
    let pair = (docs.first().unwrap().id, docs.last().unwrap().id);
    let after_commit = |conn: &mut SqliteConnection| {
        if kept.vectors {
            // The copy follows in the next commit (the search may sync it first: then there is nothing to
            // do), and stays the table's for a moment before the next change.
            sqlite::sync(conn, &spec).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    };
    fixture::while_two_rows_swap(open(&path), pair, &target, after_commit, || {
        let mut conn = open(&path);
        let (mut divided, mut from_copy) = (0, 0);
        for _ in 0..200 {
            let (hits, events) = telemetry::capture(|| exact(&spec, &target, 2, 3).run(&mut conn).unwrap());
            let at_query = fixture::at_distance_zero(&hits);
            assert_eq!(at_query.len(), 1, "one snapshot has exactly one row at the query: {hits:?}");
            divided += usize::from(connections(&events) == Some(3));
            from_copy += usize::from(events.iter().any(|e| e.contains("vectors_copy=true")));
        }
        // Most searches still divide (a commit between the two readings sends one to a single connection).
        assert!(divided > 0, "no search was divided");
        // And an index that keeps a copy answers from it (when the table has no change it does not hold).
        assert_eq!(from_copy > 0, kept.vectors, "{from_copy} searches answered from the copy");
    });
}

#[test]
fn a_filter_an_index_serves_is_read_through_the_index_on_one_connection() {
    let docs = fixture::docs(1000, 38);
    let (_dir, path, spec) = database(&docs, Metric::Cosine);
    let mut conn = open(&path);
    conn.batch_execute("CREATE INDEX documents_lang ON documents (lang)").unwrap();
    let q = fixture::queries(38, 1000, 1).remove(0);
    let one = exact(&spec, &q, 10, 1).filter_eq("lang", "fr").run(&mut conn).unwrap();
    let (hits, events) = telemetry::capture(|| exact(&spec, &q, 10, 3).filter_eq("lang", "fr").run(&mut conn).unwrap());
    assert_eq!(pairs(&hits), pairs(&one));
    // Every range would walk the index again: the index's rows are read on this connection.
    assert_eq!(connections(&events), None, "{events:?}");
    // Without the filter the whole table is read, divided.
    let (_, events) = telemetry::capture(|| exact(&spec, &q, 10, 3).run(&mut conn).unwrap());
    assert_eq!(connections(&events), Some(3));
}

/// A `bit` column's exact scan, divided between connections: Hamming distances tie often, and the pieces'
/// answers merge into the one-connection order (distance, then id), which is the SQL function's.
#[test]
fn a_divided_scan_of_bit_strings_keeps_the_ties_in_id_order() {
    use diesel_vector::index::Element;
    use diesel_vector::Bit;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hashes.db").to_str().unwrap().to_owned();
    let spec = IndexSpec::builder("hashes", "h", 64).element(Element::Bit).build().unwrap();
    let mut conn = open(&path);
    conn.batch_execute("CREATE TABLE hashes (id INTEGER PRIMARY KEY, h BLOB)").unwrap();
    conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for id in 1..=20_000i64 {
            let bytes = next().to_be_bytes();
            diesel::sql_query("INSERT INTO hashes (id, h) VALUES (?, ?)")
                .bind::<BigInt, _>(id)
                .bind::<diesel::sql_types::Binary, _>(bytes.to_vec())
                .execute(conn)?;
        }
        Ok(())
    })
    .unwrap();
    for _ in 0..4 {
        let q = Bit::from_bytes(&next().to_be_bytes());
        for metric in [Metric::Hamming, Metric::Jaccard] {
            let run = |conn: &mut SqliteConnection, threads| {
                telemetry::capture(|| {
                    spec.search(&q).k(25).metric(metric).strategy(Strategy::Exact).threads(threads).run(conn).unwrap()
                })
            };
            let (divided, events) = run(&mut conn, 2);
            assert_eq!(connections(&events), Some(2), "{events:#?}");
            let (alone, _) = run(&mut conn, 1);
            assert_eq!(divided, alone, "{metric}");
            let function = if metric == Metric::Hamming {
                "vec_distance_hamming(vec_bit(h), vec_bit(?))"
            } else {
                "diesel_vector_bit_jaccard_distance(h, ?)"
            };
            #[derive(QueryableByName, Debug, PartialEq)]
            struct Row {
                #[diesel(sql_type = BigInt)]
                id: i64,
                #[diesel(sql_type = diesel::sql_types::Double)]
                d: f64,
            }
            let expected: Vec<Row> =
                diesel::sql_query(format!("SELECT id, {function} AS d FROM hashes ORDER BY d, id LIMIT 25"))
                    .bind::<diesel::sql_types::Binary, _>(q.as_bytes().to_vec())
                    .load(&mut conn)
                    .unwrap();
            let got: Vec<Row> = divided.iter().map(|h| Row { id: h.id, d: h.distance }).collect();
            assert_eq!(got, expected, "{metric}");
        }
    }
}
