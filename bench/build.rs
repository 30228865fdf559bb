//! Records, for the report's environment block, the compiler that builds the benchmarks and the versions
//! of the crates they measure (read from the workspace's Cargo.lock).

use std::path::Path;
use std::process::Command;

const CRATES: &[&str] = &[
    "diesel-vector",
    "diesel",
    "diesel_migrations",
    "pgvector",
    "bytemuck",
    "criterion",
    "libsqlite3-sys",
    "sqlite-vec",
    "pq-sys",
];

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(&rustc)
        .arg("-vV")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| {
            let release = s.lines().next().unwrap_or("unknown").to_owned();
            let llvm = s.lines().find_map(|l| l.strip_prefix("LLVM version: ")).unwrap_or("unknown");
            format!("{release}, LLVM {llvm}")
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BENCH_RUSTC_VERSION={version}");

    // The directory cargo runs this script for, read when it runs: `env!` would keep the one it was compiled
    // in, and a target directory shared between checkouts reuses the compiled script.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock_path = Path::new(&manifest_dir).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let versions: Vec<String> = CRATES
        .iter()
        .map(|name| {
            let needle = format!("name = \"{name}\"\nversion = \"");
            let version = lock
                .split("[[package]]")
                .filter_map(|pkg| pkg.trim_start().strip_prefix(&needle[..]))
                .filter_map(|rest| rest.split('"').next())
                .collect::<Vec<_>>()
                .join("/");
            format!("{name} {}", if version.is_empty() { "?" } else { &version })
        })
        .collect();
    println!("cargo:rustc-env=BENCH_CRATE_VERSIONS={}", versions.join(", "));
    println!("cargo:rustc-env=BENCH_OPT_LEVEL={}", std::env::var("OPT_LEVEL").unwrap_or_default());
    println!("cargo:rustc-env=BENCH_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
}
