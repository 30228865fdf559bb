//! SIMD kernels chosen at run time: the crate's second audited `unsafe` spot (the first is the sqlite-vec
//! registration in `src/sqlite/extension.rs`).
//!
//! A [`Simd`] value names a kernel [`Level`] **that this CPU supports**: it can only be made by detecting the
//! CPU's features ([`Simd::detect`], [`Simd::new`], [`Simd::at_most`]), so every kernel is a safe method on
//! it. The levels, from slowest to fastest:
//!
//! | level | x86-64 features required | what it speeds up |
//! |---|---|---|
//! | [`Level::Portable`] | none (the compile target's own) | everything, in plain Rust the compiler vectorises |
//! | [`Level::Popcnt`] | POPCNT, SSSE3 (every x86-64 CPU since about 2009) | Hamming distances; the codecs' byte swaps (`pshufb`) |
//! | [`Level::Avx2`] | AVX2, POPCNT | the above with 256-bit registers; `f32` distances; the index's sign codes |
//! | [`Level::Avx512`] | AVX-512 F, BW and VPOPCNTDQ, AVX2, POPCNT | Hamming distances (`vpopcntq`), `f32` distances, sign codes, byte swaps |
//!
//! The CPU is asked once per process (cached). Setting the environment variable `DIESEL_VECTOR_SIMD` to
//! `portable`, `popcnt`, `avx2` or `avx512` caps the level [`Simd::detect`] picks (never raises it above what
//! the CPU has): a way to take the fallback on purpose, for instance in a test process. Other targets than
//! x86-64 always use [`Level::Portable`].
//!
//! # Results do not depend on the level
//!
//! The `f32` kernels keep 16 independent partial sums and add them in the same order at every level, with a
//! separate multiply and add (no FMA, which rounds once instead of twice): each returns **the same bits** at
//! every level, and the same bits as the crate's SQL distance functions (`src/sqlite/functions/kernels.rs`),
//! so an index search ranks rows exactly as the exact scan does. The sign codes of the quantized index are
//! the same comparisons at every level, and their sums are kept like the distances' (so an index encodes
//! the same codes whatever CPU wrote them). The scans are bound by memory bandwidth, so
//! FMA would buy nothing measurable. Integer kernels (Hamming distances, bit-plane sums) are exact; byte
//! conversions copy bits. The tests check every level against the portable reference, bit for bit.
//!
//! # Why our own module rather than a crate
//!
//! Measured before writing it (BENCHMARKS.md, "Quantized index engine"): `multiversion` compiles the same
//! portable loop once per target and dispatches; for the Hamming scan (the index's hot loop) LLVM's own
//! vectorisation with AVX-512 enabled came out many times *slower* than hand-written `vpopcntq` (slower even
//! than plain POPCNT), and the crate offers no way to force the fallback at run time in a test. `pulp` has
//! no VPOPCNTDQ level and brings seven crates. For `f32` scans every approach measured the same (memory
//! bound). So the intrinsics are written here, behind safe methods.
//!
//! # Safety argument (for `x86.rs`, the only file with `unsafe`)
//!
//! 1. **Features.** Every `#[target_feature]` function is called only from a `match` on the [`Level`] of a
//!    [`Simd`], and a `Simd` holds a level only after `is_x86_feature_detected!` returned true for every
//!    feature that level's functions enable (`Level::is_supported`): no instruction the CPU lacks is ever
//!    executed. The field is private to this module; the constructors are the only way in.
//! 2. **Memory.** Every load and store is unaligned (`loadu`/`storeu`) and stays within a slice whose length
//!    was checked in the same function: loops run over `len / width` whole blocks and the rest is done in
//!    plain Rust (or with a masked load that touches only the rest's lanes). Writes into a `Vec`'s spare
//!    capacity stay within the capacity reserved just before, and `set_len` is called only after every
//!    element up to the new length was written.
//! 3. **Values.** The kernels read `f32`, `u64` and bytes, for which every bit pattern is valid.
//! 4. **Prefetches** (`_mm_prefetch`, before [`Simd::hamming_rows`] compares scattered rows, and in
//!    `Simd::prefetch` for the rows a search rescores) are hints: they
//!    read nothing into the program and cannot fault, whatever the address; they are only ever given
//!    addresses within a slice anyway. The kernels that take closures (`hamming_rows`) hand them only
//!    subslices of the caller's slices, and the unsafe distance inside reads the shorter of its two slices.
//! 5. **The one `asm!`** (`opaque!`, in the codecs' conversions) has an empty template: it hands a register
//!    back unchanged and touches no memory, stack or flag (`pure, nomem, nostack, preserves_flags`). It only
//!    hides from LLVM that the value was just loaded, so that the copy loop is not replaced by `memcpy`.

use std::sync::atomic::{AtomicU8, Ordering};

mod portable;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
// The AVX-512 intrinsics are stable since Rust 1.89, above the crate's minimum; build.rs compiles those
// kernels only with such a compiler (cfg `dv_avx512`).
#[cfg_attr(dv_avx512, allow(clippy::incompatible_msrv))]
mod x86;

/// A set of SIMD instructions the kernels can use, ordered from the slowest to the fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Plain Rust, vectorised by the compiler for the compile target only. Every target has it.
    Portable,
    /// x86-64 with POPCNT and SSSE3.
    Popcnt,
    /// x86-64 with AVX2 and POPCNT.
    Avx2,
    /// x86-64 with AVX-512 F, BW and VPOPCNTDQ (and AVX2, POPCNT).
    Avx512,
}

impl Level {
    /// Every level, slowest first.
    pub const ALL: [Level; 4] = [Level::Portable, Level::Popcnt, Level::Avx2, Level::Avx512];

    /// The lower-case name `DIESEL_VECTOR_SIMD` accepts and reports print.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Popcnt => "popcnt",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// The level named `name` (as [`Level::name`] spells it, any case).
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU has every feature the level's kernels use (asked once, then cached by the standard
    /// library).
    pub fn is_supported(self) -> bool {
        match self {
            Level::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Level::Popcnt => is_x86_feature_detected!("popcnt") && is_x86_feature_detected!("ssse3"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Level::Popcnt.is_supported() && is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            // The AVX-512 kernels need Rust 1.89 (build.rs sets `dv_avx512`).
            Level::Avx512 => {
                cfg!(dv_avx512)
                    && Level::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vpopcntdq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest level this CPU supports, ignoring `DIESEL_VECTOR_SIMD`.
    pub fn best_supported() -> Level {
        Level::ALL.into_iter().rev().find(|l| l.is_supported()).unwrap_or(Level::Portable)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of the environment variable that caps the detected level.
pub const LEVEL_ENV: &str = "DIESEL_VECTOR_SIMD";

/// The detected level, `u8::MAX` until the first detection.
static DETECTED: AtomicU8 = AtomicU8::new(u8::MAX);

/// `best` capped by the value of `DIESEL_VECTOR_SIMD`, if it names a level (anything else is ignored).
fn capped(best: Level, setting: Option<&str>) -> Level {
    best.min(setting.and_then(Level::from_name).unwrap_or(Level::Avx512))
}

/// A kernel level this CPU supports, and the kernels at that level.
///
/// ```
/// use diesel_vector::simd::{Level, Simd};
///
/// let simd = Simd::detect();
/// let (a, b) = ([1.0f32, 2.0, 3.0], [4.0f32, 6.0, 3.0]);
/// assert_eq!(simd.l2_squared(&a, &b), 25.0);
/// // Every level gives the same bits.
/// assert_eq!(Simd::at_most(Level::Portable).dot(&a, &b), simd.dot(&a, &b));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simd {
    /// Invariant: `level.is_supported()`.
    level: Level,
}

impl Simd {
    /// The fastest supported level, capped by `DIESEL_VECTOR_SIMD` when it is set; detected once per process.
    #[inline]
    pub fn detect() -> Simd {
        let cached = DETECTED.load(Ordering::Relaxed);
        let level = match Level::ALL.get(usize::from(cached)) {
            Some(level) => *level,
            None => {
                let level = Self::detect_uncached();
                let index = Level::ALL.iter().position(|l| *l == level).unwrap_or(0);
                DETECTED.store(u8::try_from(index).unwrap_or(0), Ordering::Relaxed);
                level
            }
        };
        Simd { level }
    }

    #[cold]
    fn detect_uncached() -> Level {
        capped(Level::best_supported(), std::env::var(LEVEL_ENV).ok().as_deref())
    }

    /// `level` if this CPU supports it.
    pub fn new(level: Level) -> Option<Simd> {
        level.is_supported().then_some(Simd { level })
    }

    /// The fastest supported level no faster than `level` (and no faster than [`Simd::detect`]).
    pub fn at_most(level: Level) -> Simd {
        Simd { level: level.min(Self::detect().level) }
    }

    /// The portable kernels, on any CPU.
    pub const fn portable() -> Simd {
        Simd { level: Level::Portable }
    }

    /// The level in use.
    pub fn level(self) -> Level {
        self.level
    }

    /// Every level this CPU supports, slowest first (for tests and benchmarks that try each one).
    pub fn all_supported() -> Vec<Simd> {
        Level::ALL.into_iter().filter_map(Simd::new).collect()
    }

    /// `Σ a[i]·b[i]` over the common length, in `f32`: 16 partial sums added in order, then the rest.
    #[inline]
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Avx2 {
            return x86::dot(self.level, a, b);
        }
        portable::dot(a, b)
    }

    /// `Σ (a[i] - b[i])²` over the common length, in `f32`, summed like [`Simd::dot`].
    #[inline]
    pub fn l2_squared(self, a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Avx2 {
            return x86::l2_squared(self.level, a, b);
        }
        portable::l2_squared(a, b)
    }

    /// `Σ |a[i] - b[i]|` over the common length, each term and the sum in `f64` (8 partial sums).
    #[inline]
    pub fn l1(self, a: &[f32], b: &[f32]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Avx2 {
            return x86::l1(self.level, a, b);
        }
        portable::l1(a, b)
    }

    /// `(Σ a[i]·b[i], Σ b[i]²)` in one pass, each summed exactly like [`Simd::dot`].
    #[inline]
    pub fn dot_and_norm(self, a: &[f32], b: &[f32]) -> (f32, f32) {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Avx2 {
            return x86::dot_and_norm(self.level, a, b);
        }
        portable::dot_and_norm(a, b)
    }

    /// `Σ a[i]²`, summed like [`Simd::dot`] (the same bits as `dot(a, a)`).
    #[inline]
    pub fn norm_squared(self, a: &[f32]) -> f32 {
        self.dot(a, a)
    }

    /// Hamming distances from `query` to each code of `codes` (`query.len()` words each, one after the
    /// other), written to `out`, one per code. Only codes whose bit is set in `keep` (bit `i % 64` of word
    /// `i / 64`) are compared; the others get `u16::MAX`.
    ///
    /// Codes are at most 16000 bits (the crate's dimension limit); longer ones saturate at `u16::MAX - 1`.
    /// `out.len()` codes are compared, or fewer if `codes` or `keep` is shorter (the rest get `u16::MAX`).
    pub fn hamming_scan(self, query: &[u64], codes: &[u64], keep: &[u64], out: &mut [u16]) {
        let words = query.len();
        let rows = codes.len().checked_div(words).map_or(out.len(), |r| r.min(out.len())).min(keep.len() * 64);
        let (scanned, rest) = out.split_at_mut(rows);
        rest.fill(u16::MAX);
        let codes = &codes[..rows * words];
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Popcnt {
            return x86::hamming_scan(self.level, query, codes, keep, scanned);
        }
        portable::hamming_scan(query, codes, keep, scanned)
    }

    /// Hamming distances from `query` to the codes at `rows` of `codes` (`query.len()` words each, one after
    /// the other): `out[i]` for row `rows[i]`. For a few rows scattered over many codes: every row's cache
    /// lines are asked for before the first is compared, so that their reads from memory overlap.
    ///
    /// Saturates like [`hamming_scan`](Self::hamming_scan); a row beyond `codes` gets `u16::MAX`, and only
    /// `out.len()` rows (or fewer, if `rows` is shorter) are compared.
    pub fn hamming_rows(self, query: &[u64], codes: &[u64], rows: &[u32], out: &mut [u16]) {
        let count = rows.len().min(out.len());
        let (rows, out) = (&rows[..count], &mut out[..count]);
        let words = query.len();
        let held = codes.len().checked_div(words).unwrap_or(usize::MAX);
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Popcnt {
            return x86::hamming_rows(self.level, query, codes, held, rows, out);
        }
        portable::hamming_rows(query, codes, held, rows, out)
    }

    /// Asks the CPU for the cache lines of `data` ahead of their use, so that the reads of scattered rows
    /// overlap (a hint: no fault, no effect on any result). Every level on x86-64, where the instruction is
    /// part of the baseline; nothing elsewhere.
    #[inline(always)]
    pub(crate) fn prefetch<T>(self, data: &[T]) {
        #[cfg(target_arch = "x86_64")]
        x86::prefetch(data);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = data;
    }

    /// The rows whose 64-bit key matches `key` on the bits of `mask` (`(keys[i] ^ key) & mask == 0`), as bits:
    /// bit `i % 64` of `out[i / 64]`. Keys beyond `64 * out.len()` are not looked at; bits past the last key
    /// are clear. The same bits at every level.
    pub(crate) fn matching_keys(self, keys: &[u64], key: u64, mask: u64, out: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Avx2 {
            return x86::matching_keys(self.level, keys, key, mask, out);
        }
        portable::matching_keys(keys, key, mask, out)
    }

    /// The bit-plane sum of one code against a query quantised to `planes.len() / code.len()` bits per
    /// dimension: `(Σ_j 2^j · popcount(plane_j & code), popcount(code))`, where plane `j` is the `j`-th
    /// `code.len()` words of `planes`. With query values `u[i]` stored bit by bit in the planes, the first
    /// number is `Σ u[i]` over the dimensions whose bit is set in `code`.
    pub fn plane_sums(self, planes: &[u64], code: &[u64]) -> (u32, u32) {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Popcnt {
            return x86::plane_sums(self.level, planes, code);
        }
        portable::plane_sums(planes, code)
    }

    /// The quantized index's encoder over whole 64-element blocks: for `o = v[i] * s - centre[i]` (a multiply
    /// and a subtraction, each rounded), bit `i % 64` of `code[i / 64]` is set when `o > 0`, and the result
    /// holds `Σ |o|`, `Σ o²` and `Σ o · centre[i]` as 16 partial sums each (lane `i % 16`, in order). Only
    /// `min(v.len(), centre.len()) / 64` words, at most `code.len()`, are written; the rest is the caller's.
    /// The same bits at every level.
    pub(crate) fn sign_code(self, v: &[f32], s: f32, centre: &[f32], code: &mut [u64]) -> [[f32; 16]; 3] {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Avx2 {
            return x86::sign_code(self.level, v, s, centre, code);
        }
        portable::sign_code(v, s, centre, code)
    }

    /// Appends `src`, 4-byte words each reversed when `swap` is true, to `out` as `f32`. Returns whether every
    /// written value is finite (checked in the same pass, on the exponent bits).
    pub(crate) fn extend_f32(self, src: &[[u8; 4]], swap: bool, out: &mut Vec<f32>) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Popcnt {
            return x86::extend_f32(self.level, src, swap, out);
        }
        portable::extend_f32(src, swap, out)
    }

    /// Appends `src`, 4-byte words each reversed when `swap` is true, to `out`; the return value is that of
    /// [`Simd::extend_f32`], for the source words (`check_src`: they are the values in this machine's order)
    /// or for the written ones.
    pub(crate) fn extend_bytes(self, src: &[[u8; 4]], swap: bool, check_src: bool, out: &mut Vec<u8>) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Popcnt {
            return x86::extend_bytes(self.level, src, swap, check_src, out);
        }
        portable::extend_bytes(src, swap, check_src, out)
    }

    /// Appends `src`, 4-byte words each reversed when `swap` is true, to `out`; the return value is that of
    /// [`Simd::extend_f32`].
    pub(crate) fn extend_words(self, src: &[[u8; 4]], swap: bool, out: &mut Vec<[u8; 4]>) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.level >= Level::Popcnt {
            return x86::extend_words(self.level, src, swap, out);
        }
        portable::extend_words(src, swap, out)
    }

    /// Whether [`Simd::extend_f32`] and [`Simd::extend_bytes`] use SIMD byte shuffles at this level (the
    /// codecs keep their own portable loops otherwise).
    pub(crate) fn converts_words(self) -> bool {
        cfg!(target_arch = "x86_64") && self.level >= Level::Popcnt
    }
}

#[cfg(test)]
mod tests;
