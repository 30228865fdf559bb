//! The environment block printed with every report: enough to tell whether two runs are comparable.

use std::fmt::Write as _;
use std::process::Command;

/// CPU flags that decide how fast a byte swap or a copy can go.
const FLAGS: &[&str] =
    &["sse2", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "bmi2", "avx512f", "avx512bw", "erms", "fsrm"];

/// The environment block, as Markdown list items.
pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let flags = field("flags");
    let present: Vec<&str> = FLAGS.iter().copied().filter(|f| flags.split_whitespace().any(|x| x == *f)).collect();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);

    let mut s = String::new();
    let _ = writeln!(s, "- CPU: {} ({cpus} logical CPUs available)", field("model name"));
    let _ = writeln!(s, "- CPU flags (of {}): {}", FLAGS.join(" "), present.join(" "));
    let _ = writeln!(s, "- compiled for: {} ({})", std::env::consts::ARCH, compiled_features());
    let _ = writeln!(s, "- rustc: {}", env!("BENCH_RUSTC_VERSION"));
    let _ = writeln!(
        s,
        "- profile: {} (opt-level {}, debug assertions {})",
        env!("BENCH_PROFILE"),
        env!("BENCH_OPT_LEVEL"),
        if cfg!(debug_assertions) { "on" } else { "off" }
    );
    let _ = writeln!(s, "- crates: {}", env!("BENCH_CRATE_VERSIONS"));
    let _ = writeln!(s, "- libc: {}", command_line("getconf", &["GNU_LIBC_VERSION"]));
    let _ = writeln!(s, "- kernel: {}", read_trimmed("/proc/sys/kernel/osrelease"));
    let _ = writeln!(s, "- git: {}", git_revision());
    let _ = writeln!(s, "- nice: {}", nice_value());
    let _ = write!(s, "- load average at start: {}", load_average());
    s
}

/// The 1, 5 and 15 minute load averages (a busy shared machine shows here).
pub fn load_average() -> String {
    read_trimmed("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn compiled_features() -> String {
    let mut on = Vec::new();
    macro_rules! check {
        ($($f:tt),*) => { $( if cfg!(target_feature = $f) { on.push($f); } )* };
    }
    check!("sse2", "ssse3", "sse4.1", "sse4.2", "avx", "avx2", "fma", "avx512f");
    format!("target features {}", on.join(" "))
}

fn git_revision() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = command_line("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{head} with uncommitted changes")
    } else {
        head
    }
}

fn nice_value() -> String {
    // Field 19 of /proc/self/stat; the command name (field 2) may hold spaces, so count after its ')'.
    read_trimmed("/proc/self/stat")
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(16).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_else(|_| "unknown".to_owned())
}
