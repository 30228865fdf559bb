//! [`SqliteBlobShape`]: what a valid SQLite BLOB of a vector type and dimension looks like, for `CHECK`
//! constraints.

use crate::{Bit, SparseVector, VectorError, VectorKind};

/// What a valid SQLite BLOB of one vector type and dimension looks like, as far as its bytes' length and
/// first bytes tell: enough to write a `CHECK` constraint that keeps a column to one type and dimension.
///
/// | kind | `dims` = N means | shape |
/// |---|---|---|
/// | [`Vector`](VectorKind::Vector) | N elements | exactly `4 × N` bytes |
/// | [`HalfVector`](VectorKind::HalfVector) | N elements | exactly `2 × N` bytes |
/// | [`Bit`](VectorKind::Bit) | N bits (a multiple of 8) | exactly `N / 8` bytes |
/// | [`SparseVector`](VectorKind::SparseVector) | N dimensions | starts with N as a little-endian `u32`, then `8 × nnz` bytes, `nnz` at most `min(N, 16000)` |
///
/// A BLOB that has the shape can still fail to decode (a NaN element, sparse indices out of order):
/// the decoders check the contents.
///
/// ```
/// use diesel_vector::codec::SqliteBlobShape;
/// use diesel_vector::VectorKind;
///
/// let shape = VectorKind::HalfVector.sqlite_blob_shape(3072)?;
/// assert_eq!(shape, SqliteBlobShape::Exact { len: 6144 });
///
/// let sparse = VectorKind::SparseVector.sqlite_blob_shape(5)?;
/// assert_eq!(sparse, SqliteBlobShape::Prefixed { prefix: vec![5, 0, 0, 0], stride: 8, max_count: 5 });
/// assert_eq!(sparse.len_range(), (4, 44));
/// assert!(sparse.matches(&[5, 0, 0, 0]));
/// assert!(!sparse.matches(&[6, 0, 0, 0]));
///
/// assert!(VectorKind::Bit.sqlite_blob_shape(12).is_err()); // SQLite stores whole bytes
/// # Ok::<(), diesel_vector::VectorError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqliteBlobShape {
    /// Exactly `len` bytes.
    Exact {
        /// The length in bytes.
        len: usize,
    },
    /// `prefix`, then `count × stride` bytes, with `count` from 0 to `max_count`.
    Prefixed {
        /// The bytes every valid BLOB starts with.
        prefix: Vec<u8>,
        /// The size of one repeated item, in bytes.
        stride: usize,
        /// The most items.
        max_count: usize,
    },
}

impl SqliteBlobShape {
    /// The shape of a BLOB of `kind` with `dims` dimensions (bits, for [`VectorKind::Bit`]); also
    /// [`VectorKind::sqlite_blob_shape`].
    ///
    /// # Errors
    ///
    /// `dims` is 0 ([`VectorError::Empty`]), above the kind's limit, or, for `Bit`, not a multiple of 8
    /// ([`VectorError::BitLengthNotWholeBytes`]).
    pub fn of(kind: VectorKind, dims: usize) -> Result<Self, VectorError> {
        if dims == 0 {
            return Err(VectorError::Empty);
        }
        let limit = |what| VectorError::LimitExceeded { kind, what, found: dims, max: kind.max_dims() };
        Ok(match kind {
            VectorKind::Vector => {
                crate::vector::check_len(dims)?;
                Self::Exact { len: 4 * dims }
            }
            VectorKind::HalfVector => {
                crate::halfvec::check_len(dims)?;
                Self::Exact { len: 2 * dims }
            }
            VectorKind::Bit if dims > Bit::MAX_LEN => return Err(limit("bits")),
            VectorKind::Bit if dims % 8 != 0 => return Err(VectorError::BitLengthNotWholeBytes { bits: dims }),
            VectorKind::Bit => Self::Exact { len: dims / 8 },
            VectorKind::SparseVector if dims > SparseVector::MAX_DIMS => return Err(limit("dimensions")),
            VectorKind::SparseVector => Self::Prefixed {
                // At most MAX_DIMS (10^9): fits a u32.
                prefix: u32::try_from(dims).unwrap_or(u32::MAX).to_le_bytes().to_vec(),
                stride: 8,
                max_count: dims.min(SparseVector::MAX_NNZ),
            },
        })
    }

    /// The shortest and longest valid lengths, in bytes (equal for an exact length).
    pub fn len_range(&self) -> (usize, usize) {
        match self {
            Self::Exact { len } => (*len, *len),
            Self::Prefixed { prefix, stride, max_count } => (prefix.len(), prefix.len() + stride * max_count),
        }
    }

    /// Whether `blob` has this shape.
    pub fn matches(&self, blob: &[u8]) -> bool {
        match self {
            Self::Exact { len } => blob.len() == *len,
            Self::Prefixed { prefix, stride, max_count } => {
                blob.starts_with(prefix)
                    && (blob.len() - prefix.len()) % stride == 0
                    && (blob.len() - prefix.len()) / stride <= *max_count
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec, HalfVector, Vector};
    use proptest::prelude::*;

    #[test]
    fn shapes_of_each_kind() {
        assert_eq!(SqliteBlobShape::of(VectorKind::Vector, 1536), Ok(SqliteBlobShape::Exact { len: 6144 }));
        assert_eq!(SqliteBlobShape::of(VectorKind::Bit, 1536), Ok(SqliteBlobShape::Exact { len: 192 }));
        assert_eq!(SqliteBlobShape::of(VectorKind::SparseVector, 30_522).unwrap().len_range(), (4, 4 + 8 * 16_000));
        for kind in VectorKind::ALL {
            assert_eq!(SqliteBlobShape::of(kind, 0), Err(VectorError::Empty));
            assert!(matches!(
                SqliteBlobShape::of(kind, kind.max_dims() + 8),
                Err(VectorError::LimitExceeded { .. } | VectorError::TooManyDimensions { .. })
            ));
            assert!(SqliteBlobShape::of(kind, kind.max_dims()).is_ok());
        }
        assert_eq!(SqliteBlobShape::of(VectorKind::Bit, 9), Err(VectorError::BitLengthNotWholeBytes { bits: 9 }));
    }

    proptest! {
        #[test]
        fn every_encoded_blob_has_its_shape_and_no_other_dimension_matches(dims in 1usize..300, seed in 0usize..1000) {
            let values: Vec<f32> = (0..dims).map(|i| if (i ^ seed) % 3 == 0 { 0.0 } else { i as f32 - 7.5 }).collect();
            let shape = |kind, d| SqliteBlobShape::of(kind, d).unwrap();
            let v = Vector::new(values.clone()).unwrap();
            let h = HalfVector::from_f32_slice(&values).unwrap();
            let s = SparseVector::from_dense(&values).unwrap();
            let b = crate::Bit::new(&values.iter().map(|x| *x > 0.0).cycle().take(8 * dims).collect::<Vec<_>>());
            let blobs = [
                (VectorKind::Vector, dims, codec::encode_sqlite(&v).into_owned()),
                (VectorKind::HalfVector, dims, codec::halfvec::encode_sqlite(&h).into_owned()),
                (VectorKind::SparseVector, dims, codec::sparsevec::encode_sqlite(&s)),
                (VectorKind::Bit, 8 * dims, codec::bit::encode_sqlite(&b).unwrap().to_vec()),
            ];
            for (kind, d, blob) in &blobs {
                prop_assert!(shape(*kind, *d).matches(blob), "{kind} of {d}");
                let other = if *kind == VectorKind::Bit { d + 8 } else { d + 1 };
                prop_assert!(!shape(*kind, other).matches(blob), "{kind} of {d} as {other}");
            }
        }
    }
}
