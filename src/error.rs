//! The crate's error type.

use std::fmt;

/// Everything that can be wrong with a vector: building one, parsing its text form, or decoding it from
/// a database value.
///
/// Each message names the cause and, where there is one, the likely mistake behind it. The enum is
/// `#[non_exhaustive]`: match on the variants you handle and keep a catch-all arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VectorError {
    /// The vector has no elements. pgvector and sqlite-vec both need at least one dimension.
    Empty,
    /// The vector has more dimensions than pgvector's `vector` type can store.
    TooManyDimensions {
        /// How many dimensions the vector has.
        dims: usize,
        /// The limit, [`MAX_DIMS`](crate::MAX_DIMS).
        max: usize,
    },
    /// An element is NaN or infinite. Neither pgvector nor a distance computation can use it.
    NotFinite {
        /// The position of the first such element.
        index: usize,
        /// The element itself (NaN, `inf` or `-inf`).
        value: f32,
    },
    /// The vector does not have the number of dimensions its column or query needs.
    DimensionMismatch {
        /// The dimensions the column or query needs.
        expected: usize,
        /// The dimensions the vector has.
        found: usize,
    },
    /// A pgvector binary value is shorter than its 4-byte header.
    TruncatedHeader {
        /// The length of the value in bytes.
        len: usize,
    },
    /// A pgvector binary value's length does not match the dimensions its header declares.
    LengthMismatch {
        /// The dimensions the header declares.
        dims: usize,
        /// The length those dimensions need, in bytes, header included.
        expected_len: usize,
        /// The length of the value, in bytes.
        actual_len: usize,
    },
    /// The reserved second field of a pgvector binary header is not zero.
    ReservedNotZero {
        /// The value found in the reserved field.
        value: u16,
    },
    /// A BLOB's length is not a whole number of 4-byte floats.
    InvalidBlobSize {
        /// The BLOB's length in bytes.
        blob_size: usize,
    },
    /// An SQLite value holding a vector was not stored as a BLOB.
    NotABlob {
        /// The storage class SQLite reported: `TEXT`, `INTEGER`, `REAL` or `NULL`.
        storage_class: &'static str,
    },
    /// The text form of a vector could not be parsed.
    Parse {
        /// What is wrong, and where.
        reason: String,
    },
}

impl fmt::Display for VectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("vector is empty: a vector needs at least one dimension"),
            Self::TooManyDimensions { dims, max } => write!(
                f,
                "vector has {dims} dimensions, more than the limit of {max} (pgvector's maximum for `vector`)"
            ),
            Self::NotFinite { index, value } => write!(
                f,
                "vector element {index} is {value}: every element must be a finite number \
                 (check the embedding provider's output for NaN or overflow)"
            ),
            Self::DimensionMismatch { expected, found } => write!(
                f,
                "vector has {found} dimensions but {expected} are expected: \
                 was it made by another model than the column or query is for?"
            ),
            Self::TruncatedHeader { len } => write!(
                f,
                "pgvector value is {len} bytes, shorter than its 4-byte header: is the column really of type `vector`?"
            ),
            Self::LengthMismatch { dims, expected_len, actual_len } => write!(
                f,
                "pgvector value declares {dims} dimensions ({expected_len} bytes) but is {actual_len} bytes long: \
                 is the column a `halfvec` or `sparsevec` rather than a `vector`?"
            ),
            Self::ReservedNotZero { value } => write!(
                f,
                "pgvector value has {value} in its reserved header field, which must be 0: \
                 the bytes are not pgvector's binary `vector` format"
            ),
            Self::InvalidBlobSize { blob_size } => write!(
                f,
                "BLOB of {blob_size} bytes is not a whole number of 4-byte floats: \
                 was it written as f64, or by an encoder other than little-endian f32?"
            ),
            Self::NotABlob { storage_class } => write!(
                f,
                "expected a BLOB of little-endian f32 but SQLite holds a {storage_class} value: \
                 store vectors as BLOBs (sqlite-vec's `vec_f32('[...]')` turns JSON text into one)"
            ),
            Self::Parse { reason } => write!(f, "invalid vector text: {reason}"),
        }
    }
}

impl std::error::Error for VectorError {}

impl VectorError {
    /// Finds the `VectorError` behind another error, such as the [`diesel::result::Error`] of a query
    /// that loaded a malformed vector (Diesel wraps it in a `DeserializeFieldError` naming the column).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel::prelude::*;
    /// use diesel_vector::{sql_types, Vector, VectorError};
    ///
    /// let mut conn = diesel_vector::sqlite::establish(":memory:")?;
    /// let err = diesel::select(diesel::dsl::sql::<sql_types::Vector>("x'00'"))
    ///     .get_result::<Vector>(&mut conn)
    ///     .unwrap_err();
    /// assert_eq!(VectorError::find(&err), Some(&VectorError::InvalidBlobSize { blob_size: 1 }));
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// ```
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a VectorError> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<VectorError>() {
                return Some(found);
            }
            current = e.source();
        }
        None
    }
}
