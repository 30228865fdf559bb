//! `ToSql`/`FromSql` for vectors stored as SQLite BLOBs of little-endian `f32`.

use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteType, SqliteValue};
use std::borrow::Cow;

use crate::{codec, sql_types, VectorError};

/// Binds the vector's little-endian `f32` bytes as a BLOB. On little-endian targets the bytes are the
/// vector's own memory: nothing is copied before SQLite takes them.
impl ToSql<sql_types::Vector, Sqlite> for crate::Vector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        match codec::encode_sqlite(self) {
            Cow::Borrowed(bytes) => out.set_value(bytes),
            Cow::Owned(bytes) => out.set_value(bytes),
        }
        Ok(IsNull::No)
    }
}

/// Reads a BLOB of little-endian `f32`. A value stored as TEXT, INTEGER or REAL, a BLOB whose length is
/// not a multiple of 4, an empty BLOB, or a NaN/infinite element is an error naming the cause.
impl FromSql<sql_types::Vector, Sqlite> for crate::Vector {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        // `read_blob` would silently turn TEXT into bytes: check the storage class first.
        match value.value_type() {
            Some(SqliteType::Binary) => Ok(codec::decode_sqlite(value.read_blob())?),
            other => Err(VectorError::NotABlob { storage_class: storage_class_name(other) }.into()),
        }
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
