//! The same `documents` on PostgreSQL and SQLite give the same neighbours, in the same order, through
//! the generic search: every metric, with and without a partition filter, every path SQLite takes.

use diesel::connection::SimpleConnection;
use diesel_vector::index::{generate, IndexSpec, Metric, PgIndex, SqliteIndex};
use diesel_vector::search::{self, Hit, SearchTarget, Strategy};

use crate::common::documents::{self as fixture, METRICS, PG_TABLE, SQLITE_TABLE};
use crate::insert_docs;

fn sqlite_structures(metric: Metric) -> Vec<SqliteIndex> {
    if metric == Metric::InnerProduct {
        vec![SqliteIndex::CODES]
    } else {
        vec![SqliteIndex::VEC0, SqliteIndex::CODES]
    }
}

fn run<C: SearchTarget>(
    conn: &mut C,
    spec: &IndexSpec,
    q: &diesel_vector::Vector,
    lang: Option<&str>,
    s: Strategy,
) -> Vec<Hit> {
    let mut search = spec.search(q).k(10).strategy(s);
    if let Some(lang) = lang {
        search = search.filter_eq("lang", lang);
    }
    search.run(conn).unwrap()
}

#[test]
fn both_backends_return_the_same_neighbours_for_every_metric_filter_and_path() {
    let docs = fixture::docs(800, 41);
    let queries = fixture::queries(41, 800, 4);
    let db = crate::common::pg::FreshDb::create();
    let mut pg = db.conn();
    let mut compared = 0;
    for metric in METRICS {
        let pg_spec = fixture::spec(metric, PgIndex::Hnsw, sqlite_structures(metric)[0]);
        pg.batch_execute("DROP TABLE IF EXISTS documents; DROP TABLE IF EXISTS __diesel_vector_indexes").unwrap();
        pg.batch_execute(PG_TABLE).unwrap();
        pg.batch_execute(&generate::render(&pg_spec, &generate::Options::default().add_column(true)).pg_up).unwrap();
        insert_docs!(&mut pg, &docs);
        for structure in sqlite_structures(metric) {
            let spec = fixture::spec(metric, PgIndex::Hnsw, structure);
            let mut lite = diesel_vector::sqlite::establish(":memory:").unwrap();
            lite.batch_execute(SQLITE_TABLE).unwrap();
            lite.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up)
                .unwrap();
            insert_docs!(&mut lite, &docs);
            for q in &queries {
                for lang in [None, Some("fr")] {
                    let expected = run(&mut pg, &spec, q, lang, Strategy::Exact);
                    assert_eq!(expected.len(), 10);
                    for strategy in [Strategy::Auto, Strategy::Exact] {
                        let got = run(&mut lite, &spec, q, lang, strategy);
                        assert_eq!(
                            search::ids(&got),
                            search::ids(&expected),
                            "{metric} {structure} {lang:?} {strategy:?}"
                        );
                        for (a, b) in got.iter().zip(&expected) {
                            let tolerance = 1e-5 * b.distance.abs().max(1.0);
                            assert!((a.distance - b.distance).abs() <= tolerance, "{metric}: {a:?} vs {b:?}");
                        }
                        compared += 1;
                    }
                }
            }
        }
    }
    assert_eq!(compared, (3 * 2 + 1) * 4 * 2 * 2);
}

#[test]
fn ties_are_broken_by_id_on_both_backends_and_every_path() {
    let mut docs = fixture::docs(40, 42);
    let same = docs[5].embedding.clone();
    for d in docs.iter_mut().filter(|d| d.id % 5 == 0) {
        d.embedding = same.clone(); // eight French rows with one vector
    }
    let q = same.unwrap();
    let db = crate::common::pg::FreshDb::create();
    let mut pg = db.conn();
    let spec = fixture::spec(Metric::Cosine, PgIndex::Hnsw, SqliteIndex::VEC0);
    pg.batch_execute(PG_TABLE).unwrap();
    pg.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).pg_up).unwrap();
    insert_docs!(&mut pg, &docs);
    let mut lite = diesel_vector::sqlite::establish(":memory:").unwrap();
    lite.batch_execute(SQLITE_TABLE).unwrap();
    lite.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    insert_docs!(&mut lite, &docs);
    for strategy in [Strategy::Auto, Strategy::Exact] {
        for k in [3, 8] {
            let expected: Vec<i64> = (1..=k).map(|i| i * 5).collect();
            let a = spec.search(&q).k(k as usize).filter_eq("lang", "fr").strategy(strategy).run(&mut pg).unwrap();
            let b = spec.search(&q).k(k as usize).filter_eq("lang", "fr").strategy(strategy).run(&mut lite).unwrap();
            assert_eq!(search::ids(&a), expected, "postgresql {strategy:?} k={k}");
            assert_eq!(search::ids(&b), expected, "sqlite {strategy:?} k={k}");
        }
    }
}

#[test]
fn any_k_however_large_gives_every_row_on_both_backends_and_every_index() {
    let docs = fixture::docs(200, 43);
    // Rows with a direction: the zero vectors are nobody's cosine neighbour.
    let with_vectors =
        docs.iter().filter(|d| d.embedding.as_ref().is_some_and(|v| v.as_slice().iter().any(|x| *x != 0.0))).count();
    let q = &fixture::queries(43, 200, 1)[0];
    let db = crate::common::pg::FreshDb::create();
    let mut pg = db.conn();
    for pg_index in [PgIndex::Hnsw, PgIndex::Ivfflat, PgIndex::None, PgIndex::BinaryQuantized] {
        let spec = fixture::spec(Metric::Cosine, pg_index, SqliteIndex::CODES);
        pg.batch_execute("DROP TABLE IF EXISTS documents; DROP TABLE IF EXISTS __diesel_vector_indexes").unwrap();
        pg.batch_execute(PG_TABLE).unwrap();
        pg.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).pg_up).unwrap();
        insert_docs!(&mut pg, &docs);
        let expected = spec.search(q).k(with_vectors).strategy(Strategy::Exact).run(&mut pg).unwrap();
        assert_eq!(expected.len(), with_vectors);
        for strategy in [Strategy::Auto, Strategy::Exact] {
            for k in [1_000_000_000, usize::MAX] {
                let got = spec.search(q).k(k).strategy(strategy).run(&mut pg).unwrap();
                assert_eq!(search::ids(&got), search::ids(&expected), "{pg_index:?} {strategy:?} k={k}");
            }
        }
    }
}
