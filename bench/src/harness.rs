//! An interleaved runner: every repetition times each contender of a workload once, in a rotating order,
//! so that a slow patch of a shared machine hits all contenders alike and each ratio compares timings
//! taken seconds apart in the same run.

use std::time::{Duration, Instant};

use crate::workloads::Workload;

/// How long to run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Timed batches per contender (at least 5).
    pub reps: usize,
    /// Target duration of one batch.
    pub batch: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self { reps: 21, batch: Duration::from_millis(10) }
    }
}

/// Timings of one contender: nanoseconds per call, one entry per repetition.
#[derive(Debug, Clone)]
pub struct Timings {
    pub name: &'static str,
    pub ns_per_call: Vec<f64>,
}

/// Summary of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(sample: &[f64]) -> Self {
        let mut s = sample.to_vec();
        s.sort_by(f64::total_cmp);
        Self {
            median: quantile(&s, 0.5),
            q1: quantile(&s, 0.25),
            q3: quantile(&s, 0.75),
            min: s[0],
            max: s[s.len() - 1],
        }
    }
}

/// The `q` quantile (0 to 1) of a non-empty sample, interpolated between closest ranks.
pub fn percentile(sample: &[f64], q: f64) -> f64 {
    let mut s = sample.to_vec();
    s.sort_by(f64::total_cmp);
    quantile(&s, q)
}

/// Linear interpolation between closest ranks; `sorted` is non-empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Runs one workload: warms each contender up and sizes its batch, then times `settings.reps` rounds.
pub fn run(workload: &mut Workload<'_>, settings: Settings) -> Vec<Timings> {
    let iters: Vec<u64> = workload.contenders.iter_mut().map(|c| calibrate(&mut c.run, settings.batch)).collect();
    let n = workload.contenders.len();
    let mut timings: Vec<Timings> =
        workload.contenders.iter().map(|c| Timings { name: c.name, ns_per_call: Vec::new() }).collect();
    for rep in 0..settings.reps {
        for k in 0..n {
            let i = (rep + k) % n;
            let run = &mut workload.contenders[i].run;
            let start = Instant::now();
            for _ in 0..iters[i] {
                run();
            }
            let elapsed = start.elapsed();
            timings[i].ns_per_call.push(elapsed.as_nanos() as f64 / iters[i] as f64);
        }
    }
    timings
}

/// Runs `f` for a while (warm caches, allocator, branch predictors) and returns how many calls fill `batch`.
fn calibrate(f: &mut dyn FnMut(), batch: Duration) -> u64 {
    let mut calls = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        let elapsed = start.elapsed();
        if elapsed >= batch / 4 {
            let per_call = elapsed.as_secs_f64() / calls as f64;
            return ((batch.as_secs_f64() / per_call) as u64).max(1);
        }
        calls *= 2;
    }
}

/// Per-repetition ratios `a / b` of two contenders timed in the same rounds.
pub fn ratios(a: &Timings, b: &Timings) -> Vec<f64> {
    a.ns_per_call.iter().zip(&b.ns_per_call).map(|(x, y)| x / y).collect()
}
