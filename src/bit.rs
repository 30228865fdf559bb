//! The [`Bit`] value type: PostgreSQL's `bit`, for pgvector's Hamming and Jaccard distances.

use std::fmt;
use std::str::FromStr;

use crate::{VectorError, VectorKind};

/// A bit string: PostgreSQL's `bit(n)`, which pgvector indexes for binary-quantized embeddings
/// (`binary_quantize(embedding)`, sqlite-vec's `bit[N]`), packed eight bits to a byte, most significant
/// bit first.
///
/// Any length can be built ([`Bit::new`] and [`Bit::from_bytes`] cannot fail); what a database can hold is
/// checked when the value is written: at most [`Bit::MAX_LEN`] bits on both backends, and on SQLite a
/// multiple of 8, because SQLite stores whole bytes (see [`codec::bit`](crate::codec::bit)). The bits
/// after the end, in the last byte, are always zero.
///
/// | backend | SQL type | stored as |
/// |---|---|---|
/// | PostgreSQL | [`sql_types::Bit`](crate::sql_types::Bit) (`bit(n)`, or `varbit`) | PostgreSQL's binary format |
/// | SQLite | [`sql_types::Bit`](crate::sql_types::Bit) (`BLOB`) | the packed bytes, as sqlite-vec's `bit[N]` |
///
/// Its text form is PostgreSQL's: `0101`.
///
/// ```
/// use diesel_vector::Bit;
///
/// let b = Bit::new(&[true, false, true]);
/// assert_eq!(b.len(), 3);
/// assert_eq!(b.as_bytes(), &[0b1010_0000]);
/// assert_eq!(b.to_string(), "101");
/// assert_eq!("101".parse::<Bit>()?, b);
///
/// let bytes = Bit::from_bytes(&[0x0f, 0xff]);
/// assert_eq!(bytes.len(), 16);
/// assert_eq!(bytes.to_string(), "0000111111111111");
/// assert_eq!(bytes.get(4), Some(true));
/// assert_eq!(bytes.count_ones(), 12);
/// # Ok::<(), diesel_vector::VectorError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = crate::sql_types::Bit)]
pub struct Bit {
    len: usize,
    /// `len.div_ceil(8)` bytes, the bits after `len` zero.
    data: Vec<u8>,
}

impl Bit {
    /// The longest bit string a database column can hold: PostgreSQL's limit for `bit(n)` (10 MB). pgvector's
    /// HNSW and IVFFlat indexes take at most 64000 bits.
    pub const MAX_LEN: usize = 83_886_080;

    /// Makes a bit string from its bits, in order.
    pub fn new(bits: &[bool]) -> Self {
        let mut data = vec![0u8; bits.len().div_ceil(8)];
        for (byte, chunk) in data.iter_mut().zip(bits.chunks(8)) {
            *byte = chunk.iter().enumerate().fold(0, |acc, (i, bit)| acc | (u8::from(*bit) << (7 - i)));
        }
        Self { len: bits.len(), data }
    }

    /// Makes a bit string of `8 × bytes.len()` bits from packed bytes, most significant bit first (the
    /// layout of PostgreSQL's `bit` and of `binary_quantize`'s output).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        // A Vec holds at most isize::MAX bytes, so on 64-bit targets this cannot saturate.
        Self { len: bytes.len().saturating_mul(8), data: bytes.to_vec() }
    }

    /// Makes a bit string of `len` bits from packed bytes, most significant bit first, checking that there
    /// are `len.div_ceil(8)` bytes and that the bits after the end are zero.
    ///
    /// ```
    /// use diesel_vector::Bit;
    ///
    /// assert_eq!(Bit::from_packed(vec![0b1010_0000], 3)?, Bit::new(&[true, false, true]));
    /// assert!(Bit::from_packed(vec![0b1010_0001], 3).is_err());
    /// # Ok::<(), diesel_vector::VectorError>(())
    /// ```
    pub fn from_packed(bytes: Vec<u8>, len: usize) -> Result<Self, VectorError> {
        let expected_len = len.div_ceil(8);
        if bytes.len() != expected_len {
            return Err(VectorError::ValueLengthMismatch {
                kind: VectorKind::Bit,
                declared: len,
                expected_len,
                actual_len: bytes.len(),
            });
        }
        check_padding(&bytes, len)?;
        Ok(Self { len, data: bytes })
    }

    /// The number of bits.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes, most significant bit first; the bits after the end are zero.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Gives the packed bytes back without copying them.
    #[inline]
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// Bit `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| self.data[i / 8] & (0x80 >> (i % 8)) != 0)
    }

    /// The bits, in order.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.len).map(|i| self.data[i / 8] & (0x80 >> (i % 8)) != 0)
    }

    /// The number of bits that are set.
    pub fn count_ones(&self) -> usize {
        self.data.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Checks that the bit string has `expected` bits, as a column such as `bit(1536)` requires.
    pub fn check_len(&self, expected: usize) -> Result<(), VectorError> {
        if self.len == expected {
            Ok(())
        } else {
            Err(VectorError::BitLengthMismatch { expected, found: self.len })
        }
    }

    /// Wraps parts that the caller has already validated.
    #[inline]
    pub(crate) fn from_validated(data: Vec<u8>, len: usize) -> Self {
        debug_assert!(data.len() == len.div_ceil(8) && check_padding(&data, len).is_ok());
        Self { len, data }
    }
}

/// Checks that a length fits a database column.
pub(crate) fn check_max_len(len: usize) -> Result<(), VectorError> {
    if len > Bit::MAX_LEN {
        return Err(VectorError::LimitExceeded { kind: VectorKind::Bit, what: "bits", found: len, max: Bit::MAX_LEN });
    }
    Ok(())
}

/// Checks that the bits after `len` in the last of `bytes` (which are `len.div_ceil(8)`) are zero.
pub(crate) fn check_padding(bytes: &[u8], len: usize) -> Result<(), VectorError> {
    let used = len % 8;
    match bytes.last() {
        Some(last) if used != 0 && last & (0xff >> used) != 0 => Err(VectorError::BitPaddingNotZero { bits: len }),
        _ => Ok(()),
    }
}

impl From<&[bool]> for Bit {
    fn from(bits: &[bool]) -> Self {
        Self::new(bits)
    }
}

impl fmt::Debug for Bit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bit(\"{self}\")")
    }
}

/// PostgreSQL's text form of `bit`: one `0` or `1` per bit, `0101`.
impl fmt::Display for Bit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: String = self.iter().map(|b| if b { '1' } else { '0' }).collect();
        f.write_str(&text)
    }
}

/// Parses PostgreSQL's text form of `bit`: `0` and `1` characters, optionally after a `B` (as in the
/// literal `B'0101'`).
impl FromStr for Bit {
    type Err = VectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix(['B', 'b']).unwrap_or(s);
        let bits = digits
            .chars()
            .enumerate()
            .map(|(i, c)| match c {
                '0' => Ok(false),
                '1' => Ok(true),
                other => Err(VectorError::Parse { reason: format!("bit {i} ({other:?}) is neither 0 nor 1") }),
            })
            .collect::<Result<Vec<bool>, _>>()?;
        Ok(Self::new(&bits))
    }
}

/// The text form as a string, `"0101"`.
#[cfg(feature = "serde")]
impl serde::Serialize for Bit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The text form, `"0101"`.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Bit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn constructors_match_the_pgvector_crate() {
        // The `pgvector` crate's own tests.
        let v = Bit::from_bytes(&[0b0000_0000, 0b1111_1111]);
        assert_eq!((v.len(), v.as_bytes()), (16, &[0b0000_0000, 0b1111_1111][..]));
        let v = Bit::new(&[true, false, true]);
        assert_eq!((v.len(), v.as_bytes()), (3, &[0b1010_0000][..]));
        let v = Bit::new(&[]);
        assert!(v.is_empty() && v.as_bytes().is_empty());
        assert_eq!(v.len(), 0);
        assert_eq!(Bit::default(), v);
    }

    #[test]
    fn accessors_read_most_significant_bit_first() {
        let bits = [true, false, false, true, true, true, false, false, true];
        let v = Bit::new(&bits);
        assert_eq!(v.as_bytes(), &[0b1001_1100, 0b1000_0000]);
        assert_eq!(v.iter().collect::<Vec<_>>(), bits);
        assert_eq!((v.get(0), v.get(8), v.get(9)), (Some(true), Some(true), None));
        assert_eq!(v.count_ones(), 5);
        assert_eq!(Bit::from(&bits[..]), v);
        assert_eq!(v.clone().into_bytes(), v.as_bytes());
        assert_eq!(v.check_len(9), Ok(()));
        assert_eq!(v.check_len(16), Err(VectorError::BitLengthMismatch { expected: 16, found: 9 }));
    }

    #[test]
    fn from_packed_checks_length_and_padding() {
        assert_eq!(Bit::from_packed(vec![0xff, 0x80], 9).unwrap(), Bit::new(&[true; 9]));
        assert_eq!(Bit::from_packed(vec![], 0).unwrap(), Bit::new(&[]));
        assert_eq!(Bit::from_packed(vec![0xff, 0xc0], 9), Err(VectorError::BitPaddingNotZero { bits: 9 }));
        assert_eq!(
            Bit::from_packed(vec![0xff], 9),
            Err(VectorError::ValueLengthMismatch {
                kind: VectorKind::Bit,
                declared: 9,
                expected_len: 2,
                actual_len: 1
            })
        );
    }

    #[test]
    fn text_form_is_postgresqls() {
        let v = Bit::new(&[false, true, false, true]);
        assert_eq!(v.to_string(), "0101");
        assert_eq!(format!("{v:?}"), "Bit(\"0101\")");
        assert_eq!("0101".parse::<Bit>().unwrap(), v);
        assert_eq!("B0101".parse::<Bit>().unwrap(), v);
        assert_eq!("".parse::<Bit>().unwrap(), Bit::new(&[]));
        assert_eq!(
            "01x1".parse::<Bit>().unwrap_err().to_string(),
            "invalid vector text: bit 2 ('x') is neither 0 nor 1"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_the_text_form() {
        let v = Bit::new(&[false, true, true]);
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"011\"");
        assert_eq!(serde_json::from_str::<Bit>("\"011\"").unwrap(), v);
        assert!(serde_json::from_str::<Bit>("\"012\"").is_err());
    }

    proptest! {
        #[test]
        fn bits_round_trip_through_bytes_and_text(bits in prop::collection::vec(any::<bool>(), 0..100)) {
            let v = Bit::new(&bits);
            prop_assert_eq!(v.iter().collect::<Vec<_>>(), bits.clone());
            prop_assert_eq!(v.to_string().parse::<Bit>().unwrap(), v.clone());
            prop_assert_eq!(Bit::from_packed(v.as_bytes().to_vec(), v.len()).unwrap(), v.clone());
            prop_assert_eq!(v.count_ones(), bits.iter().filter(|b| **b).count());
        }
    }
}
