//! The codecs' inner loops: 4-byte words read in one byte order, checked for finiteness and written out,
//! shaped so that the compiler vectorises them for x86-64's baseline SSE2 as well as for wider units.
//!
//! Three choices matter, each measured with `scripts/bench-codec.sh` (see BENCHMARKS.md):
//! - **Fixed-size arrays, never indexed slices.** Words are `[u8; 4]` and blocks `[[u8; 4]; BLOCK]`, so
//!   there is no bounds check to stop vectorisation (indexing `&[u8]` four times per element made the old
//!   decoders byte-at-a-time: 2.6 ns per element).
//! - **Finiteness as a running sum.** A sum of floats is finite when every term is, and stays NaN or
//!   infinite once a term is; so one vector addition per four elements replaces a mask, a compare and an
//!   or. A sum of finite terms can still overflow: that only sends the decoder down the exact,
//!   element-by-element search, which then finds nothing and accepts the vector. Errors are unchanged.
//! - **Byte swaps as 16-bit lanes.** A vectorised `u32::swap_bytes` becomes one `pshufb` with SSSE3, but
//!   the baseline x86-64 target lacks it and LLVM lowers the swap to seven byte-unpack, shuffle and pack
//!   instructions per 16 bytes. Written as "swap the two 16-bit halves, then the bytes of each half" over
//!   a block seen as 16-bit lanes (see [`swap_block`]), it becomes `pshuflw`, `pshufhw` and three 16-bit
//!   shift/or instructions. Targets with SSSE3, and all others, use `swap_bytes`.
//!
//! On x86-64 CPUs with SSSE3 (all since about 2009) these loops are not used: each function hands the work
//! to the SIMD module's conversions (`pshufb` chosen at run time, `crate::simd`), which copy, swap and
//! check the exponent bits in one pass straight into the output's spare capacity (there a compare and a
//! max cost less than a running sum, whose additions wait on each other). The loops here remain the
//! fallback, for other targets and for `DIESEL_VECTOR_SIMD=portable`, and are tested against the SIMD paths
//! below.

use crate::simd::Simd;
use crate::vector::first_not_finite;
use crate::VectorError;

/// One `f32` as it sits in a buffer, in some byte order.
pub(super) type Word = [u8; 4];

/// Elements per block of the vectorised loops: 64 `f32`, 256 bytes. Measured, not arbitrary: with 32
/// LLVM 22 stops vectorising the big-endian byte swap and decoding gets three times slower.
const BLOCK: usize = 64;

/// Independent partial sums per block: four SSE registers of four lanes.
const LANES: usize = 16;

/// Splits words into whole blocks and the remaining (fewer than [`BLOCK`]) words.
fn split_blocks(words: &[Word]) -> (&[[Word; BLOCK]], &[Word]) {
    let (head, tail) = words.split_at(words.len() - words.len() % BLOCK);
    // `head` holds a whole number of blocks, so the cast cannot fail.
    (bytemuck::cast_slice(head), tail)
}

/// Whether the target would turn `u32::swap_bytes` into many byte shuffles: x86 without SSSE3.
const SHUFFLE_SWAP_IS_SLOW: bool =
    cfg!(all(any(target_arch = "x86", target_arch = "x86_64"), not(target_feature = "ssse3")));

/// Reverses the bytes of every word of a block.
#[inline(always)]
fn swap_block(block: &[Word; BLOCK]) -> [Word; BLOCK] {
    if SHUFFLE_SWAP_IS_SLOW {
        // Seen as 16-bit lanes: each word's two halves trade places (a lane shuffle) and each half's two
        // bytes trade places (a 16-bit rotate). Written per word, LLVM would recognise a 32-bit byte swap
        // and emit its slow lowering; written over the lanes of the whole block, it keeps the two steps.
        let halves: [[u8; 2]; 2 * BLOCK] = bytemuck::cast(*block);
        let mut swapped = [0u16; 2 * BLOCK];
        for i in 0..BLOCK {
            swapped[2 * i] = u16::from_ne_bytes(halves[2 * i + 1]).rotate_left(8);
            swapped[2 * i + 1] = u16::from_ne_bytes(halves[2 * i]).rotate_left(8);
        }
        bytemuck::cast(swapped)
    } else {
        block.map(|w| u32::from_ne_bytes(w).swap_bytes().to_ne_bytes())
    }
}

/// A block of words in this machine's byte order, from (or to) little-endian words.
#[inline(always)]
fn le_block(block: &[Word; BLOCK]) -> [Word; BLOCK] {
    if cfg!(target_endian = "little") {
        *block
    } else {
        swap_block(block)
    }
}

/// A block of words in this machine's byte order, from (or to) big-endian words.
#[inline(always)]
fn be_block(block: &[Word; BLOCK]) -> [Word; BLOCK] {
    if cfg!(target_endian = "big") {
        *block
    } else {
        swap_block(block)
    }
}

/// Byte order of the words a loop reads.
pub(super) trait Order {
    /// Whether reading a word of this order on this machine reverses its bytes.
    const SWAPS: bool;
    /// The bits of the `f32` stored in `w`.
    fn read(w: Word) -> u32;
    /// `bits` stored in the other byte order.
    fn write_other(bits: u32) -> Word;
    /// The words of a block in this machine's byte order.
    fn read_block(block: &[Word; BLOCK]) -> [Word; BLOCK];
    /// A block of words in this machine's byte order, stored in the other byte order.
    fn write_other_block(block: &[Word; BLOCK]) -> [Word; BLOCK];
}

/// pgvector's binary format.
pub(super) struct BigEndian;

/// sqlite-vec's BLOBs.
pub(super) struct LittleEndian;

impl Order for BigEndian {
    const SWAPS: bool = cfg!(target_endian = "little");
    #[inline(always)]
    fn read(w: Word) -> u32 {
        u32::from_be_bytes(w)
    }

    #[inline(always)]
    fn write_other(bits: u32) -> Word {
        bits.to_le_bytes()
    }

    #[inline(always)]
    fn read_block(block: &[Word; BLOCK]) -> [Word; BLOCK] {
        be_block(block)
    }

    #[inline(always)]
    fn write_other_block(block: &[Word; BLOCK]) -> [Word; BLOCK] {
        le_block(block)
    }
}

impl Order for LittleEndian {
    const SWAPS: bool = cfg!(target_endian = "big");
    #[inline(always)]
    fn read(w: Word) -> u32 {
        u32::from_le_bytes(w)
    }

    #[inline(always)]
    fn write_other(bits: u32) -> Word {
        bits.to_be_bytes()
    }

    #[inline(always)]
    fn read_block(block: &[Word; BLOCK]) -> [Word; BLOCK] {
        le_block(block)
    }

    #[inline(always)]
    fn write_other_block(block: &[Word; BLOCK]) -> [Word; BLOCK] {
        be_block(block)
    }
}

/// Adds a block into the running sums, as a tree so that the block's additions do not wait on each other.
#[inline(always)]
fn add_block(sums: &mut [f32; LANES], block: &[f32; BLOCK]) {
    for i in 0..LANES {
        let a = block[i] + block[LANES + i];
        let b = block[2 * LANES + i] + block[3 * LANES + i];
        sums[i] += a + b;
    }
}

/// The total of the running sums and `rest`: finite if every value summed was (and nothing overflowed).
#[inline(always)]
fn total(sums: &[f32; LANES], rest: f32) -> f32 {
    sums.iter().fold(rest, |acc, s| acc + s)
}

/// The exact check, run only when a sum is not finite: the error for the first value that is not, or
/// `Ok` if the sum merely overflowed.
#[cold]
#[inline(never)]
fn search_not_finite(values: &[f32]) -> Result<(), VectorError> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(first_not_finite(values.iter().copied()))
    }
}

/// Reads words in byte order `O` into a new `Vec<f32>`, checking in the same pass that all are finite.
///
/// The vector is allocated once; its capacity is rounded up to a whole block (at most 63 spare elements).
pub(super) fn decode<O: Order>(simd: Simd, words: &[Word]) -> Result<Vec<f32>, VectorError> {
    if simd.converts_words() {
        let mut out = Vec::with_capacity(words.len());
        if !simd.extend_f32(words, O::SWAPS, &mut out) {
            search_not_finite(&out)?;
        }
        return Ok(out);
    }
    let (blocks, tail) = split_blocks(words);
    let mut sums = [0.0f32; LANES];
    // Whole blocks written through `extend` (one capacity check for all) and flattened without a copy:
    // the safe way to fill fresh memory without zeroing it first.
    let mut out: Vec<[f32; BLOCK]> = Vec::with_capacity(words.len().div_ceil(BLOCK));
    out.extend(blocks.iter().map(|block| {
        let values: [f32; BLOCK] = bytemuck::cast(O::read_block(block));
        add_block(&mut sums, &values);
        values
    }));
    let mut out = out.into_flattened();
    let body = out.len();
    out.extend(tail.iter().map(|&w| f32::from_bits(O::read(w))));
    let tail_sum = out[body..].iter().fold(0.0f32, |acc, v| acc + v);
    if !total(&sums, tail_sum).is_finite() {
        search_not_finite(&out)?;
    }
    Ok(out)
}

#[cfg(any(feature = "pg", feature = "sqlite"))]
/// Checks that every word, read in byte order `O`, is a finite float, without keeping the values (the
/// same running sums as [`decode`]).
pub(super) fn check<O: Order>(words: &[Word]) -> Result<(), VectorError> {
    let (blocks, tail) = split_blocks(words);
    let mut sums = [0.0f32; LANES];
    for block in blocks {
        add_block(&mut sums, &bytemuck::cast(O::read_block(block)));
    }
    let tail_sum = tail.iter().fold(0.0f32, |acc, &w| acc + f32::from_bits(O::read(w)));
    if total(&sums, tail_sum).is_finite() {
        Ok(())
    } else {
        search_not_finite_words::<O>(words)
    }
}

/// Appends `words`, read in byte order `O`, to `out` as words in the other byte order, checking in the
/// same pass that all are finite. On error `out` is left as it was.
pub(super) fn swap_into<O: Order>(simd: Simd, words: &[Word], out: &mut Vec<u8>) -> Result<(), VectorError> {
    let start = out.len();
    if simd.converts_words() {
        // From one byte order to the other: every word is reversed, whatever this machine's order. The values
        // are the source words when those are in this machine's order, else the written ones.
        if !simd.extend_bytes(words, true, !O::SWAPS, out) {
            if let Err(e) = search_not_finite_words::<O>(words) {
                out.truncate(start);
                return Err(e);
            }
        }
        return Ok(());
    }
    out.resize(start + words.len() * 4, 0);
    let dst: &mut [Word] = bytemuck::cast_slice_mut(&mut out[start..]);
    let (dst_blocks, dst_tail) = dst.split_at_mut(dst.len() - dst.len() % BLOCK);
    let dst_blocks: &mut [[Word; BLOCK]] = bytemuck::cast_slice_mut(dst_blocks);
    let (blocks, tail) = split_blocks(words);
    let mut sums = [0.0f32; LANES];
    for (dst, block) in dst_blocks.iter_mut().zip(blocks) {
        let native = O::read_block(block);
        add_block(&mut sums, &bytemuck::cast(native));
        *dst = O::write_other_block(&native);
    }
    let mut tail_sum = 0.0f32;
    for (dst, &w) in dst_tail.iter_mut().zip(tail) {
        let bits = O::read(w);
        tail_sum += f32::from_bits(bits);
        *dst = O::write_other(bits);
    }
    if !total(&sums, tail_sum).is_finite() {
        if let Err(e) = search_not_finite_words::<O>(words) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn search_not_finite_words<O: Order>(words: &[Word]) -> Result<(), VectorError> {
    let values = words.iter().map(|&w| f32::from_bits(O::read(w)));
    if values.clone().all(f32::is_finite) {
        Ok(())
    } else {
        Err(first_not_finite(values))
    }
}

/// Big-endian words of `values`, after `header`, in one new buffer.
pub(super) fn encode_be(simd: Simd, header: Word, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + values.len());
    encode_be_into(simd, header, values, &mut out);
    out.into_flattened()
}

/// Appends `header` and the big-endian words of `values` to `out`.
pub(super) fn encode_be_into(simd: Simd, header: Word, values: &[f32], out: &mut Vec<Word>) {
    let words: &[Word] = bytemuck::cast_slice(values);
    if simd.converts_words() {
        out.reserve(1 + words.len());
        out.push(header);
        // The values of a `Vector` are finite: the check's answer is not needed.
        simd.extend_words(words, cfg!(target_endian = "little"), out);
        return;
    }
    let (blocks, tail) = split_blocks(words);
    // `Once`, chained with a flat map of arrays and a slice map, has a trusted length: one capacity check,
    // no zeroing, and a loop that vectorises.
    out.extend(
        std::iter::once(header)
            .chain(blocks.iter().flat_map(be_block))
            .chain(tail.iter().map(|&w| u32::from_ne_bytes(w).to_be_bytes())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words_of(bits: &[u32]) -> Vec<Word> {
        bits.iter().map(|b| b.to_ne_bytes()).collect()
    }

    /// Bit patterns that are mostly finite floats, with NaN and infinities now and then.
    fn value_bits() -> impl Strategy<Value = u32> {
        prop_oneof![
            8 => (-1e6f32..1e6).prop_map(f32::to_bits),
            1 => any::<u32>(),
            1 => prop::sample::select(vec![f32::NAN.to_bits(), f32::INFINITY.to_bits(), f32::MAX.to_bits()]),
        ]
    }

    fn same_result<T: PartialEq + std::fmt::Debug>(
        a: &Result<T, VectorError>,
        b: &Result<T, VectorError>,
    ) -> Result<(), TestCaseError> {
        match (a, b) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (
                Err(VectorError::NotFinite { index: i, value: v }),
                Err(VectorError::NotFinite { index: j, value: w }),
            ) => {
                prop_assert_eq!((i, v.to_bits()), (j, w.to_bits()));
            }
            (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn every_simd_level_converts_like_the_portable_loops(bits in prop::collection::vec(value_bits(), 0..400)) {
            let words = words_of(&bits);
            let portable = Simd::portable();
            for simd in Simd::all_supported() {
                let bits_of = |r: Result<Vec<f32>, VectorError>| r.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
                same_result(&bits_of(decode::<BigEndian>(simd, &words)), &bits_of(decode::<BigEndian>(portable, &words)))?;
                same_result(&bits_of(decode::<LittleEndian>(simd, &words)), &bits_of(decode::<LittleEndian>(portable, &words)))?;
                for order_is_big in [true, false] {
                    let (mut ours, mut theirs) = (vec![1u8, 2], vec![1u8, 2]);
                    let (a, b) = if order_is_big {
                        (swap_into::<BigEndian>(simd, &words, &mut ours), swap_into::<BigEndian>(portable, &words, &mut theirs))
                    } else {
                        (swap_into::<LittleEndian>(simd, &words, &mut ours), swap_into::<LittleEndian>(portable, &words, &mut theirs))
                    };
                    same_result(&a.map(|()| ours), &b.map(|()| theirs))?;
                }
                let values: Vec<f32> = bits.iter().map(|b| f32::from_bits(*b)).collect();
                prop_assert_eq!(encode_be(simd, [1, 2, 3, 4], &values), encode_be(portable, [1, 2, 3, 4], &values));
            }
        }
    }
}
