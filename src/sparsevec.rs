//! The [`SparseVector`] value type: pgvector's `sparsevec`.

use std::fmt;
use std::str::FromStr;

use crate::vector::write_float;
use crate::{Vector, VectorError, VectorKind};

/// A sparse vector: pgvector's `sparsevec`, the non-zero elements of a vector with up to a billion
/// dimensions (SPLADE or BM25-style term weights for hybrid search), valid by construction.
///
/// A `SparseVector` has between 1 and [`SparseVector::MAX_DIMS`] dimensions and at most
/// [`SparseVector::MAX_NNZ`] non-zero elements, each a finite, non-zero `f32` at a 0-based index below the
/// dimensions, in strictly ascending order of index. Zeros are not stored: every constructor drops them,
/// as pgvector does.
///
/// | backend | SQL type | stored as |
/// |---|---|---|
/// | PostgreSQL | [`sql_types::SparseVector`](crate::sql_types::SparseVector) (pgvector's `sparsevec`) | pgvector's binary format |
/// | SQLite | [`sql_types::SparseVector`](crate::sql_types::SparseVector) (`BLOB`) | dimensions, indices and values, little-endian (see [`codec::sparsevec`](crate::codec::sparsevec)) |
///
/// Its text form is pgvector's, with **1-based** indices: `{1:1.5,3:2}/5` is `[1.5, 0, 2, 0, 0]`.
///
/// ```
/// use std::collections::HashMap;
/// use diesel_vector::SparseVector;
///
/// let v = SparseVector::from_dense(&[1.5, 0.0, 2.0, 0.0, 0.0])?;
/// assert_eq!(v.dimensions(), 5);
/// assert_eq!(v.indices(), &[0, 2]); // 0-based
/// assert_eq!(v.values(), &[1.5, 2.0]);
/// assert_eq!(v.to_string(), "{1:1.5,3:2}/5"); // 1-based, as in SQL
/// assert_eq!("{3:2,1:1.5}/5".parse::<SparseVector>()?, v);
///
/// let map = HashMap::from([(2, 2.0), (0, 1.5)]);
/// assert_eq!(SparseVector::from_map(&map, 5)?, v);
/// assert_eq!(SparseVector::new(5, vec![0, 2], vec![1.5, 2.0])?, v);
/// assert_eq!(v.to_vec(), [1.5, 0.0, 2.0, 0.0, 0.0]);
///
/// // Invalid input is an error, never a panic.
/// assert!(SparseVector::new(5, vec![2, 0], vec![1.0, 1.0]).is_err()); // not ascending
/// assert!(SparseVector::new(5, vec![5], vec![1.0]).is_err()); // out of range
/// # Ok::<(), diesel_vector::VectorError>(())
/// ```
#[derive(Clone, PartialEq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = crate::sql_types::SparseVector)]
pub struct SparseVector {
    dims: i32,
    indices: Vec<i32>,
    values: Vec<f32>,
}

// Sound because no value is NaN.
impl Eq for SparseVector {}

impl SparseVector {
    /// The most dimensions a `SparseVector` may have: pgvector's limit for `sparsevec`.
    pub const MAX_DIMS: usize = 1_000_000_000;

    /// The most non-zero elements a `SparseVector` may have: pgvector's limit for `sparsevec` (its HNSW
    /// index takes at most 1000).
    pub const MAX_NNZ: usize = 16_000;

    /// Makes a sparse vector of `dims` dimensions from the 0-based `indices` of its elements and their
    /// `values`. Elements whose value is zero are dropped.
    ///
    /// # Errors
    ///
    /// `dims` below 1 or above [`MAX_DIMS`](Self::MAX_DIMS); different numbers of indices and values; an
    /// index out of range, out of order or repeated; a NaN or infinite value; more than
    /// [`MAX_NNZ`](Self::MAX_NNZ) non-zero values.
    pub fn new(dims: i32, indices: Vec<i32>, values: Vec<f32>) -> Result<Self, VectorError> {
        let dims_usize = check_dims(i64::from(dims))?;
        if indices.len() != values.len() {
            return Err(VectorError::SparseLengthsDiffer { indices: indices.len(), values: values.len() });
        }
        check_indices(&indices, dims_usize)?;
        check_values(&values)?;
        let (indices, values) = if values.contains(&0.0) {
            indices.into_iter().zip(values).filter(|(_, v)| *v != 0.0).unzip()
        } else {
            (indices, values)
        };
        check_nnz(values.len())?;
        Ok(Self { dims, indices, values })
    }

    /// Makes a sparse vector from a dense one: its non-zero elements, with `values.len()` dimensions.
    ///
    /// # Errors
    ///
    /// No values, more than [`MAX_DIMS`](Self::MAX_DIMS) or more than [`MAX_NNZ`](Self::MAX_NNZ) non-zero
    /// values, or a NaN or infinite value.
    pub fn from_dense(values: &[f32]) -> Result<Self, VectorError> {
        let dims = check_dims(i64::try_from(values.len()).unwrap_or(i64::MAX))?;
        check_values(values)?;
        let (indices, values): (Vec<i32>, Vec<f32>) = values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            // An index is below `dims`, which fits an i32.
            .map(|(i, v)| (i32::try_from(i).unwrap_or(i32::MAX), *v))
            .unzip();
        check_nnz(values.len())?;
        Ok(Self { dims: i32::try_from(dims).unwrap_or(i32::MAX), indices, values })
    }

    /// Makes a sparse vector of `dims` dimensions from a map (or any iterator of pairs) from 0-based
    /// index to value, in any order; zeros are dropped. Takes what the `pgvector` crate's `from_map`
    /// takes: `&HashMap<i32, f32>`, `&BTreeMap<i32, f32>`, or an iterator of `(&i32, &f32)`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); an index that appears twice is an error, not a sum.
    pub fn from_map<'a, I>(map: I, dims: i32) -> Result<Self, VectorError>
    where
        I: IntoIterator<Item = (&'a i32, &'a f32)>,
    {
        let mut elements: Vec<(i32, f32)> = map.into_iter().map(|(i, v)| (*i, *v)).collect();
        elements.sort_unstable_by_key(|(i, _)| *i);
        let (indices, values) = elements.into_iter().unzip();
        Self::new(dims, indices, values)
    }

    /// The number of dimensions, as the `pgvector` crate returns it.
    #[inline]
    pub fn dimensions(&self) -> i32 {
        self.dims
    }

    /// The number of dimensions; at least 1.
    #[inline]
    pub fn dims(&self) -> usize {
        // Positive by construction.
        usize::try_from(self.dims).unwrap_or(0)
    }

    /// The number of non-zero elements.
    #[inline]
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The 0-based indices of the non-zero elements, ascending.
    #[inline]
    pub fn indices(&self) -> &[i32] {
        &self.indices
    }

    /// The non-zero values, in the order of [`indices`](Self::indices).
    #[inline]
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The dense vector: [`dims`](Self::dims) elements, zero where no value is stored. This allocates
    /// `4 × dims` bytes, up to 4 GB.
    pub fn to_vec(&self) -> Vec<f32> {
        let mut dense = vec![0.0; self.dims()];
        for (i, v) in self.indices.iter().zip(&self.values) {
            if let Some(slot) = usize::try_from(*i).ok().and_then(|i| dense.get_mut(i)) {
                *slot = *v;
            }
        }
        dense
    }

    /// Checks that the vector has `expected` dimensions, as a column such as `sparsevec(30522)` requires.
    pub fn check_dims(&self, expected: usize) -> Result<(), VectorError> {
        if self.dims() == expected {
            Ok(())
        } else {
            Err(VectorError::DimensionMismatch { expected, found: self.dims() })
        }
    }

    /// Wraps parts that the caller has already validated (decoders validate while they read).
    pub(crate) fn from_validated(dims: i32, indices: Vec<i32>, values: Vec<f32>) -> Self {
        debug_assert!(Self::new(dims, indices.clone(), values.clone()).is_ok_and(|v| v.nnz() == values.len()));
        Self { dims, indices, values }
    }
}

/// Checks dimensions and returns them as `usize`.
pub(crate) fn check_dims(dims: i64) -> Result<usize, VectorError> {
    match usize::try_from(dims) {
        Err(_) => Err(VectorError::NegativeLength { kind: VectorKind::SparseVector, value: dims }),
        Ok(0) => Err(VectorError::Empty),
        Ok(d) if d > SparseVector::MAX_DIMS => Err(VectorError::LimitExceeded {
            kind: VectorKind::SparseVector,
            what: "dimensions",
            found: d,
            max: SparseVector::MAX_DIMS,
        }),
        Ok(d) => Ok(d),
    }
}

pub(crate) fn check_nnz(nnz: usize) -> Result<(), VectorError> {
    if nnz > SparseVector::MAX_NNZ {
        return Err(VectorError::LimitExceeded {
            kind: VectorKind::SparseVector,
            what: "non-zero elements",
            found: nnz,
            max: SparseVector::MAX_NNZ,
        });
    }
    Ok(())
}

/// Checks that `index` (at `position`) is in range and above `previous`.
#[inline]
pub(crate) fn check_index(position: usize, index: i64, previous: Option<i64>, dims: usize) -> Result<(), VectorError> {
    if index < 0 || usize::try_from(index).map_or(true, |i| i >= dims) {
        return Err(VectorError::SparseIndexOutOfRange { position, index, dims });
    }
    match previous {
        Some(previous) if index <= previous => {
            Err(VectorError::SparseIndicesNotAscending { position, index, previous })
        }
        _ => Ok(()),
    }
}

fn check_indices(indices: &[i32], dims: usize) -> Result<(), VectorError> {
    let mut previous = None;
    for (position, index) in indices.iter().enumerate() {
        check_index(position, i64::from(*index), previous, dims)?;
        previous = Some(i64::from(*index));
    }
    Ok(())
}

fn check_values(values: &[f32]) -> Result<(), VectorError> {
    if values.iter().any(|v| !v.is_finite()) {
        return Err(crate::vector::first_not_finite(values.iter().copied()));
    }
    Ok(())
}

/// Infallible: a [`Vector`] has at most 16000 dimensions, so at most 16000 non-zero elements.
impl From<&Vector> for SparseVector {
    fn from(v: &Vector) -> Self {
        let (indices, values): (Vec<i32>, Vec<f32>) = v
            .as_slice()
            .iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0)
            .map(|(i, x)| (i32::try_from(i).unwrap_or(i32::MAX), *x))
            .unzip();
        Self { dims: i32::try_from(v.dims()).unwrap_or(i32::MAX), indices, values }
    }
}

impl fmt::Debug for SparseVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseVector")
            .field("dims", &self.dims)
            .field("indices", &self.indices)
            .field("values", &self.values)
            .finish()
    }
}

/// pgvector's text form, `{1:1.5,3:2}/5`: 1-based index and value of each non-zero element, then the
/// dimensions. Values are written in the shortest form that reads back to the same `f32`.
impl fmt::Display for SparseVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (n, (i, v)) in self.indices.iter().zip(&self.values).enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:", i64::from(*i) + 1)?;
            write_float(f, *v)?;
        }
        write!(f, "}}/{}", self.dims)
    }
}

/// Parses pgvector's text form, `{1:1.5,3:2}/5` (1-based indices), as pgvector does: white space is
/// allowed around every part, elements may come in any order, zeros are dropped. Validated like
/// [`SparseVector::new`].
impl FromStr for SparseVector {
    type Err = VectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse_error = |reason: String| VectorError::Parse { reason };
        let rest = s.trim().strip_prefix('{').ok_or_else(|| parse_error("a sparsevec must start with \"{\"".into()))?;
        let (elements, dims) =
            rest.split_once('}').ok_or_else(|| parse_error("a sparsevec needs a \"}\" after its elements".into()))?;
        let dims = dims
            .trim_start()
            .strip_prefix('/')
            .ok_or_else(|| parse_error("a sparsevec needs \"/\" and its dimensions after \"}\"".into()))?
            .trim();
        let dims: i64 =
            dims.parse().map_err(|_| parse_error(format!("the dimensions ({dims:?}) are not an integer")))?;
        let dims_usize = check_dims(dims)?;
        let mut pairs = Vec::new();
        if !elements.trim().is_empty() {
            for (n, element) in elements.split(',').enumerate() {
                let (index, value) = element
                    .split_once(':')
                    .ok_or_else(|| parse_error(format!("element {n} ({:?}) is not index:value", element.trim())))?;
                let index: i64 = index.trim().parse().map_err(|_| {
                    parse_error(format!("the index of element {n} ({:?}) is not an integer", index.trim()))
                })?;
                let value: f32 = value.trim().parse().map_err(|_| {
                    parse_error(format!("the value of element {n} ({:?}) is not a number", value.trim()))
                })?;
                if !value.is_finite() {
                    return Err(VectorError::NotFinite { index: n, value });
                }
                if index < 1 || index > dims {
                    return Err(parse_error(format!(
                        "the index of element {n} ({index}) is out of range: the text form's indices are 1-based, \
                         from 1 to the dimensions, {dims}"
                    )));
                }
                if value != 0.0 {
                    // 1-based in text, 0-based in memory.
                    pairs.push((index - 1, value));
                }
            }
        }
        pairs.sort_by_key(|(i, _)| *i);
        let mut previous = None;
        for (position, (index, _)) in pairs.iter().enumerate() {
            check_index(position, *index, previous, dims_usize)?;
            previous = Some(*index);
        }
        check_nnz(pairs.len())?;
        let (indices, values) = pairs.into_iter().map(|(i, v)| (i32::try_from(i).unwrap_or(i32::MAX), v)).unzip();
        // Checked above: 1 <= dims <= MAX_DIMS fits an i32.
        Ok(Self { dims: i32::try_from(dims).unwrap_or(i32::MAX), indices, values })
    }
}

/// pgvector's text form as a string, `"{1:1.5,3:2}/5"` (exact: values are written to round-trip).
#[cfg(feature = "serde")]
impl serde::Serialize for SparseVector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// pgvector's text form, validated like [`SparseVector::new`].
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for SparseVector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    fn s(dims: i32, indices: &[i32], values: &[f32]) -> SparseVector {
        SparseVector::new(dims, indices.to_vec(), values.to_vec()).unwrap()
    }

    #[test]
    fn constructors_agree_and_match_the_pgvector_crate() {
        // The `pgvector` crate's own tests, with `?` where its constructors cannot fail.
        let v = SparseVector::from_dense(&[1.0, 0.0, 2.0, 0.0, 3.0, 0.0]).unwrap();
        assert_eq!(v.to_vec(), [1.0, 0.0, 2.0, 0.0, 3.0, 0.0]);
        assert_eq!(v.dimensions(), 6);
        assert_eq!(v.indices(), &[0, 2, 4]);
        assert_eq!(v.values(), &[1.0, 2.0, 3.0]);
        assert_eq!(SparseVector::from_map(&HashMap::from([(0, 1.0), (2, 2.0), (4, 3.0)]), 6).unwrap(), v);
        assert_eq!(SparseVector::from_map(&BTreeMap::from([(0, 1.0), (2, 2.0), (4, 3.0)]), 6).unwrap(), v);
        let pairs = [(4, 3.0), (0, 1.0), (2, 2.0)];
        assert_eq!(SparseVector::from_map(pairs.iter().map(|(i, v)| (i, v)), 6).unwrap(), v);
        assert_eq!(s(6, &[0, 2, 4], &[1.0, 2.0, 3.0]), v);
        assert_eq!(SparseVector::from(&Vector::new(vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0]).unwrap()), v);
        assert_eq!((v.dims(), v.nnz()), (6, 3));
    }

    #[test]
    fn zeros_are_dropped_as_pgvector_drops_them() {
        let v = s(4, &[0, 1, 3], &[1.0, 0.0, -0.0]);
        assert_eq!((v.indices(), v.values()), (&[0][..], &[1.0][..]));
        assert_eq!(SparseVector::from_dense(&[0.0, -0.0]).unwrap().nnz(), 0);
        assert_eq!(SparseVector::from_map(&HashMap::from([(1, 0.0)]), 3).unwrap().nnz(), 0);
        assert_eq!("{1:0,2:-0}/3".parse::<SparseVector>().unwrap(), s(3, &[], &[]));
        // Up to MAX_NNZ non-zero values after the zeros are gone.
        let mut dense = vec![1.0; SparseVector::MAX_NNZ];
        dense.extend([0.0; 100]);
        assert_eq!(SparseVector::from_dense(&dense).unwrap().nnz(), SparseVector::MAX_NNZ);
    }

    #[test]
    fn constructors_reject_invalid_input_with_the_cause() {
        let err = |dims, indices: &[i32], values: &[f32]| {
            SparseVector::new(dims, indices.to_vec(), values.to_vec()).unwrap_err()
        };
        assert_eq!(err(0, &[], &[]), VectorError::Empty);
        assert_eq!(err(-3, &[], &[]), VectorError::NegativeLength { kind: VectorKind::SparseVector, value: -3 });
        assert_eq!(
            err(1_000_000_001, &[], &[]),
            VectorError::LimitExceeded {
                kind: VectorKind::SparseVector,
                what: "dimensions",
                found: 1_000_000_001,
                max: 1_000_000_000
            }
        );
        assert_eq!(err(5, &[1, 2], &[1.0]), VectorError::SparseLengthsDiffer { indices: 2, values: 1 });
        assert_eq!(err(5, &[5], &[1.0]), VectorError::SparseIndexOutOfRange { position: 0, index: 5, dims: 5 });
        assert_eq!(err(5, &[-1], &[1.0]), VectorError::SparseIndexOutOfRange { position: 0, index: -1, dims: 5 });
        assert_eq!(
            err(5, &[3, 1], &[1.0, 1.0]),
            VectorError::SparseIndicesNotAscending { position: 1, index: 1, previous: 3 }
        );
        assert_eq!(
            err(5, &[1, 1], &[1.0, 2.0]).to_string(),
            "sparsevec index 1 (0-based; 2 in pgvector's 1-based text) appears twice (non-zero elements 0 and 1): each index \
             may appear once"
        );
        assert!(matches!(err(5, &[0, 1], &[1.0, f32::NAN]), VectorError::NotFinite { index: 1, .. }));
        let repeated = [(1, 1.0), (1, 2.0)];
        assert_eq!(
            SparseVector::from_map(repeated.iter().map(|(i, v)| (i, v)), 3).unwrap_err(),
            VectorError::SparseIndicesNotAscending { position: 1, index: 1, previous: 1 }
        );
        assert_eq!(
            SparseVector::from_dense(&vec![1.0; SparseVector::MAX_NNZ + 1]).unwrap_err().to_string(),
            "sparsevec has 16001 non-zero elements, more than the limit of 16000 (pgvector's maximum for `sparsevec`)"
        );
        assert_eq!(SparseVector::from_dense(&[]), Err(VectorError::Empty));
        assert!(matches!(
            SparseVector::from_dense(&[0.0, f32::INFINITY]),
            Err(VectorError::NotFinite { index: 1, .. })
        ));
    }

    #[test]
    fn text_form_is_pgvectors() {
        let v = s(5, &[0, 2], &[1.5, 2.0]);
        assert_eq!(v.to_string(), "{1:1.5,3:2}/5");
        assert_eq!(" { 3 : 2 , 1:1.5 } / 5 ".parse::<SparseVector>().unwrap(), v);
        assert_eq!(s(3, &[], &[]).to_string(), "{}/3");
        assert_eq!("{}/3".parse::<SparseVector>().unwrap(), s(3, &[], &[]));
        assert_eq!(s(1_000_000_000, &[999_999_999], &[f32::MAX]).to_string(), "{1000000000:3.4028235e38}/1000000000");
    }

    #[test]
    fn text_parsing_rejects_malformed_input() {
        let parse = |t: &str| t.parse::<SparseVector>().unwrap_err();
        assert!(matches!(parse("[1,2]"), VectorError::Parse { .. }));
        assert!(matches!(parse("{1:2}"), VectorError::Parse { .. }));
        assert!(matches!(parse("{1:2}/x"), VectorError::Parse { .. }));
        assert!(matches!(parse("{1}/3"), VectorError::Parse { .. }));
        assert_eq!(parse("{1:a}/3").to_string(), "invalid vector text: the value of element 0 (\"a\") is not a number");
        for text in ["{4:1}/3", "{0:1}/3", "{2:1,-7:0}/3"] {
            let message = parse(text).to_string();
            assert!(message.contains("the text form's indices are 1-based, from 1 to the dimensions, 3"), "{message}");
        }
        assert!(parse("{1:1,0:2}/3").to_string().contains("element 1 (0) is out of range"));
        assert_eq!(parse("{1:1,1:2}/3"), VectorError::SparseIndicesNotAscending { position: 1, index: 0, previous: 0 });
        assert_eq!(parse("{}/0"), VectorError::Empty);
        assert!(matches!(parse("{1:NaN}/3"), VectorError::NotFinite { index: 0, .. }));
        assert!(matches!(parse("{1:1e39}/3"), VectorError::NotFinite { index: 0, .. }));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_the_text_form_and_validates() {
        let v = s(5, &[0, 2], &[1.5, 2.0]);
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"{1:1.5,3:2}/5\"");
        assert_eq!(serde_json::from_str::<SparseVector>("\"{1:1.5,3:2}/5\"").unwrap(), v);
        let err = serde_json::from_str::<SparseVector>("\"{6:1}/5\"").unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    fn sparse() -> impl Strategy<Value = SparseVector> {
        (1i32..200).prop_flat_map(|dims| {
            prop::collection::btree_map(
                0..dims,
                any::<u32>().prop_map(f32::from_bits).prop_filter("finite", |x| x.is_finite()),
                0..20,
            )
            .prop_map(move |map| SparseVector::from_map(&map, dims).unwrap())
        })
    }

    proptest! {
        #[test]
        fn text_form_round_trips_bit_exact(v in sparse()) {
            let back: SparseVector = v.to_string().parse().unwrap();
            prop_assert_eq!(back.indices(), v.indices());
            let bits = |v: &SparseVector| v.values().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back), bits(&v));
            prop_assert_eq!(back.dims(), v.dims());
        }

        #[test]
        fn dense_and_sparse_forms_agree(v in sparse()) {
            prop_assert_eq!(SparseVector::from_dense(&v.to_vec()).unwrap(), v);
        }
    }
}
