//! The stored formats' building blocks: a little-endian writer, a reader that never reads past the end (a
//! short blob is an error, not a panic), and the checksum that guards every blob.

use super::AnnError;

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// One step of the checksums' mixing: a 64-bit word into a running state.
#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(K).rotate_left(29)
}

/// The trailing bytes after the last whole word, and the final avalanche.
fn finish_sum(mut h: u64, rest: &[u8]) -> u64 {
    for (i, b) in rest.iter().enumerate() {
        h = mix(h, u64::from(*b) << (8 * i));
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 32)
}

/// The word at `bytes[at..at + 8]`, little-endian.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// `words` (a whole number of 8-byte words) mixed into `h` one after another: one chain.
#[inline(always)]
fn chain(mut h: u64, words: &[u8]) -> u64 {
    for at in (0..words.len()).step_by(8) {
        h = mix(h, word(words, at));
    }
    h
}

/// Independent running states of [`checksum`]: the mixing step is a multiply whose latency a single chain
/// waits on at every word (about 5 cycles per 8 bytes, 4-5 ms for the 22 MB of codes a new process loads at
/// 100k rows); eight chains keep the multiplier busy.
const LANES: usize = 8;

/// The 64-bit checksum every stored blob ends with (not cryptographic: it detects truncation, torn writes
/// and bit flips): eight interleaved chains of [`checksum_v1`]'s step over 64-byte blocks, folded into one.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    let seed = 0x6476_7175_616e_7432 ^ (bytes.len() as u64).wrapping_mul(K);
    let mut lanes = [0u64; LANES];
    for (i, lane) in lanes.iter_mut().enumerate() {
        *lane = seed.wrapping_add((i as u64).wrapping_mul(K));
    }
    let blocks = bytes.len() / (8 * LANES);
    for block in bytes[..blocks * 8 * LANES].chunks_exact(8 * LANES) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane = mix(*lane, word(block, 8 * i));
        }
    }
    let tail = &bytes[blocks * 8 * LANES..];
    let (words, rest) = tail.split_at(tail.len() - tail.len() % 8);
    finish_sum(chain(lanes.into_iter().fold(seed, mix), words), rest)
}

/// The checksum of the first stored format: one chain of 8-byte steps. Still what the parameters carry (their
/// fingerprint, which every chunk repeats, is this sum of their body), and accepted on any blob that an
/// earlier build wrote.
pub(crate) fn checksum_v1(bytes: &[u8]) -> u64 {
    let (words, rest) = bytes.split_at(bytes.len() - bytes.len() % 8);
    finish_sum(chain(0x6476_7175_616e_7431 ^ (bytes.len() as u64).wrapping_mul(K), words), rest)
}

/// Appends values in little-endian order.
#[derive(Debug, Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer(Vec::with_capacity(n))
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn f32(&mut self, v: f32) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends the checksum of everything written so far and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let sum = checksum(&self.0);
        self.u64(sum);
        self.0
    }
}

/// Reads values in little-endian order; every read past the end is an error naming `what`.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks the trailing checksum and magic, and returns a reader over what lies between them.
    pub(crate) fn open(blob: &'a [u8], what: &'static str, magic: &[u8; 4]) -> Result<Self, AnnError> {
        let Some((body, sum)) = blob.split_last_chunk::<8>() else {
            return Err(AnnError::corrupt(format!("{what}: {} bytes, too short", blob.len())));
        };
        let sum = u64::from_le_bytes(*sum);
        // The current sum, or the first format's, which blobs written by earlier builds carry.
        if checksum(body) != sum && checksum_v1(body) != sum {
            return Err(AnnError::corrupt(format!("{what}: checksum mismatch (truncated or damaged)")));
        }
        let mut reader = Reader { rest: body, what };
        if reader.take(4)? != magic {
            return Err(AnnError::corrupt(format!("{what}: not a {what} (wrong magic bytes)")));
        }
        Ok(reader)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], AnnError> {
        if self.rest.len() < n {
            return Err(AnnError::corrupt(format!("{}: truncated", self.what)));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AnnError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| AnnError::corrupt(format!("{}: truncated", self.what)))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, AnnError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, AnnError> {
        self.array().map(u16::from_le_bytes)
    }
    pub(crate) fn u32(&mut self) -> Result<u32, AnnError> {
        self.array().map(u32::from_le_bytes)
    }
    pub(crate) fn u64(&mut self) -> Result<u64, AnnError> {
        self.array().map(u64::from_le_bytes)
    }
    pub(crate) fn f32(&mut self) -> Result<f32, AnnError> {
        self.array().map(f32::from_le_bytes)
    }

    /// `n` little-endian 8-byte values, each converted by `from` (inlined: through a function pointer, the
    /// loop was a call per value, a fifth of what a new process spent loading its codes).
    pub(crate) fn words<T>(&mut self, n: usize, from: impl Fn([u8; 8]) -> T) -> Result<Vec<T>, AnnError> {
        let bytes = self.take_words(n)?;
        Ok(bytes.chunks_exact(8).map(|w| from(w.try_into().unwrap_or_default())).collect())
    }

    /// The bytes of `n` 8-byte values.
    pub(crate) fn take_words(&mut self, n: usize) -> Result<&'a [u8], AnnError> {
        self.take(n.checked_mul(8).ok_or_else(|| AnnError::corrupt(format!("{}: truncated", self.what)))?)
    }

    /// `n` little-endian `f32`, each finite.
    pub(crate) fn finite_f32s(&mut self, n: usize) -> Result<Vec<f32>, AnnError> {
        let bytes =
            self.take(n.checked_mul(4).ok_or_else(|| AnnError::corrupt(format!("{}: truncated", self.what)))?)?;
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|w| f32::from_le_bytes(w.try_into().unwrap_or_default())).collect();
        if values.iter().all(|v| v.is_finite()) {
            Ok(values)
        } else {
            Err(AnnError::corrupt(format!("{}: a stored number is NaN or infinite", self.what)))
        }
    }

    /// Errors unless everything was read.
    pub(crate) fn end(self) -> Result<(), AnnError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(AnnError::corrupt(format!("{}: {} unexpected bytes at the end", self.what, self.rest.len())))
        }
    }
}
