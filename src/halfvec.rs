//! The [`HalfVector`] value type: pgvector's `halfvec`.

use std::fmt;
use std::str::FromStr;

use half::f16;

use crate::vector::write_float;
use crate::{Vector, VectorError, VectorKind};

/// An embedding in half precision (`f16`): pgvector's `halfvec`, valid by construction.
///
/// Half the storage of a [`Vector`], and the way to index more than 2000 dimensions with pgvector's HNSW
/// and IVFFlat (`halfvec` indexes take up to 4000: a 3072-dimension model fits). A `HalfVector` is never
/// empty, holds at most [`HalfVector::MAX_DIMS`] elements, and every element is finite.
///
/// | backend | SQL type | stored as |
/// |---|---|---|
/// | PostgreSQL | [`sql_types::HalfVector`](crate::sql_types::HalfVector) (pgvector's `halfvec`) | pgvector's binary format |
/// | SQLite | [`sql_types::HalfVector`](crate::sql_types::HalfVector) (`BLOB`) | 2 bytes per element, little-endian `f16` |
///
/// Its text form is pgvector's: `[1,2.5,-3]`, each element written as the shortest decimal that reads
/// back to the same `f32` (as pgvector prints it), parsed to `f32` and then rounded to `f16` (as pgvector
/// reads it), so the text form round-trips exactly.
///
/// ```
/// use diesel_vector::HalfVector;
/// use half::f16;
///
/// let v = HalfVector::from_f32_slice(&[1.0, 2.5, -3.0])?;
/// assert_eq!(v.dims(), 3);
/// assert_eq!(v.as_slice()[1], f16::from_f32(2.5));
/// assert_eq!(v.to_string(), "[1,2.5,-3]");
/// assert_eq!("[1, 2.5, -3]".parse::<HalfVector>()?, v);
///
/// // Values are rounded to the nearest f16, as pgvector rounds them...
/// assert_eq!(HalfVector::from_f32_slice(&[0.1])?.to_string(), "[0.099975586]");
/// // ...and what f16 cannot hold is an error, never an infinity.
/// assert!(HalfVector::from_f32_slice(&[70_000.0]).is_err());
/// # Ok::<(), diesel_vector::VectorError>(())
/// ```
#[derive(Clone, PartialEq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = crate::sql_types::HalfVector)]
pub struct HalfVector(Vec<f16>);

// Sound because no element is NaN: `==` on finite floats is reflexive.
impl Eq for HalfVector {}

/// The bits of an `f16` that hold its exponent: all ones for infinities and NaN.
const EXPONENT: u16 = 0x7c00;

/// Whether the `f16` with these bits is finite.
#[inline(always)]
pub(crate) const fn half_bits_finite(bits: u16) -> bool {
    bits & EXPONENT != EXPONENT
}

impl HalfVector {
    /// The most dimensions a `HalfVector` may have: pgvector's limit for `halfvec` (its HNSW and IVFFlat
    /// indexes take at most 4000).
    pub const MAX_DIMS: usize = 16_000;

    /// Makes a half vector from `f16` elements, checking that there is at least one, at most
    /// [`MAX_DIMS`](Self::MAX_DIMS), and that every element is finite.
    pub fn new(values: Vec<f16>) -> Result<Self, VectorError> {
        check_len(values.len())?;
        if values.iter().any(|h| !half_bits_finite(h.to_bits())) {
            return Err(first_not_finite(&values));
        }
        Ok(Self(values))
    }

    /// Makes a half vector from `f32` values, each rounded to the nearest `f16` (ties to even, as pgvector
    /// does).
    ///
    /// # Errors
    ///
    /// No values, more than [`MAX_DIMS`](Self::MAX_DIMS), a NaN or infinite value
    /// ([`VectorError::NotFinite`]), or a value that rounds beyond `f16`'s range, of magnitude 65520 or more
    /// ([`VectorError::HalfOverflow`]: pgvector refuses it too, "out of range for type halfvec").
    pub fn from_f32_slice(values: &[f32]) -> Result<Self, VectorError> {
        check_len(values.len())?;
        let halves: Vec<f16> = values.iter().map(|v| f16::from_f32(*v)).collect();
        if halves.iter().any(|h| !half_bits_finite(h.to_bits())) {
            let (index, value) =
                values.iter().copied().enumerate().find(|(i, _)| !half_bits_finite(halves[*i].to_bits())).unwrap_or(
                    // Unreachable: some half is not finite.
                    (0, f32::NAN),
                );
            return Err(if value.is_finite() {
                VectorError::HalfOverflow { index, value }
            } else {
                VectorError::NotFinite { index, value }
            });
        }
        Ok(Self(halves))
    }

    /// Converts a [`Vector`], rounding each element to the nearest `f16`, with the errors of
    /// [`from_f32_slice`](Self::from_f32_slice).
    pub fn from_vector(v: &Vector) -> Result<Self, VectorError> {
        Self::from_f32_slice(v.as_slice())
    }

    /// The elements.
    #[inline]
    pub fn as_slice(&self) -> &[f16] {
        &self.0
    }

    /// A copy of the elements.
    pub fn to_vec(&self) -> Vec<f16> {
        self.0.clone()
    }

    /// The elements as `f32` (exactly: every `f16` is an `f32`).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.0.iter().map(|h| h.to_f32()).collect()
    }

    /// The number of dimensions (elements); at least 1.
    #[inline]
    pub fn dims(&self) -> usize {
        self.0.len()
    }

    /// Gives the elements back without copying them.
    #[inline]
    pub fn into_inner(self) -> Vec<f16> {
        self.0
    }

    /// Checks that the vector has `expected` dimensions, as a column such as `halfvec(3072)` requires.
    pub fn check_dims(&self, expected: usize) -> Result<(), VectorError> {
        if self.dims() == expected {
            Ok(())
        } else {
            Err(VectorError::DimensionMismatch { expected, found: self.dims() })
        }
    }

    /// Wraps elements that the caller has already validated.
    #[inline]
    pub(crate) fn from_validated(values: Vec<f16>) -> Self {
        debug_assert!(Self::new(values.clone()).is_ok());
        Self(values)
    }
}

pub(crate) fn check_len(dims: usize) -> Result<(), VectorError> {
    match dims {
        0 => Err(VectorError::Empty),
        d if d > HalfVector::MAX_DIMS => Err(VectorError::LimitExceeded {
            kind: VectorKind::HalfVector,
            what: "dimensions",
            found: d,
            max: HalfVector::MAX_DIMS,
        }),
        _ => Ok(()),
    }
}

/// The error for the first element that is not finite. Call only when one exists.
#[cold]
pub(crate) fn first_not_finite(values: &[f16]) -> VectorError {
    let (index, value) = values
        .iter()
        .enumerate()
        .find(|(_, h)| !half_bits_finite(h.to_bits()))
        .map_or((0, f32::NAN), |(i, h)| (i, h.to_f32()));
    VectorError::NotFinite { index, value }
}

/// Every element is checked, as by [`HalfVector::new`]; use `try_from` (a `HalfVector` cannot hold NaN,
/// infinities or no elements, so there is no infallible `From<Vec<f16>>`).
impl TryFrom<Vec<f16>> for HalfVector {
    type Error = VectorError;
    fn try_from(values: Vec<f16>) -> Result<Self, Self::Error> {
        Self::new(values)
    }
}

impl TryFrom<&[f16]> for HalfVector {
    type Error = VectorError;
    fn try_from(values: &[f16]) -> Result<Self, Self::Error> {
        Self::new(values.to_vec())
    }
}

impl TryFrom<&[f32]> for HalfVector {
    type Error = VectorError;
    fn try_from(values: &[f32]) -> Result<Self, Self::Error> {
        Self::from_f32_slice(values)
    }
}

impl TryFrom<&Vector> for HalfVector {
    type Error = VectorError;
    fn try_from(v: &Vector) -> Result<Self, Self::Error> {
        Self::from_vector(v)
    }
}

impl From<HalfVector> for Vec<f16> {
    fn from(v: HalfVector) -> Self {
        v.0
    }
}

/// Exact: every finite `f16` is a finite `f32`.
impl From<&HalfVector> for Vector {
    fn from(v: &HalfVector) -> Self {
        Vector::from_validated(v.to_f32_vec())
    }
}

impl AsRef<[f16]> for HalfVector {
    fn as_ref(&self) -> &[f16] {
        &self.0
    }
}

impl fmt::Debug for HalfVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HalfVector").field(&self.0).finish()
    }
}

/// pgvector's text form, `[1,2.5,-3]`: each element as the shortest decimal that reads back to the same
/// `f32`, which is how pgvector prints a `halfvec`.
impl fmt::Display for HalfVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write_float(f, v.to_f32())?;
        }
        f.write_str("]")
    }
}

/// Parses pgvector's text form, `[1,2.5,-3]`, as pgvector does: each element to `f32`, then rounded to
/// `f16`. Validated like [`HalfVector::from_f32_slice`].
impl FromStr for HalfVector {
    type Err = VectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_f32_slice(&crate::vector::parse_elements(s, VectorKind::HalfVector)?)
    }
}

/// A sequence of numbers (the elements as `f32`, exactly).
#[cfg(feature = "serde")]
impl serde::Serialize for HalfVector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for v in &self.0 {
            seq.serialize_element(&v.to_f32())?;
        }
        seq.end()
    }
}

/// A sequence of numbers, rounded to `f16` and validated like [`HalfVector::from_f32_slice`].
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for HalfVector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<f32>::deserialize(deserializer)?;
        Self::from_f32_slice(&values).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(values: &[f32]) -> HalfVector {
        HalfVector::from_f32_slice(values).unwrap()
    }

    #[test]
    fn constructors_accept_valid_input() {
        let v = h(&[1.0, -2.0, 0.5]);
        assert_eq!(v.dims(), 3);
        assert_eq!(v.to_vec(), [1.0, -2.0, 0.5].map(f16::from_f32));
        assert_eq!(v.as_slice(), v.to_vec().as_slice());
        assert_eq!(HalfVector::new(v.to_vec()).unwrap(), v);
        assert_eq!(HalfVector::try_from(v.to_vec()).unwrap(), v);
        assert_eq!(HalfVector::try_from(&[1.0f32, -2.0, 0.5][..]).unwrap(), v);
        assert_eq!(v.to_f32_vec(), [1.0, -2.0, 0.5]);
        assert_eq!(Vec::<f16>::from(v.clone()), v.to_vec());
        assert_eq!(Vector::from(&v).as_slice(), &[1.0, -2.0, 0.5]);
        assert_eq!(HalfVector::from_vector(&Vector::from(&v)).unwrap(), v);
        assert_eq!(h(&vec![0.0; HalfVector::MAX_DIMS]).dims(), HalfVector::MAX_DIMS);
        // The extremes of f16.
        let extremes = h(&[65504.0, -65504.0, 6.1035156e-5, 5.9604645e-8, -0.0]);
        assert_eq!(
            extremes.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            [0x7bff, 0xfbff, 0x0400, 0x0001, 0x8000]
        );
    }

    #[test]
    fn rounding_follows_ieee_and_pgvector() {
        // Nearest, ties to even; 65519.99 still rounds down to the largest f16.
        assert_eq!(h(&[65519.0]).as_slice()[0], f16::MAX);
        assert_eq!(h(&[1.0 + 1.0 / 2048.0]).as_slice()[0], f16::ONE, "a tie rounds to even");
        assert_eq!(h(&[1e-9]).as_slice()[0].to_bits(), 0, "underflow is zero, as in pgvector");
    }

    #[test]
    fn constructors_reject_invalid_input_with_the_cause() {
        assert_eq!(HalfVector::from_f32_slice(&[]), Err(VectorError::Empty));
        assert_eq!(HalfVector::new(vec![]), Err(VectorError::Empty));
        assert_eq!(
            HalfVector::from_f32_slice(&vec![0.0; 16_001]),
            Err(VectorError::LimitExceeded {
                kind: VectorKind::HalfVector,
                what: "dimensions",
                found: 16_001,
                max: 16_000
            })
        );
        assert_eq!(
            HalfVector::from_f32_slice(&[1.0, 65520.0]),
            Err(VectorError::HalfOverflow { index: 1, value: 65520.0 })
        );
        assert_eq!(
            HalfVector::from_f32_slice(&[-1e6]).unwrap_err().to_string(),
            "halfvec element 0 is -1000000, beyond the range of half precision (largest magnitude 65504): \
             store such values in a `vector`, or scale the embedding down"
        );
        assert!(matches!(
            HalfVector::from_f32_slice(&[0.0, f32::NAN]),
            Err(VectorError::NotFinite { index: 1, value }) if value.is_nan()
        ));
        assert_eq!(
            HalfVector::from_f32_slice(&[f32::INFINITY]),
            Err(VectorError::NotFinite { index: 0, value: f32::INFINITY })
        );
        assert_eq!(
            HalfVector::new(vec![f16::ONE, f16::NEG_INFINITY]),
            Err(VectorError::NotFinite { index: 1, value: f32::NEG_INFINITY })
        );
        assert!(matches!(HalfVector::new(vec![f16::NAN]), Err(VectorError::NotFinite { index: 0, .. })));
    }

    #[test]
    fn text_form_is_pgvectors() {
        let v = h(&[1.0, 2.5, -3.0, 0.0, -0.0, 65504.0]);
        assert_eq!(v.to_string(), "[1,2.5,-3,0,-0,65504]");
        assert_eq!(" [ 1 , 2.5,-3,0,-0 , 65504] ".parse::<HalfVector>().unwrap(), v);
        assert_eq!(h(&[5.9604645e-8]).to_string(), "[5.9604645e-8]"); // the f32 digits, as pgvector prints them
        assert_eq!("[65519]".parse::<HalfVector>().unwrap().as_slice()[0], f16::MAX);
    }

    #[test]
    fn text_parsing_rejects_malformed_input() {
        assert_eq!("[]".parse::<HalfVector>(), Err(VectorError::Empty));
        assert!(matches!("1,2".parse::<HalfVector>(), Err(VectorError::Parse { .. })));
        assert_eq!(
            "[1,x]".parse::<HalfVector>().unwrap_err().to_string(),
            "invalid vector text: halfvec element 1 (\"x\") is not a number"
        );
        assert!(matches!("[1e5]".parse::<HalfVector>(), Err(VectorError::HalfOverflow { index: 0, .. })));
        assert!(matches!("[NaN]".parse::<HalfVector>(), Err(VectorError::NotFinite { index: 0, .. })));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_a_plain_sequence_and_validates() {
        let v = h(&[1.0, -0.5, 0.099975586]);
        assert_eq!(serde_json::to_string(&v).unwrap(), "[1.0,-0.5,0.099975586]");
        assert_eq!(serde_json::from_str::<HalfVector>("[1.0,-0.5,0.1]").unwrap(), v);
        let err = serde_json::from_str::<HalfVector>("[1e6]").unwrap_err();
        assert!(err.to_string().contains("beyond the range of half precision"), "{err}");
    }

    fn finite_half() -> impl Strategy<Value = f16> {
        any::<u16>().prop_map(f16::from_bits).prop_filter("finite", |h| h.is_finite())
    }

    proptest! {
        #[test]
        fn text_form_round_trips_bit_exact(values in prop::collection::vec(finite_half(), 1..50)) {
            let v = HalfVector::new(values).unwrap();
            let back: HalfVector = v.to_string().parse().unwrap();
            let bits = |v: &HalfVector| v.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back), bits(&v));
        }

        #[test]
        fn from_f32_rounds_like_half_and_fails_exactly_on_overflow(x in any::<u32>().prop_map(f32::from_bits)) {
            match HalfVector::from_f32_slice(&[x]) {
                Ok(v) => prop_assert_eq!(v.as_slice()[0].to_bits(), f16::from_f32(x).to_bits()),
                Err(VectorError::HalfOverflow { .. }) => prop_assert!(x.is_finite() && x.abs() >= 65520.0),
                Err(VectorError::NotFinite { .. }) => prop_assert!(!x.is_finite()),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }
}
