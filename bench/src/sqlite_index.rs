//! The SQLite vector index as users get it (issue 12's bars), on the rows of one generated data set, in the
//! same run as the engine's report (`bench/src/bin/ann-report.rs`):
//!
//! - **Maintenance and size**: the same rows written into a table of one's own (`docs`, with a partition
//!   column) in transactions of 1000 rows, a sync after each (the steady state of an application that
//!   writes and searches), with no index, and with each structure the index can keep (`codes`,
//!   `codes,vectors`, `vec0`, `codes,vec0`); the file size of each afterwards; a full rebuild of the codes.
//! - **Search** on the seed's `fragment_embeddings` (whose index keeps codes): `Search::run` as an
//!   application calls it, in-process and warm, against sqlite-vec's vec0 flat KNN on the same rows (a
//!   vec0 table made for the comparison, the crate's former shape: partition keys, `chunk_size=64`), also
//!   interleaved with it query by query; recall@10 against the exact top 10; the first search of a process
//!   (codes loaded from the file).
//! - **Exact path**: `Strategy::Exact` (the SIMD scan of the rows where SQLite holds them), ids compared
//!   with an `f64` reference.

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Double};
use diesel_vector::index::{generate, IndexSpec, SqliteIndex};
use diesel_vector::search::{Search, Strategy};
use diesel_vector::{migrations, sqlite, Vector};

use crate::harness::percentile;

diesel::table! {
    /// The maintenance table, as an application declares it.
    docs (id) {
        id -> BigInt,
        lang -> Text,
        embedding -> Nullable<Binary>,
    }
}

/// The rows and queries of one data set, row `i` with id `i + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub dims: usize,
    pub data: &'a [f32],
    pub queries: &'a [f32],
    /// The exact top 10 ids per query.
    pub truth: &'a [Vec<i64>],
    /// The top 10 ids by an `f64` computation, for the first queries.
    pub f64_truth: &'a [Vec<i64>],
}

impl Input<'_> {
    fn rows(&self) -> usize {
        self.data.len() / self.dims
    }
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }
    fn query(&self, q: usize) -> Vector {
        Vector::from_slice(&self.queries[q * self.dims..(q + 1) * self.dims]).expect("finite")
    }
    fn query_count(&self) -> usize {
        self.queries.len() / self.dims
    }
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Measure maintenance and size for every structure (several minutes at 100k rows).
    pub maintenance: bool,
    /// Queries to run on vec0 and the exact path (they take hundreds of milliseconds each).
    pub slow_queries: usize,
    /// `IndexSearch::threads` of every search (`None`: the default).
    pub threads: Option<usize>,
}

fn ms(seconds: f64) -> String {
    format!("{:.3}", seconds * 1e3)
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("dv-sqlite-index-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_size(path: &str) -> u64 {
    ["", "-wal"].iter().map(|s| std::fs::metadata(format!("{path}{s}")).map_or(0, |m| m.len())).sum()
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Prints the whole SQLite section for one data set.
pub fn report(input: &Input<'_>, options: &Options) {
    println!("### SQLite index ({} rows)\n", input.rows());
    if options.maintenance {
        maintenance(input);
    }
    search(input, options);
}

fn docs_spec(kept: SqliteIndex, dims: usize) -> IndexSpec {
    IndexSpec::builder("docs", "embedding", dims as u64)
        .partition_by(["lang"])
        .sqlite_index(kept)
        .build()
        .expect("valid spec")
}

/// When the maintenance variants bring the index up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// `sqlite::sync` after each transaction of 1000 rows.
    EachTransaction,
    /// Once, after the last transaction (as the first search after the writes would).
    AtTheEnd,
}

/// Rows into `docs` in transactions of 1000, the index (if any) synced as `when` says; returns the seconds
/// writing, the seconds syncing and the file size.
fn write_docs(input: &Input<'_>, path: &str, spec: Option<&IndexSpec>, when: Sync) -> (f64, f64, u64) {
    let mut conn = sqlite::establish(path).expect("open");
    conn.batch_execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, embedding BLOB)")
        .expect("create");
    if let Some(spec) = spec {
        conn.batch_execute(&generate::render(spec, &generate::Options::default()).sqlite_up).expect("index migration");
        sqlite::sync(&mut conn, spec).expect("first sync");
    }
    let (mut writing, mut syncing) = (0.0, 0.0);
    let rows = input.rows();
    for start in (0..rows).step_by(1000) {
        let t = Instant::now();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            for i in start..rows.min(start + 1000) {
                // Diesel's insert, as an application writes it: prepared once per connection and cached.
                // (`sql_query` is prepared for every row, and preparing an INSERT compiles the table's
                // triggers too: that cost would be counted against the index.)
                diesel::insert_into(docs::table)
                    .values((
                        docs::id.eq(i as i64 + 1),
                        docs::lang.eq(if i % 10 == 0 { "fr" } else { "en" }),
                        docs::embedding.eq(Some(blob(input.row(i)))),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
        .expect("insert");
        writing += t.elapsed().as_secs_f64();
        if let Some(spec) = spec.filter(|_| when == Sync::EachTransaction || start + 1000 >= rows) {
            let t = Instant::now();
            sqlite::sync(&mut conn, spec).expect("sync");
            syncing += t.elapsed().as_secs_f64();
        }
    }
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
    (writing, syncing, file_size(path))
}

/// Rounds of the quick variants (the table alone, the queue, the codes synced at each transaction and at the
/// end, the contiguous copy), interleaved so that the machine's drift falls on all of them alike; the vec0
/// variants, 7-9x slower, run once.
const MAINTENANCE_ROUNDS: usize = 3;

fn maintenance(input: &Input<'_>) {
    let dir = TempDir::new("maintenance");
    println!(
        "Maintenance: {} rows written into `docs (id, lang, embedding)` in transactions of 1000 rows, the index",
        input.rows()
    );
    println!("synced after each (`sqlite::sync`) unless the row says otherwise; the index's migration as");
    println!("`generate::render` writes it (queue triggers and the value checks). Rows inserted with Diesel's");
    println!("`insert_into` (a cached statement).");
    println!(
        "The first five variants run in {MAINTENANCE_ROUNDS} interleaved rounds after an untimed run of the table alone \
         (medians; each round's total over its own table-alone run in brackets), the vec0 ones once. File size after \
         a checkpoint.\n"
    );
    println!(
        "| structures kept | writing s | syncing s | total s | added to no index (per round) | file MB |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    let dims = input.dims;
    let each = Sync::EachTransaction;
    let variants: [(&str, Option<SqliteIndex>, Sync); 7] = [
        ("no index (the table alone)", None, each),
        ("none (queue and checks only)", Some(SqliteIndex::NONE), each),
        ("codes (the default)", Some(SqliteIndex::CODES), each),
        (
            "codes, synced once after the last transaction (as the first search after them would)",
            Some(SqliteIndex::CODES),
            Sync::AtTheEnd,
        ),
        ("codes,vectors", Some(SqliteIndex::CODES_AND_VECTORS), each),
        ("vec0", Some(SqliteIndex::VEC0), each),
        ("codes,vec0", Some(SqliteIndex::CODES_AND_VEC0), each),
    ];
    // Per variant: (writing, syncing) of each round, and the file size.
    let mut runs: Vec<(Vec<(f64, f64)>, u64)> = vec![(Vec::new(), 0); variants.len()];
    let mut codes_path = None;
    // One untimed run first: the first 800 MB file a process writes runs 25-30 % slower (the file system
    // and page cache warming up), which fell on the table alone and made round 1's figures negative.
    {
        let path = dir.file("warm-up.db");
        write_docs(input, &path, None, Sync::EachTransaction);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    for round in 0..MAINTENANCE_ROUNDS {
        for (n, (_, kept, when)) in variants.iter().enumerate() {
            if round > 0 && n >= 5 {
                continue;
            }
            let path = dir.file(&format!("docs{n}.db"));
            let spec = kept.map(|k| docs_spec(k, dims));
            let (writing, syncing, size) = write_docs(input, &path, spec.as_ref(), *when);
            runs[n].0.push((writing, syncing));
            runs[n].1 = size;
            if *kept == Some(SqliteIndex::CODES) && *when == each && round + 1 == MAINTENANCE_ROUNDS {
                codes_path = Some(path);
                continue;
            }
            // One database at a time on the disk.
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
    let totals = |n: usize| -> Vec<f64> { runs[n].0.iter().map(|(w, s)| w + s).collect() };
    let base = percentile(&totals(0), 0.5);
    for (n, (name, _, _)) in variants.iter().enumerate() {
        let (times, size) = &runs[n];
        let writing: Vec<f64> = times.iter().map(|t| t.0).collect();
        let syncing: Vec<f64> = times.iter().map(|t| t.1).collect();
        let total = percentile(&totals(n), 0.5);
        let per_round: Vec<String> =
            totals(n).iter().zip(totals(0)).map(|(t, b)| format!("{:+.1}%", (t / b - 1.0) * 100.0)).collect();
        println!(
            "| {name} | {:.2} | {:.2} | {total:.2} | {:+.1}% ({}) | {:.1} |",
            percentile(&writing, 0.5),
            percentile(&syncing, 0.5),
            (total / base - 1.0) * 100.0,
            per_round.join(", "),
            *size as f64 / 1e6
        );
    }
    if let Some(path) = codes_path {
        let spec = docs_spec(SqliteIndex::CODES, dims);
        let mut conn = sqlite::establish(&path).expect("open");
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            sqlite::rebuild(&mut conn, &spec).expect("rebuild");
            times.push(t.elapsed().as_secs_f64());
        }
        println!(
            "\nRebuilding the codes of {} rows from the table (`sqlite::rebuild`, train on a 10k sample, encode, store): \
             median {} ms of 3.\n",
            input.rows(),
            ms(percentile(&times, 0.5))
        );
    }
}

#[derive(QueryableByName)]
struct Knn {
    #[diesel(sql_type = BigInt)]
    rowid: i64,
    #[diesel(sql_type = Double)]
    #[allow(dead_code)]
    distance: f64,
}

fn search(input: &Input<'_>, options: &Options) {
    let dir = TempDir::new("search");
    let path = dir.file("seed.db");
    let mut conn = sqlite::establish(&path).expect("open");
    migrations::run_pending_migrations(&mut conn).expect("migrate");
    let rows = input.rows();
    let t = Instant::now();
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for i in 0..rows {
            diesel::sql_query("INSERT INTO fragments (id, content) VALUES (?, 'f')")
                .bind::<BigInt, _>(i as i64 + 1)
                .execute(conn)?;
            diesel::sql_query(
                "INSERT INTO fragment_embeddings (id, fragment_id, provider, model, dims, embedding, content_hash) \
                 VALUES (?, ?, 'p', 'm', ?, ?, 'h')",
            )
            .bind::<BigInt, _>(i as i64 + 1)
            .bind::<BigInt, _>(i as i64 + 1)
            .bind::<BigInt, _>(input.dims as i64)
            .bind::<Binary, _>(blob(input.row(i)))
            .execute(conn)?;
        }
        Ok(())
    })
    .expect("load");
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = sqlite::sync_index(&mut conn).expect("sync");
    let sync_s = t.elapsed().as_secs_f64();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
    println!(
        "Search on the seed's `fragment_embeddings` ({rows} rows loaded in {load_s:.1} s; first sync built the codes of \
         {} rows in {} ms).\n",
        report.applied,
        ms(sync_s)
    );

    let nq = input.query_count();
    let recall = |found: &[i64], q: usize| {
        input.truth[q].iter().filter(|t| found.contains(t)).count() as f64 / input.truth[q].len().max(1) as f64
    };
    let run = |conn: &mut SqliteConnection, q: &Vector, strategy: Strategy| -> Vec<i64> {
        let search = Search::new("p", "m", q).k(10).strategy(strategy);
        let search = match options.threads {
            Some(threads) => search.threads(threads),
            None => search,
        };
        search.run(conn).expect("search").into_iter().map(|h| h.id).collect()
    };

    // A process's first search: the codes read from the file and checked.
    let mut first = Vec::new();
    for q in 0..5.min(nq) {
        sqlite::clear_codes_cache();
        let query = input.query(q);
        let t = Instant::now();
        run(&mut conn, &query, Strategy::Auto);
        first.push(t.elapsed().as_secs_f64());
    }
    // Warm: every query once unmeasured, then measured.
    for q in 0..nq {
        run(&mut conn, &input.query(q), Strategy::Auto);
    }
    let (mut lat, mut rec) = (Vec::new(), 0.0);
    for q in 0..nq {
        let query = input.query(q);
        let t = Instant::now();
        let found = run(&mut conn, &query, Strategy::Auto);
        lat.push(t.elapsed().as_secs_f64());
        rec += recall(&found, q);
    }
    let p50 = percentile(&lat, 0.5);

    // sqlite-vec's vec0 flat KNN on the same rows.
    let t = Instant::now();
    conn.batch_execute(&format!(
        "CREATE VIRTUAL TABLE bench_vec0 USING vec0(provider text partition key, model text partition key, \
         embedding float[{}] distance_metric=cosine, chunk_size=64); \
         INSERT INTO bench_vec0 (rowid, provider, model, embedding) \
         SELECT id, provider, model, embedding FROM fragment_embeddings;",
        input.dims
    ))
    .expect("vec0");
    let vec0_build = t.elapsed().as_secs_f64();
    let slow = options.slow_queries.min(nq).max(1);
    // vec0 and the default search query by query, each first on every other query, so that both see the
    // same state of the machine (its load drifts over a run); the default search's own p50 above is over
    // all the queries, back to back.
    let (mut vlat, mut vrec, mut paired) = (Vec::new(), 0.0, Vec::new());
    for q in 0..slow {
        let query = input.query(q);
        for vec0_turn in [q % 2 == 0, q % 2 == 1] {
            let t = Instant::now();
            if vec0_turn {
                let hits: Vec<Knn> = diesel::sql_query(
                    "SELECT rowid, distance FROM bench_vec0 WHERE embedding MATCH ? AND k = 10 AND provider = 'p' \
                     AND model = 'm' ORDER BY distance",
                )
                .bind::<Binary, _>(blob(query.as_slice()))
                .load(&mut conn)
                .expect("knn");
                vlat.push(t.elapsed().as_secs_f64());
                vrec += recall(&hits.iter().map(|h| h.rowid).collect::<Vec<_>>(), q);
            } else {
                run(&mut conn, &query, Strategy::Auto);
                paired.push(t.elapsed().as_secs_f64());
            }
        }
    }
    let v50 = percentile(&vlat, 0.5);

    // The exact path, warm like the searches above: one query unmeasured first. The first one maps the
    // table's 614 MB into the process through SQLite's memory map (0.4 s in a run without this).
    run(&mut conn, &input.query(0), Strategy::Exact);
    let (mut elat, mut identical, mut checked) = (Vec::new(), 0, 0);
    for q in 0..slow {
        let query = input.query(q);
        let t = Instant::now();
        let found = run(&mut conn, &query, Strategy::Exact);
        elat.push(t.elapsed().as_secs_f64());
        if let Some(reference) = input.f64_truth.get(q) {
            checked += 1;
            identical += usize::from(&found == reference);
        }
    }
    let e50 = percentile(&elat, 0.5);

    println!("| path | queries | recall@10 | p50 ms | p95 ms | vec0 p50 / this p50 |\n|---|---:|---:|---:|---:|---:|");
    println!(
        "| `Search::run`, default (quantized codes, exact rerank), warm | {nq} | {:.3} | {} | {} | **{:.0}x** |",
        rec / nq as f64,
        ms(p50),
        ms(percentile(&lat, 0.95)),
        v50 / p50
    );
    println!(
        "| same, interleaved with vec0 query by query | {slow} | | {} | {} | **{:.0}x** |",
        ms(percentile(&paired, 0.5)),
        ms(percentile(&paired, 0.95)),
        v50 / percentile(&paired, 0.5)
    );
    println!(
        "| same, first search of a process (codes read from the file) | {} | | {} | {} | {:.0}x |",
        first.len(),
        ms(percentile(&first, 0.5)),
        ms(percentile(&first, 0.95)),
        v50 / percentile(&first, 0.5)
    );
    println!(
        "| sqlite-vec vec0 flat KNN, hand SQL, same rows (built in {:.1} s) | {slow} | {:.3} | {} | {} | 1 |",
        vec0_build,
        vrec / slow as f64,
        ms(v50),
        ms(percentile(&vlat, 0.95)),
    );
    println!(
        "| `Strategy::Exact` (SIMD scan of the rows in place) | {slow} | ids = f64 reference in {identical} of {checked} | {} | {} | {:.1}x |",
        ms(e50),
        ms(percentile(&elat, 0.95)),
        v50 / e50
    );
    println!();
}
