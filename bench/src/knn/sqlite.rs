//! KNN on SQLite: a fresh database file per run, the bundled SQLite with sqlite-vec, and a second
//! connection to the same file without sqlite-vec (so the crate's Rust distance functions answer).

use std::path::PathBuf;
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;
use diesel_vector::schema::fragment_embeddings as fe;
use diesel_vector::search::{Search, Strategy};
use diesel_vector::sql_types::Vector as SqlVector;
use diesel_vector::{migrations, sqlite, Vector, VectorExpressionMethods};

use super::{ids, load_rows, pair_ids, seconds, BackendRun, DataSet, Hit, K_SQL, MODEL, PROVIDER};
use crate::db_harness::{run_queries, Bar, BoxError, Comparison, Group, QueryContender};

/// The two connections every contender chooses from.
pub struct Conns {
    /// sqlite-vec loaded (vec0, its `vec_distance_*`).
    pub vec: SqliteConnection,
    /// No sqlite-vec: `ConnectionOptions::apply` registered the crate's `vec_distance_*`.
    pub plain: SqliteConnection,
}

/// The vec0 table the report makes for its vec0 contender, in the shape the seed's index had before it kept
/// the crate's codes (partition keys, `chunk_size=64`).
const BENCH_VEC0: &str = "CREATE VIRTUAL TABLE bench_vec0 USING vec0(provider text partition key, \
     model text partition key, embedding float[1536] distance_metric=cosine, chunk_size=64); \
     INSERT INTO bench_vec0 (rowid, provider, model, embedding) \
     SELECT id, provider, model, embedding FROM fragment_embeddings WHERE embedding IS NOT NULL;";

/// The top-10 by vec0 KNN as a user writes it: `MATCH ... AND k = ?` with the partition keys, joined back
/// to the table for `fragment_id`.
pub const HAND_VEC0: &str = "SELECT e.id AS id, e.fragment_id AS fragment_id, i.distance AS distance \
     FROM (SELECT rowid, distance FROM bench_vec0 \
           WHERE embedding MATCH ? AND k = ? AND provider = ? AND model = ?) i \
     JOIN fragment_embeddings e ON e.id = i.rowid ORDER BY i.distance, e.id";

/// The top-10 by an exact scan as a user writes it, with the distance function `{f}`.
fn hand_exact(function: &str) -> String {
    format!(
        "SELECT id, fragment_id, {function}(embedding, ?) AS distance FROM fragment_embeddings \
         WHERE provider = ? AND model = ? AND embedding IS NOT NULL ORDER BY distance, id LIMIT ?"
    )
}

/// Exactly the SQL the DSL query below renders (checked at start-up).
pub const HAND_DSL_TEXT: &str = "SELECT `fragment_embeddings`.`id`, `fragment_embeddings`.`fragment_id` \
     FROM `fragment_embeddings` WHERE (((`fragment_embeddings`.`provider` = ?) AND \
     (`fragment_embeddings`.`model` = ?)) AND (`fragment_embeddings`.`embedding` IS NOT NULL)) \
     ORDER BY CASE WHEN `fragment_embeddings`.`embedding` IS NOT NULL THEN \
     vec_distance_cosine(`fragment_embeddings`.`embedding`, ?) END LIMIT ?";

/// The DSL query of the issue: top-10 by cosine distance for one provider and model.
macro_rules! dsl_knn {
    ($q:expr) => {
        fe::table
            .select((fe::id, fe::fragment_id))
            .filter(fe::provider.eq(PROVIDER))
            .filter(fe::model.eq(MODEL))
            .filter(fe::embedding.is_not_null())
            .order(fe::embedding.cosine_distance($q))
            .limit(K_SQL)
    };
}

#[derive(QueryableByName)]
struct IdPair {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Removes the database file and its WAL companions.
pub(crate) struct TempDb(pub(crate) PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn vec0(conn: &mut SqliteConnection, q: &Vector) -> QueryResult<Vec<i64>> {
    diesel::sql_query(HAND_VEC0)
        .bind::<SqlVector, _>(q)
        .bind::<BigInt, _>(K_SQL)
        .bind::<Text, _>(PROVIDER)
        .bind::<Text, _>(MODEL)
        .load::<Hit>(conn)
        .map(ids)
}

fn exact(conn: &mut SqliteConnection, sql: &str, q: &Vector) -> QueryResult<Vec<i64>> {
    diesel::sql_query(sql)
        .bind::<SqlVector, _>(q)
        .bind::<Text, _>(PROVIDER)
        .bind::<Text, _>(MODEL)
        .bind::<BigInt, _>(K_SQL)
        .load::<Hit>(conn)
        .map(ids)
}

fn search(conn: &mut SqliteConnection, q: &Vector, strategy: Strategy) -> Result<Vec<i64>, BoxError> {
    Ok(Search::new(PROVIDER, MODEL, q).strategy(strategy).run(conn)?.into_iter().map(|h| h.id).collect())
}

/// Loads `data` into a fresh file database, builds the vec0 index, and measures every SQLite group.
///
/// # Errors
///
/// A failing set-up step or query.
pub fn run(data: &DataSet, reps: usize) -> Result<BackendRun, BoxError> {
    let path = std::env::temp_dir().join(format!("dv-bench-knn-{}-{}.db", std::process::id(), data.stored.len()));
    let _cleanup = TempDb(path.clone());
    let url = path.to_str().ok_or("temporary path is not UTF-8")?.to_owned();
    let mut setup = Vec::new();

    let started = Instant::now();
    let mut vec = sqlite::establish(&url)?;
    migrations::run_pending_migrations(&mut vec)?;
    load_rows!(&mut vec, &data.stored, 200)?;
    setup.push(("migrate and insert (one transaction)".to_owned(), seconds(started)));
    let started = Instant::now();
    let report = sqlite::sync_index(&mut vec)?;
    setup.push((format!("the index's codes (`sync_index`, {} rows)", report.applied), seconds(started)));
    let started = Instant::now();
    vec.batch_execute(BENCH_VEC0)?;
    setup.push(("a vec0 table of the same rows (the vec0 contender's)".to_owned(), seconds(started)));

    // A connection without sqlite-vec, set up as the crate documents it.
    sqlite::deregister_sqlite_vec();
    let plain = SqliteConnection::establish(&url);
    sqlite::register_sqlite_vec().map_err(|rc| format!("registering sqlite-vec again failed: {rc}"))?;
    let mut plain = plain?;
    sqlite::ConnectionOptions::default().apply(&mut plain)?;
    if sqlite::sqlite_vec_version(&mut plain)?.is_some() || sqlite::sqlite_vec_version(&mut vec)?.is_none() {
        return Err("expected sqlite-vec on one connection only".into());
    }

    let dsl_sql = diesel::debug_query::<Sqlite, _>(&dsl_knn!(&data.queries[0])).to_string();
    let dsl_sql = dsl_sql.split(" -- binds").next().unwrap_or_default();
    if dsl_sql != HAND_DSL_TEXT {
        return Err(format!("the DSL renders\n{dsl_sql}\nbut the hand-written copy is\n{HAND_DSL_TEXT}").into());
    }

    let sqlite_version: String = diesel::select(diesel::dsl::sql::<Text>("sqlite_version()")).get_result(&mut vec)?;
    let vec_version = sqlite::sqlite_vec_version(&mut vec)?.unwrap_or_default();
    let mut facts = vec![format!("SQLite {sqlite_version} (bundled), sqlite-vec {vec_version}, file database, WAL")];
    let plan: Vec<PlanRow> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {}", hand_exact("vec_distance_cosine")))
        .bind::<SqlVector, _>(&data.queries[0])
        .bind::<Text, _>(PROVIDER)
        .bind::<Text, _>(MODEL)
        .bind::<BigInt, _>(K_SQL)
        .load(&mut vec)?;
    let plan: Vec<&str> = plan.iter().map(|r| r.detail.as_str()).collect();
    facts.push(format!("SQLite exact-scan plan: {}", plan.join("; ")));

    let mut conns = Conns { vec, plain };
    let mut groups = Vec::new();

    let mut contenders = vec![
        QueryContender::new(names::HAND_VEC0, |c: &mut Conns, q: &Vector| Ok(vec0(&mut c.vec, q)?)),
        QueryContender::new(names::SEARCH_VEC0, |c: &mut Conns, q: &Vector| search(&mut c.vec, q, Strategy::Auto)),
    ];
    groups.push(Group {
        title: "SQLite: the index (the crate's codes) against vec0 KNN on the same rows".to_owned(),
        note: "`Search::run` (Auto: sync, the quantized codes' scan, exact rerank of the candidates) against the \
               hand-written vec0 query with k = 10."
            .to_owned(),
        results: run_queries(&mut conns, &mut contenders, &data.queries, reps)?,
        comparisons: vec![overhead(names::SEARCH_VEC0, names::HAND_VEC0)],
        recall: true,
    });

    let hand_cosine = hand_exact("vec_distance_cosine");
    let mut contenders = vec![
        QueryContender::new(names::HAND_EXACT, |c: &mut Conns, q: &Vector| Ok(exact(&mut c.vec, &hand_cosine, q)?)),
        QueryContender::new(names::SEARCH_EXACT, |c: &mut Conns, q: &Vector| search(&mut c.vec, q, Strategy::Exact)),
        QueryContender::new(names::HAND_DSL_TEXT, |c: &mut Conns, q: &Vector| {
            let rows: Vec<IdPair> = diesel::sql_query(HAND_DSL_TEXT)
                .bind::<Text, _>(PROVIDER)
                .bind::<Text, _>(MODEL)
                .bind::<SqlVector, _>(q)
                .bind::<BigInt, _>(K_SQL)
                .load(&mut c.vec)?;
            Ok(rows.into_iter().map(|r| r.id).collect())
        }),
        QueryContender::new(names::DSL, |c: &mut Conns, q: &Vector| {
            Ok(pair_ids(dsl_knn!(q).load::<(i64, i64)>(&mut c.vec)?))
        }),
    ];
    groups.push(Group {
        title: "SQLite: exact scan with sqlite-vec's `vec_distance_cosine`".to_owned(),
        note: "`Search` with `Strategy::Exact` against the hand-written scan; the DSL against its own SQL \
               text sent with `sql_query`."
            .to_owned(),
        results: run_queries(&mut conns, &mut contenders, &data.queries, reps)?,
        comparisons: vec![overhead(names::SEARCH_EXACT, names::HAND_EXACT), overhead(names::DSL, names::HAND_DSL_TEXT)],
        recall: true,
    });

    for (function, recall) in [("vec_distance_cosine", true), ("vec_distance_l2", false), ("vec_distance_l1", false)] {
        let sql = hand_exact(function);
        let (theirs, ours) = (format!("sqlite-vec {function}"), format!("crate's Rust {function}"));
        let mut contenders = vec![
            QueryContender::new(theirs.clone(), |c: &mut Conns, q: &Vector| Ok(exact(&mut c.vec, &sql, q)?)),
            QueryContender::new(ours.clone(), |c: &mut Conns, q: &Vector| Ok(exact(&mut c.plain, &sql, q)?)),
        ];
        groups.push(Group {
            title: format!("SQLite: `{function}`, the crate's (no sqlite-vec) against sqlite-vec's"),
            note: "The same hand-written exact scan on two connections to the same file: one with sqlite-vec, \
                   one without it, where `ConnectionOptions::apply` registered the crate's Rust functions."
                .to_owned(),
            results: run_queries(&mut conns, &mut contenders, &data.queries, reps)?,
            comparisons: vec![Comparison { contender: ours, baseline: theirs, bar: Bar::AtLeastAsFast }],
            recall,
        });
    }

    Ok(BackendRun { backend: "SQLite", size: data.stored.len(), setup, facts, groups })
}

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

fn overhead(contender: &str, baseline: &str) -> Comparison {
    Comparison { contender: contender.to_owned(), baseline: baseline.to_owned(), bar: Bar::Overhead }
}

/// Contender names.
pub mod names {
    pub const HAND_VEC0: &str = "hand SQL: vec0 MATCH, k = 10";
    pub const SEARCH_VEC0: &str = "Search API (codes)";
    pub const HAND_EXACT: &str = "hand SQL: exact scan";
    pub const SEARCH_EXACT: &str = "Search API (Strategy::Exact)";
    pub const HAND_DSL_TEXT: &str = "hand SQL: the DSL's text";
    pub const DSL: &str = "DSL: order(cosine_distance).limit(10)";
}
