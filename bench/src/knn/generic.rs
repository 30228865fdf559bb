//! KNN on a table of one's own, through the generic search: `documents (id, lang, embedding vector(1536))`
//! with its vector index declared by an `IndexSpec` and created by the generated migration, `lang` its
//! partition column (one row in five is French). The workloads: top-10 unfiltered and among the French
//! rows (20 % of the table), by the search API (`IndexSearch`), the DSL, and the hand-written SQL each
//! runs, on SQLite (vec0 and exact scans) and PostgreSQL (exact and HNSW), with recall@10 against an exact
//! scan in Rust.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel_vector::index::{generate, IndexSpec, Metric, PgIndex, SqliteIndex};
use diesel_vector::search::{Hit, Strategy};
use diesel_vector::sql_types::Vector as SqlVector;
use diesel_vector::{pg as dvpg, sqlite, Vector, VectorExpressionMethods};

use super::{seconds, BackendRun, DataSet, K, K_SQL};
use crate::data;
use crate::db_harness::{run_queries, Bar, BoxError, Comparison, Group, QueryContender};
use crate::pgdb::FreshDb;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    documents (id) {
        id -> BigInt,
        lang -> Text,
        embedding -> Nullable<Vector>,
    }
}

/// The language of row `id`: one in five French.
pub fn lang(id: i64) -> &'static str {
    if id % 5 == 0 {
        "fr"
    } else {
        "en"
    }
}

/// The index as an application declares it.
pub fn spec() -> IndexSpec {
    IndexSpec::builder("documents", "embedding", data::DIMS as u64)
        .metric(Metric::Cosine)
        .partition_by(["lang"])
        .pg_index(PgIndex::Hnsw)
        .sqlite_index(SqliteIndex::VEC0)
        .build()
        .expect("a valid spec")
}

/// The exact top-10 among the French rows, per query (ids), computed in Rust.
pub fn filtered_truth(data: &DataSet) -> Vec<Vec<i64>> {
    let french: Vec<(i64, &Vector)> =
        data.stored.iter().enumerate().map(|(i, v)| (i as i64 + 1, v)).filter(|(id, _)| lang(*id) == "fr").collect();
    let vectors: Vec<Vector> = french.iter().map(|(_, v)| (*v).clone()).collect();
    data.queries.iter().map(|q| data::exact_knn(&vectors, q, K).into_iter().map(|i| french[i].0).collect()).collect()
}

/// Inserts every stored vector as a document with id `i + 1`, `$chunk` rows per statement.
macro_rules! load_documents {
    ($conn:expr, $stored:expr, $chunk:expr) => {{
        let conn = $conn;
        let stored: &[Vector] = $stored;
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            for (start, chunk) in (0..).step_by($chunk).zip(stored.chunks($chunk)) {
                let rows: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let id = start + i as i64 + 1;
                        (documents::id.eq(id), documents::lang.eq(lang(id)), documents::embedding.eq(v))
                    })
                    .collect();
                diesel::insert_into(documents::table).values(rows).execute(conn)?;
            }
            Ok(())
        })
    }};
}

/// The DSL query a user writes: top-10 by cosine, optionally among one language.
macro_rules! dsl_knn {
    ($q:expr) => {
        documents::table
            .select(documents::id)
            .filter(documents::embedding.is_not_null())
            .order(documents::embedding.cosine_distance($q))
            .limit(K_SQL)
    };
    ($q:expr, $lang:expr) => {
        documents::table
            .select(documents::id)
            .filter(documents::lang.eq($lang))
            .filter(documents::embedding.is_not_null())
            .order(documents::embedding.cosine_distance($q))
            .limit(K_SQL)
    };
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    i: i64,
    #[diesel(sql_type = Nullable<Double>)]
    d: Option<f64>,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Sorted ids of `rows` (distance, then id), the first `K`: what the search does with its candidates.
fn top(rows: Vec<Row>) -> Vec<i64> {
    let mut hits: Vec<(f64, i64)> = rows.into_iter().filter_map(|r| r.d.map(|d| (d, r.i))).collect();
    hits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    hits.into_iter().take(K).map(|(_, i)| i).collect()
}

fn search_ids(hits: Vec<Hit>) -> Vec<i64> {
    hits.into_iter().map(|h| h.id).collect()
}

/// The search's async twin: diesel-async's `AsyncPgConnection` to the same database (a second
/// connection), each search awaited to its end on a current-thread runtime.
struct AsyncSearch {
    runtime: tokio::runtime::Runtime,
    conn: diesel_async::AsyncPgConnection,
}

impl AsyncSearch {
    fn connect(url: &str) -> Result<Self, BoxError> {
        use diesel_async::AsyncConnection;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let conn = runtime.block_on(diesel_async::AsyncPgConnection::establish(url))?;
        Ok(Self { runtime, conn })
    }

    fn ids(&mut self, search: diesel_vector::search::IndexSearch<'_>) -> Result<Vec<i64>, BoxError> {
        Ok(search_ids(self.runtime.block_on(search.run_async(&mut self.conn))?))
    }

    /// [`pg_hand`] through diesel-async: the baseline of the async search on the same client.
    fn hand(&mut self, settings: &str, q: &Vector, lang: Option<&str>) -> Result<Vec<i64>, BoxError> {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let (settings, q, lang) = (settings.to_owned(), q.clone(), lang.map(str::to_owned));
        Ok(self.runtime.block_on(self.conn.transaction(async move |c| {
            c.batch_execute(&settings).await?;
            let rows: Vec<Row> = match lang {
                None => {
                    let query = diesel::sql_query(PG_SEARCH_SQL).bind::<SqlVector, _>(q).bind::<BigInt, _>(CANDIDATES);
                    diesel_async::RunQueryDsl::load(query, c).await?
                }
                Some(lang) => {
                    let query = diesel::sql_query(PG_SEARCH_SQL_LANG)
                        .bind::<SqlVector, _>(q)
                        .bind::<Text, _>(lang)
                        .bind::<BigInt, _>(CANDIDATES);
                    diesel_async::RunQueryDsl::load(query, c).await?
                }
            };
            QueryResult::Ok(top(rows))
        }))?)
    }
}

fn overhead(contender: &str, baseline: &str) -> Comparison {
    Comparison { contender: contender.to_owned(), baseline: baseline.to_owned(), bar: Bar::Overhead }
}

fn info(contender: &str, baseline: &str) -> Comparison {
    Comparison { contender: contender.to_owned(), baseline: baseline.to_owned(), bar: Bar::Info }
}

/// `Search` fetches `k + k / 4 + 4` candidates (16 for k = 10) so that it can break ties by id.
const CANDIDATES: i64 = K_SQL + K_SQL / 4 + 4;

/// Contender names.
pub mod names {
    pub const HAND_DSL: &str = "hand SQL (the DSL's text)";
    pub const DSL: &str = "DSL: order(cosine_distance).limit(10)";
    pub const HAND_SEARCH: &str = "hand SQL: the search's statements";
    pub const SEARCH: &str = "search API (IndexSearch)";
    pub const SEARCH_EXACT: &str = "search API, Strategy::Exact";
    pub const SEARCH_ASYNC: &str = "search API on AsyncPgConnection (run_async)";
    pub const HAND_SEARCH_ASYNC: &str = "hand SQL: the search's statements, on AsyncPgConnection";
    pub const DSL_PGVECTOR_DEFAULTS: &str = "DSL at pgvector's defaults (reference)";
    /// The filtered search at a fixed `ef_search` below its default, for the choice of the default.
    pub const SEARCH_EF: [&str; 3] =
        ["search API, ef_search(300)", "search API, ef_search(200)", "search API, ef_search(100)"];
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

/// The search's query on PostgreSQL, as the search renders it.
pub const PG_SEARCH_SQL: &str =
    "SELECT CAST(\"documents\".\"id\" AS BIGINT) AS i, (\"documents\".\"embedding\" <=> $1) \
     AS d FROM \"documents\" WHERE \"documents\".\"embedding\" IS NOT NULL ORDER BY 2 LIMIT $2";
/// The same among one language.
pub const PG_SEARCH_SQL_LANG: &str = "SELECT CAST(\"documents\".\"id\" AS BIGINT) AS i, \
     (\"documents\".\"embedding\" <=> $1) AS d FROM \"documents\" WHERE \"documents\".\"embedding\" IS NOT NULL \
     AND \"documents\".\"lang\" = $2 ORDER BY 2 LIMIT $3";
/// The exact scan's (ties by id in SQL).
pub const PG_EXACT_SQL: &str =
    "SELECT CAST(\"documents\".\"id\" AS BIGINT) AS i, (\"documents\".\"embedding\" <=> $1) \
     AS d FROM \"documents\" WHERE \"documents\".\"embedding\" IS NOT NULL ORDER BY 2, 1 LIMIT $2";

/// What the search sets for an HNSW scan, as a user would write it (`partition_index`: a partition index
/// serves the filter, and the query is planned with its values, as only such a plan runs on it).
fn pg_hnsw_settings(ef_search: u32, partition_index: bool) -> String {
    let custom = if partition_index { "; SET LOCAL plan_cache_mode = force_custom_plan" } else { "" };
    format!(
        "SET LOCAL hnsw.ef_search = {ef_search}; SET LOCAL hnsw.iterative_scan = relaxed_order; \
         SET LOCAL enable_seqscan = off{custom}"
    )
}

fn pg_hand(conn: &mut PgConnection, settings: &str, q: &Vector, lang: Option<&str>) -> Result<Vec<i64>, BoxError> {
    Ok(conn.transaction(|c| {
        c.batch_execute(settings)?;
        let rows: Vec<Row> = match lang {
            None => diesel::sql_query(PG_SEARCH_SQL).bind::<SqlVector, _>(q).bind::<BigInt, _>(CANDIDATES).load(c)?,
            Some(lang) => diesel::sql_query(PG_SEARCH_SQL_LANG)
                .bind::<SqlVector, _>(q)
                .bind::<Text, _>(lang)
                .bind::<BigInt, _>(CANDIDATES)
                .load(c)?,
        };
        QueryResult::Ok(top(rows))
    })?)
}

fn pg_hand_exact(conn: &mut PgConnection, q: &Vector) -> Result<Vec<i64>, BoxError> {
    Ok(conn.transaction(|c| {
        c.batch_execute("SET LOCAL enable_indexscan = off")?;
        let rows: Vec<Row> =
            diesel::sql_query(PG_EXACT_SQL).bind::<SqlVector, _>(q).bind::<BigInt, _>(CANDIDATES).load(c)?;
        QueryResult::Ok(top(rows))
    })?)
}

fn pg_dsl(conn: &mut PgConnection, settings: &str, q: &Vector, lang: Option<&str>) -> Result<Vec<i64>, BoxError> {
    Ok(conn.transaction(|c| {
        c.batch_execute(settings)?;
        match lang {
            None => dsl_knn!(q).load::<i64>(c),
            Some(lang) => dsl_knn!(q, lang).load::<i64>(c),
        }
    })?)
}

fn pg_dsl_text(conn: &mut PgConnection, settings: &str, sql: &str, q: &Vector) -> Result<Vec<i64>, BoxError> {
    Ok(conn.transaction(|c| {
        c.batch_execute(settings)?;
        let rows: Vec<Id> = diesel::sql_query(sql).bind::<SqlVector, _>(q).bind::<BigInt, _>(K_SQL).load(c)?;
        QueryResult::Ok(rows.into_iter().map(|r| r.id).collect())
    })?)
}

/// The DSL's SQL as text for `sql_query` (its binds renumbered in the order they are bound here).
fn pg_dsl_text_of(q: &Vector) -> String {
    let text = diesel::debug_query::<Pg, _>(&dsl_knn!(q)).to_string();
    text.split(" -- binds").next().unwrap_or_default().to_owned()
}

/// Loads `data` into a fresh PostgreSQL database with the generated migration, builds the HNSW index for
/// the data, and measures every group.
///
/// # Errors
///
/// A failing set-up step or query.
/// `exact_group`: whether to measure the exact scans too (4 contenders of about 1.4 s per query at 100k:
/// most of the run's time).
pub fn run_pg(server: &str, data: &DataSet, reps: usize, exact_group: bool) -> Result<BackendRun, BoxError> {
    let db = FreshDb::create(server, "generic")?;
    db.conn()?.batch_execute(&format!("ALTER DATABASE {} SET jit = off", db.name()))?;
    let mut conn = db.conn()?;
    let spec = spec();
    let mut setup = Vec::new();
    let queries = &data.queries;
    let french_truth = filtered_truth(data);

    let started = Instant::now();
    conn.batch_execute("CREATE TABLE documents (id bigint PRIMARY KEY, lang text NOT NULL)")?;
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).pg_up)?;
    conn.batch_execute(&format!("DROP INDEX {}", spec.pg_index_name().unwrap_or_default()))?;
    load_documents!(&mut conn, &data.stored, 500)?;
    setup.push(("create, migrate (generated), insert".to_owned(), seconds(started)));
    let started = Instant::now();
    conn.batch_execute("SET maintenance_work_mem = '1GB'")?;
    dvpg::rebuild(&mut conn, &spec, dvpg::Rebuild::Hnsw)?;
    conn.batch_execute("RESET maintenance_work_mem")?;
    conn.batch_execute("VACUUM ANALYZE documents")?;
    setup.push((
        "HNSW build (`pg::rebuild`, m = 16, ef_construction = 64), `VACUUM ANALYZE`".to_owned(),
        seconds(started),
    ));

    // The hand-written copies must be what the search and the DSL send.
    let q0 = &queries[0];
    let dsl_text = pg_dsl_text_of(q0);
    let ef = dvpg::default_ef_search(K);
    let facts = vec![
        format!(
            "the search's default hnsw.ef_search for k = 10: {ef} unfiltered; divided by the square root of the \
             filter's selectivity from pg_stats"
        ),
        format!("the DSL renders: `{dsl_text}`"),
    ];

    let mut groups = Vec::new();
    let exact_settings = "SET LOCAL enable_indexscan = off";
    if exact_group {
        let mut contenders = vec![
            QueryContender::new(names::HAND_DSL, |c: &mut PgConnection, q: &Vector| {
                pg_dsl_text(c, exact_settings, &dsl_text, q)
            }),
            QueryContender::new(names::DSL, |c: &mut PgConnection, q: &Vector| pg_dsl(c, exact_settings, q, None)),
            QueryContender::new(names::HAND_SEARCH, |c: &mut PgConnection, q: &Vector| pg_hand_exact(c, q)),
            QueryContender::new(names::SEARCH_EXACT, |c: &mut PgConnection, q: &Vector| {
                Ok(search_ids(spec.search(q).strategy(Strategy::Exact).run(c)?))
            }),
        ];
        groups.push(Group {
            title: "PostgreSQL, documents: exact scan".to_owned(),
            note: format!(
                "The DSL against its own text, and `IndexSearch` with `Strategy::Exact` against the statements it \
             sends written by hand (`{exact_settings}`, then `{PG_EXACT_SQL}` with 16 rows, sorted), each in \
             a transaction."
            ),
            results: run_queries(&mut conn, &mut contenders, queries, reps)?,
            comparisons: vec![overhead(names::DSL, names::HAND_DSL), overhead(names::SEARCH_EXACT, names::HAND_SEARCH)],
            recall: true,
        });
    }

    let settings = pg_hnsw_settings(ef, false);
    let twin = Rc::new(RefCell::new(AsyncSearch::connect(db.url())?));
    let mut contenders = vec![
        QueryContender::new(names::HAND_DSL, |c: &mut PgConnection, q: &Vector| {
            pg_dsl_text(c, &settings, &dsl_text, q)
        }),
        QueryContender::new(names::DSL, |c: &mut PgConnection, q: &Vector| pg_dsl(c, &settings, q, None)),
        QueryContender::new(names::HAND_SEARCH, |c: &mut PgConnection, q: &Vector| pg_hand(c, &settings, q, None)),
        QueryContender::new(names::SEARCH, |c: &mut PgConnection, q: &Vector| Ok(search_ids(spec.search(q).run(c)?))),
        QueryContender::new(names::HAND_SEARCH_ASYNC, {
            let (twin, settings) = (Rc::clone(&twin), &settings);
            move |_: &mut PgConnection, q: &Vector| twin.borrow_mut().hand(settings, q, None)
        }),
        QueryContender::new(names::SEARCH_ASYNC, {
            let (twin, spec) = (Rc::clone(&twin), &spec);
            move |_: &mut PgConnection, q: &Vector| twin.borrow_mut().ids(spec.search(q))
        }),
        QueryContender::new(names::DSL_PGVECTOR_DEFAULTS, |c: &mut PgConnection, q: &Vector| {
            pg_dsl(c, "SET LOCAL hnsw.ef_search = 40", q, None)
        }),
    ];
    groups.push(Group {
        title: "PostgreSQL, documents: HNSW, no filter".to_owned(),
        note: format!(
            "`IndexSearch` at its defaults against the statements it sends written by hand (`{settings}`, then \
             the query with 16 rows, sorted), and the DSL at the same settings against its text; the DSL at \
             pgvector's default ef_search (40) for reference."
        ),
        results: run_queries(&mut conn, &mut contenders, queries, reps)?,
        comparisons: vec![
            overhead(names::DSL, names::HAND_DSL),
            overhead(names::SEARCH, names::HAND_SEARCH),
            overhead(names::SEARCH_ASYNC, names::HAND_SEARCH_ASYNC),
            info(names::SEARCH_ASYNC, names::SEARCH),
        ],
        recall: true,
    });

    // Filtered: the search divides ef_search by the square root of the selectivity pg_stats gives (0.2 here).
    let filtered_ef = ((f64::from(ef) / 0.2f64.sqrt()).ceil() as u32).min(1000);
    let settings = pg_hnsw_settings(filtered_ef, false);
    let mut contenders = vec![
        QueryContender::new(names::DSL, |c: &mut PgConnection, q: &Vector| pg_dsl(c, &settings, q, Some("fr"))),
        QueryContender::new(names::HAND_SEARCH, |c: &mut PgConnection, q: &Vector| {
            pg_hand(c, &settings, q, Some("fr"))
        }),
        QueryContender::new(names::SEARCH, |c: &mut PgConnection, q: &Vector| {
            Ok(search_ids(spec.search(q).filter_eq("lang", "fr").run(c)?))
        }),
        QueryContender::new(names::HAND_SEARCH_ASYNC, {
            let (twin, settings) = (Rc::clone(&twin), &settings);
            move |_: &mut PgConnection, q: &Vector| twin.borrow_mut().hand(settings, q, Some("fr"))
        }),
        QueryContender::new(names::SEARCH_ASYNC, {
            let (twin, spec) = (Rc::clone(&twin), &spec);
            move |_: &mut PgConnection, q: &Vector| twin.borrow_mut().ids(spec.search(q).filter_eq("lang", "fr"))
        }),
    ];
    for (name, ef) in names::SEARCH_EF.into_iter().zip([300, 200, 100]) {
        let spec = &spec;
        contenders.push(QueryContender::new(name, move |c: &mut PgConnection, q: &Vector| {
            Ok(search_ids(spec.search(q).filter_eq("lang", "fr").ef_search(ef).run(c)?))
        }));
    }
    let results = run_queries(&mut conn, &mut contenders, queries, reps)?;
    groups.push(Group {
        title: "PostgreSQL, documents: HNSW, lang = 'fr' (20 % of the rows)".to_owned(),
        note: format!(
            "Recall against the exact top-10 among the French rows: {}. `IndexSearch` with `.filter_eq(\"lang\", \
             \"fr\")` at its defaults against its statements by hand (`{settings}`), and the search at a fixed \
             `ef_search` below its default. The sequential scans are measured in a group of their own after this \
             one: a scan between two searches evicts the index's pages from PostgreSQL's buffers, and each search \
             then read about 700 of them back (measured: 2.0 ms instead of 0.6 ms for the same statement).",
            recall_line(&results, &french_truth),
        ),
        results,
        comparisons: vec![
            overhead(names::SEARCH, names::HAND_SEARCH),
            overhead(names::SEARCH_ASYNC, names::HAND_SEARCH_ASYNC),
            info(names::SEARCH_ASYNC, names::SEARCH),
        ],
        recall: false,
    });

    // The sequential scans among the French rows, after the index's searches (see the note above).
    let mut contenders = vec![
        QueryContender::new(names::SEARCH_EXACT, |c: &mut PgConnection, q: &Vector| {
            Ok(search_ids(spec.search(q).filter_eq("lang", "fr").strategy(Strategy::Exact).run(c)?))
        }),
        QueryContender::new(names::DSL_PGVECTOR_DEFAULTS, |c: &mut PgConnection, q: &Vector| {
            pg_dsl(c, "SET LOCAL hnsw.ef_search = 40", q, Some("fr"))
        }),
    ];
    let results = run_queries(&mut conn, &mut contenders, queries, reps)?;
    groups.push(Group {
        title: "PostgreSQL, documents: sequential scans, lang = 'fr' (20 % of the rows)".to_owned(),
        note: format!(
            "The exact search, and the DSL at pgvector's defaults (ef_search 40, no iterative scan), which is what \
             issue 11's user ran (rows returned: {}); the planner scans the table for it. Recall against the exact \
             top-10 among the French rows: {}.",
            rows_line(&results, names::DSL_PGVECTOR_DEFAULTS),
            recall_line(&results, &french_truth),
        ),
        results,
        comparisons: vec![],
        recall: false,
    });

    // The same filter once a partition index serves it: the search keeps the unfiltered ef_search.
    let started = Instant::now();
    conn.batch_execute("SET maintenance_work_mem = '1GB'")?;
    let partition_index = dvpg::create_partition_index(&mut conn, &spec, "lang", "fr")?;
    conn.batch_execute("RESET maintenance_work_mem")?;
    setup.push(("partition index for lang = 'fr' (HNSW over its 20 % of the rows)".to_owned(), seconds(started)));
    let settings = pg_hnsw_settings(ef, true);
    let mut contenders = vec![
        QueryContender::new(names::HAND_SEARCH, |c: &mut PgConnection, q: &Vector| {
            pg_hand(c, &settings, q, Some("fr"))
        }),
        QueryContender::new(names::SEARCH, |c: &mut PgConnection, q: &Vector| {
            Ok(search_ids(spec.search(q).filter_eq("lang", "fr").run(c)?))
        }),
    ];
    let results = run_queries(&mut conn, &mut contenders, queries, reps)?;
    groups.push(Group {
        title: "PostgreSQL, documents: HNSW and a partition index, lang = 'fr' (20 % of the rows)".to_owned(),
        note: format!(
            "`dvpg::create_partition_index(conn, spec, \"lang\", \"fr\")` built `{partition_index}`, an HNSW index \
             over the French rows only, which PostgreSQL plans the filtered query on; the search then keeps the \
             unfiltered `ef_search` ({ef}), as the statements by hand do (`{settings}`). Recall against the exact \
             top-10 among the French rows: {}.",
            recall_line(&results, &french_truth),
        ),
        results,
        comparisons: vec![overhead(names::SEARCH, names::HAND_SEARCH)],
        recall: false,
    });

    drop(conn);
    drop(db);
    Ok(BackendRun { backend: "PostgreSQL, a table of one's own", size: data.stored.len(), setup, facts, groups })
}

/// Each contender's mean recall@10 against `truth`.
fn recall_line(results: &[crate::db_harness::Measured], truth: &[Vec<i64>]) -> String {
    results
        .iter()
        .map(|m| {
            let sum: f64 = m.ids.iter().zip(truth).map(|(found, t)| data::recall(found, t)).sum();
            format!("{} {:.3}", m.name, sum / truth.len().max(1) as f64)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The fewest and the mean rows a contender returned per query.
fn rows_line(results: &[crate::db_harness::Measured], name: &str) -> String {
    let Some(m) = results.iter().find(|m| m.name == name) else { return "n/a".into() };
    let counts: Vec<usize> = m.ids.iter().map(Vec::len).collect();
    let min = counts.iter().min().copied().unwrap_or(0);
    let mean = counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64;
    format!("fewest {min}, mean {mean:.1} of 10")
}

// ---------------------------------------------------------------------------------------------------
// SQLite

/// vec0's KNN as a user writes it, with the partition key (sorted by distance then id afterwards: vec0 takes
/// a single `ORDER BY distance`).
pub const SQLITE_VEC0_LANG: &str =
    "SELECT rowid AS i, distance AS d FROM __dv_documents_embedding WHERE embedding MATCH ? AND k = ? AND lang = ?";
/// Unfiltered.
pub const SQLITE_VEC0: &str =
    "SELECT rowid AS i, distance AS d FROM __dv_documents_embedding WHERE embedding MATCH ? AND k = ?";
/// The search's exact scan, as its text renders.
pub const SQLITE_EXACT_SQL: &str = "SELECT CAST(\"documents\".\"id\" AS BIGINT) AS i, \
     vec_distance_cosine(\"documents\".\"embedding\", ?) AS d FROM \"documents\" WHERE \"documents\".\"embedding\" \
     IS NOT NULL AND typeof(\"documents\".\"embedding\") = 'blob' AND length(\"documents\".\"embedding\") = ? \
     ORDER BY 2 NULLS LAST, 1 LIMIT ?";

fn sqlite_vec0(conn: &mut SqliteConnection, q: &Vector, lang: Option<&str>) -> Result<Vec<i64>, BoxError> {
    let rows: Vec<Row> = match lang {
        None => diesel::sql_query(SQLITE_VEC0).bind::<SqlVector, _>(q).bind::<BigInt, _>(K_SQL).load(conn)?,
        Some(lang) => diesel::sql_query(SQLITE_VEC0_LANG)
            .bind::<SqlVector, _>(q)
            .bind::<BigInt, _>(K_SQL)
            .bind::<Text, _>(lang)
            .load(conn)?,
    };
    Ok(top(rows))
}

fn sqlite_hand_exact(conn: &mut SqliteConnection, q: &Vector) -> Result<Vec<i64>, BoxError> {
    let rows: Vec<Row> = diesel::sql_query(SQLITE_EXACT_SQL)
        .bind::<SqlVector, _>(q)
        .bind::<BigInt, _>(4 * data::DIMS as i64)
        .bind::<BigInt, _>(CANDIDATES)
        .load(conn)?;
    Ok(top(rows))
}

/// Loads `data` into a fresh SQLite file with the generated migration, builds the vec0 index, and
/// measures every group.
///
/// # Errors
///
/// A failing set-up step or query.
pub fn run_sqlite(data: &DataSet, reps: usize) -> Result<BackendRun, BoxError> {
    let path = std::env::temp_dir().join(format!("dv-bench-generic-{}-{}.db", std::process::id(), data.stored.len()));
    let _cleanup = super::sqlite::TempDb(path.clone());
    let url = path.to_str().ok_or("temporary path is not UTF-8")?.to_owned();
    let spec = spec();
    let mut setup = Vec::new();
    let queries = &data.queries;
    let french_truth = filtered_truth(data);

    let started = Instant::now();
    let mut conn = sqlite::establish(&url)?;
    conn.batch_execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, lang TEXT NOT NULL)")?;
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).sqlite_up)?;
    load_documents!(&mut conn, &data.stored, 200)?;
    setup.push(("create, migrate (generated), insert".to_owned(), seconds(started)));
    let started = Instant::now();
    sqlite::sync(&mut conn, &spec)?;
    setup.push(("vec0 build (`sqlite::sync`)".to_owned(), seconds(started)));

    let dsl_text = diesel::debug_query::<Sqlite, _>(&dsl_knn!(&queries[0])).to_string();
    let dsl_text = dsl_text.split(" -- binds").next().unwrap_or_default().to_owned();
    let facts = vec![format!("the DSL renders: `{dsl_text}`")];

    let mut groups = Vec::new();
    let mut contenders = vec![
        QueryContender::new(names::HAND_DSL, |c: &mut SqliteConnection, q: &Vector| {
            let rows: Vec<Id> =
                diesel::sql_query(&dsl_text).bind::<SqlVector, _>(q).bind::<BigInt, _>(K_SQL).load(c)?;
            Ok(rows.into_iter().map(|r| r.id).collect())
        }),
        QueryContender::new(names::DSL, |c: &mut SqliteConnection, q: &Vector| Ok(dsl_knn!(q).load::<i64>(c)?)),
        QueryContender::new(names::HAND_SEARCH, |c: &mut SqliteConnection, q: &Vector| sqlite_hand_exact(c, q)),
        QueryContender::new(names::SEARCH_EXACT, |c: &mut SqliteConnection, q: &Vector| {
            Ok(search_ids(spec.search(q).strategy(Strategy::Exact).run(c)?))
        }),
    ];
    groups.push(Group {
        title: "SQLite, documents: exact scan".to_owned(),
        note: format!(
            "The DSL against its own text; `IndexSearch` with `Strategy::Exact` against its query by hand \
             (`{SQLITE_EXACT_SQL}`, 16 rows, sorted)."
        ),
        results: run_queries(&mut conn, &mut contenders, queries, reps)?,
        comparisons: vec![overhead(names::DSL, names::HAND_DSL), overhead(names::SEARCH_EXACT, names::HAND_SEARCH)],
        recall: true,
    });

    for lang in [None, Some("fr")] {
        let mut contenders = vec![
            QueryContender::new(names::HAND_SEARCH, move |c: &mut SqliteConnection, q: &Vector| {
                sqlite_vec0(c, q, lang)
            }),
            QueryContender::new(names::SEARCH, |c: &mut SqliteConnection, q: &Vector| {
                let mut s = spec.search(q);
                if let Some(lang) = lang {
                    s = s.filter_eq("lang", lang);
                }
                Ok(search_ids(s.run(c)?))
            }),
        ];
        let results = run_queries(&mut conn, &mut contenders, queries, reps)?;
        groups.push(Group {
            title: format!("SQLite, documents: vec0{}", if lang.is_some() { ", lang = 'fr'" } else { "" }),
            note: format!(
                "`IndexSearch` (state read, vec0 KNN of 16 candidates, their exact distances from the table) \
                 against vec0's KNN of 10 written by hand (`{}`).{}",
                if lang.is_some() { SQLITE_VEC0_LANG } else { SQLITE_VEC0 },
                if lang.is_some() {
                    format!(" Recall against the exact French top-10: {}.", recall_line(&results, &french_truth))
                } else {
                    String::new()
                }
            ),
            results,
            comparisons: vec![overhead(names::SEARCH, names::HAND_SEARCH)],
            recall: lang.is_none(),
        });
    }
    Ok(BackendRun { backend: "SQLite, a table of one's own", size: data.stored.len(), setup, facts, groups })
}
