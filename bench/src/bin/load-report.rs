//! Runs the database workloads of issue 6 that move many rows, bulk insert (workload 2) and copy
//! between backends (workload 4), with their contenders interleaved on the same generated data, and
//! prints, as Markdown, the median and spread of each contender, its ratio to the baseline measured in
//! the same run, the issue's bars, and the environment.
//!
//! ```text
//! scripts/bench-load.sh [--large] [--huge] [--sizes N,M] [--reps N] [--warmup N] [--only insert|copy]
//! ```
//!
//! The default is 10k rows and 7 repetitions (about 3.5 minutes on 2 shared cores); `--large` adds 100k
//! (about 25 minutes more) and `--huge` 1M (hours, and about 13 GB of memory for the generated rows).
//!
//! Needs `PG_DATABASE_URL`: a superuser URL on a server with pgvector (databases are created and dropped).

use std::time::Instant;

use diesel_vector_bench::copy::{self as copy_workload, CopyInputs, Documents};
use diesel_vector_bench::embeddings::{Dataset, Templates};
use diesel_vector_bench::environment;
use diesel_vector_bench::fresh::{PgServer, ScratchDir};
use diesel_vector_bench::harness::Stats;
use diesel_vector_bench::load::{self, LoadInputs};
use diesel_vector_bench::rounds::{self, Bar, Contender, Runs};

struct Args {
    sizes: Vec<usize>,
    reps: usize,
    warmup: usize,
    insert: bool,
    copy: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { sizes: vec![10_000], reps: 7, warmup: 1, insert: true, copy: true };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--sizes" => {
                args.sizes = value("--sizes")?
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse::<usize>().map_err(|e| format!("--sizes: {s}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--large" => args.sizes.push(100_000),
            "--huge" => args.sizes.push(1_000_000),
            "--reps" => args.reps = value("--reps")?.parse::<usize>().map_err(|e| e.to_string())?.max(5),
            "--warmup" => {
                args.warmup = value("--warmup")?.parse().map_err(|e: std::num::ParseIntError| e.to_string())?
            }
            "--only" => match value("--only")?.as_str() {
                "insert" => args.copy = false,
                "copy" => args.insert = false,
                other => return Err(format!("--only takes insert or copy, not {other:?}")),
            },
            other => {
                return Err(format!(
                    "unknown argument {other:?}; expected --large, --huge, --sizes N,M, --reps N, --warmup N, \
                     --only insert|copy"
                ))
            }
        }
    }
    args.sizes.retain(|&n| n > 0);
    args.sizes.sort_unstable();
    args.sizes.dedup();
    Ok(args)
}

fn main() {
    if let Some(code) = copy_workload::child_main() {
        std::process::exit(code);
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("load-report: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("load-report: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let pg = PgServer::from_env()?;
    let scratch = ScratchDir::new()?;
    let started = Instant::now();

    println!("# diesel-vector bulk insert and copy report\n");
    println!(
        "Sizes {}; {} dims, uniform random in [-1, 1) from a fixed seed, one embedding per fragment. Each of {} \
         repetitions (after {} warm-up round(s)) runs every contender once, in a rotating order, on a fresh \
         database. Throughput ratios are computed per repetition (baseline seconds / contender seconds) and \
         summarised as median (min-max).\n",
        args.sizes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", "),
        diesel_vector_bench::workloads::DIMS,
        args.reps,
        args.warmup,
    );
    println!("## Environment\n\n{}", environment::describe());
    println!("{}\n", database_environment(&pg));

    let mut bars = Vec::new();
    for &n in &args.sizes {
        eprintln!("load-report: generating {n} embeddings");
        if args.insert {
            let dataset = Dataset::generate(n);
            let templates = Templates::prepare(n, &pg, &scratch)?;
            let inputs = LoadInputs::prepare(&dataset, &templates);
            let mut pg_contenders = inputs.pg_contenders();
            let runs = measure(&format!("bulk insert, PostgreSQL, {n}"), &mut pg_contenders, args)?;
            print_table(&format!("Bulk insert, PostgreSQL, {n} rows"), &runs, load::names::PG_RAW_COPY, &dataset);
            bars.push(bar(
                format!("PostgreSQL bulk insert >= 95% of raw COPY, {n} rows"),
                &runs,
                load::names::PG_CRATE,
                load::names::PG_RAW_COPY,
                0.95,
            ));
            drop(pg_contenders);
            let mut lite_contenders = inputs.sqlite_contenders();
            let runs = measure(&format!("bulk insert, SQLite, {n}"), &mut lite_contenders, args)?;
            print_table(&format!("Bulk insert, SQLite, {n} rows"), &runs, load::names::SQLITE_RAW, &dataset);
            bars.push(bar(
                format!("SQLite bulk insert >= 90% of a raw prepared loop, {n} rows"),
                &runs,
                load::names::SQLITE_CRATE,
                load::names::SQLITE_RAW,
                0.90,
            ));
        }
        if args.copy {
            let documents = Documents::generate(n);
            let inputs = CopyInputs::prepare(&documents, &pg, &scratch)?;
            let mut contenders = inputs.contenders();
            let runs = measure(&format!("copy, {n}"), &mut contenders, args)?;
            drop(contenders);
            bars.extend(copy_workload::report(&runs, &documents));
        }
    }
    println!("- load average at end: {}", environment::load_average());
    println!("- report wall time: {:.0} s\n", started.elapsed().as_secs_f64());
    print_bars(&bars);
    Ok(())
}

fn measure(what: &str, contenders: &mut [Contender<'_>], args: &Args) -> Result<Vec<Runs>, String> {
    let started = Instant::now();
    let runs = rounds::run(contenders, args.warmup, args.reps, &mut |round, name| {
        let label = if round < args.warmup { "warm-up".to_owned() } else { format!("rep {}", round - args.warmup + 1) };
        eprintln!("load-report: {what}: {label}: {name}");
    })?;
    eprintln!("load-report: {what}: {:.0} s", started.elapsed().as_secs_f64());
    Ok(runs)
}

/// One row per contender: seconds, rows and vector MB per second, throughput ratio to `baseline`.
fn print_table(title: &str, runs: &[Runs], baseline: &str, dataset: &Dataset) {
    let base = runs.iter().find(|r| r.name == baseline).expect("the baseline is a contender");
    println!("## {title}\n");
    println!("| contender | median s | IQR s | min-max s | rows/s | MB/s of vectors | throughput vs {baseline} |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in runs {
        let s = r.stats();
        let ratio = if r.name == baseline {
            "1 (baseline)".to_owned()
        } else {
            let q = Stats::of(&rounds::throughput_ratios(&r.seconds(), &base.seconds()));
            format!("{:.3} ({:.3}-{:.3})", q.median, q.min, q.max)
        };
        println!(
            "| {} | {:.3} | {:.3}-{:.3} | {:.3}-{:.3} | {:.0} | {:.1} | {ratio} |",
            r.name,
            s.median,
            s.q1,
            s.q3,
            s.min,
            s.max,
            dataset.len() as f64 / s.median,
            dataset.vector_bytes() as f64 / s.median / 1e6,
        );
    }
    println!();
    let per_rep: Vec<(&str, Vec<f64>)> = runs.iter().map(|r| (r.name, r.seconds())).collect();
    rounds::print_repetitions("", &per_rep);
}

fn bar(what: String, runs: &[Runs], ours: &str, baseline: &str, at_least: f64) -> Bar {
    let get = |name: &str| runs.iter().find(|r| r.name == name).expect("contender exists");
    let q = Stats::of(&rounds::throughput_ratios(&get(ours).seconds(), &get(baseline).seconds()));
    Bar {
        what,
        measured: format!("{:.1}% ({:.1}-{:.1})", q.median * 100.0, q.min * 100.0, q.max * 100.0),
        met: q.median >= at_least,
    }
}

fn print_bars(bars: &[Bar]) {
    println!("## Bars (issue 6, bulk insert and copy)\n");
    println!("| bar | measured: median (min-max) | verdict |\n|---|---|---|");
    for b in bars {
        println!("| {} | {} | {} |", b.what, b.measured, if b.met { "met" } else { "NOT met" });
    }
    println!();
}

fn database_environment(pg: &PgServer) -> String {
    let settings = ["server_version", "shared_buffers", "max_wal_size", "wal_level", "fsync", "synchronous_commit"]
        .iter()
        .map(|s| format!("{s} {}", pg.setting(s)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "- PostgreSQL: {settings}; pgvector {}\n- SQLite {} (bundled), sqlite-vec 0.1.9\n- scratch directory: {}",
        pg.extension_version("vector"),
        diesel_vector_bench::raw_sqlite::library_version(),
        std::env::temp_dir().display(),
    )
}
