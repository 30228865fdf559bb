//! The crate's error type.

use std::fmt;

use crate::VectorKind;

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
    /// The bit string does not have the number of bits its column or query needs.
    BitLengthMismatch {
        /// The bits the column or query needs.
        expected: usize,
        /// The bits the string has.
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
    /// A `halfvec`, `sparsevec` or `bit` value has more dimensions, non-zero elements or bits than
    /// pgvector (or PostgreSQL, for `bit`) allows. A `vector` with too many dimensions is
    /// [`TooManyDimensions`](Self::TooManyDimensions).
    LimitExceeded {
        /// The type whose limit it is.
        kind: VectorKind,
        /// What is counted: `"dimensions"`, `"non-zero elements"` or `"bits"`.
        what: &'static str,
        /// How many the value has.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// A dimension count or bit length is negative (in a binary header or a constructor's argument).
    NegativeLength {
        /// The type of the value.
        kind: VectorKind,
        /// The length found.
        value: i64,
    },
    /// A `halfvec` element is finite as an `f32` but beyond the range of `f16` (it would round to
    /// infinity: its magnitude is 65520 or more; the largest `f16` is 65504).
    HalfOverflow {
        /// The position of the first such element.
        index: usize,
        /// The element.
        value: f32,
    },
    /// A `sparsevec` index is negative or not below the vector's dimensions.
    SparseIndexOutOfRange {
        /// The position of the element among the non-zero elements.
        position: usize,
        /// The index (0-based).
        index: i64,
        /// The vector's dimensions.
        dims: usize,
    },
    /// `sparsevec` indices are not strictly ascending: out of order, or the same index twice.
    SparseIndicesNotAscending {
        /// The position of the element among the non-zero elements.
        position: usize,
        /// Its index (0-based).
        index: i64,
        /// The index of the element before it.
        previous: i64,
    },
    /// A `sparsevec` was given different numbers of indices and values.
    SparseLengthsDiffer {
        /// How many indices.
        indices: usize,
        /// How many values.
        values: usize,
    },
    /// A binary `sparsevec` stores a zero among its non-zero elements (pgvector refuses it too).
    SparseZeroValue {
        /// The position of the element among the non-zero elements.
        position: usize,
    },
    /// A [`Bit`](crate::Bit) whose length is not a multiple of 8 was written to SQLite, which stores bit
    /// vectors as whole bytes (sqlite-vec's `bit[N]` format) and could not give the length back.
    BitLengthNotWholeBytes {
        /// The length in bits.
        bits: usize,
    },
    /// The unused bits after the end of a bit string (in its last byte) are not zero.
    BitPaddingNotZero {
        /// The length of the bit string in bits.
        bits: usize,
    },
    /// A PostgreSQL binary value is shorter than its type's header.
    TruncatedValue {
        /// The type being decoded.
        kind: VectorKind,
        /// The value's length in bytes.
        len: usize,
        /// The length of the type's header.
        header_len: usize,
    },
    /// A PostgreSQL binary value's length does not match what its header declares.
    ValueLengthMismatch {
        /// The type being decoded.
        kind: VectorKind,
        /// The dimensions (non-zero elements for `sparsevec`, bits for `bit`) the header declares.
        declared: usize,
        /// The length those need, in bytes, header included.
        expected_len: usize,
        /// The value's length in bytes.
        actual_len: usize,
    },
    /// The reserved field of a PostgreSQL binary header is not zero.
    ReservedFieldNotZero {
        /// The type being decoded.
        kind: VectorKind,
        /// The value found in the reserved field.
        value: i64,
    },
    /// An SQLite BLOB does not have the layout of its type (see
    /// [`codec::SqliteBlobShape`](crate::codec::SqliteBlobShape)).
    InvalidBlob {
        /// The type being decoded.
        kind: VectorKind,
        /// The BLOB's length in bytes.
        blob_size: usize,
    },
    /// An SQLite value holding a `halfvec`, `sparsevec` or `bit` was not stored as a BLOB.
    NotStoredAsBlob {
        /// The type being decoded.
        kind: VectorKind,
        /// The storage class SQLite reported: `TEXT`, `INTEGER`, `REAL` or `NULL`.
        storage_class: &'static str,
    },
    /// PostgreSQL sent a value of another type than the one being decoded (for example a `bit` column
    /// loaded as a [`Vector`](crate::Vector)).
    WrongType {
        /// The type being decoded.
        expected: VectorKind,
        /// What PostgreSQL sent: "a `bit`", or the OID of a type that is neither `bit` nor `varbit`.
        found: String,
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
            Self::BitLengthMismatch { expected, found } => write!(
                f,
                "bit string has {found} bits but {expected} are expected: was it made by another hash or model than \
                 the column or query is for?"
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
            Self::LimitExceeded { kind, what, found, max } => {
                write!(f, "{kind} has {found} {what}, more than the limit of {max} ")?;
                match kind {
                    VectorKind::Bit => f.write_str("(PostgreSQL's maximum length of `bit(n)`)"),
                    kind => write!(f, "(pgvector's maximum for `{kind}`)"),
                }
            }
            Self::NegativeLength { kind, value } => {
                write!(f, "{kind} length is {value}: lengths and dimensions cannot be negative")
            }
            Self::HalfOverflow { index, value } => write!(
                f,
                "halfvec element {index} is {value}, beyond the range of half precision (largest magnitude 65504): \
                 store such values in a `vector`, or scale the embedding down"
            ),
            Self::SparseIndexOutOfRange { position, index, dims } => write!(
                f,
                "sparsevec index {index} (non-zero element {position}) is out of range: indices are 0-based and \
                 must be below the dimensions, {dims}"
            ),
            Self::SparseIndicesNotAscending { position, index, previous } if index == previous => write!(
                f,
                "sparsevec index {index} (0-based; {} in pgvector's 1-based text) appears twice (non-zero elements \
                 {} and {position}): each index may appear once",
                index.saturating_add(1),
                position.saturating_sub(1)
            ),
            Self::SparseIndicesNotAscending { position, index, previous } => write!(
                f,
                "sparsevec index {index} (0-based; non-zero element {position}) comes after index {previous}: indices \
                 must be in ascending order (`SparseVector::from_map` sorts them)"
            ),
            Self::SparseLengthsDiffer { indices, values } => write!(
                f,
                "sparsevec has {indices} indices but {values} values: each non-zero element needs one of each"
            ),
            Self::SparseZeroValue { position } => write!(
                f,
                "stored sparsevec holds a zero as non-zero element {position}: a sparsevec's bytes (pgvector's binary \
                 format, or its SQLite BLOB) leave zeros out, so these are not a valid `sparsevec`"
            ),
            Self::BitLengthNotWholeBytes { bits } => write!(
                f,
                "bit string of {bits} bits cannot be stored on SQLite, which keeps bit vectors as whole bytes \
                 (sqlite-vec's `bit[N]` format) and would lose the length: use a length that is a multiple of 8"
            ),
            Self::BitPaddingNotZero { bits } => write!(
                f,
                "bit string of {bits} bits has non-zero bits after its end: the bytes are not PostgreSQL's binary \
                 `bit` format"
            ),
            Self::TruncatedValue { kind, len, header_len } => write!(
                f,
                "{kind} value is {len} bytes, shorter than its {header_len}-byte header: is the column really of \
                 type `{kind}`?"
            ),
            Self::ValueLengthMismatch { kind, declared, expected_len, actual_len } => {
                let unit = match kind {
                    VectorKind::SparseVector => "non-zero elements",
                    VectorKind::Bit => "bits",
                    _ => "dimensions",
                };
                write!(
                    f,
                    "{kind} value declares {declared} {unit} ({expected_len} bytes) but is {actual_len} bytes long"
                )?;
                match kind {
                    VectorKind::HalfVector if *actual_len == 4 + 4 * declared => {
                        f.write_str(": is the column a `vector` (4 bytes per element) rather than a `halfvec`?")
                    }
                    kind => write!(f, ": is the column really of type `{kind}`?"),
                }
            }
            Self::ReservedFieldNotZero { kind, value } => write!(
                f,
                "{kind} value has {value} in its reserved header field, which must be 0: the bytes are not \
                 pgvector's binary `{kind}` format"
            ),
            Self::InvalidBlob { kind, blob_size } => {
                write!(f, "BLOB of {blob_size} bytes is not a valid {kind} BLOB: ")?;
                match kind {
                    VectorKind::Vector => f.write_str("a vector is 4 bytes (little-endian f32) per element"),
                    VectorKind::HalfVector => f.write_str(
                        "a halfvec is 2 bytes (little-endian f16) per element, at least one; was it written by \
                         another encoder?",
                    ),
                    VectorKind::SparseVector => f.write_str(
                        "a sparsevec is its dimensions (4 bytes), then 4 bytes per index and 4 per value; was the \
                         column written as a `Vector` or `HalfVector`?",
                    ),
                    VectorKind::Bit => f.write_str("a bit vector is at least one byte"),
                }
            }
            Self::NotStoredAsBlob { kind, storage_class } => write!(
                f,
                "expected a {kind} BLOB but SQLite holds a {storage_class} value: vectors are stored as BLOBs"
            ),
            Self::WrongType { expected, found } => write!(
                f,
                "expected a `{expected}` value but PostgreSQL sent {found}: does the `table!` declare the \
                 column's type as in the database?"
            ),
        }
    }
}

impl std::error::Error for VectorError {}

impl VectorError {
    /// Finds the `VectorError` behind another error, such as the [`diesel::result::Error`] of a query
    /// that loaded a malformed vector (Diesel wraps it in a `DeserializeFieldError` naming the column) or
    /// bound a value that cannot be stored (a `SerializationError`).
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
            current = match e.downcast_ref::<diesel::result::Error>() {
                // Diesel's `source()` skips the boxed error itself (it returns that error's source): look
                // into it, so that a value refused by `ToSql` is found too.
                Some(
                    diesel::result::Error::SerializationError(inner)
                    | diesel::result::Error::DeserializationError(inner),
                ) => Some(&**inner),
                _ => e.source(),
            };
        }
        None
    }
}
