//! Interleaved rounds for the database workloads: each repetition runs every contender once, in a
//! rotating order, so a slow patch of a shared machine hits all of them alike and each ratio compares
//! runs made seconds apart. A contender times itself (its fresh database is made before the clock starts
//! and checked and dropped after it stops) and may report phases and a peak memory.

use crate::harness::Stats;

/// One timed run of a contender.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds of the timed work.
    pub seconds: f64,
    /// Named parts of the run, in seconds (a copy's migration, table copies, verification, index sync).
    pub phases: Vec<(&'static str, f64)>,
    /// Peak resident set size of the process that did the work, in KiB (`VmHWM`), when measured.
    pub peak_rss_kib: Option<u64>,
    /// CPU seconds used on the client side (this process or the copy's) and by PostgreSQL's backends
    /// during the timed work (for a copy: its `embeddings` phase), when measured.
    pub cpu: Option<Cpu>,
}

/// CPU seconds of the two sides of a database run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub client: f64,
    pub server: f64,
}

impl Sample {
    /// A run that took `seconds` and reports nothing else.
    pub fn seconds(seconds: f64) -> Self {
        Self { seconds, ..Self::default() }
    }

    /// The seconds of phase `name`, if reported.
    pub fn phase(&self, name: &str) -> Option<f64> {
        self.phases.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }
}

/// One way of doing a workload's job. `run` prepares a fresh database, times the job, checks the
/// result and cleans up.
pub struct Contender<'a> {
    pub name: &'static str,
    pub run: Box<dyn FnMut() -> Result<Sample, String> + 'a>,
}

/// The samples of one contender, one per repetition.
#[derive(Debug, Clone)]
pub struct Runs {
    pub name: &'static str,
    pub samples: Vec<Sample>,
}

impl Runs {
    /// Seconds per repetition.
    pub fn seconds(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.seconds).collect()
    }

    pub fn stats(&self) -> Stats {
        Stats::of(&self.seconds())
    }

    /// Per-repetition seconds of a phase (repetitions that did not report it are left out).
    pub fn phase(&self, name: &str) -> Vec<f64> {
        self.samples.iter().filter_map(|s| s.phase(name)).collect()
    }
}

/// Runs `warmup` untimed rounds, then `reps` timed ones, each contender once per round in a rotating
/// order. `progress` hears `(round, contender)` before each run (rounds below `warmup` are warm-up).
pub fn run(
    contenders: &mut [Contender<'_>],
    warmup: usize,
    reps: usize,
    progress: &mut dyn FnMut(usize, &str),
) -> Result<Vec<Runs>, String> {
    let n = contenders.len();
    let mut runs: Vec<Runs> = contenders.iter().map(|c| Runs { name: c.name, samples: Vec::new() }).collect();
    for round in 0..warmup + reps {
        for k in 0..n {
            let i = (round + k) % n;
            let contender = &mut contenders[i];
            progress(round, contender.name);
            let sample = (contender.run)().map_err(|e| format!("{}: {e}", contender.name))?;
            if round >= warmup {
                runs[i].samples.push(sample);
            }
        }
    }
    Ok(runs)
}

/// Per-repetition throughput ratios of `a` to `b` (`b`'s seconds / `a`'s): above 1 when `a` is faster.
pub fn throughput_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| y / x).collect()
}

/// Seconds of every repetition, in run order, one line per contender, so that a bimodal spread (a
/// neighbour's burst of work on a shared machine) shows.
pub fn print_repetitions(note: &str, rows: &[(&str, Vec<f64>)]) {
    println!("Seconds per repetition, in order{note}:\n");
    for (name, seconds) in rows {
        let secs: Vec<String> = seconds.iter().map(|s| format!("{s:.3}")).collect();
        println!("- {name}: {}", secs.join(", "));
    }
    println!();
}

/// A bar of the issue and whether this run met it.
#[derive(Debug, Clone)]
pub struct Bar {
    pub what: String,
    pub measured: String,
    pub met: bool,
}
