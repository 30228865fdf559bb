//! Runs every codec workload with its contenders interleaved and prints, as Markdown, the median and
//! spread of each contender, its ratio to each baseline measured in the same run, the issue's bars, and
//! the environment.
//!
//! ```text
//! scripts/bench-codec.sh [--reps N] [--batch-ms M] [--dims D]
//! ```

use std::time::Duration;

use diesel_vector_bench::environment;
use diesel_vector_bench::harness::{self, Settings, Stats, Timings};
use diesel_vector_bench::type_workloads::{self, TypeInputs};
use diesel_vector_bench::workloads::{self, names, Inputs, DIMS};

struct Args {
    settings: Settings,
    dims: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { settings: Settings::default(), dims: DIMS };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a positive number"))
        };
        match flag.as_str() {
            "--reps" => args.settings.reps = value("--reps")?.max(5),
            "--batch-ms" => args.settings.batch = Duration::from_millis(value("--batch-ms")?.max(1) as u64),
            "--dims" => args.dims = value("--dims")?,
            // `cargo bench` passes this to every target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}; expected --reps N, --batch-ms M, --dims D")),
        }
    }
    Ok(args)
}

/// One measured workload, kept for the bar checks.
struct Measured {
    name: &'static str,
    timings: Vec<Timings>,
}

impl Measured {
    fn get(&self, contender: &str) -> &Timings {
        self.timings.iter().find(|t| t.name == contender).expect("contender exists")
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("codec-report: {e}");
            std::process::exit(2);
        }
    };
    let inputs = Inputs::new(args.dims);
    let type_inputs = TypeInputs::new(args.dims);
    if let Err(e) = workloads::check_outputs(&inputs).and_then(|()| type_workloads::check_outputs(&type_inputs)) {
        eprintln!("codec-report: {e}");
        std::process::exit(1);
    }

    println!("# diesel-vector codec report\n");
    println!(
        "{} dims, uniform random in [-1, 1) from a fixed seed; {} interleaved repetitions per contender, \
         batches of about {} ms. Times are per vector; a ratio is contender / baseline, computed per \
         repetition and summarised as median (min-max).\n",
        args.dims,
        args.settings.reps,
        args.settings.batch.as_millis()
    );
    println!("## Environment\n\n{}\n", environment::describe());

    let mut measured = Vec::new();
    for mut workload in workloads::workloads(&inputs) {
        let timings = harness::run(&mut workload, args.settings);
        print_workload(&workload, &timings);
        measured.push(Measured { name: workload.name, timings });
    }
    println!("# The other vector types\n\n{}\n", type_workloads::DESCRIPTION);
    let mut type_measured = Vec::new();
    for mut workload in type_workloads::workloads(&type_inputs) {
        let timings = harness::run(&mut workload, args.settings);
        print_workload(&workload, &timings);
        type_measured.push(Measured { name: workload.name, timings });
    }
    println!("- load average at end: {}\n", environment::load_average());
    print_bars(&measured, &inputs);
    print_type_summary(&type_measured);
}

/// How many times faster than the `pgvector` crate each PostgreSQL codec of the other types is.
fn print_type_summary(measured: &[Measured]) {
    use type_workloads::names::{OURS_FROM_SQL, OURS_TO_SQL, PGVECTOR_FROM_SQL, PGVECTOR_TO_SQL};
    println!("## The other types against the pgvector crate\n");
    println!("| workload | pgvector time / diesel-vector time: median (min-max) |\n|---|---|");
    for m in measured.iter().filter(|m| m.name.ends_with("_pg_encode") || m.name.ends_with("_pg_decode")) {
        let (ours, theirs) = if m.name.ends_with("encode") {
            (OURS_TO_SQL, PGVECTOR_TO_SQL)
        } else {
            (OURS_FROM_SQL, PGVECTOR_FROM_SQL)
        };
        let s = Stats::of(&harness::ratios(m.get(theirs), m.get(ours)));
        println!("| {} | {:.2}x ({:.2}-{:.2}) |", m.name, s.median, s.min, s.max);
    }
    println!();
}

fn print_workload(w: &workloads::Workload<'_>, timings: &[Timings]) {
    println!("## {}\n\n{} ({} bytes per vector).\n", w.name, w.description, w.bytes);
    let mut header = "| contender | median ns | IQR ns | min-max ns | GB/s |".to_owned();
    let mut rule = "|---|---:|---:|---:|---:|".to_owned();
    for b in w.baselines {
        header.push_str(&format!(" x {b} |"));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    for t in timings {
        let s = Stats::of(&t.ns_per_call);
        let mut row = format!(
            "| {} | {:.1} | {:.1}-{:.1} | {:.1}-{:.1} | {:.2} |",
            t.name,
            s.median,
            s.q1,
            s.q3,
            s.min,
            s.max,
            w.bytes as f64 / s.median
        );
        for b in w.baselines {
            let base = timings.iter().find(|x| x.name == *b).expect("baseline is a contender");
            row.push_str(&format!(" {} |", ratio_cell(t, base)));
        }
        println!("{row}");
    }
    println!();
}

fn ratio_cell(t: &Timings, base: &Timings) -> String {
    if t.name == base.name {
        return "1".to_owned();
    }
    let r = Stats::of(&harness::ratios(t, base));
    format!("{:.3} ({:.3}-{:.3})", r.median, r.min, r.max)
}

fn print_bars(measured: &[Measured], inputs: &Inputs) {
    let find = |name: &str| measured.iter().find(|m| m.name == name).expect("workload exists");
    let speedup = |workload: &str, ours: &str, theirs: &str| {
        let m = find(workload);
        // theirs / ours per repetition: how many times faster we are.
        Stats::of(&harness::ratios(m.get(theirs), m.get(ours)))
    };
    let slowdown = |workload: &str, ours: &str, base: &str| {
        let m = find(workload);
        Stats::of(&harness::ratios(m.get(ours), m.get(base)))
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };

    println!("## Bars (issue 6, codec)\n");
    println!("| bar | measured: median (min-max) | verdict |\n|---|---|---|");
    let enc = speedup("pg_encode", names::DIESEL_VECTOR_TO_SQL, names::PGVECTOR_TO_SQL);
    println!(
        "| Pg encode >= 4x faster than pgvector | {:.2}x ({:.2}-{:.2}) | {} |",
        enc.median,
        enc.min,
        enc.max,
        verdict(enc.median >= 4.0)
    );
    let dec = speedup("pg_decode", names::DIESEL_VECTOR_FROM_SQL, names::PGVECTOR_FROM_SQL);
    println!(
        "| Pg decode >= 4x faster than pgvector | {:.2}x ({:.2}-{:.2}) | {} |",
        dec.median,
        dec.min,
        dec.max,
        verdict(dec.median >= 4.0)
    );
    let lite = slowdown("sqlite_decode", names::DECODE_SQLITE, names::MEMCPY_TO_VEC);
    println!(
        "| SQLite decode within 1.2x of memcpy | {:.3}x memcpy ({:.3}-{:.3}) | {} |",
        lite.median,
        lite.min,
        lite.max,
        verdict(lite.median <= 1.2)
    );
    let borrowed = matches!(
        diesel_vector::codec::encode_sqlite(&inputs.vector),
        std::borrow::Cow::Borrowed(b) if b.as_ptr() == inputs.vector.as_slice().as_ptr().cast()
    );
    let bind = slowdown("sqlite_encode", names::SQLITE_TO_SQL, names::BLOB_TO_SQL);
    println!(
        "| SQLite encode: no copy beyond the driver's | encode_sqlite borrows the vector's memory: {borrowed}; \
         ToSql = {:.2}x binding a borrowed &[u8] ({:.2}-{:.2}) | {} |",
        bind.median,
        bind.min,
        bind.max,
        verdict(borrowed)
    );
    println!();
}
