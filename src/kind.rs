//! [`VectorKind`]: which of pgvector's four types a value, a column or an error is about.

use std::fmt;

/// One of pgvector's four vector types, each with its value type in this crate.
///
/// | kind | pgvector type | value type | element |
/// |---|---|---|---|
/// | [`Vector`](Self::Vector) | `vector` | [`crate::Vector`] | `f32` |
/// | [`HalfVector`](Self::HalfVector) | `halfvec` | [`crate::HalfVector`] | `f16` |
/// | [`SparseVector`](Self::SparseVector) | `sparsevec` | [`crate::SparseVector`] | index and `f32` of each non-zero element |
/// | [`Bit`](Self::Bit) | `bit` | [`crate::Bit`] | one bit |
///
/// Errors name the kind they are about ([`VectorError`](crate::VectorError)), and
/// [`sqlite_blob_shape`](Self::sqlite_blob_shape) says what a valid SQLite BLOB of each kind looks like.
///
/// ```
/// use diesel_vector::VectorKind;
///
/// assert_eq!(VectorKind::HalfVector.pgvector_name(), "halfvec");
/// assert_eq!(VectorKind::SparseVector.to_string(), "sparsevec");
/// assert_eq!(VectorKind::HalfVector.max_dims(), 16_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum VectorKind {
    /// pgvector's `vector`: `f32` elements.
    Vector,
    /// pgvector's `halfvec`: half-precision (`f16`) elements, half the storage of `vector`.
    HalfVector,
    /// pgvector's `sparsevec`: the non-zero elements of a vector with many dimensions.
    SparseVector,
    /// PostgreSQL's `bit`, which pgvector's Hamming and Jaccard distances take: one bit per dimension.
    Bit,
}

impl VectorKind {
    /// All four kinds.
    pub const ALL: [VectorKind; 4] = [Self::Vector, Self::HalfVector, Self::SparseVector, Self::Bit];

    /// The type's name in PostgreSQL: `vector`, `halfvec`, `sparsevec` or `bit`.
    pub const fn pgvector_name(self) -> &'static str {
        match self {
            Self::Vector => "vector",
            Self::HalfVector => "halfvec",
            Self::SparseVector => "sparsevec",
            Self::Bit => "bit",
        }
    }

    /// The most dimensions (bits, for [`Bit`](Self::Bit)) a value of this kind may have: pgvector's (and,
    /// for `bit`, PostgreSQL's) limit for a column of the type.
    pub const fn max_dims(self) -> usize {
        match self {
            Self::Vector => crate::MAX_DIMS,
            Self::HalfVector => crate::HalfVector::MAX_DIMS,
            Self::SparseVector => crate::SparseVector::MAX_DIMS,
            Self::Bit => crate::Bit::MAX_LEN,
        }
    }

    /// What a valid SQLite BLOB of this kind with `dims` dimensions (bits, for [`Bit`](Self::Bit)) looks
    /// like; see [`codec::SqliteBlobShape`](crate::codec::SqliteBlobShape).
    ///
    /// # Errors
    ///
    /// `dims` is 0, above [`max_dims`](Self::max_dims), or, for `Bit`, not a multiple of 8 (SQLite stores
    /// whole bytes, as sqlite-vec's `bit[N]` does).
    pub fn sqlite_blob_shape(self, dims: usize) -> Result<crate::codec::SqliteBlobShape, crate::VectorError> {
        crate::codec::SqliteBlobShape::of(self, dims)
    }
}

/// The PostgreSQL type name, as [`pgvector_name`](VectorKind::pgvector_name).
impl fmt::Display for VectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pgvector_name())
    }
}
