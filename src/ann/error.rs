//! The engine's error type.

use std::fmt;

/// What went wrong in the quantized index engine.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AnnError {
    /// A vector does not have the index's number of dimensions.
    DimensionMismatch {
        /// The index's dimensions.
        expected: usize,
        /// The vector's.
        found: usize,
    },
    /// A vector element is NaN or infinite.
    NotFinite {
        /// The position of the first such element.
        index: usize,
    },
    /// Training needs at least one vector (and dimensions between 1 and the crate's limit).
    EmptySample,
    /// The cosine distance to a zero query vector is undefined.
    ZeroQuery,
    /// The engine computes cosine, L2, L1 and inner-product distances of `f32` vectors only.
    UnsupportedMetric {
        /// The metric asked for.
        metric: crate::index::Metric,
    },
    /// A stored blob (parameters or a chunk of codes) is not valid: truncated, corrupted, written by
    /// another version or for other parameters. Nothing of it was used; rebuild the codes from the vectors.
    Corrupt {
        /// Which blob, and what is wrong with it.
        reason: String,
    },
    /// A row id appears twice among the loaded chunks.
    DuplicateRow {
        /// The row id.
        id: i64,
    },
}

impl AnnError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> AnnError {
        AnnError::Corrupt { reason: reason.into() }
    }
}

impl fmt::Display for AnnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnError::DimensionMismatch { expected, found } => {
                write!(f, "the index holds {expected}-dimensional vectors, this one has {found} dimensions")
            }
            AnnError::NotFinite { index } => {
                write!(f, "vector element {index} is NaN or infinite: every element must be a finite number")
            }
            AnnError::EmptySample => f.write_str(
                "cannot train a quantized index on an empty sample (give it some of the vectors it will index)",
            ),
            AnnError::ZeroQuery => f.write_str("the cosine distance to a zero query vector is undefined"),
            AnnError::UnsupportedMetric { metric } => write!(
                f,
                "the quantized index computes cosine, l2, l1 and inner_product distances of f32 vectors, not {metric}"
            ),
            AnnError::Corrupt { reason } => {
                write!(f, "stored index data is not valid ({reason}); rebuild the index from the vectors")
            }
            AnnError::DuplicateRow { id } => {
                write!(f, "row {id} appears in two chunks of stored index data; rebuild the index from the vectors")
            }
        }
    }
}

impl std::error::Error for AnnError {}
