//! The interleaved runner for database workloads. A repetition runs every query through every contender,
//! one call at a time in a rotating order, so that a slow patch of the shared machine (or a checkpoint,
//! or autovacuum) hits all contenders alike; each ratio compares the totals of one repetition.

use std::time::{Duration, Instant};

use diesel_vector::Vector;

use crate::harness::{percentile, Stats};

/// What a contender may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers one query on a context `C` (the connections): the ids, nearest first.
pub type QueryFn<'a, C> = Box<dyn FnMut(&mut C, &Vector) -> Result<Vec<i64>, BoxError> + 'a>;

/// One way of answering a top-k query.
pub struct QueryContender<'a, C> {
    pub name: String,
    pub run: QueryFn<'a, C>,
}

impl<'a, C> QueryContender<'a, C> {
    pub fn new(name: impl Into<String>, run: impl FnMut(&mut C, &Vector) -> Result<Vec<i64>, BoxError> + 'a) -> Self {
        Self { name: name.into(), run: Box::new(run) }
    }
}

/// One job whose contenders time themselves (so that per-call set-up, such as creating a fresh
/// database, is left out): returns the time of the measured part.
pub struct TimedContender<'a> {
    pub name: String,
    pub run: Box<dyn FnMut() -> Result<Duration, BoxError> + 'a>,
}

impl<'a> TimedContender<'a> {
    pub fn new(name: impl Into<String>, run: impl FnMut() -> Result<Duration, BoxError> + 'a) -> Self {
        Self { name: name.into(), run: Box::new(run) }
    }
}

/// Measurements of one contender.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    /// Milliseconds of every timed call.
    pub calls_ms: Vec<f64>,
    /// Milliseconds per call of each repetition (the mean over its calls), for ratios.
    pub rep_ms: Vec<f64>,
    /// The ids each query returned in the untimed first pass (query workloads only).
    pub ids: Vec<Vec<i64>>,
    /// Timed calls whose ids differed from the first pass (an index scan that is not deterministic).
    pub unstable: usize,
}

impl Measured {
    fn new(name: &str) -> Self {
        Self { name: name.to_owned(), calls_ms: Vec::new(), rep_ms: Vec::new(), ids: Vec::new(), unstable: 0 }
    }

    pub fn p50(&self) -> f64 {
        percentile(&self.calls_ms, 0.5)
    }

    pub fn p95(&self) -> f64 {
        percentile(&self.calls_ms, 0.95)
    }

    /// Per-repetition ratios to `base`, summarised.
    pub fn ratio(&self, base: &Measured) -> Stats {
        Stats::of(&self.rep_ms.iter().zip(&base.rep_ms).map(|(a, b)| a / b).collect::<Vec<_>>())
    }

    /// Per-repetition differences to `base` in milliseconds per call, summarised.
    pub fn overhead_ms(&self, base: &Measured) -> Stats {
        Stats::of(&self.rep_ms.iter().zip(&base.rep_ms).map(|(a, b)| a - b).collect::<Vec<_>>())
    }

    /// How many queries returned exactly `base`'s ids in the same order.
    pub fn same_ids(&self, base: &Measured) -> usize {
        self.ids.iter().zip(&base.ids).filter(|(a, b)| a == b).count()
    }
}

/// Runs every query through every contender once untimed (warming caches, recording ids), then `reps`
/// timed repetitions.
///
/// # Errors
///
/// The first error of a contender.
pub fn run_queries<C>(
    ctx: &mut C,
    contenders: &mut [QueryContender<'_, C>],
    queries: &[Vector],
    reps: usize,
) -> Result<Vec<Measured>, BoxError> {
    let mut out: Vec<Measured> = contenders.iter().map(|c| Measured::new(&c.name)).collect();
    for (c, m) in contenders.iter_mut().zip(&mut out) {
        for q in queries {
            let ids = (c.run)(ctx, q).map_err(|e| format!("{}: {e}", c.name))?;
            m.ids.push(ids);
        }
    }
    let n = contenders.len();
    for rep in 0..reps {
        let mut totals = vec![0f64; n];
        for (qi, q) in queries.iter().enumerate() {
            for k in 0..n {
                let i = (rep + qi + k) % n;
                let start = Instant::now();
                let ids = (contenders[i].run)(ctx, q)?;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                totals[i] += ms;
                out[i].calls_ms.push(ms);
                if ids != out[i].ids[qi] {
                    out[i].unstable += 1;
                }
            }
        }
        for (m, total) in out.iter_mut().zip(totals) {
            m.rep_ms.push(total / queries.len() as f64);
        }
    }
    Ok(out)
}

/// Runs `reps` repetitions of `calls` calls of each contender, interleaved call by call in a rotating
/// order, after one untimed call each.
///
/// # Errors
///
/// The first error of a contender.
pub fn run_timed(contenders: &mut [TimedContender<'_>], reps: usize, calls: usize) -> Result<Vec<Measured>, BoxError> {
    let mut out: Vec<Measured> = contenders.iter().map(|c| Measured::new(&c.name)).collect();
    for c in contenders.iter_mut() {
        (c.run)().map_err(|e| format!("{}: {e}", c.name))?;
    }
    let n = contenders.len();
    for rep in 0..reps {
        let mut totals = vec![0f64; n];
        for call in 0..calls {
            for k in 0..n {
                let i = (rep + call + k) % n;
                let ms = (contenders[i].run)()?.as_secs_f64() * 1000.0;
                totals[i] += ms;
                out[i].calls_ms.push(ms);
            }
        }
        for (m, total) in out.iter_mut().zip(totals) {
            m.rep_ms.push(total / calls as f64);
        }
    }
    Ok(out)
}

/// The bar a comparison is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// DSL or search API over the identical hand-written SQL: at most 2% or 0.2 ms more, identical ids.
    Overhead,
    /// The crate's Rust distance functions against sqlite-vec's: at least as fast.
    AtLeastAsFast,
    /// The migration runner over the SQL it runs (or the cheapest equivalent check): at most 20% more.
    Runner,
    /// No bar: a ratio printed below the group's table, to explain another.
    Info,
}

/// A contender held against a baseline measured in the same run.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub contender: String,
    pub baseline: String,
    pub bar: Bar,
}

/// One table of the report: contenders that answer the same queries the same way.
#[derive(Debug)]
pub struct Group {
    pub title: String,
    /// What was measured, for the reader.
    pub note: String,
    pub results: Vec<Measured>,
    pub comparisons: Vec<Comparison>,
    /// Whether recall@10 against the cosine ground truth means anything here (not for L1 or L2).
    pub recall: bool,
}

impl Group {
    pub fn get(&self, name: &str) -> &Measured {
        self.results.iter().find(|m| m.name == name).expect("contender was measured")
    }
}
