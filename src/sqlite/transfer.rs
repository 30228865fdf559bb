//! Application tables in and out of SQLite for copies and JSON lines: the catalog read through pragmas
//! into [`TableSpec`]s, each value read by its storage class (SQLite keeps whatever a column was given)
//! and decoded into its column's class, rows written one prepared `INSERT` at a time.
//!
//! A column's class follows its declared type the way `diesel print-schema` maps it (`BOOLEAN`, `*INT*`,
//! `*CHAR*`/`*TEXT*`/`*CLOB*`, `*BLOB*`/none, `*REAL*`/`*FLOA*`/`*DOUB*`/`*NUM*`/`*DEC*`, `DATETIME`/
//! `TIMESTAMP`, `DATE`, `TIME`), except that integers and floats are read at SQLite's own 64 bits; a
//! value of another storage class than its column's (text in an `INTEGER` column, a number in a
//! `DATETIME` column, a `TEXT` vector) is an invalid row, never a silent conversion.

use diesel::connection::SimpleConnection;
use diesel::deserialize::{self, QueryableByName};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::result::Error as DieselError;
use diesel::row::{Field, NamedRow, Row};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Binary, Bool, Date, Double, Nullable, Text, Time, Timestamp};
use diesel::sqlite::{Sqlite, SqliteType};
use diesel::SqliteConnection;

use crate::database::BackendKind;
use crate::index::IndexSpec;
use crate::migrations::backend::Runner;
use crate::transfer::sql::{Piece, Sql};
use crate::transfer::table::{self, Catalog, ColumnSpec, ForeignKey, IdGenerator, TablePlan, TableSpec};
use crate::transfer::value::{self, Class, ColumnType, KeyPart, Value};
use crate::transfer::{CatalogError, Cells, IndexReport, IndexUpdateError, Store, TargetIndex};

/// The class of an SQLite column from its declared type (see the module docs).
fn class_of(declared: &str) -> Option<Class> {
    let t = declared.to_ascii_lowercase();
    let has = |s: &str| t.contains(s);
    Some(if t == "boolean" || t == "bool" || (has("tiny") && has("int")) {
        Class::Bool
    } else if has("int") {
        Class::Integer { bits: 64 }
    } else if has("char") || has("clob") || has("text") {
        Class::Text { max_chars: None, nul: true }
    } else if has("blob") || has("binary") || t.is_empty() {
        Class::Bytes
    } else if has("real") || has("floa") || has("doub") || has("num") || has("dec") {
        Class::Real { bits: 64, sqlite: true }
    } else if t == "datetime" || t == "timestamp" {
        Class::Timestamp
    } else if t == "date" {
        Class::Date
    } else if t == "time" {
        Class::Time
    } else {
        return None;
    })
}

/// A value as SQLite stores it.
#[derive(Debug)]
enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Cell {
    /// `an INTEGER (42)`, `a TEXT ('abc')`...: the value, shortened, for messages.
    fn describe(&self) -> String {
        let text = |bytes: &[u8]| {
            let s = String::from_utf8_lossy(bytes);
            let short: String = s.chars().take(40).collect();
            if short.len() < s.len() {
                format!("{short}...")
            } else {
                short
            }
        };
        match self {
            Self::Null => "NULL".into(),
            Self::Integer(v) => format!("an INTEGER ({v})"),
            Self::Real(v) => format!("a REAL ({v})"),
            Self::Text(t) => format!("a TEXT ({:?})", text(t)),
            Self::Blob(b) => format!("a BLOB of {} bytes", b.len()),
        }
    }
}

/// Exactly representable integers in an `f64`.
const EXACT_IN_F64: i64 = 1 << 53;

/// A stored value decoded into `class`, or why it does not belong there.
fn decode(cell: Cell, class: Class) -> Result<Value, String> {
    let misplaced = |cell: &Cell, column: &str| format!("{} in {column} column", cell.describe());
    Ok(match (class, cell) {
        (_, Cell::Null) => Value::Null,
        (Class::Integer { .. }, Cell::Integer(v)) => Value::Int(v),
        (Class::Integer { .. }, c) => return Err(misplaced(&c, "an INTEGER")),
        (Class::Real { .. }, Cell::Real(v)) => Value::Real(v),
        #[allow(clippy::cast_precision_loss)] // exact below 2^53
        (Class::Real { .. }, Cell::Integer(v)) if (-EXACT_IN_F64..=EXACT_IN_F64).contains(&v) => Value::Real(v as f64),
        (Class::Real { .. }, c) => return Err(misplaced(&c, "a REAL")),
        (Class::Text { .. }, Cell::Text(t)) => {
            Value::Text(String::from_utf8(t).map_err(|_| "the text is not valid UTF-8".to_owned())?)
        }
        (Class::Text { .. }, c) => return Err(misplaced(&c, "a TEXT")),
        (Class::Bool, Cell::Integer(v @ (0 | 1))) => Value::Bool(v == 1),
        (Class::Bool, c) => return Err(format!("{} is not a boolean (0 or 1, as Diesel writes them)", c.describe())),
        (Class::Timestamp | Class::TimestampTz, Cell::Text(t)) => {
            Value::Timestamp(value::parse_sqlite_timestamp(&String::from_utf8_lossy(&t))?)
        }
        (Class::Timestamp | Class::TimestampTz, c @ (Cell::Integer(_) | Cell::Real(_))) => {
            return Err(format!("{} in a timestamp column: {}", c.describe(), value::NUMERIC_TIMESTAMP))
        }
        (Class::Date, Cell::Text(t)) => Value::Date(value::parse_sqlite_date(&String::from_utf8_lossy(&t))?),
        (Class::Time, Cell::Text(t)) => Value::Time(value::parse_sqlite_time(&String::from_utf8_lossy(&t))?),
        (Class::Timestamp | Class::TimestampTz | Class::Date | Class::Time, c) => {
            return Err(misplaced(&c, &format!("a {}", class.name())))
        }
        (Class::Bytes, Cell::Blob(b)) => Value::Bytes(b),
        (Class::Bytes, c) => return Err(misplaced(&c, "a BLOB")),
        (Class::Vector { element, dims }, Cell::Blob(b)) => {
            crate::transfer::vector::check_blob(element, &b, dims)?;
            Value::Vector(b)
        }
        (Class::Vector { element, .. }, c) => return Err(format!("{} where a `{element}` BLOB belongs", c.describe())),
    })
}

/// Binds `self` as the SQLite storage its column's class uses (the value was converted to it first).
macro_rules! value_to_sql {
    ($($sql_type:ty),* $(,)?) => {$(
        impl ToSql<$sql_type, Sqlite> for Value {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                match self {
                    Value::Null => return Ok(IsNull::Yes),
                    Value::Int(v) => out.set_value(*v),
                    Value::Real(v) => out.set_value(*v),
                    Value::Text(v) => out.set_value(v.as_str()),
                    Value::Bool(v) => out.set_value(i32::from(*v)),
                    Value::Timestamp(v) => out.set_value(
                        value::micros_timestamp(*v)
                            .ok_or("a timestamp out of range")?
                            .format(value::SQLITE_TIMESTAMP)
                            .to_string(),
                    ),
                    Value::Date(v) => out.set_value(value::days_date(*v).ok_or("a date out of range")?.format("%F").to_string()),
                    Value::Time(v) => out.set_value(value::micros_time(*v).ok_or("a time out of range")?.format("%T%.f").to_string()),
                    Value::Bytes(v) | Value::Vector(v) => out.set_value(v.as_slice()),
                }
                Ok(IsNull::No)
            }
        }
    )*};
}

value_to_sql!(BigInt, Double, Text, Bool, Timestamp, Date, Time, Binary);

fn bind_value<'b>(out: &mut AstPass<'_, 'b, Sqlite>, v: &'b Value, class: Class) -> QueryResult<()> {
    match class {
        Class::Integer { .. } => out.push_bind_param::<BigInt, Value>(v),
        Class::Real { .. } => out.push_bind_param::<Double, Value>(v),
        Class::Text { .. } => out.push_bind_param::<Text, Value>(v),
        Class::Bool => out.push_bind_param::<Bool, Value>(v),
        Class::Timestamp | Class::TimestampTz => out.push_bind_param::<Timestamp, Value>(v),
        Class::Date => out.push_bind_param::<Date, Value>(v),
        Class::Time => out.push_bind_param::<Time, Value>(v),
        Class::Bytes | Class::Vector { .. } => out.push_bind_param::<Binary, Value>(v),
    }
}

impl QueryFragment<Sqlite> for Sql<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        for piece in &self.pieces {
            match piece {
                Piece::Sql(s) => out.push_sql(s),
                // Backticks: never read as a string literal, unlike a double-quoted name.
                Piece::Ident(name) => out.push_identifier(name)?,
                Piece::Int(v) | Piece::Key(KeyPart::Int(v)) => out.push_bind_param::<BigInt, i64>(v)?,
                Piece::Key(KeyPart::Text(t)) => out.push_bind_param::<Text, String>(t)?,
                Piece::Value(v, class) => bind_value(&mut out, v, *class)?,
            }
        }
        Ok(())
    }
}

/// A row of any query, each value with its storage class.
struct SqliteRow(Vec<Cell>);

impl QueryableByName<Sqlite> for SqliteRow {
    fn build<'a>(row: &impl NamedRow<'a, Sqlite>) -> deserialize::Result<Self> {
        let n = Row::field_count(row);
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let field = Row::get(row, i).ok_or("a field of the row is missing")?;
            cells.push(match Field::value(&field) {
                None => Cell::Null,
                Some(mut v) => match v.value_type() {
                    Some(SqliteType::Long) => Cell::Integer(v.read_long()),
                    Some(SqliteType::Double) => Cell::Real(v.read_double()),
                    // Read as bytes: SQLite does not promise UTF-8, and `read_text` would hide it.
                    Some(SqliteType::Text) => Cell::Text(v.read_blob().to_vec()),
                    Some(_) => Cell::Blob(v.read_blob().to_vec()),
                    None => Cell::Null,
                },
            });
        }
        Ok(Self(cells))
    }
}

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    auto_increment: bool,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Bool)]
    has_default: bool,
    #[diesel(sql_type = BigInt)]
    pk: i64,
    #[diesel(sql_type = BigInt)]
    hidden: i64,
}

#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    parent: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    parent_column: Option<String>,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The main schema's ordinary tables (views, virtual and shadow tables left out), and the vec0 tables
/// whose shadow tables are not marked as such.
const TABLES: &str = "SELECT l.name AS name, coalesce(upper(m.sql) LIKE '%AUTOINCREMENT%', 0) AS auto_increment \
     FROM pragma_table_list l LEFT JOIN sqlite_master m ON m.name = l.name AND m.type = 'table' \
     WHERE l.schema = 'main' AND l.type = 'table' ORDER BY l.name";
const VEC0_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
     AND upper(sql) LIKE 'CREATE VIRTUAL TABLE%' AND lower(sql) LIKE '%using vec0%'";

fn read_tables(conn: &mut SqliteConnection, indexes: &[IndexSpec]) -> QueryResult<Vec<TableSpec>> {
    let names: Vec<TableRow> = diesel::sql_query(TABLES).load(conn)?;
    let vec0: Vec<Name> = diesel::sql_query(VEC0_TABLES).load(conn)?;
    let shadow =
        |name: &str| vec0.iter().any(|v| name.strip_prefix(v.name.as_str()).is_some_and(|r| r.starts_with('_')));
    let mut tables = Vec::new();
    for TableRow { name, auto_increment } in names {
        if table::is_internal(&name, indexes) || shadow(&name) {
            continue;
        }
        let rows: Vec<ColumnRow> = diesel::sql_query(
            "SELECT name, type AS ty, \"notnull\" AS not_null, dflt_value IS NOT NULL AS has_default, pk, hidden \
             FROM pragma_table_xinfo(?) ORDER BY cid",
        )
        .bind::<Text, _>(&name)
        .load(conn)?;
        let mut key: Vec<(i64, String)> = rows.iter().filter(|c| c.pk > 0).map(|c| (c.pk, c.name.clone())).collect();
        key.sort();
        let primary_key: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
        // `INTEGER PRIMARY KEY` (that exact type) is the rowid: SQLite assigns it.
        let rowid = match primary_key.as_slice() {
            [one] => rows.iter().any(|c| &c.name == one && c.ty.eq_ignore_ascii_case("integer")),
            _ => false,
        };
        let columns = rows
            .iter()
            .filter(|c| c.hidden != 1)
            .map(|c| ColumnSpec {
                name: c.name.clone(),
                ty: ColumnType {
                    class: class_of(&c.ty),
                    name: if c.ty.is_empty() { "(no type)".into() } else { c.ty.clone() },
                },
                not_null: c.not_null,
                has_default: c.has_default || (rowid && primary_key.first() == Some(&c.name)),
                generated: c.hidden >= 2,
                identity_always: false,
            })
            .collect();
        let fks: Vec<ForeignKeyRow> = diesel::sql_query(
            "SELECT id, \"table\" AS parent, \"from\" AS column_name, \"to\" AS parent_column \
             FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        )
        .bind::<Text, _>(&name)
        .load(conn)?;
        let mut foreign_keys: Vec<(i64, ForeignKey)> = Vec::new();
        for fk in fks {
            let parent_column = fk.parent_column.unwrap_or_default();
            match foreign_keys.last_mut() {
                Some((id, last)) if *id == fk.id => {
                    last.columns.push(fk.column_name);
                    last.parent_columns.push(parent_column);
                }
                _ => foreign_keys.push((
                    fk.id,
                    ForeignKey {
                        columns: vec![fk.column_name],
                        parent: fk.parent,
                        parent_columns: vec![parent_column],
                    },
                )),
            }
        }
        let ids = match (rowid, auto_increment) {
            (true, true) => IdGenerator::Autoincrement,
            (true, false) => IdGenerator::Rowid,
            _ => IdGenerator::None,
        };
        tables.push(TableSpec {
            name,
            columns,
            primary_key,
            foreign_keys: foreign_keys.into_iter().map(|(_, fk)| fk).collect(),
            ids,
        });
    }
    // A reference without column names (`REFERENCES parent`) means the parent's primary key.
    let keys: Vec<(String, Vec<String>)> = tables.iter().map(|t| (t.name.clone(), t.primary_key.clone())).collect();
    for fk in tables.iter_mut().flat_map(|t| t.foreign_keys.iter_mut()) {
        if fk.parent_columns.iter().all(String::is_empty) {
            if let Some((_, key)) = keys.iter().find(|(n, _)| *n == fk.parent) {
                fk.parent_columns = key.clone();
            }
        }
    }
    Ok(tables)
}

/// Brings a registered index up to date after a load: its queue (filled by its triggers as the rows went
/// in) applied, or the index rebuilt from the table.
fn after_load_index(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<TargetIndex, IndexUpdateError> {
    if spec.sqlite_index().vec0 && super::sqlite_vec_version(conn)?.is_none() {
        return Ok(TargetIndex::Vec0Pending);
    }
    let report = super::sync(conn, spec).map_err(IndexUpdateError::Index)?;
    if !spec.sqlite_keeps_a_structure() {
        // The sync dropped what the triggers of an earlier migration may have queued.
        return Ok(TargetIndex::Scan);
    }
    Ok(if spec.sqlite_index().vec0 {
        TargetIndex::Vec0Synced { rebuilt: report.rebuilt, applied: report.applied }
    } else {
        TargetIndex::Synced { rebuilt: report.rebuilt, applied: report.applied }
    })
}

impl Store for SqliteConnection {
    const KIND: BackendKind = BackendKind::Sqlite;
    const BYTE_ORDER: &'static str = "BINARY";

    fn catalog(&mut self) -> Result<Catalog, CatalogError> {
        let applied = crate::exec::block_on(<Self as Runner>::applied_versions(self))?;
        let crate_versions = <Self as Runner>::own_versions()?;
        let mut indexes = crate::index::registry::load(self)?;
        let uses_crate_schema = table::uses_crate_schema(self, &applied, crate_versions, &indexes)?;
        if !indexes.iter().any(|s| s.name() == "fragment_embeddings_idx")
            && crate::migrations::shape::Catalog::exists(self, "fragment_embeddings_idx_state")?
        {
            indexes.extend(table::seed_index());
        }
        let tables = read_tables(self, &indexes)?;
        Ok(Catalog { backend: Some(BackendKind::Sqlite), tables, indexes, uses_crate_schema })
    }

    fn load(&mut self, sql: Sql<'_>, classes: &[Class]) -> QueryResult<Vec<Cells>> {
        let rows: Vec<SqliteRow> = sql.load(self)?;
        Ok(rows
            .into_iter()
            .map(|row| row.0.into_iter().zip(classes).map(|(cell, class)| decode(cell, *class)).collect())
            .collect())
    }

    fn run(&mut self, sql: Sql<'_>) -> QueryResult<usize> {
        sql.execute(self)
    }

    // One row per statement: Diesel prepares it once and reuses it from its cache (by its text). Multi-row
    // statements (8 or 32 rows) used as much CPU or more in `scripts/bench-load.sh`'s copy: SQLite keeps a
    // statement journal for a statement that may fail halfway. The caller holds the transaction.
    fn insert(&mut self, plan: &TablePlan, rows: &[Vec<Value>]) -> QueryResult<usize> {
        let mut inserted = 0;
        for row in rows {
            inserted += self.insert_one(plan, row)?;
        }
        Ok(inserted)
    }

    fn reserve_ids(&mut self, plan: &TablePlan, max: i64) -> QueryResult<()> {
        if plan.reserve.is_none() {
            return Ok(());
        }
        // AUTOINCREMENT hands out max(seq, largest rowid) + 1; raising seq reserves the ids up to max.
        // (SQLite raises seq itself when a row is inserted with an explicit larger id.)
        super::transaction::immediate(self, |conn| {
            diesel::sql_query(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, 0 \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)",
            )
            .bind::<Text, _>(&plan.name)
            .execute(conn)?;
            diesel::sql_query("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?")
                .bind::<BigInt, _>(max)
                .bind::<Text, _>(&plan.name)
                .execute(conn)?;
            Ok(())
        })
    }

    fn write_batch<R, E: From<DieselError>>(
        &mut self,
        defer_foreign_keys: bool,
        f: impl FnOnce(&mut Self) -> Result<R, E>,
    ) -> Result<R, E> {
        super::transaction::immediate(self, |conn| {
            if defer_foreign_keys {
                // Until the end of this transaction only.
                conn.batch_execute("PRAGMA defer_foreign_keys = ON")?;
            }
            f(conn)
        })
    }

    fn savepoint<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        super::transaction::deferred(self, f)
    }

    fn snapshot<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        super::transaction::deferred(self, f)
    }

    // A checkpoint copies the log into the database file and syncs both: SQLite's default of one per 1000
    // pages (4 MiB) made a copy pay one every batch or two (20 to 30% of its time into SQLite). Commits stay
    // as durable; the log grows to 64 MiB between checkpoints.
    fn begin_load(&mut self) -> QueryResult<()> {
        self.batch_execute("PRAGMA wal_autocheckpoint = 16384")
    }

    fn after_load(&mut self, plans: &[TablePlan], indexes: &[IndexSpec]) -> Result<Vec<IndexReport>, IndexUpdateError> {
        self.batch_execute("PRAGMA wal_checkpoint(PASSIVE); PRAGMA wal_autocheckpoint = 1000")?;
        let mut reports = Vec::new();
        for spec in indexes.iter().filter(|s| plans.iter().any(|p| p.name == s.table())) {
            reports.push(IndexReport {
                name: spec.name().to_owned(),
                table: spec.table().to_owned(),
                column: spec.column().to_owned(),
                state: after_load_index(self, spec)?,
            });
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Element;

    #[test]
    fn declared_types_map_as_diesel_print_schema_does() {
        let int = Some(Class::Integer { bits: 64 });
        let real = Some(Class::Real { bits: 64, sqlite: true });
        let text = Some(Class::Text { max_chars: None, nul: true });
        for (declared, class) in [
            ("INTEGER", int),
            ("BigInt", int),
            ("BOOLEAN", Some(Class::Bool)),
            ("TINYINT", Some(Class::Bool)),
            ("VARCHAR(255)", text),
            ("TEXT", text),
            ("BLOB", Some(Class::Bytes)),
            ("", Some(Class::Bytes)),
            ("REAL", real),
            ("DOUBLE PRECISION", real),
            ("NUMERIC", real),
            ("DATETIME", Some(Class::Timestamp)),
            ("TIMESTAMP", Some(Class::Timestamp)),
            ("DATE", Some(Class::Date)),
            ("TIME", Some(Class::Time)),
            ("JSON", None),
        ] {
            assert_eq!(class_of(declared), class, "{declared}");
        }
    }

    #[test]
    fn values_of_another_storage_class_are_named_not_converted() {
        let int = Class::Integer { bits: 64 };
        assert_eq!(decode(Cell::Integer(i64::MIN), int), Ok(Value::Int(i64::MIN)));
        assert_eq!(decode(Cell::Text(b"abc".to_vec()), int).unwrap_err(), "a TEXT (\"abc\") in an INTEGER column");
        assert!(decode(Cell::Real(1.5), int).unwrap_err().starts_with("a REAL (1.5)"));
        assert!(decode(Cell::Integer(2), Class::Bool).unwrap_err().contains("not a boolean"));
        let err = decode(Cell::Integer(1_700_000_000), Class::Timestamp).unwrap_err();
        assert!(err.starts_with("an INTEGER (1700000000) in a timestamp column: Diesel reads a number"), "{err}");
        assert!(decode(Cell::Text(b"yesterday".to_vec()), Class::Timestamp).unwrap_err().contains("not a timestamp"));
        let text = Class::Text { max_chars: None, nul: true };
        assert_eq!(decode(Cell::Text(vec![0xff, 0xfe]), text).unwrap_err(), "the text is not valid UTF-8");
        assert_eq!(decode(Cell::Text(b"a\0b".to_vec()), text), Ok(Value::Text("a\0b".into())));
        let vector = Class::Vector { element: Element::Vector, dims: Some(2) };
        assert!(decode(Cell::Text(b"[1,2]".to_vec()), vector).unwrap_err().contains("where a `vector` BLOB belongs"));
        assert!(decode(Cell::Real(1.0), vector).is_err());
        assert!(decode(Cell::Blob(vec![0; 4]), vector).unwrap_err().contains("1 dimensions; the column holds 2"));
        assert_eq!(decode(Cell::Integer(3), Class::Real { bits: 64, sqlite: true }), Ok(Value::Real(3.0)));
    }
}
