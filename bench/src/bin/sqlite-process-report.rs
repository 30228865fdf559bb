//! Issue 12's two SQLite bars that the ann report does not measure, on one database file per data set
//! (100k x 1536 by default, the ann report's generators and seeds), in one run:
//!
//! - **Exact top 10**: `Strategy::Exact` from the index's contiguous copy of the vectors (the index kept as
//!   `codes,vectors`) and from the rows read in place (the same table declared with `codes` only), against
//!   sqlite-vec's vec0 flat KNN on the same rows; ids compared with an `f64` reference. In-process, warm.
//! - **The CLI as a whole process**: `diesel-vector search --table docs --vector @q.json -k 10` against the
//!   `sqlite3` shell running the raw vec0 query (`SELECT rowid, distance FROM raw_vec0 WHERE embedding MATCH
//!   '[...]' AND k = 10`, sqlite-vec loaded as an extension), both whole processes on the same file with the
//!   page cache warm, interleaved; the processes' floors (`diesel-vector --version`, `sqlite3` loading the
//!   extension and running `SELECT 1`) and the in-process first and warm searches, to say where the time goes.
//!
//! ```text
//! scripts/bench-sqlite-process.sh [--rows N] [--queries Q] [--reps R] [--set clustered|embedding-like|both] [--keep]
//! ```
//! (The script builds the CLI and sqlite-vec's loadable extension and passes `--cli`, `--sqlite3`,
//! `--extension`.) `--keep` leaves each data set's database and query files in a directory it names;
//! `--profile R --reuse DIR` runs only the default search, `R` passes over the queries, on such a database
//! (for `perf record`); with `--threads T`, the exact scan of the rows in place on one connection and on `T`,
//! alternating query by query.

// Queries are numbered: `q` indexes the queries, their reference ids and their files alike.
#![allow(clippy::needless_range_loop)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Double, Text};
use diesel_vector::index::{generate, IndexSpec, SqliteIndex};
use diesel_vector::search::Strategy;
use diesel_vector::{sqlite, Vector};
use diesel_vector_bench::data::{clusters_for, Clusters, Spectrum, DIMS, SEED};
use diesel_vector_bench::environment;
use diesel_vector_bench::harness::percentile;

struct Args {
    rows: usize,
    queries: usize,
    reps: usize,
    sets: Vec<String>,
    cli: PathBuf,
    sqlite3: PathBuf,
    extension: PathBuf,
    keep: bool,
    reuse: Option<PathBuf>,
    profile: Option<usize>,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rows: 100_000,
        queries: 10,
        reps: 3,
        sets: vec!["clustered".into(), "embedding-like".into()],
        cli: PathBuf::new(),
        sqlite3: PathBuf::from("/usr/bin/sqlite3"),
        extension: PathBuf::new(),
        keep: false,
        reuse: None,
        profile: None,
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<usize>().map_err(|_| format!("{name} needs a positive number"));
        match flag.as_str() {
            "--rows" => args.rows = number("--rows", value("--rows")?)?.max(1000),
            "--queries" => args.queries = number("--queries", value("--queries")?)?.max(1),
            "--reps" => args.reps = number("--reps", value("--reps")?)?.max(1),
            "--set" => {
                let set = value("--set")?;
                args.sets = match set.as_str() {
                    "both" => vec!["clustered".into(), "embedding-like".into()],
                    "clustered" | "embedding-like" => vec![set],
                    other => return Err(format!("--set {other:?}: clustered, embedding-like or both")),
                }
            }
            "--cli" => args.cli = value("--cli")?.into(),
            "--sqlite3" => args.sqlite3 = value("--sqlite3")?.into(),
            "--extension" => args.extension = value("--extension")?.into(),
            "--keep" => args.keep = true,
            "--reuse" => args.reuse = Some(value("--reuse")?.into()),
            "--profile" => args.profile = Some(number("--profile", value("--profile")?)?.max(1)),
            "--threads" => args.threads = Some(number("--threads", value("--threads")?)?.max(1)),
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other:?}; expected --rows N, --queries Q, --reps R, --set S, --cli PATH, \
                     --sqlite3 PATH, --extension PATH, --keep, --reuse DIR, --profile R, --threads T"
                ))
            }
        }
    }
    if args.profile.is_some() {
        if args.reuse.is_none() {
            return Err("--profile needs --reuse DIR (a directory a run with --keep left)".into());
        }
    } else if !args.cli.is_file() || !args.extension.is_file() {
        return Err("--cli and --extension must name files (scripts/bench-sqlite-process.sh builds both)".into());
    }
    Ok(args)
}

fn ms(seconds: f64) -> String {
    format!("{:.2}", seconds * 1e3)
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The query as JSON text: `f32`'s shortest round-trip form, so both processes read the same bits.
fn json(v: &[f32]) -> String {
    format!("[{}]", v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(","))
}

fn f64_top10(data: &[f32], q: &[f32]) -> Vec<i64> {
    let qq: f64 = q.iter().map(|b| f64::from(*b) * f64::from(*b)).sum();
    let mut all: Vec<(f64, i64)> = data
        .chunks_exact(DIMS)
        .enumerate()
        .map(|(i, row)| {
            let dot: f64 = row.iter().zip(q).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let aa: f64 = row.iter().map(|a| f64::from(*a) * f64::from(*a)).sum();
            (1.0 - dot / (aa.sqrt() * qq.sqrt()), i as i64 + 1)
        })
        .collect();
    all.select_nth_unstable_by(10, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(10);
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().map(|(_, id)| id).collect()
}

/// The run's files (databases, queries): removed at the end unless `--keep` was given.
struct TempDir(PathBuf, bool);

impl TempDir {
    fn new(set: &str, keep: bool) -> TempDir {
        let dir = std::env::temp_dir().join(format!("dv-sqlite-process-{}-{set}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir, keep)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.1 {
            eprintln!("sqlite-process-report: kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn spec(kept: SqliteIndex) -> IndexSpec {
    IndexSpec::builder("docs", "embedding", DIMS as u64)
        .partition_by(["lang"])
        .sqlite_index(kept)
        .build()
        .expect("valid spec")
}

#[derive(QueryableByName)]
struct Knn {
    #[diesel(sql_type = BigInt)]
    rowid: i64,
    #[diesel(sql_type = Double)]
    #[allow(dead_code)]
    distance: f64,
}

/// One in-process search: the ids it returns.
type Contender<'a> = dyn FnMut(&mut SqliteConnection) -> Vec<i64> + 'a;

const VEC0_SQL: &str = "SELECT rowid, distance FROM raw_vec0 WHERE embedding MATCH ? AND k = 10";

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sqlite-process-report: {e}");
            std::process::exit(2);
        }
    };
    println!("# diesel-vector: SQLite exact path and the CLI as a process\n");
    println!(
        "{} rows x {DIMS} dims, {} queries, top 10, cosine. In-process times are medians of every query once (after \
         one unmeasured pass); process times are medians of {} passes over the queries, the contenders interleaved.\n",
        args.rows, args.queries, args.reps
    );
    println!("## Environment\n\n{}", environment::describe());
    println!("- sqlite3: {} ({})", args.sqlite3.display(), version(&args.sqlite3, "-version"));
    println!("- sqlite-vec loadable extension: {}\n", args.extension.display());
    for set in &args.sets {
        let t = Instant::now();
        let (data, queries) = generate(set, args.rows, args.queries);
        eprintln!("sqlite-process-report: generated {set} in {:.1} s", t.elapsed().as_secs_f64());
        report(set, &data, &queries, &args);
    }
    println!("- load average at end: {}", environment::load_average());
}

fn version(program: &Path, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "not found".into())
}

/// The ann report's data sets, same seeds: rows and queries, flat.
fn generate(set: &str, rows: usize, queries: usize) -> (Vec<f32>, Vec<f32>) {
    if set == "clustered" {
        let clusters = Clusters::new(SEED, DIMS, clusters_for(rows));
        let flat = |vs: Vec<Vector>| vs.iter().flat_map(|v| v.as_slice().to_vec()).collect::<Vec<f32>>();
        (flat(clusters.vectors(SEED ^ 1, rows)), flat(clusters.vectors(SEED ^ 2, queries)))
    } else {
        let s = Spectrum::new(SEED ^ 7, DIMS, (rows / 100).max(50));
        (s.vectors(SEED ^ 3, rows), s.vectors(SEED ^ 4, queries))
    }
}

/// `docs (id, lang, embedding)` with its generated index kept as `codes,vectors`, synced, and a vec0
/// table of the same rows as a user would make it (`raw_vec0`, sqlite-vec's defaults), checkpointed.
fn build(path: &str, data: &[f32]) -> (f64, f64) {
    let mut conn = sqlite::establish(path).expect("open");
    conn.batch_execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, embedding BLOB)")
        .expect("create");
    let spec = spec(SqliteIndex::CODES_AND_VECTORS);
    conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).expect("index migration");
    let t = Instant::now();
    let rows: Vec<&[f32]> = data.chunks_exact(DIMS).collect();
    for (c, chunk) in rows.chunks(10_000).enumerate() {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            for (j, row) in chunk.iter().enumerate() {
                let id = (c * 10_000 + j) as i64 + 1;
                diesel::sql_query("INSERT INTO docs (id, lang, embedding) VALUES (?, ?, ?)")
                    .bind::<BigInt, _>(id)
                    .bind::<Text, _>(if id % 10 == 0 { "fr" } else { "en" })
                    .bind::<Binary, _>(blob(row))
                    .execute(conn)?;
            }
            Ok(())
        })
        .expect("insert");
    }
    sqlite::sync(&mut conn, &spec).expect("sync");
    let index_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    conn.batch_execute(&format!(
        "CREATE VIRTUAL TABLE raw_vec0 USING vec0(embedding float[{DIMS}] distance_metric=cosine); \
         INSERT INTO raw_vec0 (rowid, embedding) SELECT id, embedding FROM docs;"
    ))
    .expect("vec0");
    let vec0_s = t.elapsed().as_secs_f64();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
    (index_s, vec0_s)
}

fn report(set: &str, data: &[f32], queries: &[f32], args: &Args) {
    if let Some(reps) = args.profile {
        return profile(set, queries, reps, args);
    }
    let dir = TempDir::new(set, args.keep);
    let path = dir.0.join(format!("{set}.db")).to_string_lossy().into_owned();
    let (index_s, vec0_s) = build(&path, data);
    let size: u64 = ["", "-wal"].iter().map(|s| std::fs::metadata(format!("{path}{s}")).map_or(0, |m| m.len())).sum();
    println!("## Data set: {set}\n");
    println!(
        "`docs` written and its index (`codes,vectors`) synced in {index_s:.1} s; `raw_vec0` filled in {vec0_s:.1} s; \
         file {:.0} MB.\n",
        size as f64 / 1e6
    );
    let nq = queries.len() / DIMS;
    let query = |q: usize| &queries[q * DIMS..(q + 1) * DIMS];
    let reference: Vec<Vec<i64>> = (0..nq).map(|q| f64_top10(data, query(q))).collect();

    // In-process, one connection, warm.
    let mut conn = sqlite::establish(&path).expect("open");
    let with_vectors = spec(SqliteIndex::CODES_AND_VECTORS);
    let in_place = spec(SqliteIndex::CODES);
    let run = |conn: &mut SqliteConnection, spec: &IndexSpec, q: &Vector, strategy: Strategy| -> Vec<i64> {
        diesel_vector::search::ids(&spec.search(q).k(10).strategy(strategy).run(conn).expect("search"))
    };
    let one_connection = |conn: &mut SqliteConnection, spec: &IndexSpec, q: &Vector| -> Vec<i64> {
        let search = spec.search(q).k(10).strategy(Strategy::Exact).threads(1);
        diesel_vector::search::ids(&search.run(conn).expect("search"))
    };
    let vec0 = |conn: &mut SqliteConnection, q: &[f32]| -> Vec<i64> {
        let hits: Vec<Knn> = diesel::sql_query(VEC0_SQL).bind::<Binary, _>(blob(q)).load(conn).expect("vec0 knn");
        hits.into_iter().map(|h| h.rowid).collect()
    };
    let mut first = Vec::new();
    for q in 0..nq.min(5) {
        sqlite::clear_codes_cache();
        let v = Vector::from_slice(query(q)).expect("finite");
        let t = Instant::now();
        run(&mut conn, &with_vectors, &v, Strategy::Auto);
        first.push(t.elapsed().as_secs_f64());
    }
    // [default, exact from vectors, exact in place, the same on one connection, vec0]: latencies and ids
    // equal to the reference.
    let mut lat: [Vec<f64>; 5] = Default::default();
    let mut same = [0usize; 5];
    for pass in 0..2 {
        for q in 0..nq {
            let v = Vector::from_slice(query(q)).expect("finite");
            let contenders: [&mut Contender<'_>; 5] = [
                &mut |c| run(c, &with_vectors, &v, Strategy::Auto),
                &mut |c| run(c, &with_vectors, &v, Strategy::Exact),
                &mut |c| run(c, &in_place, &v, Strategy::Exact),
                &mut |c| one_connection(c, &in_place, &v),
                &mut |c| vec0(c, query(q)),
            ];
            for (i, f) in contenders.into_iter().enumerate() {
                let t = Instant::now();
                let ids = f(&mut conn);
                let s = t.elapsed().as_secs_f64();
                if pass == 1 {
                    lat[i].push(s);
                    same[i] += usize::from(ids == reference[q]);
                }
            }
        }
    }
    let v50 = percentile(&lat[4], 0.5);
    println!("### In-process, warm (one connection)\n");
    println!("| path | ids = f64 reference | p50 ms | p95 ms | vec0 p50 / this p50 |\n|---|---:|---:|---:|---:|");
    let names = [
        "default search (codes, exact rerank)",
        "`Strategy::Exact`, index kept as `codes,vectors` (contiguous vectors)",
        "`Strategy::Exact`, index declared `codes` (rows read in place; default connections)",
        "`Strategy::Exact`, index declared `codes`, `threads(1)` (rows read in place on one connection)",
        "sqlite-vec vec0 flat KNN (`raw_vec0`), same rows, hand SQL",
    ];
    for (i, name) in names.iter().enumerate() {
        let p50 = percentile(&lat[i], 0.5);
        println!(
            "| {name} | {} of {nq} | {} | {} | {:.1}x |",
            same[i],
            ms(p50),
            ms(percentile(&lat[i], 0.95)),
            v50 / p50
        );
    }
    println!(
        "| default search, first of a process (`clear_codes_cache`: codes read from the file) | | {} | {} | |",
        ms(percentile(&first, 0.5)),
        ms(percentile(&first, 0.95))
    );
    drop(conn);
    println!();
    processes(&dir.0, &path, queries, &reference, args);
}

/// `--profile R --reuse DIR`: only the default search, `R` passes over the queries on the database a run
/// with `--keep` left in `DIR`, for a profiler attached to this process (`perf record`). With `--threads T`:
/// the exact scan of the rows in place instead, on one connection and on `T`, alternating query by query.
fn profile(set: &str, queries: &[f32], reps: usize, args: &Args) {
    let Some(dir) = args.reuse.as_ref() else { return };
    let path = dir.join(format!("{set}.db")).to_string_lossy().into_owned();
    let mut conn = sqlite::establish(&path).expect("open");
    let vectors: Vec<Vector> = queries.chunks_exact(DIMS).map(|q| Vector::from_slice(q).expect("finite")).collect();
    if let Some(threads) = args.threads {
        let spec = spec(SqliteIndex::CODES);
        let mut lat: [Vec<f64>; 2] = Default::default();
        for pass in 0..=reps {
            for v in &vectors {
                for (i, t) in [1, threads].into_iter().enumerate() {
                    let started = Instant::now();
                    let search = spec.search(v).k(10).strategy(Strategy::Exact).threads(t);
                    std::hint::black_box(search.run(&mut conn).expect("search"));
                    if pass > 0 {
                        lat[i].push(started.elapsed().as_secs_f64());
                    }
                }
            }
        }
        let (one, many) = (percentile(&lat[0], 0.5), percentile(&lat[1], 0.5));
        println!(
            "Exact scan of the rows in place on {path}, {} searches each, alternating: one connection p50 {} ms, \
             {threads} connections p50 {} ms ({:.2}x).\n",
            lat[0].len(),
            ms(one),
            ms(many),
            many / one
        );
        return;
    }
    let spec = spec(SqliteIndex::CODES_AND_VECTORS);
    let mut lat = Vec::new();
    for pass in 0..=reps {
        for v in &vectors {
            let t = Instant::now();
            std::hint::black_box(spec.search(v).k(10).run(&mut conn).expect("search"));
            if pass > 0 {
                lat.push(t.elapsed().as_secs_f64());
            }
        }
    }
    println!("Default search on {path}: {} searches, p50 {} ms.\n", lat.len(), ms(percentile(&lat, 0.5)));
}

/// Runs `command` to the end; its wall time and standard output.
fn time(mut command: Command, stdin: Option<&Path>) -> (f64, String) {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).expect("stdin file")),
        None => Stdio::null(),
    });
    let t = Instant::now();
    let out = command.output().expect("spawn");
    let s = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    (s, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn processes(dir: &Path, db: &str, queries: &[f32], reference: &[Vec<i64>], args: &Args) {
    let nq = queries.len() / DIMS;
    let load = format!(".load {} sqlite3_vec_init", args.extension.display());
    let mut files = Vec::new();
    for q in 0..nq {
        let text = json(&queries[q * DIMS..(q + 1) * DIMS]);
        let (json_file, sql_file) = (dir.join(format!("q{q}.json")), dir.join(format!("q{q}.sql")));
        std::fs::write(&json_file, &text).expect("write");
        std::fs::write(&sql_file, format!("{};\n", VEC0_SQL.replace('?', &format!("'{text}'")))).expect("write");
        files.push((json_file, sql_file));
    }
    let cli = |q: usize| {
        let mut c = Command::new(&args.cli);
        c.args(["--database-url", db, "search", "--table", "docs", "-k", "10", "--vector"]);
        c.arg(format!("@{}", files[q].0.display()));
        c
    };
    let shell = || {
        let mut c = Command::new(&args.sqlite3);
        c.args(["-cmd", &load, db]);
        c
    };
    let cli_floor = || {
        let mut c = Command::new(&args.cli);
        c.arg("--version");
        c
    };
    let shell_floor = || {
        let mut c = shell();
        c.arg("SELECT 1");
        c
    };
    // The last column of the CLI's text lines, and the first of the shell's `rowid|distance` lines.
    let cli_ids = |out: &str| -> Vec<i64> {
        out.lines().skip(1).filter_map(|l| l.split_whitespace().last()?.parse().ok()).collect()
    };
    let shell_ids = |out: &str| -> Vec<i64> { out.lines().filter_map(|l| l.split('|').next()?.parse().ok()).collect() };
    // Warm the page cache and both programs.
    for q in 0..nq.min(2) {
        time(cli(q), None);
        time(shell(), Some(&files[q].1));
    }
    let (mut tc, mut ts, mut fc, mut fs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut same_cli, mut same_shell) = (0, 0);
    for _ in 0..args.reps {
        for q in 0..nq {
            let (s, out) = time(cli(q), None);
            tc.push(s);
            same_cli += usize::from(cli_ids(&out) == reference[q]);
            let (s, out) = time(shell(), Some(&files[q].1));
            ts.push(s);
            same_shell += usize::from(shell_ids(&out) == reference[q]);
            fc.push(time(cli_floor(), None).0);
            fs.push(time(shell_floor(), None).0);
        }
    }
    let runs = args.reps * nq;
    let (c50, s50) = (percentile(&tc, 0.5), percentile(&ts, 0.5));
    println!("### Whole processes, same file, page cache warm\n");
    println!("| process | runs | ids = f64 reference | p50 ms | p95 ms | / sqlite3 vec0 (p50) |\n|---|---:|---:|---:|---:|---:|");
    println!(
        "| `diesel-vector search --table docs --vector @q.json -k 10` | {runs} | {same_cli} of {runs} | {} | {} | **{:.3}x** |",
        ms(c50),
        ms(percentile(&tc, 0.95)),
        c50 / s50
    );
    println!(
        "| `sqlite3 -cmd '.load vec0' db < q.sql` (raw vec0 KNN) | {runs} | {same_shell} of {runs} | {} | {} | 1 |",
        ms(s50),
        ms(percentile(&ts, 0.95))
    );
    println!(
        "| floor: `diesel-vector --version` | {runs} | | {} | {} | {:.3}x |",
        ms(percentile(&fc, 0.5)),
        ms(percentile(&fc, 0.95)),
        percentile(&fc, 0.5) / s50
    );
    println!(
        "| floor: `sqlite3 -cmd '.load vec0' db 'SELECT 1'` | {runs} | | {} | {} | {:.3}x |",
        ms(percentile(&fs, 0.5)),
        ms(percentile(&fs, 0.95)),
        percentile(&fs, 0.5) / s50
    );
    println!(
        "\nBar: CLI `search` as a whole process <= 0.15x of `sqlite3` running the raw vec0 query: {}.\n",
        if c50 <= 0.15 * s50 { "**met**" } else { "**not met**" }
    );
}
