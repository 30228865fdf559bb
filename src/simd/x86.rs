//! The x86-64 kernels, with `#[target_feature]` and `core::arch` intrinsics: the only `unsafe` of the SIMD
//! module. The safety argument is in the module docs (`mod.rs`): (1) each `unsafe fn` here is called only
//! from the dispatch functions at the top of each section, on a [`Level`] taken from a `Simd`, whose
//! features were detected; (2) every pointer access is within a slice or reserved capacity whose length the
//! same function checked, as the comments at each access say; (3) all values are plain bits.
//!
//! The dispatch functions are safe and total: a level without a kernel here (the caller normally filters it
//! out) falls back to the portable kernel.

use std::arch::x86_64::*;

use super::portable::{self, finish, finish_l1, kept, saturate, LANES, LANES_F64};
use super::Level;

// ------------------------------------------------------------------------------------------------------
// f32 distances: AVX2 (two 8-lane registers = 16 partial sums) and AVX-512 (one 16-lane register), each lane
// summing the same elements in the same order as the portable kernel, with a separate multiply and add.

pub(super) fn dot(level: Level, a: &[f32], b: &[f32]) -> f32 {
    // SAFETY (every dispatch below): the level came from a `Simd`, so the CPU has the features the called
    // function enables.
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { dot_avx512(a, b) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { dot_avx2(a, b) },
        Level::Popcnt | Level::Portable => portable::dot(a, b),
    }
}

pub(super) fn l2_squared(level: Level, a: &[f32], b: &[f32]) -> f32 {
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { l2_squared_avx512(a, b) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { l2_squared_avx2(a, b) },
        Level::Popcnt | Level::Portable => portable::l2_squared(a, b),
    }
}

pub(super) fn dot_and_norm(level: Level, a: &[f32], b: &[f32]) -> (f32, f32) {
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { dot_and_norm_avx512(a, b) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { dot_and_norm_avx2(a, b) },
        Level::Popcnt | Level::Portable => portable::dot_and_norm(a, b),
    }
}

pub(super) fn l1(level: Level, a: &[f32], b: &[f32]) -> f64 {
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { l1_avx512(a, b) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { l1_avx2(a, b) },
        Level::Popcnt | Level::Portable => portable::l1(a, b),
    }
}

/// Loops over the whole 16-element blocks of `a` and `b` with AVX2, keeping the 16 partial sums in `$lo`
/// (lanes 0-7) and `$hi` (lanes 8-15); `$body` adds one block's terms from `$x` and `$y`.
macro_rules! blocks_avx2 {
    ($a:ident, $b:ident, $n:ident, $blocks:ident, |$x:ident, $y:ident, $half:ident| $body:block) => {
        let $n = $a.len().min($b.len());
        let $blocks = $n / LANES;
        let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
        for i in 0..$blocks {
            for $half in 0..2 {
                // In bounds: i * 16 + half * 8 + 8 <= blocks * 16 <= n, the length of both slices.
                let o = i * LANES + $half * 8;
                let ($x, $y) = (_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o)));
                $body
            }
        }
    };
}

/// The same with AVX-512: one 16-lane register per block.
#[cfg(dv_avx512)]
macro_rules! blocks_avx512 {
    ($a:ident, $b:ident, $n:ident, $blocks:ident, |$x:ident, $y:ident| $body:block) => {
        let $n = $a.len().min($b.len());
        let $blocks = $n / LANES;
        let (pa, pb) = ($a.as_ptr(), $b.as_ptr());
        for i in 0..$blocks {
            // In bounds: i * 16 + 16 <= blocks * 16 <= n, the length of both slices.
            let ($x, $y) = (_mm512_loadu_ps(pa.add(i * LANES)), _mm512_loadu_ps(pb.add(i * LANES)));
            $body
        }
    };
}

/// Stores two 8-lane registers as the 16 partial sums.
#[inline(always)]
unsafe fn lanes_avx2(lo: __m256, hi: __m256) -> [f32; LANES] {
    let mut acc = [0f32; LANES];
    // In bounds: `acc` has 16 elements, each store writes 8.
    _mm256_storeu_ps(acc.as_mut_ptr(), lo);
    _mm256_storeu_ps(acc.as_mut_ptr().add(8), hi);
    acc
}

#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 2];
    blocks_avx2!(a, b, n, blocks, |x, y, half| {
        acc[half] = _mm256_add_ps(acc[half], _mm256_mul_ps(x, y));
    });
    let rest = blocks * LANES..n;
    finish(&lanes_avx2(acc[0], acc[1]), &a[rest.clone()], &b[rest], |x, y| x * y)
}

#[target_feature(enable = "avx2")]
unsafe fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 2];
    blocks_avx2!(a, b, n, blocks, |x, y, half| {
        let d = _mm256_sub_ps(x, y);
        acc[half] = _mm256_add_ps(acc[half], _mm256_mul_ps(d, d));
    });
    let rest = blocks * LANES..n;
    finish(&lanes_avx2(acc[0], acc[1]), &a[rest.clone()], &b[rest], |x, y| (x - y) * (x - y))
}

#[target_feature(enable = "avx2")]
unsafe fn dot_and_norm_avx2(a: &[f32], b: &[f32]) -> (f32, f32) {
    let mut dot = [_mm256_setzero_ps(); 2];
    let mut norm = [_mm256_setzero_ps(); 2];
    blocks_avx2!(a, b, n, blocks, |x, y, half| {
        dot[half] = _mm256_add_ps(dot[half], _mm256_mul_ps(x, y));
        norm[half] = _mm256_add_ps(norm[half], _mm256_mul_ps(y, y));
    });
    let rest = blocks * LANES..n;
    let (ra, rb) = (&a[rest.clone()], &b[rest]);
    (
        finish(&lanes_avx2(dot[0], dot[1]), ra, rb, |x, y| x * y),
        finish(&lanes_avx2(norm[0], norm[1]), rb, rb, |_, y| y * y),
    )
}

#[target_feature(enable = "avx2")]
unsafe fn l1_avx2(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let blocks = n / LANES_F64;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let sign = _mm256_set1_pd(-0.0);
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    for i in 0..blocks {
        // In bounds: i * 8 + 8 <= blocks * 8 <= n.
        let (x, y) = (_mm256_loadu_ps(pa.add(i * LANES_F64)), _mm256_loadu_ps(pb.add(i * LANES_F64)));
        let d_lo =
            _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), _mm256_cvtps_pd(_mm256_castps256_ps128(y)));
        let d_hi =
            _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)));
        lo = _mm256_add_pd(lo, _mm256_andnot_pd(sign, d_lo));
        hi = _mm256_add_pd(hi, _mm256_andnot_pd(sign, d_hi));
    }
    let mut acc = [0f64; LANES_F64];
    // In bounds: `acc` has 8 elements, each store writes 4.
    _mm256_storeu_pd(acc.as_mut_ptr(), lo);
    _mm256_storeu_pd(acc.as_mut_ptr().add(4), hi);
    let rest = blocks * LANES_F64..n;
    finish_l1(&acc, &a[rest.clone()], &b[rest])
}

/// Stores one 16-lane register as the 16 partial sums.
#[cfg(dv_avx512)]
#[inline(always)]
unsafe fn lanes_avx512(v: __m512) -> [f32; LANES] {
    let mut acc = [0f32; LANES];
    // In bounds: `acc` has 16 elements.
    _mm512_storeu_ps(acc.as_mut_ptr(), v);
    acc
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    blocks_avx512!(a, b, n, blocks, |x, y| {
        acc = _mm512_add_ps(acc, _mm512_mul_ps(x, y));
    });
    let rest = blocks * LANES..n;
    finish(&lanes_avx512(acc), &a[rest.clone()], &b[rest], |x, y| x * y)
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f")]
unsafe fn l2_squared_avx512(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    blocks_avx512!(a, b, n, blocks, |x, y| {
        let d = _mm512_sub_ps(x, y);
        acc = _mm512_add_ps(acc, _mm512_mul_ps(d, d));
    });
    let rest = blocks * LANES..n;
    finish(&lanes_avx512(acc), &a[rest.clone()], &b[rest], |x, y| (x - y) * (x - y))
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f")]
unsafe fn dot_and_norm_avx512(a: &[f32], b: &[f32]) -> (f32, f32) {
    let (mut dot, mut norm) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    blocks_avx512!(a, b, n, blocks, |x, y| {
        dot = _mm512_add_ps(dot, _mm512_mul_ps(x, y));
        norm = _mm512_add_ps(norm, _mm512_mul_ps(y, y));
    });
    let rest = blocks * LANES..n;
    let (ra, rb) = (&a[rest.clone()], &b[rest]);
    (finish(&lanes_avx512(dot), ra, rb, |x, y| x * y), finish(&lanes_avx512(norm), rb, rb, |_, y| y * y))
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f")]
unsafe fn l1_avx512(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let blocks = n / LANES_F64;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = _mm512_setzero_pd();
    for i in 0..blocks {
        // In bounds: i * 8 + 8 <= blocks * 8 <= n.
        let (x, y) = (_mm256_loadu_ps(pa.add(i * LANES_F64)), _mm256_loadu_ps(pb.add(i * LANES_F64)));
        acc = _mm512_add_pd(acc, _mm512_abs_pd(_mm512_sub_pd(_mm512_cvtps_pd(x), _mm512_cvtps_pd(y))));
    }
    let mut lanes = [0f64; LANES_F64];
    // In bounds: `lanes` has 8 elements.
    _mm512_storeu_pd(lanes.as_mut_ptr(), acc);
    let rest = blocks * LANES_F64..n;
    finish_l1(&lanes, &a[rest.clone()], &b[rest])
}

// ------------------------------------------------------------------------------------------------------
// Sign codes (the quantized index's encoder): each lane sums the same elements in the same order as the
// portable kernel, with a separate multiply and subtract; the bits are the same comparisons.

pub(super) fn sign_code(level: Level, v: &[f32], s: f32, centre: &[f32], code: &mut [u64]) -> [[f32; LANES]; 3] {
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { sign_code_avx512(v, s, centre, code) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { sign_code_avx2(v, s, centre, code) },
        Level::Popcnt | Level::Portable => portable::sign_code(v, s, centre, code),
    }
}

#[target_feature(enable = "avx2")]
unsafe fn sign_code_avx2(v: &[f32], s: f32, centre: &[f32], code: &mut [u64]) -> [[f32; LANES]; 3] {
    let words = (v.len().min(centre.len()) / 64).min(code.len());
    let (pv, pc) = (v.as_ptr(), centre.as_ptr());
    let (scale, zero, sign) = (_mm256_set1_ps(s), _mm256_setzero_ps(), _mm256_set1_ps(-0.0));
    let (mut l1, mut norm_sq, mut centre_dot) = ([zero; 2], [zero; 2], [zero; 2]);
    for (w, word) in code.iter_mut().enumerate().take(words) {
        let mut bits = 0u64;
        for q in 0..8 {
            let i = w * 64 + q * 8;
            // In bounds: i + 8 <= words * 64 <= v.len(), centre.len().
            let (x, c) = (_mm256_loadu_ps(pv.add(i)), _mm256_loadu_ps(pc.add(i)));
            let o = _mm256_sub_ps(_mm256_mul_ps(x, scale), c);
            // Elements q * 8.. of the block are lanes 0-7 for even q, 8-15 for odd q.
            let h = q & 1;
            l1[h] = _mm256_add_ps(l1[h], _mm256_andnot_ps(sign, o));
            norm_sq[h] = _mm256_add_ps(norm_sq[h], _mm256_mul_ps(o, o));
            centre_dot[h] = _mm256_add_ps(centre_dot[h], _mm256_mul_ps(o, c));
            let above = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(o, zero)) as u32;
            bits |= u64::from(above) << (q * 8);
        }
        *word = bits;
    }
    [lanes_avx2(l1[0], l1[1]), lanes_avx2(norm_sq[0], norm_sq[1]), lanes_avx2(centre_dot[0], centre_dot[1])]
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f")]
unsafe fn sign_code_avx512(v: &[f32], s: f32, centre: &[f32], code: &mut [u64]) -> [[f32; LANES]; 3] {
    let words = (v.len().min(centre.len()) / 64).min(code.len());
    let (pv, pc) = (v.as_ptr(), centre.as_ptr());
    let (scale, zero) = (_mm512_set1_ps(s), _mm512_setzero_ps());
    let (mut l1, mut norm_sq, mut centre_dot) = (zero, zero, zero);
    for (w, word) in code.iter_mut().enumerate().take(words) {
        let mut bits = 0u64;
        for q in 0..4 {
            let i = w * 64 + q * 16;
            // In bounds: i + 16 <= words * 64 <= v.len(), centre.len().
            let (x, c) = (_mm512_loadu_ps(pv.add(i)), _mm512_loadu_ps(pc.add(i)));
            let o = _mm512_sub_ps(_mm512_mul_ps(x, scale), c);
            l1 = _mm512_add_ps(l1, _mm512_abs_ps(o));
            norm_sq = _mm512_add_ps(norm_sq, _mm512_mul_ps(o, o));
            centre_dot = _mm512_add_ps(centre_dot, _mm512_mul_ps(o, c));
            let above: __mmask16 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(o, zero);
            bits |= u64::from(above) << (q * 16);
        }
        *word = bits;
    }
    [lanes_avx512(l1), lanes_avx512(norm_sq), lanes_avx512(centre_dot)]
}

// ------------------------------------------------------------------------------------------------------
// Bit codes: Hamming distances (one query, many codes) and bit-plane sums (one quantised query, one code).
// POPCNT runs the portable loops with the `popcnt` instruction; AVX2 counts bits with a nibble table
// (`vpshufb`, Mula's method); AVX-512 with `vpopcntq`.

pub(super) fn hamming_scan(level: Level, query: &[u64], codes: &[u64], keep: &[u64], out: &mut [u16]) {
    if query.is_empty() {
        return portable::hamming_scan(query, codes, keep, out);
    }
    // The kernels read `out.len()` codes of `query.len()` words: the caller (`Simd::hamming_scan`) cut
    // `codes` to exactly that length; checked again here because the pointer arithmetic relies on it.
    if codes.len() != out.len() * query.len() {
        return portable::hamming_scan(query, codes, keep, out);
    }
    // Features as in `dot`; lengths checked above.
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { hamming_scan_avx512(query, codes, keep, out) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { hamming_scan_avx2(query, codes, keep, out) },
        Level::Popcnt => unsafe { hamming_scan_popcnt(query, codes, keep, out) },
        Level::Portable => portable::hamming_scan(query, codes, keep, out),
    }
}

pub(super) fn hamming_rows(level: Level, query: &[u64], codes: &[u64], held: usize, rows: &[u32], out: &mut [u16]) {
    // Features as in `dot`. No length to check: `rows_with` slices each code out of `codes` (a row beyond it
    // gets `u16::MAX`), and the distance reads the shorter of its two slices.
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { hamming_rows_avx512(query, codes, held, rows, out) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { hamming_rows_avx2(query, codes, held, rows, out) },
        Level::Popcnt => unsafe { hamming_rows_popcnt(query, codes, held, rows, out) },
        Level::Portable => portable::hamming_rows(query, codes, held, rows, out),
    }
}

/// Asks for the cache lines of `words` ahead of their use (a hint: no fault, no effect on results).
#[inline(always)]
fn prefetch_lines(words: &[u64]) {
    for line in words.chunks(8) {
        // A prefetch is only a hint: it reads nothing into the program and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

/// Asks for the cache lines of `data`, whatever its element type (a hint, like [`prefetch_lines`]).
#[inline(always)]
pub(super) fn prefetch<T>(data: &[T]) {
    let (start, len) = (data.as_ptr().cast::<u8>(), std::mem::size_of_val(data));
    let mut at = 0;
    while at < len {
        // A prefetch is only a hint: it reads nothing into the program and cannot fault; `at` stays within
        // `data` anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(at).cast()) };
        at += 64;
    }
}

/// At most this many planes are summed (the weights stay within `u32`).
pub(super) const MAX_PLANES: usize = 8;

pub(super) fn plane_sums(level: Level, planes: &[u64], code: &[u64]) -> (u32, u32) {
    if code.is_empty() {
        return portable::plane_sums(planes, code);
    }
    let planes = &planes[..planes.len().min(MAX_PLANES * code.len()) / code.len() * code.len()];
    // Features as in `dot`; `planes` is a whole number of planes of `code.len()` words.
    #[cfg(dv_avx512)]
    if level == Level::Avx512 {
        return unsafe { plane_sums_avx512(planes, code) };
    }
    match level {
        Level::Avx512 | Level::Avx2 => unsafe { plane_sums_avx2(planes, code) },
        Level::Popcnt => unsafe { plane_sums_popcnt(planes, code) },
        Level::Portable => portable::plane_sums(planes, code),
    }
}

pub(super) fn matching_keys(level: Level, keys: &[u64], key: u64, mask: u64, out: &mut [u64]) {
    match level {
        // SAFETY: as in `dot`; the kernel only indexes slices.
        Level::Avx512 | Level::Avx2 => unsafe { matching_keys_avx2(keys, key, mask, out) },
        Level::Popcnt | Level::Portable => portable::matching_keys(keys, key, mask, out),
    }
}

/// The portable loop compiled with AVX2 (`vpcmpeqq`, four keys per compare; the default target has no 64-bit
/// compare before SSE4.1).
#[target_feature(enable = "avx2")]
unsafe fn matching_keys_avx2(keys: &[u64], key: u64, mask: u64, out: &mut [u64]) {
    portable::matching_keys(keys, key, mask, out)
}

#[target_feature(enable = "popcnt")]
unsafe fn hamming_scan_popcnt(query: &[u64], codes: &[u64], keep: &[u64], out: &mut [u16]) {
    portable::hamming_scan(query, codes, keep, out)
}

#[target_feature(enable = "popcnt")]
unsafe fn hamming_rows_popcnt(query: &[u64], codes: &[u64], held: usize, rows: &[u32], out: &mut [u16]) {
    portable::rows_with(query, codes, held, rows, out, portable::hamming, prefetch_lines)
}

#[target_feature(enable = "popcnt")]
unsafe fn plane_sums_popcnt(planes: &[u64], code: &[u64]) -> (u32, u32) {
    portable::plane_sums(planes, code)
}

/// Mula's nibble table (the set bits of 0 to 15, in both 128-bit halves) and the low-nibble mask.
#[inline(always)]
unsafe fn nibble_table_avx2() -> (__m256i, __m256i) {
    let table = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    );
    (table, _mm256_set1_epi8(0x0f))
}

/// Bytes of `x` replaced by their number of set bits (0 to 8), from [`nibble_table_avx2`]'s table and mask.
#[inline(always)]
unsafe fn byte_counts_avx2(x: __m256i, table: __m256i, low: __m256i) -> __m256i {
    let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(x, low));
    let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
    _mm256_add_epi8(lo, hi)
}

/// Bytes of `x` replaced by their number of set bits, summed into four `u64` lanes.
#[inline(always)]
unsafe fn popcount_avx2(x: __m256i) -> __m256i {
    let (table, low) = nibble_table_avx2();
    _mm256_sad_epu8(byte_counts_avx2(x, table, low), _mm256_setzero_si256())
}

#[inline(always)]
unsafe fn sum_u64x4(v: __m256i) -> u32 {
    let mut lanes = [0u64; 4];
    // In bounds: 4 lanes of 8 bytes.
    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v);
    u32::try_from(lanes.iter().sum::<u64>()).unwrap_or(u32::MAX)
}

/// The Hamming distance between the `words` words at `q` and at `code`; the caller guarantees both are
/// readable for `words` words.
#[inline(always)]
unsafe fn hamming_avx2(q: *const u64, code: *const u64, words: usize) -> u32 {
    let blocks = words / 4;
    let mut acc = _mm256_setzero_si256();
    for b in 0..blocks {
        // In bounds: b * 4 + 4 <= words.
        let x = _mm256_xor_si256(_mm256_loadu_si256(q.add(b * 4).cast()), _mm256_loadu_si256(code.add(b * 4).cast()));
        acc = _mm256_add_epi64(acc, popcount_avx2(x));
    }
    let mut d = sum_u64x4(acc);
    for w in blocks * 4..words {
        // In bounds: w < words.
        d += (*q.add(w) ^ *code.add(w)).count_ones();
    }
    d
}

/// The longest codes [`hamming_scan_avx2`] counts four rows at a time: a distance of at most `64 * words`
/// then fits 16 bits, so four rows' counts add up in the fields of one `u64` without carrying.
const FOUR_ROWS_MAX_WORDS: usize = 1023;

/// The bytes of `q ^ *c` (four words at `c`, which the caller guarantees readable) replaced by their number
/// of set bits (0 to 8).
#[inline(always)]
unsafe fn xor_counts_avx2(q: __m256i, c: *const u64, table: __m256i, low: __m256i) -> __m256i {
    byte_counts_avx2(_mm256_xor_si256(q, _mm256_loadu_si256(c.cast())), table, low)
}

/// The Hamming distances from `q` to the four codes of `words` words at `code`, `code + words`, ... (one
/// after the other), in the four 16-bit fields of the result (row `i` in bits `16 i..16 i + 16`). The caller
/// guarantees `4 <= words <= FOUR_ROWS_MAX_WORDS`, `q` readable for `words` words and `code` for `4 * words`.
///
/// Each row's byte counts add up as bytes over at most 31 blocks (8 bits a byte, at most 248), then into
/// four `u64` lanes (`vpsadbw`, once per row rather than once per block); the four rows' lanes are shifted
/// into their fields and summed once, where the one-row kernel sums each row's lanes by itself.
#[inline(always)]
unsafe fn hamming_four_avx2(q: *const u64, code: *const u64, words: usize) -> u64 {
    let (table, low) = nibble_table_avx2();
    let zero = _mm256_setzero_si256();
    let blocks = words / 4;
    let (c0, c1, c2, c3) = (code, code.add(words), code.add(2 * words), code.add(3 * words));
    let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
    let mut start = 0;
    while start < blocks {
        let end = (start + 31).min(blocks);
        let (mut b0, mut b1, mut b2, mut b3) = (zero, zero, zero, zero);
        for b in start..end {
            // In bounds: b * 4 + 4 <= blocks * 4 <= words, within the query and within each of the rows.
            let qv = _mm256_loadu_si256(q.add(b * 4).cast());
            b0 = _mm256_add_epi8(b0, xor_counts_avx2(qv, c0.add(b * 4), table, low));
            b1 = _mm256_add_epi8(b1, xor_counts_avx2(qv, c1.add(b * 4), table, low));
            b2 = _mm256_add_epi8(b2, xor_counts_avx2(qv, c2.add(b * 4), table, low));
            b3 = _mm256_add_epi8(b3, xor_counts_avx2(qv, c3.add(b * 4), table, low));
        }
        a0 = _mm256_add_epi64(a0, _mm256_sad_epu8(b0, zero));
        a1 = _mm256_add_epi64(a1, _mm256_sad_epu8(b1, zero));
        a2 = _mm256_add_epi64(a2, _mm256_sad_epu8(b2, zero));
        a3 = _mm256_add_epi64(a3, _mm256_sad_epu8(b3, zero));
        start = end;
    }
    // Each lane holds at most 64 * blocks < 2^16: shifted into its row's field, nothing overlaps.
    let fields = _mm256_or_si256(
        _mm256_or_si256(a0, _mm256_slli_epi64(a1, 16)),
        _mm256_or_si256(_mm256_slli_epi64(a2, 32), _mm256_slli_epi64(a3, 48)),
    );
    let halves = _mm_add_epi64(_mm256_castsi256_si128(fields), _mm256_extracti128_si256(fields, 1));
    // A field's sum over the lanes is the row's count over its blocks, at most 64 * words < 2^16: no carry.
    #[allow(clippy::cast_sign_loss)] // the bits of the lane, as they are
    let mut sums = _mm_cvtsi128_si64(_mm_add_epi64(halves, _mm_unpackhi_epi64(halves, halves))) as u64;
    for w in blocks * 4..words {
        // In bounds: w < words, within the query and each row.
        let qw = *q.add(w);
        sums += u64::from((qw ^ *c0.add(w)).count_ones())
            + (u64::from((qw ^ *c1.add(w)).count_ones()) << 16)
            + (u64::from((qw ^ *c2.add(w)).count_ones()) << 32)
            + (u64::from((qw ^ *c3.add(w)).count_ones()) << 48);
    }
    sums
}

#[target_feature(enable = "avx2,popcnt")]
unsafe fn hamming_scan_avx2(query: &[u64], codes: &[u64], keep: &[u64], out: &mut [u16]) {
    let words = query.len();
    // One row by itself (the closure has this function's target features).
    let one = |row: usize| {
        if kept(keep, row) {
            // In bounds: row < out.len() and codes.len() == out.len() * words (checked by the dispatch).
            saturate(hamming_avx2(query.as_ptr(), codes.as_ptr().add(row * words), words))
        } else {
            u16::MAX
        }
    };
    let mut done = 0;
    // Four rows at a time pays when most rows are kept (a quarter less time over whole chunks of 8-24 words);
    // with fewer kept, groups of four mostly hold one or two rows to count, and row by row is as fast.
    let kept_rows: usize = keep.iter().map(|w| w.count_ones() as usize).sum();
    if (4..=FOUR_ROWS_MAX_WORDS).contains(&words) && kept_rows * 4 >= out.len() * 3 {
        let groups = out.len() / 4;
        for (g, o) in out[..groups * 4].chunks_exact_mut(4).enumerate() {
            let row = g * 4;
            // Four bits of one word: `row` is a multiple of 4, and `keep` covers every row of `out` (the
            // caller cut `out` to `keep.len() * 64` rows); a missing word keeps nothing.
            let bits = keep.get(row / 64).map_or(0, |w| w >> (row % 64) & 0xf);
            if bits.count_ones() < 3 {
                // One or two rows kept: counting them alone reads less than counting all four.
                for (i, o) in o.iter_mut().enumerate() {
                    *o = one(row + i);
                }
                continue;
            }
            // In bounds: row + 4 <= out.len(), and codes.len() == out.len() * words (checked by the
            // dispatch); 4 <= words <= FOUR_ROWS_MAX_WORDS above.
            let sums = hamming_four_avx2(query.as_ptr(), codes.as_ptr().add(row * words), words);
            for (i, o) in o.iter_mut().enumerate() {
                #[allow(clippy::cast_possible_truncation)] // a 16-bit field, masked
                let d = (sums >> (16 * i) & 0xffff) as u32;
                *o = if bits >> i & 1 == 1 { saturate(d) } else { u16::MAX };
            }
        }
        done = groups * 4;
    }
    for (row, o) in out.iter_mut().enumerate().skip(done) {
        *o = one(row);
    }
}

#[target_feature(enable = "avx2,popcnt")]
unsafe fn hamming_rows_avx2(query: &[u64], codes: &[u64], held: usize, rows: &[u32], out: &mut [u16]) {
    // In bounds: both slices are readable for the shorter one's length. (The closure has this function's
    // target features.)
    portable::rows_with(
        query,
        codes,
        held,
        rows,
        out,
        |a, b| hamming_avx2(a.as_ptr(), b.as_ptr(), a.len().min(b.len())),
        prefetch_lines,
    );
}

#[target_feature(enable = "avx2,popcnt")]
unsafe fn plane_sums_avx2(planes: &[u64], code: &[u64]) -> (u32, u32) {
    let words = code.len();
    let blocks = words / 4;
    let c = code.as_ptr();
    let mut ones = _mm256_setzero_si256();
    for b in 0..blocks {
        // In bounds: b * 4 + 4 <= words.
        ones = _mm256_add_epi64(ones, popcount_avx2(_mm256_loadu_si256(c.add(b * 4).cast())));
    }
    let ones = sum_u64x4(ones) + code[blocks * 4..].iter().map(|w| w.count_ones()).sum::<u32>();
    let mut weighted = 0u32;
    for (j, plane) in planes.chunks_exact(words).enumerate() {
        let p = plane.as_ptr();
        let mut acc = _mm256_setzero_si256();
        for b in 0..blocks {
            // In bounds: b * 4 + 4 <= words, the length of `code` and of `plane`.
            let x = _mm256_and_si256(_mm256_loadu_si256(p.add(b * 4).cast()), _mm256_loadu_si256(c.add(b * 4).cast()));
            acc = _mm256_add_epi64(acc, popcount_avx2(x));
        }
        let rest: u32 = plane[blocks * 4..].iter().zip(&code[blocks * 4..]).map(|(p, c)| (p & c).count_ones()).sum();
        weighted += (sum_u64x4(acc) + rest) << j;
    }
    (weighted, ones)
}

/// The mask of the first `n` (< 8) lanes.
#[cfg(dv_avx512)]
#[inline(always)]
fn first_lanes(n: usize) -> __mmask8 {
    u8::try_from((1u16 << n) - 1).unwrap_or(u8::MAX)
}

/// Block `b` of the 8-word blocks at `p`: whole below `blocks`, else its lanes in `rest_mask` only (the rest
/// of a length that is not a multiple of 8, the others zero). The caller guarantees those words are readable.
#[cfg(dv_avx512)]
#[inline(always)]
unsafe fn load_block(p: *const u64, b: usize, blocks: usize, rest_mask: __mmask8) -> __m512i {
    if b < blocks {
        _mm512_loadu_si512(p.add(b * 8).cast())
    } else {
        _mm512_maskz_loadu_epi64(rest_mask, p.add(b * 8).cast())
    }
}

/// The Hamming distance between the `words` words at `q` and at `code`; the caller guarantees both are
/// readable for `words` words.
#[cfg(dv_avx512)]
#[inline(always)]
unsafe fn hamming_avx512(q: *const u64, code: *const u64, words: usize) -> u32 {
    let (blocks, rest) = (words / 8, words % 8);
    let mut acc = _mm512_setzero_si512();
    for b in 0..blocks {
        // In bounds: b * 8 + 8 <= words.
        let x = _mm512_xor_si512(_mm512_loadu_si512(q.add(b * 8).cast()), _mm512_loadu_si512(code.add(b * 8).cast()));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    if rest > 0 {
        // Masked loads touch only the first `rest` words after the blocks: blocks * 8 + rest == words.
        let rest_mask = first_lanes(rest);
        let x = _mm512_xor_si512(
            _mm512_maskz_loadu_epi64(rest_mask, q.add(blocks * 8).cast()),
            _mm512_maskz_loadu_epi64(rest_mask, code.add(blocks * 8).cast()),
        );
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    u32::try_from(_mm512_reduce_add_epi64(acc)).unwrap_or(u32::MAX)
}

/// How far ahead of the rows [`hamming_scan_avx512`] compares it asks for their cache lines, in bytes. On an
/// Intel Xeon the hardware prefetcher alone left a scan of 1M codes from memory at 9 GB/s on one core where
/// plain reads ran at 12 GB/s; asking 1.5-6 KB ahead reached 11-12 GB/s. On an AMD EPYC 3-4 KB ahead gained
/// 10 % on one core and nothing lost on two (BENCHMARKS.md, "The Hamming scan from memory").
#[cfg(dv_avx512)]
const SCAN_PREFETCH_BYTES: usize = 4096;

/// The sums of the eight lanes of each of `a[0..8]`, in the eight lanes of the result (lane `i` for `a[i]`):
/// three rounds of pairwise adds, 21 instructions for eight rows where a reduction per row takes about 56.
#[cfg(dv_avx512)]
#[inline(always)]
unsafe fn sum_lanes_of_eight(a: &[__m512i; 8]) -> __m512i {
    // Lanes 2j and 2j + 1 of the result: within each 128-bit quarter, a row's pair of lanes summed.
    let pairs = |x: __m512i, y: __m512i| _mm512_add_epi64(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
    // Quarters 0 and 2 of each input against 1 and 3: the quarters' sums, `x`'s rows first.
    let quarters = |x: __m512i, y: __m512i| {
        _mm512_add_epi64(_mm512_shuffle_i64x2::<0b10_00_10_00>(x, y), _mm512_shuffle_i64x2::<0b11_01_11_01>(x, y))
    };
    let (p01, p23, p45, p67) = (pairs(a[0], a[1]), pairs(a[2], a[3]), pairs(a[4], a[5]), pairs(a[6], a[7]));
    quarters(quarters(p01, p23), quarters(p45, p67))
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
unsafe fn hamming_scan_avx512(query: &[u64], codes: &[u64], keep: &[u64], out: &mut [u16]) {
    let words = query.len();
    let (blocks, rest) = (words / 8, words % 8);
    let rest_mask = first_lanes(rest);
    let (q, c) = (query.as_ptr(), codes.as_ptr());
    // The query's blocks are loaded in the loop (from the first level of cache): a code of up to 16,000
    // bits has up to 32 of them, more than the registers hold.
    let load = |p: *const u64, b: usize| load_block(p, b, blocks, rest_mask);
    let steps = blocks + usize::from(rest > 0);
    let (skipped, cap) = (_mm512_set1_epi64(i64::from(u16::MAX)), _mm512_set1_epi64(i64::from(u16::MAX - 1)));
    let groups = out.len() / 8;
    for g in 0..groups {
        let row = g * 8;
        // Eight bits of one word: `row` is a multiple of 8, and `keep` covers every row of `out` (the caller
        // cut `out` to `keep.len() * 64` rows); a missing word keeps nothing.
        #[allow(clippy::cast_possible_truncation)] // eight bits, masked
        let bits = keep.get(row / 64).map_or(0, |w| (w >> (row % 64) & 0xff) as u8);
        let o = &mut out[row..row + 8];
        if bits.count_ones() < 3 {
            // Two rows or fewer: counted alone, they read a quarter of the group's bytes or less.
            for (i, o) in o.iter_mut().enumerate() {
                *o = if bits >> i & 1 == 1 {
                    // In bounds: row + i < out.len() and codes.len() == out.len() * words (the dispatch).
                    saturate(hamming_avx512(q, c.add((row + i) * words), words))
                } else {
                    u16::MAX
                };
            }
            continue;
        }
        // The group's bytes start at `c + row * words` words; the lines `SCAN_PREFETCH_BYTES` further on are
        // asked for when they are still within `codes` (a hint either way).
        let ahead = (row * words * 8 + SCAN_PREFETCH_BYTES)..((row + 8) * words * 8 + SCAN_PREFETCH_BYTES);
        let mut line = ahead.start;
        while line < ahead.end.min(codes.len() * 8) {
            _mm_prefetch::<_MM_HINT_T0>(c.cast::<u8>().add(line).cast());
            line += 64;
        }
        let mut acc = [_mm512_setzero_si512(); 8];
        for b in 0..steps {
            // In bounds: the query's block `b` (whole, or its first `rest` words masked) and the same block
            // of rows row..row + 8 < out.len(), each `words` words within `codes`.
            let qb = load(q, b);
            for (i, a) in acc.iter_mut().enumerate() {
                let x = _mm512_xor_si512(qb, load(c.add((row + i) * words), b));
                *a = _mm512_add_epi64(*a, _mm512_popcnt_epi64(x));
            }
        }
        // Saturated at `u16::MAX - 1` like every level, the rows not kept `u16::MAX`; every lane then fits
        // 16 bits, so the narrowing keeps it whole.
        let sums = _mm512_mask_mov_epi64(skipped, bits, _mm512_min_epu64(sum_lanes_of_eight(&acc), cap));
        // In bounds: 8 `u16` at `o`, a slice of eight.
        _mm_storeu_si128(o.as_mut_ptr().cast(), _mm512_cvtepi64_epi16(sums));
    }
    for (row, o) in out.iter_mut().enumerate().skip(groups * 8) {
        *o = if kept(keep, row) {
            // In bounds: row < out.len() and codes.len() == out.len() * words (checked by the dispatch).
            saturate(hamming_avx512(q, c.add(row * words), words))
        } else {
            u16::MAX
        };
    }
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
unsafe fn hamming_rows_avx512(query: &[u64], codes: &[u64], held: usize, rows: &[u32], out: &mut [u16]) {
    // In bounds: both slices are readable for the shorter one's length. (The closure has this function's
    // target features.)
    portable::rows_with(
        query,
        codes,
        held,
        rows,
        out,
        |a, b| hamming_avx512(a.as_ptr(), b.as_ptr(), a.len().min(b.len())),
        prefetch_lines,
    );
}

#[cfg(dv_avx512)]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")]
unsafe fn plane_sums_avx512(planes: &[u64], code: &[u64]) -> (u32, u32) {
    let words = code.len();
    let (blocks, rest) = (words / 8, words % 8);
    let rest_mask = first_lanes(rest);
    let c = code.as_ptr();
    // Each 8-word step of the code, the rest masked: `blocks * 8 + rest == words`.
    let load = |p: *const u64, b: usize| load_block(p, b, blocks, rest_mask);
    let steps = blocks + usize::from(rest > 0);
    let mut ones = _mm512_setzero_si512();
    for b in 0..steps {
        ones = _mm512_add_epi64(ones, _mm512_popcnt_epi64(load(c, b)));
    }
    let mut weighted = 0u32;
    for (j, plane) in planes.chunks_exact(words).enumerate() {
        let p = plane.as_ptr();
        let mut acc = _mm512_setzero_si512();
        for b in 0..steps {
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(load(p, b), load(c, b))));
        }
        weighted += u32::try_from(_mm512_reduce_add_epi64(acc)).unwrap_or(u32::MAX) << j;
    }
    (weighted, u32::try_from(_mm512_reduce_add_epi64(ones)).unwrap_or(u32::MAX))
}

// ------------------------------------------------------------------------------------------------------
// Byte conversions for the codecs: copy 4-byte words, reversing each when asked (`pshufb`), and check on the
// way that each is a finite `f32` (its exponent bits are not all ones), with integer compares that no
// latency chain holds back.

/// The exponent bits of an `f32`: all of them set is an infinity or a NaN.
const EXPONENT: u32 = 0x7f80_0000;

/// The value itself, through an empty `asm!` that LLVM cannot see into. Without it a loop that stores what
/// it loads is turned into a call to `memcpy` followed by a second pass over the source for the check, which
/// made decoding twice as slow as `memcpy` alone. Costs no instruction.
macro_rules! opaque {
    ($class:ident, $v:expr) => {{
        let mut v = $v;
        // SAFETY: an empty template: the register is left as it is, no memory, stack or flag is touched.
        ::std::arch::asm!("/* {0} */", inout($class) v, options(pure, nomem, nostack, preserves_flags));
        v
    }};
}

pub(super) fn extend_f32(level: Level, src: &[[u8; 4]], swap: bool, out: &mut Vec<f32>) -> bool {
    if level < Level::Popcnt {
        return portable::extend_f32(src, swap, out);
    }
    out.reserve(src.len());
    let start = out.len();
    // SAFETY: features as in `dot`. `reserve` made room for `src.len()` more `f32` after `start`; `convert`
    // writes exactly `src.len() * 4` bytes from there, so every element up to the new length is initialised
    // (with plain bits, valid for `f32`) before `set_len`.
    unsafe {
        let finite = convert(level, src, swap, false, out.as_mut_ptr().add(start).cast());
        out.set_len(start + src.len());
        finite
    }
}

pub(super) fn extend_bytes(level: Level, src: &[[u8; 4]], swap: bool, check_src: bool, out: &mut Vec<u8>) -> bool {
    if level < Level::Popcnt {
        return portable::extend_bytes(src, swap, check_src, out);
    }
    out.reserve(src.len() * 4);
    let start = out.len();
    // SAFETY: as in `extend_f32`, with `src.len() * 4` bytes reserved and written.
    unsafe {
        let finite = convert(level, src, swap, check_src, out.as_mut_ptr().add(start));
        out.set_len(start + src.len() * 4);
        finite
    }
}

pub(super) fn extend_words(level: Level, src: &[[u8; 4]], swap: bool, out: &mut Vec<[u8; 4]>) -> bool {
    if level < Level::Popcnt {
        return portable::extend_words(src, swap, out);
    }
    out.reserve(src.len());
    let start = out.len();
    // SAFETY: as in `extend_f32`, with `src.len()` words reserved and written.
    unsafe {
        let finite = convert(level, src, swap, false, out.as_mut_ptr().add(start).cast());
        out.set_len(start + src.len());
        finite
    }
}

/// Writes `src.len() * 4` bytes to `dst` and returns whether every source word (`check_src`) or every
/// written one, as `f32` in this machine's byte order, is finite.
///
/// Safety: `dst` is valid for `src.len() * 4` bytes of writes; the level's features are present.
unsafe fn convert(level: Level, src: &[[u8; 4]], swap: bool, check_src: bool, dst: *mut u8) -> bool {
    // The first few words one by one, so that the vector stores start on a 64-byte boundary: a store that
    // straddles two cache lines costs two, and unaligned stores made decoding about twice as slow as `memcpy`
    // (which aligns its destination the same way).
    let misalign = dst as usize % 64;
    let head = if misalign % 4 == 0 { ((64 - misalign) % 64 / 4).min(src.len()) } else { 0 };
    let head_finite = convert_scalar(&src[..head], swap, check_src, 0, dst);
    // In bounds: `dst` holds `src.len() * 4` bytes and `head <= src.len()`.
    let (src, dst) = (&src[head..], dst.add(head * 4));
    // Without a swap the source and the copy are the same bits: checking either is the same. The AVX-512 level
    // takes the 256-bit kernel: on this project's machine (AMD Zen 4) a 512-bit one decoded a 1536-dim vector
    // in 105-111 ns against 86-93 ns (BENCHMARKS.md).
    head_finite
        & match (level, swap, check_src) {
            (Level::Avx512 | Level::Avx2, true, true) => convert_avx2::<true, true>(src, dst),
            (Level::Avx512 | Level::Avx2, true, false) => convert_avx2::<true, false>(src, dst),
            (Level::Avx512 | Level::Avx2, false, _) => convert_avx2::<false, false>(src, dst),
            (Level::Popcnt, true, true) => convert_ssse3::<true, true>(src, dst),
            (Level::Popcnt, true, false) => convert_ssse3::<true, false>(src, dst),
            (Level::Popcnt, false, _) => convert_ssse3::<false, false>(src, dst),
            (Level::Portable, _, _) => convert_scalar(src, swap, check_src, 0, dst),
        }
}

/// The words of `src` from `from` on, written to `dst` at the same offsets; returns whether every source
/// word (`check_src`) or every written one among them is finite.
#[inline(always)]
unsafe fn convert_scalar(src: &[[u8; 4]], swap: bool, check_src: bool, from: usize, dst: *mut u8) -> bool {
    let mut not_finite = false;
    for (i, s) in src.iter().enumerate().skip(from) {
        let w = if swap { [s[3], s[2], s[1], s[0]] } else { *s };
        not_finite |= u32::from_ne_bytes(if check_src { *s } else { w }) & EXPONENT == EXPONENT;
        // In bounds: i < src.len(), and `dst` holds `src.len() * 4` bytes.
        std::ptr::copy_nonoverlapping(w.as_ptr(), dst.add(i * 4), 4);
    }
    !not_finite
}

/// Whether to copy from the end: when the destination lies less than 2 KB after the source modulo 4 KB,
/// a forward loop's loads would look like they depend on its own recent stores (the CPU compares only
/// the low 12 address bits: "4K aliasing") and wait for them, which made decoding twice as slow as
/// `memcpy` for some allocations. Copying backward then keeps loads and recent stores apart, as glibc's
/// `memmove` does.
#[inline(always)]
fn backward(src: &[[u8; 4]], dst: *mut u8) -> bool {
    let delta = (dst as usize).wrapping_sub(src.as_ptr() as usize) % 4096;
    (1..2048).contains(&delta)
}

/// The `pshufb` pattern that reverses each 4-byte word of a 16-byte lane.
const SWAP_WORDS: [i8; 16] = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

#[target_feature(enable = "ssse3")]
unsafe fn convert_ssse3<const SWAP: bool, const CHECK_SRC: bool>(src: &[[u8; 4]], dst: *mut u8) -> bool {
    let p = src.as_ptr().cast::<u8>();
    let pattern = _mm_loadu_si128(SWAP_WORDS.as_ptr().cast());
    let exponent = _mm_set1_epi32(EXPONENT as i32);
    // Lanes all ones where a word's exponent bits were all set.
    let mut not_finite = _mm_setzero_si128();
    let registers = src.len() / 4;
    let backward = backward(src, dst);
    for k in 0..registers {
        let at = 16 * if backward { registers - 1 - k } else { k };
        // In bounds: at + 16 <= registers * 16 <= src.len() * 4 bytes, for `src` and `dst` alike.
        let loaded = _mm_loadu_si128(p.add(at).cast());
        let v = if SWAP { _mm_shuffle_epi8(loaded, pattern) } else { opaque!(xmm_reg, loaded) };
        _mm_storeu_si128(dst.add(at).cast(), v);
        let checked = if CHECK_SRC { loaded } else { v };
        not_finite = _mm_or_si128(not_finite, _mm_cmpeq_epi32(_mm_and_si128(checked, exponent), exponent));
    }
    // The tail is written whatever the body held (`&`, not `&&`).
    convert_scalar(src, SWAP, CHECK_SRC, registers * 4, dst) & (_mm_movemask_epi8(not_finite) == 0)
}

#[target_feature(enable = "avx2")]
unsafe fn convert_avx2<const SWAP: bool, const CHECK_SRC: bool>(src: &[[u8; 4]], dst: *mut u8) -> bool {
    let p = src.as_ptr().cast::<u8>();
    let half = _mm_loadu_si128(SWAP_WORDS.as_ptr().cast());
    let pattern = _mm256_set_m128i(half, half);
    let exponent = _mm256_set1_epi32(EXPONENT as i32);
    // Per lane, the largest exponent field seen: all ones only if some word was not finite.
    let mut largest = _mm256_setzero_si256();
    let registers = src.len() / 8;
    let backward = backward(src, dst);
    let pairs = registers / 2;
    for k in 0..pairs {
        let at = 64 * if backward { pairs - 1 - k } else { k };
        let l0 = _mm256_loadu_si256(p.add(at).cast());
        let l1 = _mm256_loadu_si256(p.add(at + 32).cast());
        let v0 = if SWAP { _mm256_shuffle_epi8(l0, pattern) } else { opaque!(ymm_reg, l0) };
        let v1 = if SWAP { _mm256_shuffle_epi8(l1, pattern) } else { opaque!(ymm_reg, l1) };
        _mm256_storeu_si256(dst.add(at).cast(), v0);
        _mm256_storeu_si256(dst.add(at + 32).cast(), v1);
        let c0 = if CHECK_SRC { l0 } else { v0 };
        let c1 = if CHECK_SRC { l1 } else { v1 };
        largest = _mm256_max_epu32(largest, _mm256_and_si256(c0, exponent));
        largest = _mm256_max_epu32(largest, _mm256_and_si256(c1, exponent));
    }
    for k in pairs * 2..registers {
        let at = 32 * k;
        let loaded = _mm256_loadu_si256(p.add(at).cast());
        let v = if SWAP { _mm256_shuffle_epi8(loaded, pattern) } else { opaque!(ymm_reg, loaded) };
        _mm256_storeu_si256(dst.add(at).cast(), v);
        let checked = if CHECK_SRC { loaded } else { v };
        largest = _mm256_max_epu32(largest, _mm256_and_si256(checked, exponent));
    }
    let not_finite = _mm256_cmpeq_epi32(largest, exponent);
    // The tail is written whatever the body held (`&`, not `&&`).
    convert_scalar(src, SWAP, CHECK_SRC, registers * 8, dst) & (_mm256_testz_si256(not_finite, not_finite) == 1)
}
