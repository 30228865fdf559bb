//! KNN on PostgreSQL + pgvector: a fresh database per run; exact scans, the ivfflat index (rebuilt for the
//! data by the crate) at several probes, then an HNSW index built here at several `ef_search`.

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::PgConnection;
use diesel_vector::schema::fragment_embeddings as fe;
use diesel_vector::search::{Search, Strategy};
use diesel_vector::sql_types::Vector as SqlVector;
use diesel_vector::{migrations, pg as dvpg, Vector, VectorExpressionMethods};

use super::{ids, load_rows, pair_ids, seconds, BackendRun, DataSet, Hit, K, K_SQL, MODEL, PROVIDER};
use crate::db_harness::{run_queries, Bar, BoxError, Comparison, Group, QueryContender};
use crate::pgdb::FreshDb;

/// Exactly the SQL the DSL query below renders (checked at start-up): the top-10 as a user writes it.
pub const HAND_SQL: &str = "SELECT \"fragment_embeddings\".\"id\", \"fragment_embeddings\".\"fragment_id\" \
     FROM \"fragment_embeddings\" WHERE (((\"fragment_embeddings\".\"provider\" = $1) AND \
     (\"fragment_embeddings\".\"model\" = $2)) AND (\"fragment_embeddings\".\"embedding\" IS NOT NULL)) \
     ORDER BY (\"fragment_embeddings\".\"embedding\" <=> $3) LIMIT $4";

/// The same top-10 with the distances, which is what `Search` returns (`embedding <=> $1` in the select
/// list is computed again for each returned row, from the table: the index's own distance is not exposed).
pub const HAND_DIST_SQL: &str =
    "SELECT id, fragment_id, (embedding <=> $1)::float8 AS distance FROM fragment_embeddings \
     WHERE provider = $2 AND model = $3 AND embedding IS NOT NULL ORDER BY embedding <=> $1 LIMIT $4";

/// What makes PostgreSQL scan exactly, as the crate's exact search does.
pub const EXACT_SETTINGS: &str = "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off";

/// ivfflat probes measured (those up to the index's lists), besides the crate's default.
pub const PROBES: &[u32] = &[1, 3, 10, 30];
/// HNSW `ef_search` values measured; 40 is pgvector's default.
pub const EF_SEARCH: &[u32] = &[10, 40, 100, 200];
const DEFAULT_EF_SEARCH: u32 = 40;

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

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    setting: String,
}

fn hand_query(conn: &mut PgConnection, q: &Vector) -> QueryResult<Vec<i64>> {
    let rows: Vec<IdPair> = diesel::sql_query(HAND_SQL)
        .bind::<Text, _>(PROVIDER)
        .bind::<Text, _>(MODEL)
        .bind::<SqlVector, _>(q)
        .bind::<BigInt, _>(K_SQL)
        .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The hand-written query in a transaction after `settings` (`SET LOCAL ...`), as a user tunes one query.
fn hand(conn: &mut PgConnection, settings: &str, q: &Vector) -> Result<Vec<i64>, BoxError> {
    Ok(conn.transaction(|c| {
        c.batch_execute(settings)?;
        hand_query(c, q)
    })?)
}

/// The hand-written query returning distances, in a transaction after `settings`.
fn hand_dist(conn: &mut PgConnection, settings: &str, q: &Vector) -> Result<Vec<i64>, BoxError> {
    hand_dist_limit(conn, settings, q, K_SQL)
}

/// `Search` fetches `k + k / 4 + 4` candidates (16 for k = 10) so that it can break ties by id.
const SEARCH_CANDIDATES: i64 = K_SQL + K_SQL / 4 + 4;

/// The hand-written query returning distances with `limit` rows (the ids of the first `K`).
fn hand_dist_limit(conn: &mut PgConnection, settings: &str, q: &Vector, limit: i64) -> Result<Vec<i64>, BoxError> {
    Ok(conn
        .transaction(|c| {
            c.batch_execute(settings)?;
            diesel::sql_query(HAND_DIST_SQL)
                .bind::<SqlVector, _>(q)
                .bind::<Text, _>(PROVIDER)
                .bind::<Text, _>(MODEL)
                .bind::<BigInt, _>(limit)
                .load::<Hit>(c)
                .map(ids)
        })?
        .into_iter()
        .take(K)
        .collect())
}

/// The DSL query in the same transaction after the same settings.
fn dsl(conn: &mut PgConnection, settings: &str, q: &Vector) -> Result<Vec<i64>, BoxError> {
    Ok(conn.transaction(|c| {
        c.batch_execute(settings)?;
        dsl_knn!(q).load::<(i64, i64)>(c).map(pair_ids)
    })?)
}

fn search(conn: &mut PgConnection, search: Search<'_>) -> Result<Vec<i64>, BoxError> {
    Ok(search.run(conn)?.into_iter().map(|h| h.id).collect())
}

/// The plan's scan nodes for the hand-written query under `settings`.
fn plan(conn: &mut PgConnection, settings: &str, q: &Vector) -> Result<String, BoxError> {
    let lines = conn.transaction(|c| {
        c.batch_execute(settings)?;
        diesel::sql_query(format!("EXPLAIN {HAND_SQL}"))
            .bind::<Text, _>(PROVIDER)
            .bind::<Text, _>(MODEL)
            .bind::<SqlVector, _>(q)
            .bind::<BigInt, _>(K_SQL)
            .load::<PlanLine>(c)
    })?;
    // Plan nodes only ("Limit", "Index Scan using ... on ..."), not their details ("Sort Key: ...").
    let nodes: Vec<&str> = lines
        .iter()
        .map(|l| l.line.trim().trim_start_matches("->").trim())
        .filter_map(|l| l.split_once("  (").map(|(node, _)| node))
        .filter(|node| !node.contains(':'))
        .collect();
    Ok(nodes.join(" > "))
}

fn info(contender: &str, baseline: &str) -> Comparison {
    Comparison { contender: contender.to_owned(), baseline: baseline.to_owned(), bar: Bar::Info }
}

fn overhead(contender: &str, baseline: &str) -> Comparison {
    Comparison { contender: contender.to_owned(), baseline: baseline.to_owned(), bar: Bar::Overhead }
}

/// Loads `data` into a fresh database on `server` and measures every PostgreSQL group.
///
/// # Errors
///
/// A failing set-up step or query.
pub fn run(server: &str, data: &DataSet, reps: usize) -> Result<BackendRun, BoxError> {
    let db = FreshDb::create(server, "knn")?;
    // JIT compilation (on by default) adds several ms to every exact scan of both contenders alike and
    // would hide the differences measured here; many deployments turn it off for OLTP queries too.
    db.conn()?.batch_execute(&format!("ALTER DATABASE {} SET jit = off", db.name()))?;
    let mut conn = db.conn()?;
    let mut setup = Vec::new();
    let queries = &data.queries;

    let started = Instant::now();
    migrations::run_pending_migrations(&mut conn)?;
    load_rows!(&mut conn, &data.stored, 500)?;
    setup.push(("migrate and insert (one transaction)".to_owned(), seconds(started)));
    let started = Instant::now();
    conn.batch_execute("VACUUM ANALYZE fragment_embeddings")?;
    setup.push(("`VACUUM ANALYZE`".to_owned(), seconds(started)));
    let started = Instant::now();
    // k-means over 1536-dim vectors needs more than the default 64 MB from 100 lists (100k rows) on.
    conn.batch_execute("SET maintenance_work_mem = '1GB'")?;
    let lists = dvpg::rebuild_ivfflat_index(&mut conn)?;
    conn.batch_execute("RESET maintenance_work_mem")?;
    setup.push((
        format!("ivfflat rebuild (`pg::rebuild_ivfflat_index`, lists = {lists}, maintenance_work_mem 1 GB)"),
        seconds(started),
    ));
    let default_probes = dvpg::recommended_probes(lists);

    let dsl_sql = diesel::debug_query::<Pg, _>(&dsl_knn!(&queries[0])).to_string();
    let dsl_sql = dsl_sql.split(" -- binds").next().unwrap_or_default();
    if dsl_sql != HAND_SQL {
        return Err(format!("the DSL renders\n{dsl_sql}\nbut the hand-written copy is\n{HAND_SQL}").into());
    }

    let facts = vec![format!("{}; jit off for this database", environment(&mut conn)?)];

    let mut groups = Vec::new();
    let mut contenders = vec![
        QueryContender::new(names::HAND, |c: &mut PgConnection, q: &Vector| hand(c, EXACT_SETTINGS, q)),
        QueryContender::new(names::DSL, |c: &mut PgConnection, q: &Vector| dsl(c, EXACT_SETTINGS, q)),
        QueryContender::new(names::HAND_DIST, |c: &mut PgConnection, q: &Vector| hand_dist(c, EXACT_SETTINGS, q)),
        QueryContender::new(names::SEARCH, |c: &mut PgConnection, q: &Vector| {
            search(c, Search::new(PROVIDER, MODEL, q).strategy(Strategy::Exact))
        }),
    ];
    groups.push(Group {
        title: "PostgreSQL: exact scan".to_owned(),
        note: format!(
            "Hand-written SQL (the DSL's text, and the same returning distances as `Search` does) and the \
             DSL in a transaction after `{EXACT_SETTINGS}`; `Search` with `Strategy::Exact` (which does the \
             same). Plan: {}.",
            plan(&mut conn, EXACT_SETTINGS, &queries[0])?
        ),
        results: run_queries(&mut conn, &mut contenders, queries, reps)?,
        comparisons: vec![overhead(names::DSL, names::HAND), overhead(names::SEARCH, names::HAND_DIST)],
        recall: true,
    });

    let mut probes: Vec<u32> = PROBES.iter().copied().filter(|p| *p <= lists.unsigned_abs()).collect();
    if !probes.contains(&default_probes) {
        probes.push(default_probes);
        probes.sort_unstable();
    }
    for p in probes {
        let settings = format!("SET LOCAL ivfflat.probes = {p}");
        let mut contenders = vec![
            QueryContender::new(names::HAND, |c: &mut PgConnection, q: &Vector| hand(c, &settings, q)),
            QueryContender::new(names::DSL, |c: &mut PgConnection, q: &Vector| dsl(c, &settings, q)),
            QueryContender::new(names::HAND_DIST, |c: &mut PgConnection, q: &Vector| hand_dist(c, &settings, q)),
            QueryContender::new(names::HAND_DIST_16, |c: &mut PgConnection, q: &Vector| {
                hand_dist_limit(c, &settings, q, SEARCH_CANDIDATES)
            }),
            QueryContender::new(names::SEARCH, move |c: &mut PgConnection, q: &Vector| {
                search(c, Search::new(PROVIDER, MODEL, q).probes(p))
            }),
        ];
        let mut comparisons = vec![
            overhead(names::DSL, names::HAND),
            overhead(names::SEARCH, names::HAND_DIST),
            info(names::SEARCH, names::HAND_DIST_16),
            info(names::HAND_DIST_16, names::HAND_DIST),
        ];
        if p == default_probes {
            contenders.push(QueryContender::new(names::SEARCH_DEFAULT, |c: &mut PgConnection, q: &Vector| {
                search(c, Search::new(PROVIDER, MODEL, q))
            }));
            comparisons.push(overhead(names::SEARCH_DEFAULT, names::HAND_DIST));
        }
        groups.push(Group {
            title: format!("PostgreSQL: ivfflat, lists = {lists}, probes = {p}"),
            note: format!(
                "Hand-written SQL (the DSL's text, and the same returning distances) and the DSL in a \
                 transaction after `{settings}`; `Search` with `.probes({p})`{}. Plan: {}.",
                if p == default_probes { ", and without (the crate's default, from the index's lists)" } else { "" },
                plan(&mut conn, &settings, &queries[0])?
            ),
            results: run_queries(&mut conn, &mut contenders, queries, reps)?,
            comparisons,
            recall: true,
        });
    }

    let started = Instant::now();
    conn.batch_execute(
        "SET maintenance_work_mem = '1GB'; DROP INDEX fragment_embeddings_cosine_idx; \
         CREATE INDEX fragment_embeddings_hnsw_idx ON fragment_embeddings USING hnsw (embedding vector_cosine_ops); \
         ANALYZE fragment_embeddings; RESET maintenance_work_mem",
    )?;
    setup.push(("HNSW build (m = 16, ef_construction = 64, ivfflat dropped)".to_owned(), seconds(started)));
    for &ef in EF_SEARCH {
        let settings = format!("SET LOCAL hnsw.ef_search = {ef}");
        let mut contenders = vec![
            QueryContender::new(names::HAND, |c: &mut PgConnection, q: &Vector| hand(c, &settings, q)),
            QueryContender::new(names::DSL, |c: &mut PgConnection, q: &Vector| dsl(c, &settings, q)),
        ];
        let mut comparisons = vec![overhead(names::DSL, names::HAND)];
        if ef == DEFAULT_EF_SEARCH {
            contenders.push(QueryContender::new(names::HAND_DIST, |c: &mut PgConnection, q: &Vector| {
                hand_dist(c, &settings, q)
            }));
            contenders.push(QueryContender::new(names::HAND_DIST_16, |c: &mut PgConnection, q: &Vector| {
                hand_dist_limit(c, &settings, q, SEARCH_CANDIDATES)
            }));
            contenders.push(QueryContender::new(names::SEARCH, |c: &mut PgConnection, q: &Vector| {
                search(c, Search::new(PROVIDER, MODEL, q))
            }));
            comparisons.push(overhead(names::SEARCH, names::HAND_DIST));
            comparisons.push(info(names::SEARCH, names::HAND_DIST_16));
            comparisons.push(info(names::HAND_DIST_16, names::HAND_DIST));
        }
        groups.push(Group {
            title: format!("PostgreSQL: HNSW, ef_search = {ef}"),
            note: format!(
                "Hand-written SQL and the DSL in a transaction after `{settings}`{}. Plan: {}.",
                if ef == DEFAULT_EF_SEARCH {
                    "; the hand-written SQL returning distances, and `Search` as is (it only tunes ivfflat, so \
                     the index runs at pgvector's default ef_search)"
                } else {
                    ""
                },
                plan(&mut conn, &settings, &queries[0])?
            ),
            results: run_queries(&mut conn, &mut contenders, queries, reps)?,
            comparisons,
            recall: true,
        });
    }

    drop(conn);
    drop(db);
    Ok(BackendRun { backend: "PostgreSQL", size: data.stored.len(), setup, facts, groups })
}

/// Server version, pgvector's version, and the settings that shape these timings.
pub fn environment(conn: &mut PgConnection) -> Result<String, BoxError> {
    let settings: Vec<Setting> = diesel::sql_query(
        "SELECT name::text AS name, setting || coalesce(unit, '') AS setting FROM pg_settings WHERE name IN \
         ('server_version', 'shared_buffers', 'work_mem', 'maintenance_work_mem', 'effective_cache_size', \
          'max_parallel_workers_per_gather', 'max_parallel_maintenance_workers', 'jit', 'fsync', \
          'synchronous_commit', 'random_page_cost', 'wal_level') \
         UNION ALL SELECT 'pgvector', extversion::text FROM pg_extension WHERE extname = 'vector' ORDER BY 1",
    )
    .load(conn)?;
    Ok(settings.iter().map(|s| format!("{} {}", s.name, s.setting)).collect::<Vec<_>>().join(", "))
}

/// Contender names.
pub mod names {
    pub const HAND: &str = "hand SQL (the DSL's text)";
    pub const HAND_DIST: &str = "hand SQL with distances (what Search returns)";
    pub const HAND_DIST_16: &str = "hand SQL with distances, LIMIT 16 (Search's candidates; reference)";
    pub const DSL: &str = "DSL: order(cosine_distance).limit(10)";
    pub const SEARCH: &str = "Search API";
    pub const SEARCH_DEFAULT: &str = "Search API (default probes)";
}
