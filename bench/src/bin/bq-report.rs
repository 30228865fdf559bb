//! Binary quantization on PostgreSQL against plain HNSW, on one table in one run: `documents (id, lang,
//! embedding vector(768))` holding 20k embedding-like vectors (the tests' clustered generator), with both
//! indexes declared on the column (`PgIndex::Hnsw`, cosine; `PgIndex::BinaryQuantized`) and built by
//! their generated migrations after the load. Each contender answers the same top-10 queries (unfiltered,
//! then among the French rows, 20 % of the table) through the generic search, calls interleaved; recall@10
//! is measured against the exact answer computed in Rust, latency as the ratio to plain HNSW per repetition.
//!
//!   PG_DATABASE_URL=postgres://... cargo run --release -p diesel-vector-bench --bin bq-report [-- --rows N --queries N --reps N]
//!
//! Prints Markdown on stdout; about 2 minutes on 2 shared cores at the defaults (after the build).

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use diesel_vector::index::{generate, IndexSpec, Metric, PgIndex};
use diesel_vector::search::{self, Strategy};
use diesel_vector::Vector;
use diesel_vector_bench::data::{self, Clusters};
use diesel_vector_bench::db_harness::{run_queries, BoxError, Measured, QueryContender};
use diesel_vector_bench::pgdb::{self, FreshDb};

const DIMS: usize = 768;
const K: usize = 10;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    documents (id) {
        id -> BigInt,
        lang -> Text,
        embedding -> Nullable<Vector>,
    }
}

fn lang(id: i64) -> &'static str {
    if id % 5 == 0 {
        "fr"
    } else {
        "en"
    }
}

fn spec(index: PgIndex, name: &str) -> IndexSpec {
    IndexSpec::builder("documents", "embedding", DIMS as u64)
        .metric(Metric::Cosine)
        .partition_by(["lang"])
        .pg_index(index)
        .name(name)
        .build()
        .expect("a valid spec")
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let (rows, n_queries, reps) = (arg(&args, "--rows", 20_000), arg(&args, "--queries", 20), arg(&args, "--reps", 3));
    let server = pgdb::server_url().ok_or("set PG_DATABASE_URL to a PostgreSQL server with pgvector")?;
    let clusters = Clusters::new(data::SEED, DIMS, data::clusters_for(rows));
    let stored = clusters.vectors(data::SEED ^ 1, rows);
    let queries = clusters.vectors(data::SEED + 1, n_queries);

    let db = FreshDb::create(&server, "bq")?;
    let mut conn = db.conn()?;
    conn.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS vector; \
         CREATE TABLE documents (id bigint PRIMARY KEY, lang text NOT NULL, embedding vector(768))",
    )?;
    let started = Instant::now();
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for (start, chunk) in (0..).step_by(500).zip(stored.chunks(500)) {
            let values: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let id = start + i as i64 + 1;
                    (documents::id.eq(id), documents::lang.eq(lang(id)), documents::embedding.eq(v))
                })
                .collect();
            diesel::insert_into(documents::table).values(values).execute(conn)?;
        }
        Ok(())
    })?;
    eprintln!("loaded {rows} rows in {:.1} s", started.elapsed().as_secs_f64());
    let hnsw = spec(PgIndex::Hnsw, "documents_hnsw");
    let bq = spec(PgIndex::BinaryQuantized, "documents_bq");
    conn.batch_execute("SET maintenance_work_mem = '512MB'")?;
    let mut build_s = Vec::new();
    for s in [&hnsw, &bq] {
        let started = Instant::now();
        conn.batch_execute(&generate::render(s, &generate::Options::default()).pg_up)?;
        build_s.push(started.elapsed().as_secs_f64());
    }
    conn.batch_execute("ANALYZE documents")?;
    eprintln!("indexes built: HNSW {:.1} s, binary {:.1} s", build_s[0], build_s[1]);

    let exact_truth: Vec<Vec<i64>> =
        queries.iter().map(|q| data::exact_knn(&stored, q, K).into_iter().map(|i| i as i64 + 1).collect()).collect();
    let french: Vec<(i64, Vector)> =
        stored.iter().enumerate().map(|(i, v)| (i as i64 + 1, v.clone())).filter(|(id, _)| lang(*id) == "fr").collect();
    let french_vectors: Vec<Vector> = french.iter().map(|(_, v)| v.clone()).collect();
    let french_truth: Vec<Vec<i64>> = queries
        .iter()
        .map(|q| data::exact_knn(&french_vectors, q, K).into_iter().map(|i| french[i].0).collect())
        .collect();

    println!("## Binary quantization on PostgreSQL: {rows} x {DIMS}, top-{K}, cosine\n");
    println!(
        "Index builds (after the load, `maintenance_work_mem` 512MB): HNSW (m 16, ef_construction 64) {:.1} s, \
         binary-quantized HNSW {:.1} s.\n",
        build_s[0], build_s[1]
    );
    for (title, filter, truth) in
        [("unfiltered", None, &exact_truth), ("lang = 'fr' (20 %)", Some("fr"), &french_truth)]
    {
        let mut contenders: Vec<QueryContender<'_, PgConnection>> = Vec::new();
        let run = move |s: &IndexSpec, strategy: Strategy, rerank: Option<u32>, ef: Option<u32>| {
            let s = s.clone();
            move |conn: &mut PgConnection, q: &Vector| -> Result<Vec<i64>, BoxError> {
                let mut search = s.search(q).k(K).strategy(strategy);
                if let Some(r) = rerank {
                    search = search.rerank(r);
                }
                if let Some(ef) = ef {
                    search = search.ef_search(ef);
                }
                if let Some(lang) = filter {
                    search = search.filter_eq("lang", lang);
                }
                Ok(search::ids(&search.run(conn)?))
            }
        };
        contenders.push(QueryContender::new("HNSW (baseline)", run(&hnsw, Strategy::Auto, None, None)));
        contenders.push(QueryContender::new("binary (default: rerank x20)", run(&bq, Strategy::Auto, None, None)));
        for factor in [5, 10, 40] {
            let name = format!("binary, rerank x{factor}");
            contenders.push(QueryContender::new(name, run(&bq, Strategy::Auto, Some(factor), None)));
        }
        let name = "binary, rerank x20, ef_search 1000";
        contenders.push(QueryContender::new(name, run(&bq, Strategy::Auto, Some(20), Some(1000))));
        contenders.push(QueryContender::new("exact scan", run(&hnsw, Strategy::Exact, None, None)));
        let results = run_queries(&mut conn, &mut contenders, &queries, reps)?;
        print_group(title, &results, truth);
    }
    Ok(())
}

fn print_group(title: &str, results: &[Measured], truth: &[Vec<i64>]) {
    println!("### {title}\n");
    println!("| contender | recall@10 | p50 ms | p95 ms | time / HNSW (median of reps) |");
    println!("|---|---|---|---|---|");
    let base = &results[0];
    for m in results {
        let recall = m.ids.iter().zip(truth).map(|(f, t)| data::recall(f, t)).sum::<f64>() / truth.len() as f64;
        let ratio = m.ratio(base);
        println!(
            "| {} | {recall:.3} | {:.2} | {:.2} | {:.2} ({:.2}-{:.2}) |",
            m.name,
            m.p50(),
            m.p95(),
            ratio.median,
            ratio.q1,
            ratio.q3
        );
    }
    println!();
}
