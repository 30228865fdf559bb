//! `ToSql`/`FromSql` for pgvector's `vector`, over the pure codec.

use std::io::Write;

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};

use crate::{codec, sql_types};

/// Writes pgvector's binary format (`u16` BE dims, `u16` zero, `f32` BE each) straight into the bind
/// buffer.
impl ToSql<sql_types::Vector, Pg> for crate::Vector {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        codec::write_pg(self, out)?;
        out.flush()?;
        Ok(IsNull::No)
    }
}

/// Reads pgvector's binary format; a malformed value or a NaN/infinite element is an error naming the
/// cause.
impl FromSql<sql_types::Vector, Pg> for crate::Vector {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        Ok(codec::decode_pg(value.as_bytes())?)
    }
}
