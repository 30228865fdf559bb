//! `ToSql`/`FromSql` for pgvector's `vector`, `halfvec` and `sparsevec` and PostgreSQL's `bit`, over the
//! pure codecs.
//!
//! `bit` and `varbit` have fixed OIDs, so a `bit` column loaded as one of the other types (or the reverse)
//! is recognised from the value's type and named in the error; the other mix-ups are caught by the
//! decoders' length and header checks.

use std::io::Write;

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};

use crate::{codec, sql_types, Bit, HalfVector, SparseVector, Vector, VectorError, VectorKind};

/// PostgreSQL's fixed OIDs of `bit` and `varbit`.
const BIT_OID: u32 = 1560;
const VARBIT_OID: u32 = 1562;

fn is_bit(value: &PgValue<'_>) -> bool {
    matches!(value.get_oid().get(), BIT_OID | VARBIT_OID)
}

/// Refuses a `bit` value where a vector type is expected.
fn not_bit(value: &PgValue<'_>, expected: VectorKind) -> Result<(), VectorError> {
    if is_bit(value) {
        return Err(VectorError::WrongType { expected, found: "a `bit`".to_owned() });
    }
    Ok(())
}

/// Writes pgvector's binary format (`u16` BE dims, `u16` zero, `f32` BE each) straight into the bind
/// buffer.
impl ToSql<sql_types::Vector, Pg> for Vector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        codec::write_pg(self, out)?;
        out.flush()?;
        Ok(IsNull::No)
    }
}

/// Reads pgvector's binary format; a malformed value, a NaN/infinite element or a `bit` value is an error
/// naming the cause.
impl FromSql<sql_types::Vector, Pg> for Vector {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        not_bit(&value, VectorKind::Vector)?;
        Ok(codec::decode_pg(value.as_bytes())?)
    }
}

/// Writes pgvector's binary `halfvec` (`u16` BE dims, `u16` zero, `f16` BE each).
impl ToSql<sql_types::HalfVector, Pg> for HalfVector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        codec::halfvec::write_pg(self, out)?;
        Ok(IsNull::No)
    }
}

/// Reads pgvector's binary `halfvec`; a malformed value (a `vector` among them), a NaN/infinite element
/// or a `bit` value is an error naming the cause.
impl FromSql<sql_types::HalfVector, Pg> for HalfVector {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        not_bit(&value, VectorKind::HalfVector)?;
        Ok(codec::halfvec::decode_pg(value.as_bytes())?)
    }
}

/// Writes pgvector's binary `sparsevec` (`i32` BE dims, nnz and zero, then the 0-based indices and the
/// values, BE).
impl ToSql<sql_types::SparseVector, Pg> for SparseVector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        codec::sparsevec::write_pg(self, out)?;
        Ok(IsNull::No)
    }
}

/// Reads pgvector's binary `sparsevec` with every check pgvector makes; anything else is an error
/// naming the cause.
impl FromSql<sql_types::SparseVector, Pg> for SparseVector {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        not_bit(&value, VectorKind::SparseVector)?;
        Ok(codec::sparsevec::decode_pg(value.as_bytes())?)
    }
}

/// Writes PostgreSQL's binary `bit` (`i32` BE length, packed bytes). More than [`Bit::MAX_LEN`] bits is
/// an error, and nothing is sent.
impl ToSql<sql_types::Bit, Pg> for Bit {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // Checked here too so that the error is the `VectorError` itself, not an I/O error wrapping it.
        crate::bit::check_max_len(self.len())?;
        codec::bit::write_pg(self, out)?;
        Ok(IsNull::No)
    }
}

/// Reads PostgreSQL's binary `bit` or `varbit`; a value of another type is an error naming it.
impl FromSql<sql_types::Bit, Pg> for Bit {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        if !is_bit(&value) {
            let found = format!("a value of type OID {} (neither `bit` nor `varbit`)", value.get_oid());
            return Err(VectorError::WrongType { expected: VectorKind::Bit, found }.into());
        }
        Ok(codec::bit::decode_pg(value.as_bytes())?)
    }
}
