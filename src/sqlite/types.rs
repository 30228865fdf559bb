//! `ToSql`/`FromSql` for the vector types stored as SQLite BLOBs (layouts in [`crate::codec`]).

use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteType, SqliteValue};
use std::borrow::Cow;

use crate::{codec, sql_types, Bit, HalfVector, SparseVector, Vector, VectorError, VectorKind};

/// Binds the vector's little-endian `f32` bytes as a BLOB. On little-endian targets the bytes are the
/// vector's own memory: nothing is copied before SQLite takes them.
impl ToSql<sql_types::Vector, Sqlite> for Vector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        set_blob(out, codec::encode_sqlite(self));
        Ok(IsNull::No)
    }
}

/// Reads a BLOB of little-endian `f32`. A value stored as TEXT, INTEGER or REAL, a BLOB whose length is
/// not a multiple of 4, an empty BLOB, or a NaN/infinite element is an error naming the cause.
impl FromSql<sql_types::Vector, Sqlite> for Vector {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        // `read_blob` would silently turn TEXT into bytes: check the storage class first.
        match value.value_type() {
            Some(SqliteType::Binary) => Ok(codec::decode_sqlite(value.read_blob())?),
            other => Err(VectorError::NotABlob { storage_class: storage_class_name(other) }.into()),
        }
    }
}

/// Binds the half vector's little-endian `f16` bytes as a BLOB, borrowed on little-endian targets.
impl ToSql<sql_types::HalfVector, Sqlite> for HalfVector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        set_blob(out, codec::halfvec::encode_sqlite(self));
        Ok(IsNull::No)
    }
}

/// Reads a BLOB of little-endian `f16`; anything else (another storage class, an odd length, a NaN or
/// infinite element) is an error naming the cause.
impl FromSql<sql_types::HalfVector, Sqlite> for HalfVector {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(codec::halfvec::decode_sqlite(blob(&mut value, VectorKind::HalfVector)?)?)
    }
}

/// Binds the sparse vector's BLOB (dimensions, indices, values; see [`codec::sparsevec`]).
impl ToSql<sql_types::SparseVector, Sqlite> for SparseVector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(codec::sparsevec::encode_sqlite(self));
        Ok(IsNull::No)
    }
}

/// Reads a sparse vector's BLOB with every check pgvector makes; anything else is an error naming the
/// cause.
impl FromSql<sql_types::SparseVector, Sqlite> for SparseVector {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(codec::sparsevec::decode_sqlite(blob(&mut value, VectorKind::SparseVector)?)?)
    }
}

/// Binds the packed bits as a BLOB (sqlite-vec's `bit[N]`), borrowed. A length that is not a multiple of
/// 8 is an error, and nothing is written: SQLite could not give the length back.
impl ToSql<sql_types::Bit, Sqlite> for Bit {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(codec::bit::encode_sqlite(self)?);
        Ok(IsNull::No)
    }
}

/// Reads a BLOB of packed bits: `8 × length` bits.
impl FromSql<sql_types::Bit, Sqlite> for Bit {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(codec::bit::decode_sqlite(blob(&mut value, VectorKind::Bit)?)?)
    }
}

fn set_blob<'b>(out: &mut Output<'b, '_, Sqlite>, bytes: Cow<'b, [u8]>) {
    match bytes {
        Cow::Borrowed(bytes) => out.set_value(bytes),
        Cow::Owned(bytes) => out.set_value(bytes),
    }
}

/// The value's bytes, if SQLite stores it as a BLOB (`read_blob` would silently turn TEXT into bytes).
fn blob<'v>(value: &'v mut SqliteValue<'_, '_, '_>, kind: VectorKind) -> Result<&'v [u8], VectorError> {
    match value.value_type() {
        Some(SqliteType::Binary) => Ok(value.read_blob()),
        other => Err(VectorError::NotStoredAsBlob { kind, storage_class: storage_class_name(other) }),
    }
}

pub(super) fn storage_class_name(ty: Option<SqliteType>) -> &'static str {
    match ty {
        Some(SqliteType::Text) => "TEXT",
        Some(SqliteType::Double | SqliteType::Float) => "REAL",
        Some(SqliteType::Integer | SqliteType::Long | SqliteType::SmallInt) => "INTEGER",
        Some(SqliteType::Binary) => "BLOB",
        None => "NULL",
    }
}
