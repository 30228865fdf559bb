//! An order-independent checksum over rows: the wrapping sum of a 64-bit hash per row.
//!
//! Each row is written into the hash in one canonical form whatever backend it came from (its values in
//! the neutral form of `value.rs`: integers, text as length and UTF-8 bytes, timestamps as microseconds,
//! floats and vectors by their exact bits), hashed eight bytes at a time (FNV-1a for the last few) and
//! mixed with SplitMix64's finaliser.
//! Summing the row hashes makes the result independent of the order rows are read in, and unlike XOR a
//! row counted twice does not cancel out.

use std::fmt;

/// The checksum of a set of rows; equal sets of rows give equal checksums on any backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Checksum(pub u64);

impl Checksum {
    /// Adds one row's hash.
    pub(crate) fn add(&mut self, row_hash: u64) {
        self.0 = self.0.wrapping_add(row_hash);
    }
}

/// 16 hexadecimal digits.
impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A row hasher with a stable, documented output (unlike `std`'s `DefaultHasher`).
pub(crate) struct RowHasher(u64);

impl RowHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    const WORD: u64 = 0x9e37_79b9_7f4a_7c15;

    /// A hasher for a row of the table tagged `tag`, so equal values in different tables differ.
    pub(crate) fn new(tag: u8) -> Self {
        let mut h = Self(Self::OFFSET);
        h.bytes(&[tag]);
        h
    }

    /// Eight bytes at a time (as a little-endian word, multiplied by a full-width odd constant: each step
    /// is a bijection, so inputs of one length that differ in one word always differ), then the rest one
    /// at a time as FNV-1a does. Vectors and blobs hash eight times faster than byte by byte.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let mut h = self.0;
        let words = bytes.chunks_exact(8);
        let rest = words.remainder();
        for w in words {
            let word = u64::from_le_bytes(w.try_into().unwrap_or_default());
            h = (h ^ word).wrapping_mul(Self::WORD);
        }
        for b in rest {
            h ^= u64::from(*b);
            h = h.wrapping_mul(Self::PRIME);
        }
        self.0 = h;
        self
    }

    pub(crate) fn int(&mut self, value: i64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.int(i64::try_from(value.len()).unwrap_or(i64::MAX)).bytes(value.as_bytes())
    }

    /// The row's hash: FNV-1a, then SplitMix64's finaliser so that sums of hashes are well mixed.
    pub(crate) fn finish(&self) -> u64 {
        crate::index::splitmix_finish(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, text: &str) -> u64 {
        RowHasher::new(b'F').int(id).text(text).finish()
    }

    #[test]
    fn the_sum_does_not_depend_on_order() {
        let (mut a, mut b) = (Checksum::default(), Checksum::default());
        for (id, t) in [(1, "a"), (2, "b"), (3, "c")] {
            a.add(row(id, t));
        }
        for (id, t) in [(3, "c"), (1, "a"), (2, "b")] {
            b.add(row(id, t));
        }
        assert_eq!(a, b);
    }

    #[test]
    fn field_boundaries_and_tags_matter() {
        assert_ne!(
            RowHasher::new(b'F').text("ab").text("c").finish(),
            RowHasher::new(b'F').text("a").text("bc").finish()
        );
        assert_ne!(RowHasher::new(b'F').int(1).finish(), RowHasher::new(b'E').int(1).finish());
    }

    #[test]
    fn values_are_hashed_by_their_bits_and_kind() {
        use crate::transfer::value::Value;
        let hash = |v: Value| {
            let mut h = RowHasher::new(b'R');
            v.hash(&mut h);
            h.finish()
        };
        let zero = 0f32.to_le_bytes().to_vec();
        let negative_zero = (-0f32).to_le_bytes().to_vec();
        assert_ne!(hash(Value::Vector(zero.clone())), hash(Value::Vector(negative_zero)));
        assert_ne!(hash(Value::Vector(zero.clone())), hash(Value::Bytes(zero)));
        assert_ne!(hash(Value::Null), hash(Value::Vector(Vec::new())));
        assert_ne!(hash(Value::Int(1)), hash(Value::Bool(true)));
        assert_ne!(hash(Value::Real(0.0)), hash(Value::Real(-0.0)));
        assert_eq!(hash(Value::Real(f64::NAN)), hash(Value::Real(-f64::NAN)));
        assert_ne!(hash(Value::Timestamp(5)), hash(Value::Int(5)));
    }

    #[test]
    fn the_hash_is_stable() {
        // b"F" by FNV-1a, 1i64 and 1i64 as words, b"a" by FNV-1a, then SplitMix64's finaliser. A
        // change here changes every checksum ever printed: only on purpose.
        assert_eq!(Checksum(row(1, "a")).to_string(), "cd8040e8363bce82");
        let mut sum = Checksum::default();
        sum.add(u64::MAX);
        sum.add(2);
        assert_eq!(sum, Checksum(1));
    }
}
