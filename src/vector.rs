//! The [`Vector`] value type.

use std::fmt;
use std::str::FromStr;

use crate::{VectorError, VectorKind};

/// The most dimensions a [`Vector`] may have: pgvector's limit for its `vector` type.
///
/// sqlite-vec's `vec0` index takes at most 8192 dimensions, and pgvector's ivfflat and hnsw indexes at
/// most 2000; plain storage and exact search work up to this limit on both backends.
pub const MAX_DIMS: usize = 16_000;

/// An embedding: a list of `f32` that is valid by construction.
///
/// A `Vector` is never empty, holds at most [`MAX_DIMS`] elements, and every element is finite (no NaN,
/// no infinities). Every constructor checks this, so a `Vector` that exists can be written to either
/// backend without further checks.
///
/// | backend | SQL type | stored as |
/// |---|---|---|
/// | PostgreSQL | [`sql_types::Vector`](crate::sql_types::Vector) (pgvector's `vector`) | pgvector's binary format |
/// | SQLite | [`sql_types::Vector`](crate::sql_types::Vector) (`BLOB`) | little-endian `f32`, as sqlite-vec reads it |
///
/// Its text form is pgvector's: `[1,2.5,-3]`.
///
/// ```
/// use diesel_vector::Vector;
///
/// let v = Vector::new(vec![1.0, 2.5, -3.0])?;
/// assert_eq!(v.dims(), 3);
/// assert_eq!(v.to_string(), "[1,2.5,-3]");
/// assert_eq!("[1, 2.5, -3]".parse::<Vector>()?, v);
///
/// // Invalid input is an error, never a panic.
/// let err = Vector::new(vec![0.5, f32::NAN]).unwrap_err();
/// assert_eq!(err.to_string().split(':').next(), Some("vector element 1 is NaN"));
/// # Ok::<(), diesel_vector::VectorError>(())
/// ```
#[derive(Clone, PartialEq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = crate::sql_types::Vector)]
pub struct Vector(Vec<f32>);

// Sound because no element is NaN: `==` on finite floats is reflexive.
impl Eq for Vector {}

impl Vector {
    /// Makes a vector, checking that it is non-empty, has at most [`MAX_DIMS`] elements and that every
    /// element is finite.
    pub fn new(values: Vec<f32>) -> Result<Self, VectorError> {
        validate(&values)?;
        Ok(Self(values))
    }

    /// Makes a vector from a slice, with the checks of [`Vector::new`].
    pub fn from_slice(values: &[f32]) -> Result<Self, VectorError> {
        validate(values)?;
        Ok(Self(values.to_vec()))
    }

    /// The elements.
    #[inline]
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The number of dimensions (elements); at least 1.
    #[inline]
    pub fn dims(&self) -> usize {
        self.0.len()
    }

    /// Gives the elements back without copying them.
    #[inline]
    pub fn into_inner(self) -> Vec<f32> {
        self.0
    }

    /// Checks that the vector has `expected` dimensions, as a column such as `vector(1536)` requires.
    ///
    /// ```
    /// # use diesel_vector::{Vector, VectorError};
    /// let v = Vector::new(vec![1.0; 768])?;
    /// assert_eq!(
    ///     v.check_dims(1536),
    ///     Err(VectorError::DimensionMismatch { expected: 1536, found: 768 })
    /// );
    /// # Ok::<(), VectorError>(())
    /// ```
    pub fn check_dims(&self, expected: usize) -> Result<(), VectorError> {
        if self.dims() == expected {
            Ok(())
        } else {
            Err(VectorError::DimensionMismatch { expected, found: self.dims() })
        }
    }

    /// Wraps elements that the caller has already validated. Crate-internal: decoders validate in the
    /// same pass that converts the bytes.
    #[inline]
    pub(crate) fn from_validated(values: Vec<f32>) -> Self {
        debug_assert!(validate(&values).is_ok());
        Self(values)
    }
}

/// Checks length and finiteness; the error names the first offending element.
pub(crate) fn validate(values: &[f32]) -> Result<(), VectorError> {
    check_len(values.len())?;
    // The slow search for the offending index runs only on failure.
    if !all_finite(values) {
        return Err(first_not_finite(values.iter().copied()));
    }
    Ok(())
}

/// Whether every value is finite: one branch-free pass, so that the common, valid case vectorises (no early
/// exit, and no chain of additions as in a sum of `x * 0`).
#[inline]
pub(crate) fn all_finite(values: &[f32]) -> bool {
    !values.iter().fold(false, |bad, v| bad | !v.is_finite())
}

pub(crate) fn check_len(dims: usize) -> Result<(), VectorError> {
    match dims {
        0 => Err(VectorError::Empty),
        d if d > MAX_DIMS => Err(VectorError::TooManyDimensions { dims: d, max: MAX_DIMS }),
        _ => Ok(()),
    }
}

/// The error for the first element that is not finite. Call only when one exists.
#[cold]
pub(crate) fn first_not_finite(values: impl IntoIterator<Item = f32>) -> VectorError {
    let (index, value) = values.into_iter().enumerate().find(|(_, v)| !v.is_finite()).unwrap_or((0, f32::NAN));
    VectorError::NotFinite { index, value }
}

impl TryFrom<Vec<f32>> for Vector {
    type Error = VectorError;
    fn try_from(values: Vec<f32>) -> Result<Self, Self::Error> {
        Self::new(values)
    }
}

impl TryFrom<&[f32]> for Vector {
    type Error = VectorError;
    fn try_from(values: &[f32]) -> Result<Self, Self::Error> {
        Self::from_slice(values)
    }
}

impl<const N: usize> TryFrom<[f32; N]> for Vector {
    type Error = VectorError;
    fn try_from(values: [f32; N]) -> Result<Self, Self::Error> {
        Self::from_slice(&values)
    }
}

impl From<Vector> for Vec<f32> {
    fn from(v: Vector) -> Self {
        v.0
    }
}

impl AsRef<[f32]> for Vector {
    fn as_ref(&self) -> &[f32] {
        &self.0
    }
}

impl fmt::Debug for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Vector").field(&self.0).finish()
    }
}

/// pgvector's text form: `[1,2.5,-3]`. Each element is written in the shortest form that reads back to
/// the same `f32`, so `to_string().parse()` is exact.
impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write_float(f, *v)?;
        }
        f.write_str("]")
    }
}

/// Shortest round-trip digits, in exponent form for very large or small magnitudes (as pgvector does),
/// so that `f32::MAX` is `3.4028235e38` rather than 39 digits.
pub(crate) fn write_float(f: &mut fmt::Formatter<'_>, v: f32) -> fmt::Result {
    let a = v.abs();
    if a == 0.0 || (1e-4..1e15).contains(&a) {
        write!(f, "{v}")
    } else {
        write!(f, "{v:e}")
    }
}

/// Parses pgvector's text form, `[1,2.5,-3]`; white space around elements is allowed.
///
/// The result is validated like [`Vector::new`]: `[]`, `[NaN]` or `[inf]` are errors.
impl FromStr for Vector {
    type Err = VectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(parse_elements(s, VectorKind::Vector)?)
    }
}

/// The elements of a dense vector's text form, `[1,2.5,-3]`, as `f32` (not yet validated).
pub(crate) fn parse_elements(s: &str, kind: VectorKind) -> Result<Vec<f32>, VectorError> {
    // Messages about a `vector` keep their plain wording; the other kinds are named.
    let label = if kind == VectorKind::Vector { String::new() } else { format!("{kind} ") };
    let trimmed = s.trim();
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(|| VectorError::Parse { reason: format!("a {kind} must start with \"[\" and end with \"]\"") })?;
    if inner.trim().is_empty() {
        return Err(VectorError::Empty);
    }
    inner
        .split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            item.parse::<f32>().map_err(|_| {
                // A JSON string (`"NaN"`, from JSON lines) is shown as written, not escaped again.
                let shown = if item.len() >= 2 && item.starts_with('"') && item.ends_with('"') {
                    format!("the string {item}")
                } else {
                    format!("{item:?}")
                };
                let bare = item.trim_matches('"').trim_start_matches(['+', '-']).to_ascii_lowercase();
                let finite = if ["nan", "inf", "infinity"].contains(&bare.as_str()) {
                    ": a vector holds finite numbers only"
                } else {
                    ""
                };
                VectorError::Parse { reason: format!("{label}element {index} ({shown}) is not a number{finite}") }
            })
        })
        .collect()
}

#[cfg(feature = "serde")]
impl serde::Serialize for Vector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Vector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<f32>::deserialize(deserializer)?;
        Self::new(values).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn constructors_accept_valid_input() {
        let v = Vector::new(vec![1.0, 2.0]).unwrap();
        assert_eq!(v.dims(), 2);
        assert_eq!(v.as_slice(), &[1.0, 2.0]);
        assert_eq!(Vector::try_from(vec![1.0, 2.0]).unwrap(), v);
        assert_eq!(Vector::try_from(&[1.0f32, 2.0][..]).unwrap(), v);
        assert_eq!(Vector::try_from([1.0f32, 2.0]).unwrap(), v);
        assert_eq!(v.clone().into_inner(), vec![1.0, 2.0]);
        assert_eq!(Vec::from(v), vec![1.0, 2.0]);
        assert_eq!(Vector::new(vec![0.0; MAX_DIMS]).unwrap().dims(), MAX_DIMS);
    }

    #[test]
    fn constructors_reject_invalid_input_with_the_cause() {
        assert_eq!(Vector::new(vec![]), Err(VectorError::Empty));
        assert_eq!(
            Vector::new(vec![0.0; MAX_DIMS + 1]),
            Err(VectorError::TooManyDimensions { dims: 16_001, max: 16_000 })
        );
        let err = Vector::try_from(&[1.0, f32::NEG_INFINITY][..]).unwrap_err();
        assert_eq!(err, VectorError::NotFinite { index: 1, value: f32::NEG_INFINITY });
        assert!(err.to_string().starts_with("vector element 1 is -inf: "));
        assert_eq!(
            VectorError::TooManyDimensions { dims: 16_001, max: 16_000 }.to_string(),
            "vector has 16001 dimensions, more than the limit of 16000 (pgvector's maximum for `vector`)"
        );
    }

    #[test]
    fn text_form_is_pgvectors() {
        let v = Vector::new(vec![1.0, 2.5, -3.0, 0.0, -0.0]).unwrap();
        assert_eq!(v.to_string(), "[1,2.5,-3,0,-0]");
        assert_eq!(Vector::new(vec![f32::MAX, 1e-45]).unwrap().to_string(), "[3.4028235e38,1e-45]");
        assert_eq!(" [ 1 , 2.5,-3,0,-0 ] ".parse::<Vector>().unwrap(), v);
        assert_eq!("[3.4028235e+38]".parse::<Vector>().unwrap().as_slice(), &[f32::MAX]);
    }

    #[test]
    fn text_parsing_rejects_malformed_input() {
        assert_eq!("[]".parse::<Vector>(), Err(VectorError::Empty));
        assert_eq!("[ ]".parse::<Vector>(), Err(VectorError::Empty));
        assert!(matches!("1,2".parse::<Vector>(), Err(VectorError::Parse { .. })));
        assert_eq!(
            "[1,x]".parse::<Vector>().unwrap_err().to_string(),
            "invalid vector text: element 1 (\"x\") is not a number"
        );
        assert!(matches!("[1,,2]".parse::<Vector>(), Err(VectorError::Parse { .. })));
        // JSON strings (from JSON lines) are shown as written.
        assert_eq!(
            r#"[1,"NaN"]"#.parse::<Vector>().unwrap_err().to_string(),
            r#"invalid vector text: element 1 (the string "NaN") is not a number: a vector holds finite numbers only"#
        );
        assert_eq!(
            r#"["2"]"#.parse::<Vector>().unwrap_err().to_string(),
            r#"invalid vector text: element 0 (the string "2") is not a number"#
        );
        assert!(matches!("[NaN]".parse::<Vector>(), Err(VectorError::NotFinite { index: 0, .. })));
        assert!(matches!("[1,inf]".parse::<Vector>(), Err(VectorError::NotFinite { index: 1, .. })));
    }

    #[test]
    fn check_dims_compares_with_the_expected_dimensions() {
        let v = Vector::new(vec![1.0; 3]).unwrap();
        assert_eq!(v.check_dims(3), Ok(()));
        assert_eq!(v.check_dims(4), Err(VectorError::DimensionMismatch { expected: 4, found: 3 }));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_a_plain_sequence_and_validates() {
        let v = Vector::new(vec![1.0, -0.5]).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "[1.0,-0.5]");
        assert_eq!(serde_json::from_str::<Vector>("[1.0,-0.5]").unwrap(), v);
        let err = serde_json::from_str::<Vector>("[]").unwrap_err();
        assert!(err.to_string().contains("vector is empty"), "{err}");
    }

    proptest! {
        #[test]
        fn text_form_round_trips_bit_exact(values in prop::collection::vec(
            any::<u32>().prop_map(f32::from_bits).prop_filter("finite", |x| x.is_finite()), 1..50)) {
            let v = Vector::new(values).unwrap();
            let back: Vector = v.to_string().parse().unwrap();
            let bits = |v: &Vector| v.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back), bits(&v));
        }
    }
}
