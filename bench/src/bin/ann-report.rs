//! The quantized index engine's report: on two generated data sets (the tests' clustered generator and an
//! embedding-like one with a decaying spectrum), in one process, every scan kernel at every SIMD level with
//! the memory-bandwidth floor and a naive scalar baseline, recall against the exact top 10 as a function of
//! the candidates reranked, latency of the default search with candidates read from memory and from SQLite,
//! sqlite-vec's vec0 flat KNN on the same rows, code memory, training and encoding time. Markdown on stdout.
//!
//! ```text
//! scripts/bench-ann.sh [--rows N] [--queries Q] [--quick] [--no-sqlite] [--threads N]
//! ```
// Queries are numbered: `q` indexes the query set and its ground truth alike.
#![allow(clippy::needless_range_loop)]

use std::hint::black_box;
use std::time::Instant;

use diesel_vector::ann::{ExactScan, Filter, Metric, Neighbour, Params, QuantizedIndex, SearchOptions};
use diesel_vector::simd::Simd;
use diesel_vector::Vector;
use diesel_vector_bench::data::{clusters_for, Clusters, Spectrum, DIMS, SEED};
use diesel_vector_bench::environment;
use diesel_vector_bench::harness::percentile;
use diesel_vector_bench::sqlite_index;

diesel::table! {
    ann_vectors (id) {
        id -> BigInt,
        embedding -> Binary,
    }
}

struct Args {
    rows: usize,
    queries: usize,
    sqlite: bool,
    maintenance: bool,
    slow_queries: usize,
    /// `SearchOptions::first_pass_keep` of the default search from memory (its default when `None`).
    first_pass_keep: Option<usize>,
    /// `SearchOptions::tail_tuning_floor` of the default search from memory (its default when `None`).
    tail_floor: Option<f64>,
    /// Threads of the search's Hamming scan (`SearchOptions::threads`, `IndexSearch::threads`); `None`: the
    /// SQLite search's default (the threads the machine runs at once, at most 4), from memory the same.
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rows: 100_000,
        queries: 100,
        sqlite: true,
        maintenance: true,
        slow_queries: 10,
        first_pass_keep: None,
        tail_floor: None,
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a positive number"))
        };
        match flag.as_str() {
            "--rows" => args.rows = value("--rows")?.max(1000),
            "--queries" => args.queries = value("--queries")?.max(10),
            "--quick" => args.rows = 10_000,
            "--no-sqlite" => args.sqlite = false,
            "--threads" => args.threads = Some(value("--threads")?.max(1)),
            "--no-maintenance" => args.maintenance = false,
            "--slow-queries" => args.slow_queries = value("--slow-queries")?.max(1),
            "--first-pass-keep" => args.first_pass_keep = Some(value("--first-pass-keep")?.max(1)),
            "--tail-floor" => {
                let floor = it.next().and_then(|v| v.parse::<f64>().ok()).filter(|f| *f > 0.0);
                args.tail_floor = Some(floor.ok_or("--tail-floor needs a positive number")?);
            }
            "--bench" => {}
            other => {
                return Err(format!(
                "unknown argument {other:?}; expected --rows N, --queries Q, --quick, --no-sqlite, --no-maintenance, \
                     --slow-queries S, --first-pass-keep F, --tail-floor T, --threads N"
            ))
            }
        }
    }
    Ok(args)
}

/// One data set: `rows` vectors and `queries` queries, flat, row `i` has id `i + 1`.
struct DataSet {
    name: &'static str,
    description: &'static str,
    data: Vec<f32>,
    queries: Vec<f32>,
}

impl DataSet {
    fn rows(&self) -> usize {
        self.data.len() / DIMS
    }
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * DIMS..(i + 1) * DIMS]
    }
    fn query(&self, q: usize) -> &[f32] {
        &self.queries[q * DIMS..(q + 1) * DIMS]
    }
    fn query_count(&self) -> usize {
        self.queries.len() / DIMS
    }
}

fn clustered(rows: usize, queries: usize) -> DataSet {
    let clusters = Clusters::new(SEED, DIMS, clusters_for(rows));
    let flat = |vs: Vec<Vector>| vs.iter().flat_map(|v| v.as_slice().to_vec()).collect::<Vec<f32>>();
    DataSet {
        name: "clustered",
        description: "the tests' generator (`tests/common/mod.rs` `clustered`): a shared direction, topics, and \
                      subtopics of 200 rows; queries are new members of the same subtopics",
        data: flat(clusters.vectors(SEED ^ 1, rows)),
        queries: flat(clusters.vectors(SEED ^ 2, queries)),
    }
}

fn spectrum(rows: usize, queries: usize) -> DataSet {
    let s = Spectrum::new(SEED ^ 7, DIMS, (rows / 100).max(50));
    DataSet {
        name: "embedding-like",
        description: "`bench/src/data.rs` `Spectrum`: a shared direction, a decaying spectrum over 128 random \
                      directions, three of rows/100 overlapping topics per vector; queries drawn the same way",
        data: s.vectors(SEED ^ 3, rows),
        queries: s.vectors(SEED ^ 4, queries),
    }
}

fn ms(seconds: f64) -> String {
    format!("{:.3}", seconds * 1e3)
}

/// Median seconds of `reps` runs of `f`.
fn median_time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn recall(found: &[Neighbour], truth: &[Neighbour]) -> f64 {
    truth.iter().filter(|t| found.iter().any(|f| f.id == t.id)).count() as f64 / truth.len().max(1) as f64
}

/// sqlite-vec's cosine loop, element after element in one `f32` accumulator: the naive scalar baseline.
fn naive_cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    1.0 - f64::from(dot) / (f64::from(aa).sqrt() * f64::from(bb).sqrt())
}

fn f64_top10(set: &DataSet, q: &[f32]) -> Vec<i64> {
    let mut all: Vec<(f64, i64)> = (0..set.rows())
        .map(|i| {
            let row = set.row(i);
            let dot: f64 = row.iter().zip(q).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let aa: f64 = row.iter().map(|a| f64::from(*a) * f64::from(*a)).sum();
            let bb: f64 = q.iter().map(|b| f64::from(*b) * f64::from(*b)).sum();
            (1.0 - dot / (aa.sqrt() * bb.sqrt()), i as i64 + 1)
        })
        .collect();
    all.select_nth_unstable_by(10, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(10);
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().map(|(_, id)| id).collect()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ann-report: {e}");
            std::process::exit(2);
        }
    };
    println!("# diesel-vector quantized index engine report\n");
    println!(
        "{} rows x {DIMS} dims, {} queries, top 10, cosine; one process, one thread. Times are medians unless \
         a percentile is named.\n",
        args.rows, args.queries
    );
    println!("## Environment\n\n{}\n", environment::describe());
    println!(
        "- SIMD levels supported: {}",
        Simd::all_supported().iter().map(|s| s.level().name()).collect::<Vec<_>>().join(", ")
    );
    println!("- detected (default): {}\n", Simd::detect().level());

    for make in [clustered as fn(usize, usize) -> DataSet, spectrum] {
        let t = Instant::now();
        let set = make(args.rows, args.queries);
        eprintln!("ann-report: generated {} in {:.1} s", set.name, t.elapsed().as_secs_f64());
        report(&set, &args);
    }
    println!("- load average at end: {}", environment::load_average());
}

fn report(set: &DataSet, args: &Args) {
    let rows = set.rows();
    let nq = set.query_count();
    println!("## Data set: {}\n\n{}.\n", set.name, set.description);

    // Training and encoding.
    let sample_stride = (rows / 10_000).max(1);
    let t = Instant::now();
    let params =
        Params::train(Metric::Cosine, DIMS, (0..rows).step_by(sample_stride).map(|i| set.row(i))).expect("valid");
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let index = QuantizedIndex::build(params.clone(), (0..rows).map(|i| (i as i64 + 1, 0, set.row(i)))).expect("valid");
    let build_s = t.elapsed().as_secs_f64();
    let blob_bytes: usize = (0..index.chunk_count()).map(|c| index.chunk_bytes(c as u32).map_or(0, |b| b.len())).sum();
    let t = Instant::now();
    let blobs: Vec<Vec<u8>> = (0..index.chunk_count()).map(|c| index.chunk_bytes(c as u32).expect("exists")).collect();
    let store_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let loaded = QuantizedIndex::from_chunks(params.clone(), blobs.iter().map(Vec::as_slice)).expect("valid");
    let load_s = t.elapsed().as_secs_f64();
    assert_eq!(loaded.len(), rows);
    drop((loaded, blobs));
    println!("### Index\n");
    println!("| step | measured |\n|---|---|");
    println!(
        "| training on {} rows (centre, error bound) | {} ms; bound {:.4} |",
        rows.div_ceil(sample_stride),
        ms(train_s),
        params.error_bound()
    );
    println!("| encoding {rows} rows (build) | {} ms ({:.2} µs per row) |", ms(build_s), build_s * 1e6 / rows as f64);
    println!(
        "| memory of the index (codes, ids, partition keys, factors, id map) | {:.1} MB ({:.0} bytes per row) |",
        index.memory_bytes() as f64 / 1e6,
        index.memory_bytes() as f64 / rows as f64
    );
    println!(
        "| stored chunks | {} chunks, {:.1} MB; serialised in {} ms, loaded and checked in {} ms |",
        index.chunk_count(),
        blob_bytes as f64 / 1e6,
        ms(store_s),
        ms(load_s)
    );
    println!();

    // Ground truth: the exact f32 path; and its agreement with an f64 reference.
    let ids: Vec<i64> = (1..=rows as i64).collect();
    let exact_top10 = |q: &[f32]| {
        let mut scan = ExactScan::new(Metric::Cosine, q, 10).expect("valid");
        scan.push(&ids, &set.data).expect("shape");
        scan.finish()
    };
    let t = Instant::now();
    let truth: Vec<Vec<Neighbour>> = (0..nq).map(|q| exact_top10(set.query(q))).collect();
    eprintln!("ann-report: truth in {:.1} s", t.elapsed().as_secs_f64());
    let checked = nq.min(20);
    let identical = (0..checked)
        .filter(|q| truth[*q].iter().map(|n| n.id).collect::<Vec<_>>() == f64_top10(set, set.query(*q)))
        .count();

    // Scans per level.
    let codes: Vec<u64> = (0..rows).flat_map(|i| params.encode(set.row(i)).expect("valid")).collect();
    let qcode = params.encode(set.query(0)).expect("valid");
    let keep = vec![u64::MAX; rows.div_ceil(64)];
    let mut out = vec![0u16; rows];
    println!("### Scans, one query over all {rows} rows\n");
    println!("| kernel | level | median ms | GB/s | x floor or x baseline |\n|---|---|---:|---:|---|");
    let floor = median_time(5, || {
        // Reading every byte once: the memory-bandwidth floor of any f32 scan (the bits summed as integers).
        black_box(set.data.iter().fold(0u32, |a, x| a.wrapping_add(x.to_bits())));
    });
    let f32_bytes = (rows * DIMS * 4) as f64;
    println!(
        "| read every byte (memory-bandwidth floor) | portable | {} | {:.1} | 1 |",
        ms(floor),
        f32_bytes / floor / 1e9
    );
    let naive = median_time(3, || {
        let mut best = (f64::INFINITY, 0usize);
        for i in 0..rows {
            let d = naive_cosine(set.query(0), set.row(i));
            if d < best.0 {
                best = (d, i);
            }
        }
        black_box(best);
    });
    println!(
        "| exact f32 cosine, naive scalar (sqlite-vec's loop) | portable | {} | {:.1} | {:.2}x floor |",
        ms(naive),
        f32_bytes / naive / 1e9,
        naive / floor
    );
    let mut exact_at_detected = 0.0;
    for simd in Simd::all_supported() {
        let s = median_time(5, || {
            let mut scan = ExactScan::new(Metric::Cosine, set.query(0), 10).expect("valid").with_simd(simd);
            scan.push(&ids, &set.data).expect("shape");
            black_box(scan.finish());
        });
        if simd == Simd::detect() {
            exact_at_detected = s;
        }
        println!(
            "| exact f32 cosine top 10 (`ExactScan`) | {} | {} | {:.1} | {:.2}x floor, {:.1}x faster than naive |",
            simd.level(),
            ms(s),
            f32_bytes / s / 1e9,
            s / floor,
            naive / s
        );
    }
    let code_bytes = (codes.len() * 8) as f64;
    let naive_hamming = median_time(9, || {
        for (o, c) in out.iter_mut().zip(codes.chunks_exact(qcode.len())) {
            let mut d = 0u32;
            for (a, b) in qcode.iter().zip(c) {
                for bit in 0..64 {
                    d += u32::from(((a ^ b) >> bit) & 1 == 1);
                }
            }
            *o = d as u16;
        }
        black_box(&out);
    });
    println!(
        "| Hamming, bit by bit (naive scalar) | portable | {} | {:.1} | 1 |",
        ms(naive_hamming),
        code_bytes / naive_hamming / 1e9
    );
    for simd in Simd::all_supported() {
        let s = median_time(21, || {
            simd.hamming_scan(&qcode, &codes, &keep, &mut out);
            black_box(&out);
        });
        println!(
            "| Hamming scan of the codes ({} bytes each) | {} | {} | {:.1} | {:.0}x faster than naive |",
            qcode.len() * 8,
            simd.level(),
            ms(s),
            code_bytes / s / 1e9,
            naive_hamming / s
        );
    }
    println!();
    println!("Exact path: `ExactScan` ids identical to an f64 reference in {identical} of {checked} queries.\n");

    // Recall against the candidates reranked.
    let in_memory = |ids: &[i64], sink: &mut dyn FnMut(i64, &[f32])| -> Result<(), diesel_vector::ann::AnnError> {
        for id in ids {
            sink(*id, set.row(*id as usize - 1));
        }
        Ok(())
    };
    let fixed = |rescore: usize, rerank: usize| SearchOptions {
        rescore_first: rescore,
        rescore_share: 1.0,
        rescore_per_k: 0,
        // The whole codes' Hamming order, with no first pass over their prefixes.
        first_pass_keep: usize::MAX,
        rescore_limit: rescore,
        max_rerank: rerank,
        rerank_limit: rerank,
        min_recall_estimate: 0.0,
        first_fetch: rerank,
        bound_scale: f64::INFINITY,
        miss_budget: 0.0,
        exhaustive_below: 0,
        tail_tuning_floor: 1.0,
        threads: args.threads.unwrap_or(1),
        defer_unranked: false,
    };
    println!("### Recall@10 against the candidates reranked exactly\n");
    println!("Hamming only: the `R` nearest codes by Hamming distance reranked. Rescored: the 2000 nearest by Hamming");
    println!("rescored with the 4-bit query, the `R` best of those reranked. (No early stop in either.)\n");
    println!("| R | Hamming only | rescored |\n|---:|---:|---:|");
    let mut needed = [(None, None), (None, None)];
    for r in [10, 20, 30, 50, 100, 200, 400, 1000] {
        let mut row = format!("| {r} |");
        for (col, rescore) in [(0, r), (1, 2000)] {
            let rec: f64 = (0..nq)
                .map(|q| {
                    let o =
                        index.search(set.query(q), 10, &Filter::all(), &fixed(rescore, r), in_memory).expect("search");
                    recall(&o.neighbours, &truth[q])
                })
                .sum::<f64>()
                / nq as f64;
            if rec >= 0.95 && needed[col].0.is_none() {
                needed[col].0 = Some(r);
            }
            if rec >= 0.99 && needed[col].1.is_none() {
                needed[col].1 = Some(r);
            }
            row.push_str(&format!(" {rec:.3} |"));
        }
        println!("{row}");
    }
    let show = |x: Option<usize>| x.map_or("> 1000".to_owned(), |v| v.to_string());
    println!(
        "\nCandidates needed for recall@10 >= 0.95 / 0.99: Hamming only {} / {}; rescored {} / {}.\n",
        show(needed[0].0),
        show(needed[0].1),
        show(needed[1].0),
        show(needed[1].1)
    );

    // The default search, candidates from memory.
    println!("### Default search (`SearchOptions::default()`, adaptive rerank)\n");
    let defaults = SearchOptions::default();
    let options = SearchOptions {
        first_pass_keep: args.first_pass_keep.unwrap_or(defaults.first_pass_keep),
        tail_tuning_floor: args.tail_floor.unwrap_or(defaults.tail_tuning_floor),
        threads: args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4))),
        ..defaults
    };
    let mut lat = Vec::new();
    let (mut rec, mut fetched, mut bounded, mut rescored) = (0.0, 0usize, 0usize, 0usize);
    for q in 0..nq {
        let t = Instant::now();
        let o = index.search(set.query(q), 10, &Filter::all(), &options, in_memory).expect("search");
        lat.push(t.elapsed().as_secs_f64());
        rec += recall(&o.neighbours, &truth[q]);
        fetched += o.stats.fetched;
        bounded += usize::from(o.stats.bounded);
        rescored += o.stats.rescored;
    }
    println!("| candidates from | recall@10 | mean reranked | stopped by the bound | p50 ms | p95 ms | x exact scan (p50) |\n|---|---:|---:|---:|---:|---:|---:|");
    let p50 = percentile(&lat, 0.5);
    println!(
        "| memory (`Vec<f32>`) | {:.3} | {:.1} | {}/{nq} | {} | {} | {:.0}x faster |",
        rec / nq as f64,
        fetched as f64 / nq as f64,
        bounded,
        ms(p50),
        ms(percentile(&lat, 0.95)),
        exact_at_detected / p50
    );

    // A partition holding 1% of the rows: k results from the scan's filter.
    let part =
        QuantizedIndex::build(params.clone(), (0..rows).map(|i| (i as i64 + 1, u64::from(i % 100 == 7), set.row(i))))
            .expect("valid");
    let members: Vec<usize> = (0..rows).filter(|i| i % 100 == 7).collect();
    let (mut prec, mut plat, mut full) = (0.0, Vec::new(), 0);
    let (mut pfetched, mut pbounded, mut prescored) = (0usize, 0usize, 0usize);
    for q in 0..nq {
        let mut scan = ExactScan::new(Metric::Cosine, set.query(q), 10).expect("valid");
        for i in &members {
            scan.push(&[*i as i64 + 1], set.row(*i)).expect("shape");
        }
        let want = scan.finish();
        let t = Instant::now();
        let o = part.search(set.query(q), 10, &Filter::partition(1), &options, in_memory).expect("search");
        plat.push(t.elapsed().as_secs_f64());
        full += usize::from(o.neighbours.len() == 10);
        prec += recall(&o.neighbours, &want);
        pfetched += o.stats.fetched;
        pbounded += usize::from(o.stats.bounded);
        prescored += o.stats.rescored;
    }
    println!(
        "| memory, filter: a partition of 1% of the rows | {:.3} | {:.1} | {pbounded}/{nq} | {} | {} | ({full}/{nq} queries returned 10 rows) |",
        prec / nq as f64,
        pfetched as f64 / nq as f64,
        ms(percentile(&plat, 0.5)),
        ms(percentile(&plat, 0.95))
    );
    // Queries unlike every row: vectors of independent uniform elements. The codes rank such a query's rows
    // poorly (its distances to them are all alike); an answer the search is not confident in is replaced by
    // the exact scan on SQLite, so the recall that reaches the application counts those as exact.
    let mut rng = diesel_vector_bench::data::Rng::new(SEED ^ 11);
    let sqlite_options = SearchOptions { defer_unranked: true, ..options };
    let (mut frec, mut fserved, mut flat, mut ffetched, mut fconfident) = (0.0, 0.0, Vec::new(), 0usize, 0usize);
    for _ in 0..nq {
        let q: Vec<f32> = (0..DIMS).map(|_| rng.unit()).collect();
        let want = exact_top10(&q);
        let t = Instant::now();
        let o = index.search(&q, 10, &Filter::all(), &sqlite_options, in_memory).expect("search");
        flat.push(t.elapsed().as_secs_f64());
        let r = recall(&o.neighbours, &want);
        frec += r;
        fserved += if o.stats.confident { r } else { 1.0 };
        ffetched += o.stats.fetched;
        fconfident += usize::from(o.stats.confident);
    }
    println!(
        "| memory, queries unlike the data (independent uniform elements) | {:.3} ({:.3} as SQLite answers: the {} not confident scanned exactly) | {:.1} | | {} | {} | |",
        frec / nq as f64,
        fserved / nq as f64,
        nq - fconfident,
        ffetched as f64 / nq as f64,
        ms(percentile(&flat, 0.5)),
        ms(percentile(&flat, 0.95))
    );
    println!(
        "\nRows rescored with the 4-bit query, mean per search: {:.0} unfiltered, {:.0} in the partition ({} rows).",
        rescored as f64 / nq as f64,
        prescored as f64 / nq as f64,
        members.len()
    );

    println!();
    if args.sqlite {
        let truth_ids: Vec<Vec<i64>> = truth.iter().map(|t| t.iter().map(|n| n.id).collect()).collect();
        let f64_truth: Vec<Vec<i64>> = (0..nq.min(args.slow_queries)).map(|q| f64_top10(set, set.query(q))).collect();
        let input = sqlite_index::Input {
            dims: DIMS,
            data: &set.data,
            queries: &set.queries,
            truth: &truth_ids,
            f64_truth: &f64_truth,
        };
        sqlite_index::report(
            &input,
            &sqlite_index::Options {
                maintenance: args.maintenance,
                slow_queries: args.slow_queries,
                threads: args.threads,
            },
        );
    }
}
