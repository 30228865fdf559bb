//! The codes and the copy of the vectors on real SQLite files, through the crate's own entry points.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text};

use super::*;
use crate::ann::{ExactScan, Neighbour};
use crate::index::{generate, SqliteIndex};

const DIMS: usize = 48;

/// splitmix64 in [-1, 1).
fn vectors(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut state = seed;
    let mut unit = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let centre: Vec<f32> = (0..DIMS).map(|_| unit()).collect();
    (0..n).map(|_| centre.iter().map(|c| 0.6 * c + 0.5 * unit()).collect()).collect()
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Db {
    _dir: tempfile::TempDir,
    conn: SqliteConnection,
    spec: IndexSpec,
}

fn db(kept: SqliteIndex) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut conn = super::super::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, embedding BLOB)").unwrap();
    let spec = IndexSpec::builder("docs", "embedding", DIMS as u64)
        .metric(crate::index::Metric::L2)
        .partition_by(["lang"])
        .sqlite_index(kept)
        .build()
        .unwrap();
    conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).unwrap();
    Db { _dir: dir, conn, spec }
}

fn put(conn: &mut SqliteConnection, id: i64, lang: &str, v: &[f32]) {
    diesel::sql_query("INSERT OR REPLACE INTO docs (id, lang, embedding) VALUES (?, ?, ?)")
        .bind::<BigInt, _>(id)
        .bind::<Text, _>(lang)
        .bind::<Binary, _>(blob(v))
        .execute(conn)
        .unwrap();
}

/// The exact top `k` from the copy of the vectors among the rows `filter` lets in, as the search asks for
/// them (here without reading the rows back).
fn from_copy(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    q: &[f32],
    k: usize,
    filter: &Filter<'_>,
    threads: Option<usize>,
) -> Result<Option<Vec<Neighbour>>, IndexError> {
    let allow = filter.allow.map(|ids| std::sync::Arc::new(ids.iter().copied().collect()));
    let rows_in = |_: &mut SqliteConnection| Ok(ScanFilter { partition: filter.partition, allow: allow.clone() });
    exact_from_vectors(conn, spec, q, k, threads, rows_in, |_, found| Ok(Some(found)))
}

/// The exact top `k` of `rows` in memory.
fn truth(rows: &[(i64, &str, Vec<f32>)], q: &[f32], k: usize, lang: Option<&str>) -> Vec<Neighbour> {
    let mut scan = ExactScan::new(crate::index::Metric::L2, q, k).unwrap();
    for (id, l, v) in rows {
        if lang.is_none_or(|want| want == *l) {
            scan.push(&[*id], v).unwrap();
        }
    }
    scan.finish()
}

#[test]
fn the_copy_of_the_vectors_follows_every_change_and_answers_exactly() {
    let mut db = db(SqliteIndex::CODES_AND_VECTORS);
    let data = vectors(1, 1300);
    let mut rows: Vec<(i64, &str, Vec<f32>)> =
        data.iter().enumerate().map(|(i, v)| (i as i64 + 1, if i % 3 == 0 { "fr" } else { "en" }, v.clone())).collect();
    db.conn
        .transaction(|c| {
            rows.iter().for_each(|(id, lang, v)| put(c, *id, lang, v));
            QueryResult::Ok(())
        })
        .unwrap();
    super::super::sync(&mut db.conn, &db.spec).unwrap();
    let q = &vectors(2, 1)[0];
    let fr = partition_filter(&db.spec, &[(0, Some("fr"))]);
    // On this connection alone (too few rows to divide by default), and in ranges of groups on two and
    // three connections at once.
    let check = |db: &mut Db, rows: &[(i64, &str, Vec<f32>)]| {
        for threads in [None, Some(2), Some(3)] {
            let all = from_copy(&mut db.conn, &db.spec, q, 15, &Filter::all(), threads).unwrap().unwrap();
            assert_eq!(all, truth(rows, q, 15, None), "{threads:?}");
            let filter = Filter { partition: fr, allow: None };
            let only_fr = from_copy(&mut db.conn, &db.spec, q, 15, &filter, threads).unwrap().unwrap();
            assert_eq!(only_fr, truth(rows, q, 15, Some("fr")), "{threads:?}");
            let some: Vec<i64> = rows.iter().map(|r| r.0).filter(|id| id % 7 == 0).collect();
            let allowed = Filter { partition: None, allow: Some(&some) };
            let only_some = from_copy(&mut db.conn, &db.spec, q, 15, &allowed, threads).unwrap().unwrap();
            let expected: Vec<(i64, &str, Vec<f32>)> = rows.iter().filter(|r| r.0 % 7 == 0).cloned().collect();
            assert_eq!(only_some, truth(&expected, q, 15, None), "{threads:?}");
        }
    };
    let file = database_file(&mut db.conn).unwrap();
    check(&mut db, &rows);
    // The extra connections read their parts and were kept for the next scan.
    assert_eq!(super::super::parallel::idle_connections(&file), 2);

    // Replacements, removals (the last row of a chunk moves into the hole), a NULL, new rows.
    for i in [0usize, 5, 255, 256, 700, 1299] {
        rows[i].2 = vectors(10 + i as u64, 1).remove(0);
        put(&mut db.conn, rows[i].0, rows[i].1, &rows[i].2);
    }
    for id in [2i64, 3, 300, 301, 1200] {
        db.conn.batch_execute(&format!("DELETE FROM docs WHERE id = {id}")).unwrap();
    }
    db.conn.batch_execute("UPDATE docs SET embedding = NULL WHERE id = 40").unwrap();
    rows.retain(|(id, _, _)| ![2, 3, 300, 301, 1200, 40].contains(id));
    for (i, v) in vectors(3, 20).into_iter().enumerate() {
        let id = 5000 + i as i64;
        put(&mut db.conn, id, "fr", &v);
        rows.push((id, "fr", v));
    }
    let report = super::super::sync(&mut db.conn, &db.spec).unwrap();
    assert!(!report.rebuilt);
    check(&mut db, &rows);

    // Another process's view: loaded from the file.
    clear_codes_cache();
    check(&mut db, &rows);
}

#[test]
fn a_copy_that_does_not_match_the_codes_is_not_used() {
    let mut db = db(SqliteIndex::CODES_AND_VECTORS);
    for (i, v) in vectors(4, 200).iter().enumerate() {
        put(&mut db.conn, i as i64 + 1, "en", v);
    }
    super::super::sync(&mut db.conn, &db.spec).unwrap();
    let q = &vectors(5, 1)[0];
    assert!(from_copy(&mut db.conn, &db.spec, q, 5, &Filter::all(), None).unwrap().is_some());
    let table = crate::index::quote(&db.spec.vectors_table());
    for damage in [
        format!("UPDATE {table} SET data = substr(data, 1, 100) WHERE chunk = 3"),
        format!("DELETE FROM {table} WHERE chunk = 4"),
        format!("DROP TABLE {table}"),
    ] {
        db.conn.batch_execute(&damage).unwrap();
        // Read on one connection or divided between three: a damaged copy answers neither way.
        for threads in [None, Some(3)] {
            let found = from_copy(&mut db.conn, &db.spec, q, 5, &Filter::all(), threads).unwrap();
            assert_eq!(found, None, "{damage} {threads:?}");
        }
        super::super::rebuild(&mut db.conn, &db.spec).unwrap();
        assert!(from_copy(&mut db.conn, &db.spec, q, 5, &Filter::all(), None).unwrap().is_some());
        assert!(from_copy(&mut db.conn, &db.spec, q, 5, &Filter::all(), Some(3)).unwrap().is_some());
    }
}

#[test]
fn an_index_without_the_copy_keeps_none() {
    let mut db = db(SqliteIndex::CODES);
    put(&mut db.conn, 1, "en", &vectors(6, 1)[0]);
    super::super::sync(&mut db.conn, &db.spec).unwrap();
    assert!(!db.conn.exists(&db.spec.vectors_table()).unwrap());
    assert_eq!(from_copy(&mut db.conn, &db.spec, &vectors(6, 1)[0], 1, &Filter::all(), None).unwrap(), None);
}

#[test]
fn partition_keys_match_on_the_fields_asked_for() {
    let two = IndexSpec::builder("t", "v", 4).partition_by(["a", "b"]).build().unwrap();
    let key = partition_key(&[Some("x".into()), Some("y".into())]);
    let a_only = partition_filter(&two, &[(0, Some("x"))]).unwrap();
    assert_eq!((key ^ a_only.key) & a_only.mask, 0);
    let b_other = partition_filter(&two, &[(1, Some("z"))]).unwrap();
    assert_ne!((key ^ b_other.key) & b_other.mask, 0);
    let null = partition_filter(&two, &[(1, None)]).unwrap();
    assert_eq!((partition_key(&[Some("x".into()), None]) ^ null.key) & null.mask, 0);
    assert_eq!(field_mask(0, 2) | field_mask(1, 2), u64::MAX);
    assert_eq!(field_mask(64, 70), 0, "columns past the 64th are checked at rerank only");
}

#[test]
fn a_halfvec_column_is_coded_and_copied_as_the_f32_its_elements_convert_to() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = super::super::establish(dir.path().join("h.db").to_str().unwrap()).unwrap();
    conn.batch_execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, embedding BLOB)").unwrap();
    let spec = IndexSpec::builder("docs", "embedding", DIMS as u64)
        .element(crate::index::Element::HalfVector)
        .metric(crate::index::Metric::L2)
        .partition_by(["lang"])
        .sqlite_index(SqliteIndex::CODES_AND_VECTORS)
        .build()
        .unwrap();
    conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).unwrap();
    let rows: Vec<(i64, &str, Vec<f32>)> = vectors(7, 600)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let halves: Vec<f32> = v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect();
            (i as i64 + 1, if i % 4 == 0 { "fr" } else { "en" }, halves)
        })
        .collect();
    for (id, lang, v) in &rows {
        let blob: Vec<u8> = v.iter().flat_map(|x| half::f16::from_f32(*x).to_bits().to_le_bytes()).collect();
        diesel::sql_query("INSERT INTO docs (id, lang, embedding) VALUES (?, ?, ?)")
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(lang)
            .bind::<Binary, _>(blob)
            .execute(&mut conn)
            .unwrap();
    }
    let report = super::super::sync(&mut conn, &spec).unwrap();
    assert_eq!(report.applied, 600);
    assert_eq!(stored_rows(&mut conn, &spec).unwrap(), Some(600));
    let q = &vectors(8, 1)[0];
    let copied = from_copy(&mut conn, &spec, q, 12, &Filter::all(), None).unwrap().expect("the copy answers");
    assert_eq!(copied, truth(&rows, q, 12, None));
    let fr = Filter { partition: partition_filter(&spec, &[(0, Some("fr"))]), allow: None };
    assert_eq!(from_copy(&mut conn, &spec, q, 12, &fr, None).unwrap().unwrap(), truth(&rows, q, 12, Some("fr")));
}
