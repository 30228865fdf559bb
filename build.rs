//! `embed_migrations!` does not notice edits to the migration folders: rebuild when they change.
//!
//! The AVX-512 intrinsics of `core::arch` are stable since Rust 1.89, above the crate's minimum (1.86): with
//! an older compiler the SIMD module builds without its AVX-512 level (cfg `dv_avx512` unset) and tops out at
//! AVX2.
fn main() {
    println!("cargo:rerun-if-changed=migrations_pg");
    println!("cargo:rerun-if-changed=migrations_sqlite");
    println!("cargo:rustc-check-cfg=cfg(dv_avx512)");
    if rustc_minor().is_some_and(|minor| minor >= 89) {
        println!("cargo:rustc-cfg=dv_avx512");
    }
}

/// The minor version of the compiler building the crate (`rustc 1.95.0 (...)` gives 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().nth(1)?.split('.').nth(1)?.parse().ok()
}
