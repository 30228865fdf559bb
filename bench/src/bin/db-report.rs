//! Runs the database workloads of issue 6 (3: KNN top-10, 5: migrations) with their contenders
//! interleaved, and prints, as Markdown, each contender's median and spread, its ratio to the baseline
//! measured in the same run, recall@10 against an exact scan in Rust, the issue's bars, and the environment.
//!
//! ```text
//! scripts/bench-db.sh [--sizes 10000,100000] [--queries N] [--reps N] [--only knn|migrations]
//!                     [--backend sqlite|pg] [--fresh-reps N] [--noop-reps N] [--noop-calls N] [--no-scans]
//!                     (--only: knn, fragments, generic or migrations; knn is fragments and generic;
//!                     --no-scans: not the exact-scan group on a table of one's own, PostgreSQL)
//! ```
//!
//! PostgreSQL workloads need `PG_DATABASE_URL` (a role that may create databases and pgvector); without it
//! they are skipped, loudly.

use diesel_vector_bench::data::DIMS;
use diesel_vector_bench::db_harness::{Bar, Group, Measured};
use diesel_vector_bench::knn::{self, BackendRun, DataSet};
use diesel_vector_bench::{environment, migrate, pgdb};

struct Args {
    sizes: Vec<usize>,
    queries: usize,
    reps: usize,
    knn: bool,
    /// The KNN groups on a table of one's own (the generic search).
    generic: bool,
    migrations: bool,
    /// The PostgreSQL generic exact-scan group (`--no-scans` leaves it out).
    scans: bool,
    sqlite: bool,
    pg: bool,
    migrate: migrate::Settings,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![10_000],
        queries: 20,
        reps: 7,
        knn: true,
        generic: true,
        migrations: true,
        scans: true,
        sqlite: true,
        pg: true,
        migrate: migrate::Settings { fresh_reps: 21, noop_reps: 7, noop_calls: 40 },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<usize>().map_err(|_| format!("{name} needs a number"));
        match flag.as_str() {
            "--sizes" => {
                args.sizes = value("--sizes")?
                    .split(',')
                    .map(|s| {
                        s.trim().parse::<usize>().map_err(|_| "--sizes needs numbers like 10000,100000".to_owned())
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--queries" => args.queries = number("--queries", value("--queries")?)?.max(1),
            "--reps" => args.reps = number("--reps", value("--reps")?)?.max(5),
            "--fresh-reps" => args.migrate.fresh_reps = number("--fresh-reps", value("--fresh-reps")?)?.max(5),
            "--noop-reps" => args.migrate.noop_reps = number("--noop-reps", value("--noop-reps")?)?.max(5),
            "--noop-calls" => args.migrate.noop_calls = number("--noop-calls", value("--noop-calls")?)?.max(1),
            "--only" => match value("--only")?.as_str() {
                "knn" => args.migrations = false,
                "fragments" => (args.migrations, args.generic) = (false, false),
                "generic" => (args.migrations, args.knn) = (false, false),
                "migrations" => (args.knn, args.generic) = (false, false),
                other => return Err(format!("--only takes knn, fragments, generic or migrations, not {other:?}")),
            },
            "--no-scans" => args.scans = false,
            "--backend" => match value("--backend")?.as_str() {
                "sqlite" => args.pg = false,
                "pg" | "postgres" => args.sqlite = false,
                other => return Err(format!("--backend takes sqlite or pg, not {other:?}")),
            },
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("db-report: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("db-report: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = pgdb::server_url();
    if args.pg && server.is_none() {
        eprintln!("db-report: PG_DATABASE_URL is not set: the PostgreSQL workloads are SKIPPED");
    }
    let server = server.filter(|_| args.pg);

    println!("# diesel-vector database report\n");
    println!(
        "{DIMS}-dim clustered, embedding-like vectors from a fixed seed; KNN: sizes {}, {} queries, top-10, \
         {} interleaved repetitions after one untimed pass; migrations: {} fresh databases per contender, \
         no-op re-runs {} x {} calls. Latencies are per call; a ratio is contender / baseline of the same \
         repetition, summarised as median (min-max); overhead is the same difference in ms per call.\n",
        args.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
        args.queries,
        args.reps,
        args.migrate.fresh_reps,
        args.migrate.noop_reps,
        args.migrate.noop_calls,
    );
    println!("## Environment\n\n{}", environment::describe());
    if let Some(server) = &server {
        let db = pgdb::FreshDb::create(server, "env")?;
        let mut conn = db.conn()?;
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "CREATE EXTENSION IF NOT EXISTS vector")?;
        let host = server.split_once('@').map_or(server.as_str(), |(_, h)| h);
        println!("- PostgreSQL ({}): {}", host.split('/').next().unwrap_or(host), knn::pg::environment(&mut conn)?);
    }
    println!();

    let mut bars: Vec<(String, Group)> = Vec::new();
    if args.knn || args.generic {
        for &size in &args.sizes {
            let data = DataSet::generate(size, args.queries);
            eprintln!("db-report: {size} vectors generated ({:.1} s)", data.generate_s);
            // Each backend's tables are printed as soon as they are measured.
            let mut record = |run: BackendRun| {
                print_run(&run, &data);
                let label = format!("KNN {}k", run.size / 1000);
                bars.extend(run.groups.into_iter().map(|g| (label.clone(), g)));
            };
            if args.sqlite && args.knn {
                record(knn::sqlite::run(&data, args.reps)?);
            }
            if args.sqlite && args.generic {
                record(knn::generic::run_sqlite(&data, args.reps)?);
            }
            if let (Some(server), true) = (&server, args.knn) {
                record(knn::pg::run(server, &data, args.reps)?);
            }
            if let (Some(server), true) = (&server, args.generic) {
                record(knn::generic::run_pg(server, &data, args.reps, args.scans)?);
            }
        }
    }
    if args.migrations {
        let mut groups = Vec::new();
        if args.sqlite {
            groups.extend(migrate::sqlite(args.migrate)?);
        }
        if let Some(server) = &server {
            groups.extend(migrate::pg(server, args.migrate)?);
        }
        println!("## Migrations\n");
        for g in &groups {
            print_group(g, None);
        }
        bars.extend(groups.into_iter().map(|g| ("Migrations".to_owned(), g)));
    }
    println!("- load average at end: {}\n", environment::load_average());
    print_bars(&bars);
    Ok(())
}

fn print_run(run: &BackendRun, data: &DataSet) {
    println!("## KNN, {}, {} vectors\n", run.backend, run.size);
    for (step, s) in &run.setup {
        println!("- set-up: {step}: {s:.1} s");
    }
    for fact in &run.facts {
        println!("- {fact}");
    }
    println!();
    for g in &run.groups {
        print_group(g, Some(data));
    }
}

fn print_group(g: &Group, data: Option<&DataSet>) {
    println!("### {}\n\n{}\n", g.title, g.note);
    let recall = g.recall && data.is_some();
    let mut header = "| contender | p50 ms | p95 ms | mean ms per call (min-max of reps) |".to_owned();
    let mut rule = "|---|---:|---:|---:|".to_owned();
    if recall {
        header.push_str(" recall@10 |");
        rule.push_str("---:|");
    }
    header.push_str(" vs baseline: ratio (min-max) | overhead ms | same ids as baseline |");
    rule.push_str("---|---:|---|");
    println!("{header}\n{rule}");
    for m in &g.results {
        let reps = diesel_vector_bench::harness::Stats::of(&m.rep_ms);
        let mut row = format!(
            "| {} | {:.3} | {:.3} | {:.3} ({:.3}-{:.3}) |",
            m.name,
            m.p50(),
            m.p95(),
            reps.median,
            reps.min,
            reps.max
        );
        if let (true, Some(data)) = (recall, data) {
            row.push_str(&format!(" {:.3} |", data.recall(m)));
        }
        match g.comparisons.iter().find(|c| c.contender == m.name && c.bar != Bar::Info) {
            Some(c) => {
                let base = g.get(&c.baseline);
                let r = m.ratio(base);
                let o = m.overhead_ms(base);
                row.push_str(&format!(
                    " {:.3} ({:.3}-{:.3}) vs {} | {:+.3} | {} |",
                    r.median,
                    r.min,
                    r.max,
                    c.baseline,
                    o.median,
                    ids_cell(m, base)
                ));
            }
            None if g.comparisons.iter().any(|c| c.baseline == m.name && c.bar != Bar::Info) => {
                row.push_str(" baseline | | |")
            }
            None => row.push_str(" reference | | |"),
        }
        println!("{row}");
    }
    for c in g.comparisons.iter().filter(|c| c.bar == Bar::Info) {
        let (m, base) = (g.get(&c.contender), g.get(&c.baseline));
        let (r, o) = (m.ratio(base), m.overhead_ms(base));
        println!(
            "\n{} / {}: {:.3} ({:.3}-{:.3}), {:+.3} ms per call.",
            c.contender, c.baseline, r.median, r.min, r.max, o.median
        );
    }
    let unstable: Vec<String> =
        g.results.iter().filter(|m| m.unstable > 0).map(|m| format!("{} ({} calls)", m.name, m.unstable)).collect();
    if !unstable.is_empty() {
        println!("\nIds differed from the first pass in timed calls of: {}.", unstable.join(", "));
    }
    println!();
}

fn ids_cell(m: &Measured, base: &Measured) -> String {
    if m.ids.is_empty() {
        return "n/a".to_owned();
    }
    format!("{}/{}", m.same_ids(base), m.ids.len())
}

fn print_bars(bars: &[(String, Group)]) {
    println!("## Bars (issue 6, workloads 3 and 5)\n");
    println!(
        "| workload | group | contender | baseline | ratio median (min-max) | overhead ms | ids | bar | verdict |"
    );
    println!("|---|---|---|---|---|---:|---|---|---|");
    for (label, g) in bars {
        for c in &g.comparisons {
            let (m, base) = (g.get(&c.contender), g.get(&c.baseline));
            let r = m.ratio(base);
            let o = m.overhead_ms(base);
            let same = m.ids.is_empty() || m.same_ids(base) == m.ids.len();
            let (bar, met) = match c.bar {
                Bar::Overhead => ("<= 2% or <= 0.2 ms, identical ids", (r.median <= 1.02 || o.median <= 0.2) && same),
                Bar::AtLeastAsFast => ("at least as fast", r.median <= 1.0),
                Bar::Runner => ("<= 1.2x", r.median <= 1.2),
                Bar::Info => continue,
            };
            println!(
                "| {label} | {} | {} | {} | {:.3} ({:.3}-{:.3}) | {:+.3} | {} | {bar} | {} |",
                g.title,
                c.contender,
                c.baseline,
                r.median,
                r.min,
                r.max,
                o.median,
                ids_cell(m, base),
                if met { "met" } else { "NOT met" }
            );
        }
    }
    println!();
}
