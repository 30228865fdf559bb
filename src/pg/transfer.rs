//! Application tables in and out of PostgreSQL for copies and JSON lines: the catalog read into
//! [`TableSpec`]s, rows read in PostgreSQL's binary format and decoded into the neutral form, and written
//! back as binary `COPY` (or `INSERT ... ON CONFLICT DO NOTHING` when the target already holds some of a
//! batch's keys).
//!
//! Only the tables of the connection's current schema (the first of the `search_path`) are seen.

use std::cell::RefCell;
use std::io::Write;

use diesel::connection::SimpleConnection;
use diesel::deserialize::{self, QueryableByName};
use diesel::pg::{CopyFormat, Pg};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::row::{Field, NamedRow, Row};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{
    BigInt, Binary, Bool, Date, Double, Float, Integer, SmallInt, Text, Time, Timestamp, Timestamptz,
};
use diesel::PgConnection;

use crate::database::BackendKind;
use crate::index::{Element, IndexSpec, PgIndex};
use crate::migrations::backend::Runner;
use crate::transfer::sql::{Piece, Sql};
use crate::transfer::table::{self, Catalog, ColumnSpec, ForeignKey, IdGenerator, TablePlan, TableSpec};
use crate::transfer::value::{self, Class, ColumnType, KeyPart, Value};
use crate::transfer::{CatalogError, Cells, IndexReport, IndexUpdateError, Store, TargetIndex};

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The class a PostgreSQL column is read as, from its (base) type's name and modifier.
fn class_of(base: &str, typmod: i32, kind: &str) -> Option<Class> {
    let dims = u32::try_from(typmod).ok().filter(|d| *d > 0);
    Some(match (base, kind) {
        ("int2", _) => Class::Integer { bits: 16 },
        ("int4", _) => Class::Integer { bits: 32 },
        ("int8", _) => Class::Integer { bits: 64 },
        ("float4", _) => Class::Real { bits: 32, sqlite: false },
        ("float8", _) => Class::Real { bits: 64, sqlite: false },
        ("text", _) => Class::Text { max_chars: None, nul: false },
        ("varchar", _) => Class::Text { max_chars: u32::try_from(typmod - 4).ok(), nul: false },
        ("bool", _) => Class::Bool,
        ("timestamp", _) => Class::Timestamp,
        ("timestamptz", _) => Class::TimestampTz,
        ("date", _) => Class::Date,
        ("time", _) => Class::Time,
        ("bytea", _) => Class::Bytes,
        ("vector", "b") => Class::Vector { element: Element::Vector, dims },
        ("halfvec", "b") => Class::Vector { element: Element::HalfVector, dims },
        ("sparsevec", "b") => Class::Vector { element: Element::SparseVector, dims },
        ("bit", "b") => Class::Vector { element: Element::Bit, dims },
        _ => return None,
    })
}

/// A value in PostgreSQL's binary format, decoded into `class`.
fn decode(bytes: Option<&[u8]>, class: Class) -> Result<Value, String> {
    let Some(b) = bytes else { return Ok(Value::Null) };
    let fixed = |n: usize| -> Result<&[u8], String> {
        if b.len() == n {
            Ok(b)
        } else {
            Err(format!("{} bytes where a {} holds {n}", b.len(), class.name()))
        }
    };
    let i64_of = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or_default());
    Ok(match class {
        Class::Integer { bits: 16 } => {
            Value::Int(i64::from(i16::from_be_bytes(fixed(2)?.try_into().unwrap_or_default())))
        }
        Class::Integer { bits: 32 } => {
            Value::Int(i64::from(i32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default())))
        }
        Class::Integer { .. } => Value::Int(i64_of(fixed(8)?)),
        Class::Real { bits: 32, .. } => {
            Value::Real(f64::from(f32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default())))
        }
        Class::Real { .. } => Value::Real(f64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default())),
        Class::Text { .. } => {
            Value::Text(String::from_utf8(b.to_vec()).map_err(|_| "the text is not valid UTF-8".to_owned())?)
        }
        Class::Bool => Value::Bool(fixed(1)?[0] != 0),
        Class::Timestamp | Class::TimestampTz => {
            let micros = i64_of(fixed(8)?);
            if micros == i64::MAX || micros == i64::MIN {
                return Err("an infinite timestamp, which Diesel and SQLite cannot hold".into());
            }
            let t = micros.checked_add(PG_EPOCH_MICROS).ok_or("a timestamp out of range")?;
            value::micros_timestamp(t).ok_or("a timestamp out of range")?;
            Value::Timestamp(t)
        }
        Class::Date => {
            let days = i32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default());
            if days == i32::MAX || days == i32::MIN {
                return Err("an infinite date, which Diesel and SQLite cannot hold".into());
            }
            let d = days.checked_add(PG_EPOCH_DAYS).ok_or("a date out of range")?;
            value::days_date(d).ok_or("a date out of range")?;
            Value::Date(d)
        }
        Class::Time => {
            let micros = i64_of(fixed(8)?);
            value::micros_time(micros).ok_or("24:00:00, which Diesel and SQLite cannot hold")?;
            Value::Time(micros)
        }
        Class::Bytes => Value::Bytes(b.to_vec()),
        Class::Vector { element, dims } => Value::Vector(crate::transfer::vector::from_pg(element, b, dims)?),
    })
}

/// Appends a value of `class` in PostgreSQL's binary format; `false` for NULL (nothing written).
fn encode(value: &Value, class: Class, out: &mut Vec<u8>) -> Result<bool, String> {
    match (class, value) {
        (_, Value::Null) => return Ok(false),
        (Class::Integer { bits: 16 }, Value::Int(v)) => {
            out.extend_from_slice(&i16::try_from(*v).map_err(|e| e.to_string())?.to_be_bytes())
        }
        (Class::Integer { bits: 32 }, Value::Int(v)) => {
            out.extend_from_slice(&i32::try_from(*v).map_err(|e| e.to_string())?.to_be_bytes())
        }
        (Class::Integer { .. }, Value::Int(v)) => out.extend_from_slice(&v.to_be_bytes()),
        #[allow(clippy::cast_possible_truncation)] // exactness checked by the conversion step
        (Class::Real { bits: 32, .. }, Value::Real(v)) => out.extend_from_slice(&(*v as f32).to_be_bytes()),
        (Class::Real { .. }, Value::Real(v)) => out.extend_from_slice(&v.to_be_bytes()),
        (Class::Text { .. }, Value::Text(v)) => out.extend_from_slice(v.as_bytes()),
        (Class::Bool, Value::Bool(v)) => out.push(u8::from(*v)),
        (Class::Timestamp | Class::TimestampTz, Value::Timestamp(v)) => {
            out.extend_from_slice(&(v - PG_EPOCH_MICROS).to_be_bytes())
        }
        (Class::Date, Value::Date(v)) => out.extend_from_slice(&(v - PG_EPOCH_DAYS).to_be_bytes()),
        (Class::Time, Value::Time(v)) => out.extend_from_slice(&v.to_be_bytes()),
        (Class::Bytes, Value::Bytes(v)) => out.extend_from_slice(v),
        (Class::Vector { element, .. }, Value::Vector(v)) => crate::transfer::vector::append_pg(element, v, out)?,
        (class, v) => return Err(format!("cannot write {v:?} as {}", class.name())),
    }
    Ok(true)
}

/// Writes `self` as the bound SQL type (the value was converted to that column's class first).
macro_rules! value_to_sql {
    ($($sql_type:ty => $class:expr),* $(,)?) => {$(
        impl ToSql<$sql_type, Pg> for Value {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                let mut bytes = Vec::new();
                if !encode(self, $class, &mut bytes)? {
                    return Ok(IsNull::Yes);
                }
                out.write_all(&bytes)?;
                Ok(IsNull::No)
            }
        }
    )*};
}

value_to_sql!(
    SmallInt => Class::Integer { bits: 16 },
    Integer => Class::Integer { bits: 32 },
    BigInt => Class::Integer { bits: 64 },
    Float => Class::Real { bits: 32, sqlite: false },
    Double => Class::Real { bits: 64, sqlite: false },
    Text => Class::Text { max_chars: None, nul: false },
    Bool => Class::Bool,
    Timestamp => Class::Timestamp,
    Timestamptz => Class::TimestampTz,
    Date => Class::Date,
    Time => Class::Time,
    Binary => Class::Bytes,
    crate::sql_types::Vector => Class::Vector { element: Element::Vector, dims: None },
    crate::sql_types::HalfVector => Class::Vector { element: Element::HalfVector, dims: None },
    crate::sql_types::SparseVector => Class::Vector { element: Element::SparseVector, dims: None },
    crate::sql_types::Bit => Class::Vector { element: Element::Bit, dims: None },
);

fn bind_value<'b>(out: &mut AstPass<'_, 'b, Pg>, v: &'b Value, class: Class) -> QueryResult<()> {
    match class {
        Class::Integer { bits: 16 } => out.push_bind_param::<SmallInt, Value>(v),
        Class::Integer { bits: 32 } => out.push_bind_param::<Integer, Value>(v),
        Class::Integer { .. } => out.push_bind_param::<BigInt, Value>(v),
        Class::Real { bits: 32, .. } => out.push_bind_param::<Float, Value>(v),
        Class::Real { .. } => out.push_bind_param::<Double, Value>(v),
        Class::Text { .. } => out.push_bind_param::<Text, Value>(v),
        Class::Bool => out.push_bind_param::<Bool, Value>(v),
        Class::Timestamp => out.push_bind_param::<Timestamp, Value>(v),
        Class::TimestampTz => out.push_bind_param::<Timestamptz, Value>(v),
        Class::Date => out.push_bind_param::<Date, Value>(v),
        Class::Time => out.push_bind_param::<Time, Value>(v),
        Class::Bytes => out.push_bind_param::<Binary, Value>(v),
        Class::Vector { element: Element::Vector, .. } => out.push_bind_param::<crate::sql_types::Vector, Value>(v),
        Class::Vector { element: Element::HalfVector, .. } => {
            out.push_bind_param::<crate::sql_types::HalfVector, Value>(v)
        }
        Class::Vector { element: Element::SparseVector, .. } => {
            out.push_bind_param::<crate::sql_types::SparseVector, Value>(v)
        }
        Class::Vector { element: Element::Bit, .. } => out.push_bind_param::<crate::sql_types::Bit, Value>(v),
    }
}

impl QueryFragment<Pg> for Sql<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for piece in &self.pieces {
            match piece {
                Piece::Sql(s) => out.push_sql(s),
                Piece::Ident(name) => out.push_identifier(name)?,
                Piece::Int(v) | Piece::Key(KeyPart::Int(v)) => out.push_bind_param::<BigInt, i64>(v)?,
                Piece::Key(KeyPart::Text(t)) => out.push_bind_param::<Text, String>(t)?,
                Piece::Value(v, class) => bind_value(&mut out, v, *class)?,
            }
        }
        Ok(())
    }
}

/// A row of any query: every field's bytes in PostgreSQL's binary format, one after the other in one
/// buffer (one allocation per row), and where each is (`None`: NULL).
struct PgRow {
    bytes: Vec<u8>,
    fields: Vec<Option<std::ops::Range<usize>>>,
}

impl PgRow {
    fn field(&self, i: usize) -> Option<&[u8]> {
        self.fields.get(i).cloned().flatten().map(|r| &self.bytes[r])
    }
}

impl QueryableByName<Pg> for PgRow {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> deserialize::Result<Self> {
        let n = Row::field_count(row);
        let mut out = Self { bytes: Vec::new(), fields: Vec::with_capacity(n) };
        for i in 0..n {
            let field = Row::get(row, i).ok_or("a field of the row is missing")?;
            out.fields.push(Field::value(&field).map(|v| {
                let start = out.bytes.len();
                out.bytes.extend_from_slice(v.as_bytes());
                start..out.bytes.len()
            }));
        }
        Ok(out)
    }
}

thread_local! {
    /// The table and columns of the `COPY` about to run on this thread (see [`DynamicTarget`]).
    static COPY_INTO: RefCell<Option<(String, Vec<String>)>> = const { RefCell::new(None) };
}

/// The target of a binary `COPY FROM` into a table known only at run time. Diesel's `CopyTarget`
/// renders its target from the type alone (no value), so the name travels through [`COPY_INTO`], set
/// for the duration of one `COPY` on this thread by [`copy_rows`]. `Table` is only a marker for Diesel's
/// types: nothing of `fragments` is used.
struct DynamicTarget;

impl diesel::pg::CopyTarget for DynamicTarget {
    type Table = crate::schema::fragments::table;
    type SqlType = (BigInt,);

    fn walk_target(mut pass: AstPass<'_, '_, Pg>) -> QueryResult<()> {
        COPY_INTO.with(|target| {
            let target = target.borrow();
            let (table, columns) =
                target.as_ref().ok_or_else(|| DieselError::QueryBuilderError("no COPY target is set".into()))?;
            pass.push_identifier(table)?;
            pass.push_sql(" (");
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    pass.push_sql(", ");
                }
                pass.push_identifier(column)?;
            }
            pass.push_sql(")");
            Ok(())
        })
    }
}

/// Clears [`COPY_INTO`] when the `COPY` is over, however it ends.
struct CopyInto;

impl CopyInto {
    fn set(plan: &TablePlan) -> Self {
        COPY_INTO
            .with(|t| *t.borrow_mut() = Some((plan.name.clone(), plan.column_names().map(str::to_owned).collect())));
        Self
    }
}

impl Drop for CopyInto {
    fn drop(&mut self) {
        COPY_INTO.with(|t| *t.borrow_mut() = None);
    }
}

/// Binary `COPY FROM` of `rows` into the plan's table and columns; returns the rows copied.
fn copy_rows(conn: &mut PgConnection, plan: &TablePlan, rows: &[Vec<Value>]) -> QueryResult<usize> {
    let _target = CopyInto::set(plan);
    let columns = i16::try_from(plan.columns.len())
        .map_err(|_| DieselError::QueryBuilderError("too many columns for one COPY".into()))?;
    diesel::copy_from(crate::schema::fragments::table)
        .from_raw_data(DynamicTarget, |out: &mut dyn Write| -> QueryResult<()> {
            let io = |e: std::io::Error| DieselError::SerializationError(Box::new(e));
            // Header: signature, flags, extension length.
            out.write_all(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0").map_err(io)?;
            let mut tuple = Vec::new();
            for row in rows {
                tuple.clear();
                tuple.extend_from_slice(&columns.to_be_bytes());
                for (v, c) in row.iter().zip(&plan.columns) {
                    let at = tuple.len();
                    tuple.extend_from_slice(&[0; 4]);
                    let len =
                        if encode(v, c.target, &mut tuple).map_err(|e| DieselError::SerializationError(e.into()))? {
                            i32::try_from(tuple.len() - at - 4)
                                .map_err(|_| DieselError::SerializationError("a value over 2 GB".into()))?
                        } else {
                            -1
                        };
                    tuple[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
                out.write_all(&tuple).map_err(io)?;
            }
            out.write_all(&(-1i16).to_be_bytes()).map_err(io)
        })
        .with_format(CopyFormat::Binary)
        .execute(conn)
}

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    type_text: String,
    #[diesel(sql_type = Text)]
    base_type: String,
    #[diesel(sql_type = Text)]
    base_kind: String,
    #[diesel(sql_type = Integer)]
    typmod: i32,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Bool)]
    has_default: bool,
    #[diesel(sql_type = Text)]
    identity: String,
    #[diesel(sql_type = Text)]
    generated: String,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    has_sequence: bool,
}

#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    parent: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    parent_column: String,
}

const TABLES: &str = "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname";

const COLUMNS: &str = "SELECT c.relname::text AS table_name, a.attname::text AS name, \
            format_type(a.atttypid, a.atttypmod) AS type_text, bt.typname::text AS base_type, \
            bt.typtype::text AS base_kind, \
            (CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END) AS typmod, \
            a.attnotnull AS not_null, a.atthasdef OR a.attidentity <> '' AS has_default, \
            a.attidentity::text AS identity, a.attgenerated::text AS generated \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_type t ON t.oid = a.atttypid \
     JOIN pg_type bt ON bt.oid = (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END) \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY c.relname, a.attnum";

const PRIMARY_KEYS: &str = "SELECT c.relname::text AS table_name, a.attname::text AS name, \
            pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL AS has_sequence \
     FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
     WHERE i.indisprimary AND n.nspname = current_schema() ORDER BY c.relname, k.ord";

const FOREIGN_KEYS: &str = "SELECT con.oid::int8 AS id, c.relname::text AS table_name, p.relname::text AS parent, \
            a.attname::text AS column_name, pa.attname::text AS parent_column \
     FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
     CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, pattnum, ord) \
     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
     JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.pattnum \
     WHERE con.contype = 'f' AND n.nspname = current_schema() AND pn.nspname = current_schema() \
     ORDER BY c.relname, con.oid, k.ord";

fn read_tables(conn: &mut PgConnection, indexes: &[IndexSpec]) -> QueryResult<Vec<TableSpec>> {
    let names: Vec<TableRow> = diesel::sql_query(TABLES).load(conn)?;
    let columns: Vec<ColumnRow> = diesel::sql_query(COLUMNS).load(conn)?;
    let keys: Vec<KeyRow> = diesel::sql_query(PRIMARY_KEYS).load(conn)?;
    let fks: Vec<ForeignKeyRow> = diesel::sql_query(FOREIGN_KEYS).load(conn)?;
    let mut tables = Vec::new();
    for TableRow { name } in names.into_iter().filter(|t| !table::is_internal(&t.name, indexes)) {
        let columns: Vec<ColumnSpec> = columns
            .iter()
            .filter(|c| c.table_name == name)
            .map(|c| ColumnSpec {
                name: c.name.clone(),
                ty: ColumnType { class: class_of(&c.base_type, c.typmod, &c.base_kind), name: c.type_text.clone() },
                not_null: c.not_null,
                has_default: c.has_default,
                generated: !c.generated.is_empty(),
                identity_always: c.identity == "a",
            })
            .collect();
        let key: Vec<&KeyRow> = keys.iter().filter(|k| k.table_name == name).collect();
        let ids = match key.as_slice() {
            [one] if one.has_sequence => IdGenerator::Sequence,
            _ => IdGenerator::None,
        };
        let mut foreign_keys: Vec<(i64, ForeignKey)> = Vec::new();
        for fk in fks.iter().filter(|f| f.table_name == name) {
            match foreign_keys.last_mut() {
                Some((id, last)) if *id == fk.id => {
                    last.columns.push(fk.column_name.clone());
                    last.parent_columns.push(fk.parent_column.clone());
                }
                _ => foreign_keys.push((
                    fk.id,
                    ForeignKey {
                        columns: vec![fk.column_name.clone()],
                        parent: fk.parent.clone(),
                        parent_columns: vec![fk.parent_column.clone()],
                    },
                )),
            }
        }
        tables.push(TableSpec {
            primary_key: key.iter().map(|k| k.name.clone()).collect(),
            name,
            columns,
            foreign_keys: foreign_keys.into_iter().map(|(_, fk)| fk).collect(),
            ids,
        });
    }
    Ok(tables)
}

/// How a registered index stands after a load: its access method, and for ivfflat whether it was built
/// for far less data than the table now holds (as when its migration built it on an empty table).
fn index_state(conn: &mut PgConnection, spec: &IndexSpec) -> QueryResult<TargetIndex> {
    let status = crate::pg::status(conn, spec)?;
    Ok(match (status.method.as_deref(), status.lists) {
        (None, _) => TargetIndex::Missing,
        (Some("ivfflat"), Some(lists)) => {
            TargetIndex::Ivfflat { lists, rows: status.rows, needs_rebuild: status.rows > 0 && status.needs_rebuild() }
        }
        (Some(method), _) => TargetIndex::Other { method: method.to_owned() },
    })
}

impl Store for PgConnection {
    const KIND: BackendKind = BackendKind::Postgres;
    const BYTE_ORDER: &'static str = "\"C\"";

    fn catalog(&mut self) -> Result<Catalog, CatalogError> {
        let applied = crate::exec::block_on(<Self as Runner>::applied_versions(self))?;
        let crate_versions = <Self as Runner>::own_versions()?;
        let mut indexes = crate::index::registry::load(self)?;
        let has_embeddings_table = crate::migrations::shape::Catalog::exists(self, "fragment_embeddings")?;
        let uses_crate_schema = table::uses_crate_schema(self, &applied, crate_versions, &indexes)?;
        if uses_crate_schema && has_embeddings_table && !indexes.iter().any(|s| s.name() == "fragment_embeddings_idx") {
            indexes.extend(table::seed_index());
        }
        let tables = read_tables(self, &indexes)?;
        Ok(Catalog { backend: Some(BackendKind::Postgres), tables, indexes, uses_crate_schema })
    }

    fn load(&mut self, sql: Sql<'_>, classes: &[Class]) -> QueryResult<Vec<Cells>> {
        let rows: Vec<PgRow> = sql.load(self)?;
        Ok(rows
            .iter()
            .map(|row| classes.iter().enumerate().map(|(i, class)| decode(row.field(i), *class)).collect())
            .collect())
    }

    fn run(&mut self, sql: Sql<'_>) -> QueryResult<usize> {
        sql.execute(self)
    }

    /// Binary `COPY FROM` when the target holds none of the rows' keys between the smallest and the
    /// largest (the usual case: a copy or an import into an empty range), in a savepoint; otherwise, or
    /// when the `COPY` meets a key written meanwhile (a unique violation, rolled back), multi-row
    /// `INSERT ... ON CONFLICT (key) DO NOTHING`. Any other error of the `COPY` is returned as it is.
    fn insert(&mut self, plan: &TablePlan, rows: &[Vec<Value>]) -> QueryResult<usize> {
        let keys: Vec<_> = rows.iter().map(|r| crate::transfer::key_of_row(plan, r)).collect::<QueryResult<_>>()?;
        let (Some(lo), Some(hi)) = (keys.iter().min(), keys.iter().max()) else { return Ok(0) };
        if !self.any_between(plan, lo, hi)? {
            // Diesel answers a rollback that fails (on a connection that died during the COPY) with the
            // rollback's error: keep the COPY's own.
            let mut cause = None;
            let copied = self.transaction(|conn| {
                copy_rows(conn, plan, rows).map_err(|e| {
                    cause = Some(e);
                    DieselError::RollbackTransaction
                })
            });
            match copied.map_err(|e| cause.take().unwrap_or(e)) {
                Ok(n) => return Ok(n),
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                Err(e) => return Err(e),
            }
        }
        // Under PostgreSQL's 65535 bind parameters.
        let per_statement = (65_535 / plan.columns.len().max(1)).max(1);
        let mut inserted = 0;
        for chunk in rows.chunks(per_statement) {
            inserted += self.run(crate::transfer::sql::insert(plan, chunk, plan.overriding))?;
        }
        Ok(inserted)
    }

    fn reserve_ids(&mut self, plan: &TablePlan, max: i64) -> QueryResult<()> {
        let Some(column) = plan.reserve.map(|i| plan.columns[i].name.as_str()) else { return Ok(()) };
        // setval never lowers the sequence here: the new value is at least its last value and the
        // table's largest id. An empty table with an unused sequence is left alone.
        let max_value = Value::Int(max);
        let (table, col) = (Value::Text(plan.name.clone()), Value::Text(column.to_owned()));
        let text = Class::Text { max_chars: None, nul: false };
        let mut sql = Sql::default();
        sql.push("SELECT setval(seq, v, true) FROM (SELECT seq, GREATEST(")
            .value(&max_value, Class::Integer { bits: 64 })
            .push(", coalesce(pg_sequence_last_value(seq), 0), (SELECT coalesce(max(t.")
            .ident(column)
            .push("), 0) FROM ")
            .ident(&plan.name)
            .push(" t)) AS v FROM (SELECT pg_get_serial_sequence(format('%I.%I', current_schema(), ")
            .value(&table, text)
            .push("), ")
            .value(&col, text)
            .push(")::regclass AS seq) s) r WHERE seq IS NOT NULL AND v > 0");
        self.run(sql).map(|_| ())
    }

    fn write_batch<R, E: From<DieselError>>(
        &mut self,
        _defer_foreign_keys: bool,
        f: impl FnOnce(&mut Self) -> Result<R, E>,
    ) -> Result<R, E> {
        // Foreign keys are checked at the end of each statement: a batch is one COPY (or INSERT).
        self.transaction(f)
    }

    fn savepoint<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        self.transaction(f)
    }

    fn snapshot<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        self.build_transaction().read_only().repeatable_read().run(f)
    }

    fn after_load(&mut self, plans: &[TablePlan], indexes: &[IndexSpec]) -> Result<Vec<IndexReport>, IndexUpdateError> {
        // Right after a load the planner knows nothing of the rows (autovacuum comes later).
        if !plans.is_empty() {
            let tables: Vec<String> = plans.iter().map(|p| crate::transfer::quote(&p.name)).collect();
            self.batch_execute(&format!("ANALYZE {}", tables.join(", ")))?;
        }
        let mut reports = Vec::new();
        for spec in indexes.iter().filter(|s| plans.iter().any(|p| p.name == s.table())) {
            let state = match spec.pg_index() {
                PgIndex::None => TargetIndex::Scan,
                _ => index_state(self, spec)?,
            };
            reports.push(IndexReport {
                name: spec.name().to_owned(),
                table: spec.table().to_owned(),
                column: spec.column().to_owned(),
                state,
            });
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_binary_format() {
        let cases = [
            (Class::Integer { bits: 16 }, Value::Int(-32768)),
            (Class::Integer { bits: 32 }, Value::Int(i64::from(i32::MAX))),
            (Class::Integer { bits: 64 }, Value::Int(i64::MIN)),
            (Class::Real { bits: 32, sqlite: false }, Value::Real(f64::from(0.1f32))),
            (Class::Real { bits: 64, sqlite: false }, Value::Real(-0.0)),
            (Class::Text { max_chars: None, nul: false }, Value::Text("é\u{1F600}".into())),
            (Class::Bool, Value::Bool(true)),
            (Class::Timestamp, Value::Timestamp(-1)),
            (Class::TimestampTz, Value::Timestamp(1_700_000_000_123_456)),
            (Class::Date, Value::Date(-1)),
            (Class::Time, Value::Time(86_399_999_999)),
            (Class::Bytes, Value::Bytes(vec![0, 255])),
            (
                Class::Vector { element: Element::Vector, dims: Some(2) },
                Value::Vector([1f32, -0.0].iter().flat_map(|x| x.to_le_bytes()).collect()),
            ),
        ];
        for (class, value) in cases {
            let mut bytes = Vec::new();
            assert!(encode(&value, class, &mut bytes).unwrap());
            assert_eq!(decode(Some(&bytes), class), Ok(value), "{class:?}");
        }
        assert_eq!(decode(None, Class::Bool), Ok(Value::Null));
        assert!(decode(Some(&[0, 0]), Class::Integer { bits: 32 }).is_err());
        assert!(decode(Some(&i64::MAX.to_be_bytes()), Class::Timestamp).unwrap_err().contains("infinite"));
        assert!(decode(Some(&[0xff]), Class::Text { max_chars: None, nul: false }).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn catalog_types_map_to_classes() {
        assert_eq!(class_of("varchar", 259, "b"), Some(Class::Text { max_chars: Some(255), nul: false }));
        assert_eq!(class_of("varchar", -1, "b"), Some(Class::Text { max_chars: None, nul: false }));
        assert_eq!(class_of("vector", 768, "b"), Some(Class::Vector { element: Element::Vector, dims: Some(768) }));
        assert_eq!(class_of("jsonb", -1, "b"), None);
        assert_eq!(class_of("mood", -1, "e"), None);
    }
}
