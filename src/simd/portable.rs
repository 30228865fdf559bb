//! The portable kernels: plain Rust, the reference every other level is tested against, and the fallback.
//!
//! The `f32` sums are written exactly like `src/sqlite/functions/kernels.rs` (16 partial sums, added in
//! order with `Iterator::sum`, then the rest): the x86 kernels reproduce this order, lane for lane.

/// Partial sums of the `f32` kernels.
pub(super) const LANES: usize = 16;
/// Partial sums of the `f64` kernel (L1).
pub(super) const LANES_F64: usize = 8;

/// The final step shared by every level: the partial sums in order, then the rest of the elements.
#[inline(always)]
pub(super) fn finish(acc: &[f32; LANES], a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let tail: f32 = a.iter().zip(b).map(|(x, y)| term(*x, *y)).sum();
    acc.iter().sum::<f32>() + tail
}

/// The final step of L1 at every level.
#[inline(always)]
pub(super) fn finish_l1(acc: &[f64; LANES_F64], a: &[f32], b: &[f32]) -> f64 {
    let tail: f64 = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum();
    acc.iter().sum::<f64>() + tail
}

#[inline(always)]
fn sum_f32(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    let mut acc = [0f32; LANES];
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..LANES {
            acc[i] += term(x[i], y[i]);
        }
    }
    finish(&acc, rest_a, rest_b, term)
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    sum_f32(a, b, |x, y| x * y)
}

pub(super) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    sum_f32(a, b, |x, y| (x - y) * (x - y))
}

pub(super) fn dot_and_norm(a: &[f32], b: &[f32]) -> (f32, f32) {
    let b = &b[..a.len().min(b.len())];
    (sum_f32(a, b, |x, y| x * y), sum_f32(b, b, |_, y| y * y))
}

/// The sign code of `v * s - centre` over whole 64-element blocks (one word each, bit `j` set when element `j`
/// is above zero), and the three sums of the encoder (`|o|`, `o²`, `o·centre`) as 16 partial sums each, lane
/// `j % 16` adding its elements in order.
pub(super) fn sign_code(v: &[f32], s: f32, centre: &[f32], code: &mut [u64]) -> [[f32; LANES]; 3] {
    let (mut l1, mut norm_sq, mut centre_dot) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
    for ((xs, cs), word) in v.chunks_exact(64).zip(centre.chunks_exact(64)).zip(code.iter_mut()) {
        let mut o = [0f32; 64];
        for j in 0..64 {
            o[j] = xs[j] * s - cs[j];
        }
        for j in 0..64 {
            l1[j % LANES] += o[j].abs();
            norm_sq[j % LANES] += o[j] * o[j];
            centre_dot[j % LANES] += o[j] * cs[j];
        }
        let mut w = 0u64;
        for (j, x) in o.iter().enumerate() {
            w |= u64::from(*x > 0.0) << j;
        }
        *word = w;
    }
    [l1, norm_sq, centre_dot]
}

pub(super) fn l1(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES_F64), b.chunks_exact(LANES_F64));
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    let mut acc = [0f64; LANES_F64];
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..LANES_F64 {
            acc[i] += (f64::from(x[i]) - f64::from(y[i])).abs();
        }
    }
    finish_l1(&acc, rest_a, rest_b)
}

/// A distance as the `u16` the scan stores: saturated below the "skipped" marker.
#[inline(always)]
pub(super) fn saturate(d: u32) -> u16 {
    u16::try_from(d).unwrap_or(u16::MAX).min(u16::MAX - 1)
}

/// Whether row `row` is set in the bit mask `keep`.
#[inline(always)]
pub(super) fn kept(keep: &[u64], row: usize) -> bool {
    keep.get(row / 64).is_some_and(|w| w >> (row % 64) & 1 == 1)
}

/// Bit `i % 64` of `out[i / 64]` set when `(keys[i] ^ key) & mask == 0`, for the `keys` that fit `out`; the
/// bits past the last key are clear. Each word is built in a register (64 compares folded into it), a loop
/// the compiler vectorises where 64-bit compares exist (SSE4.1 and up).
#[inline(always)]
pub(super) fn matching_keys(keys: &[u64], key: u64, mask: u64, out: &mut [u64]) {
    let mut blocks = keys.chunks(64);
    for word in out.iter_mut() {
        *word = blocks
            .next()
            .map_or(0, |block| block.iter().enumerate().fold(0, |w, (b, k)| w | u64::from((k ^ key) & mask == 0) << b));
    }
}

pub(super) fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[inline(always)]
pub(super) fn hamming_scan(query: &[u64], codes: &[u64], keep: &[u64], out: &mut [u16]) {
    if query.is_empty() {
        for (row, o) in out.iter_mut().enumerate() {
            *o = if kept(keep, row) { 0 } else { u16::MAX };
        }
        return;
    }
    for (row, (code, o)) in codes.chunks_exact(query.len()).zip(out.iter_mut()).enumerate() {
        *o = if kept(keep, row) { saturate(hamming(query, code)) } else { u16::MAX };
    }
}

pub(super) fn hamming_rows(query: &[u64], codes: &[u64], held: usize, rows: &[u32], out: &mut [u16]) {
    rows_with(query, codes, held, rows, out, hamming, |_| ());
}

/// [`Simd::hamming_rows`](super::Simd::hamming_rows) with the level's `distance` (of two slices of equal
/// length) and `prefetch` (a hint for a row's cache lines), shared by every level. `held` is the number of
/// codes in `codes`.
#[inline(always)]
pub(super) fn rows_with(
    query: &[u64],
    codes: &[u64],
    held: usize,
    rows: &[u32],
    out: &mut [u16],
    distance: impl Fn(&[u64], &[u64]) -> u32,
    prefetch: impl Fn(&[u64]),
) {
    let words = query.len();
    let code = |row: u32| {
        let row = row as usize;
        (row < held).then(|| &codes[row * words..(row + 1) * words])
    };
    for row in rows {
        if let Some(c) = code(*row) {
            prefetch(c);
        }
    }
    for (row, o) in rows.iter().zip(out.iter_mut()) {
        *o = code(*row).map_or(u16::MAX, |c| saturate(distance(query, c)));
    }
}

#[inline(always)]
pub(super) fn plane_sums(planes: &[u64], code: &[u64]) -> (u32, u32) {
    let ones = code.iter().map(|w| w.count_ones()).sum();
    if code.is_empty() {
        return (0, ones);
    }
    let weighted = planes
        .chunks_exact(code.len())
        .enumerate()
        .map(|(j, plane)| plane.iter().zip(code).map(|(p, c)| (p & c).count_ones()).sum::<u32>() << j)
        .sum();
    (weighted, ones)
}

#[inline(always)]
fn word(w: [u8; 4], swap: bool) -> [u8; 4] {
    if swap {
        [w[3], w[2], w[1], w[0]]
    } else {
        w
    }
}

/// Whether the word, as `f32` in this machine's byte order, is finite.
#[inline(always)]
fn finite(w: [u8; 4]) -> bool {
    f32::from_ne_bytes(w).is_finite()
}

pub(super) fn extend_f32(src: &[[u8; 4]], swap: bool, out: &mut Vec<f32>) -> bool {
    let start = out.len();
    out.extend(src.iter().map(|w| f32::from_ne_bytes(word(*w, swap))));
    crate::vector::all_finite(&out[start..])
}

pub(super) fn extend_bytes(src: &[[u8; 4]], swap: bool, check_src: bool, out: &mut Vec<u8>) -> bool {
    out.reserve(src.len() * 4);
    let mut ok = true;
    for s in src {
        let w = word(*s, swap);
        ok &= finite(if check_src { *s } else { w });
        out.extend_from_slice(&w);
    }
    ok
}

pub(super) fn extend_words(src: &[[u8; 4]], swap: bool, out: &mut Vec<[u8; 4]>) -> bool {
    let start = out.len();
    out.extend(src.iter().map(|w| word(*w, swap)));
    out[start..].iter().fold(true, |ok, w| ok & finite(*w))
}
