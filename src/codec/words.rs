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
//! - **Byte swaps the compiler cannot recognise.** A vectorised `u32::swap_bytes` becomes `pshufb` with
//!   SSSE3, but the baseline x86-64 target lacks it and LLVM lowers the swap to seven byte-shuffle
//!   instructions per 16 bytes that all queue for the shuffle ports. Written with shifts and a mask that
//!   the optimiser cannot see (see [`Swapper`]), it becomes eight plain ALU instructions that spread over
//!   more ports: about 1.4 times faster. Targets with SSSE3, and all others, use `swap_bytes`.

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

/// Reverses the bytes of 32-bit words (see the module docs for why this is not `u32::swap_bytes`).
#[derive(Clone, Copy)]
pub(super) struct Swapper {
    mask: u32,
}

impl Swapper {
    #[inline(always)]
    pub(super) fn new() -> Self {
        // `black_box` hides the constant from the optimiser, which would otherwise prove that the shifts
        // below only move bytes and turn them back into the slow shuffle.
        Self { mask: std::hint::black_box(0x00ff_00ff) }
    }

    #[inline(always)]
    fn swap(self, x: u32) -> u32 {
        if SHUFFLE_SWAP_IS_SLOW {
            (((x & self.mask) << 8) | ((x >> 8) & self.mask)).rotate_left(16)
        } else {
            x.swap_bytes()
        }
    }

    /// The bits of a big-endian `f32`.
    #[inline(always)]
    pub(super) fn read_be(self, w: Word) -> u32 {
        if cfg!(target_endian = "little") {
            self.swap(u32::from_ne_bytes(w))
        } else {
            u32::from_ne_bytes(w)
        }
    }

    /// The big-endian bytes of an `f32`'s bits.
    #[inline(always)]
    pub(super) fn write_be(self, bits: u32) -> Word {
        self.read_be(bits.to_ne_bytes()).to_ne_bytes()
    }
}

/// Byte order of the words a loop reads.
pub(super) trait Order {
    /// The bits of the `f32` stored in `w`.
    fn read(swapper: Swapper, w: Word) -> u32;
    /// `bits` stored in the other byte order.
    fn write_other(swapper: Swapper, bits: u32) -> Word;
}

/// pgvector's binary format.
pub(super) struct BigEndian;

/// sqlite-vec's BLOBs.
pub(super) struct LittleEndian;

impl Order for BigEndian {
    #[inline(always)]
    fn read(swapper: Swapper, w: Word) -> u32 {
        swapper.read_be(w)
    }

    #[inline(always)]
    fn write_other(_: Swapper, bits: u32) -> Word {
        bits.to_le_bytes()
    }
}

impl Order for LittleEndian {
    #[inline(always)]
    fn read(_: Swapper, w: Word) -> u32 {
        u32::from_le_bytes(w)
    }

    #[inline(always)]
    fn write_other(swapper: Swapper, bits: u32) -> Word {
        swapper.write_be(bits)
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
pub(super) fn decode<O: Order>(words: &[Word]) -> Result<Vec<f32>, VectorError> {
    let swapper = Swapper::new();
    let (blocks, tail) = split_blocks(words);
    let mut sums = [0.0f32; LANES];
    // Whole blocks written through `extend` (one capacity check for all) and flattened without a copy:
    // the safe way to fill fresh memory without zeroing it first.
    let mut out: Vec<[f32; BLOCK]> = Vec::with_capacity(words.len().div_ceil(BLOCK));
    out.extend(blocks.iter().map(|block| {
        let values: [f32; BLOCK] = std::array::from_fn(|i| f32::from_bits(O::read(swapper, block[i])));
        add_block(&mut sums, &values);
        values
    }));
    let mut out = out.into_flattened();
    let body = out.len();
    out.extend(tail.iter().map(|&w| f32::from_bits(O::read(swapper, w))));
    let tail_sum = out[body..].iter().fold(0.0f32, |acc, v| acc + v);
    if !total(&sums, tail_sum).is_finite() {
        search_not_finite(&out)?;
    }
    Ok(out)
}

/// Appends `words`, read in byte order `O`, to `out` as words in the other byte order, checking in the
/// same pass that all are finite. On error `out` is left as it was.
pub(super) fn swap_into<O: Order>(words: &[Word], out: &mut Vec<u8>) -> Result<(), VectorError> {
    let swapper = Swapper::new();
    let start = out.len();
    out.resize(start + words.len() * 4, 0);
    let dst: &mut [Word] = bytemuck::cast_slice_mut(&mut out[start..]);
    let (dst_blocks, dst_tail) = dst.split_at_mut(dst.len() - dst.len() % BLOCK);
    let dst_blocks: &mut [[Word; BLOCK]] = bytemuck::cast_slice_mut(dst_blocks);
    let (blocks, tail) = split_blocks(words);
    let mut sums = [0.0f32; LANES];
    for (dst, block) in dst_blocks.iter_mut().zip(blocks) {
        let bits: [u32; BLOCK] = std::array::from_fn(|i| O::read(swapper, block[i]));
        add_block(&mut sums, &bits.map(f32::from_bits));
        *dst = bits.map(|b| O::write_other(swapper, b));
    }
    let mut tail_sum = 0.0f32;
    for (dst, &w) in dst_tail.iter_mut().zip(tail) {
        let bits = O::read(swapper, w);
        tail_sum += f32::from_bits(bits);
        *dst = O::write_other(swapper, bits);
    }
    if !total(&sums, tail_sum).is_finite() {
        if let Err(e) = search_not_finite_words::<O>(swapper, words) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn search_not_finite_words<O: Order>(swapper: Swapper, words: &[Word]) -> Result<(), VectorError> {
    let values = words.iter().map(|&w| f32::from_bits(O::read(swapper, w)));
    if values.clone().all(f32::is_finite) {
        Ok(())
    } else {
        Err(first_not_finite(values))
    }
}

/// Big-endian words of `values`, after `header`, in one new buffer.
pub(super) fn encode_be(header: Word, values: &[f32]) -> Vec<u8> {
    let swapper = Swapper::new();
    // `Once` chained with a slice map has a trusted length: one allocation, and a loop that vectorises.
    let words: Vec<Word> =
        std::iter::once(header).chain(values.iter().map(|x| swapper.write_be(x.to_bits()))).collect();
    words.into_flattened()
}
