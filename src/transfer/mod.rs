//! Moving an application's tables between databases, shared by [`crate::copy`] and `crate::jsonl`.
//!
//! - [`table`]: each side's tables from its catalog ([`table::TableSpec`]), and the plan that matches them:
//!   which tables, parents first, which columns, converted how, paged by which key.
//! - [`value`]: the backend-neutral form of columns ([`value::Class`]) and values ([`value::Value`]), and the
//!   one conversion table between classes.
//! - [`vector`]: vector columns per element type (the codec).
//! - [`sql`]: the statements over application tables, built once for both backends.
//! - [`checksum`], [`verify`]: row hashes over the neutral form, and the merge of two sides by key.
//! - [`Store`]: what each backend implements (`pg/transfer.rs`, `sqlite/transfer.rs`): reading its catalog,
//!   loading rows decoded into the neutral form, writing them, moving id generators, transactions.

pub(crate) mod checksum;
pub(crate) mod sql;
pub(crate) mod table;
pub(crate) mod value;
pub(crate) mod vector;
pub(crate) mod verify;

use std::fmt;

use diesel::result::Error as DieselError;
use diesel::QueryResult;

use crate::database::BackendKind;
use crate::index::IndexSpec;
use checksum::RowHasher;
use sql::{KeyRange, Sql};
use table::{Side, TablePlan};
use value::{Class, Key, Value};

/// A source row that cannot be copied as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRow {
    /// The table.
    pub table: String,
    /// The primary key's column (`id`), or columns (`(a, b)`).
    pub key_column: String,
    /// The row's key.
    pub key: Key,
    /// What is wrong with it, starting with the column when one is at fault (`created_at: ...`).
    pub reason: String,
}

impl InvalidRow {
    /// The row's id, when its key is one integer column.
    pub fn id(&self) -> Option<i64> {
        self.key.as_int()
    }
}

/// `documents id 7: embedding: vector element 5 is NaN`.
impl fmt::Display for InvalidRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}: {}", self.table, self.key_column, self.key, self.reason)
    }
}

/// Adds skipped rows to a report's list, which keeps the first [`verify::MAX_REPORTED_INVALID`].
pub(crate) fn keep_reported(kept: &mut Vec<InvalidRow>, rows: Vec<InvalidRow>) {
    let room = verify::MAX_REPORTED_INVALID.saturating_sub(kept.len());
    kept.extend(rows.into_iter().take(room));
}

/// What became of a vector index of the target after rows were written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetIndex {
    /// SQLite: the vec0 index was brought up to date (`applied` queued changes, or rebuilt).
    Vec0Synced {
        /// Whether the vec0 table was rebuilt from scratch.
        rebuilt: bool,
        /// Changes applied (rows indexed, on a rebuild).
        applied: i64,
    },
    /// SQLite without sqlite-vec: the changes wait for a connection that has it.
    Vec0Pending,
    /// SQLite, an index without vec0 (the crate's codes): its changes were applied, or it was marked for a
    /// rebuild from the table, which the crate's codes follow on the index's next search.
    Synced {
        /// Whether it was rebuilt from the table.
        rebuilt: bool,
        /// Changes applied.
        applied: i64,
    },
    /// PostgreSQL: an ivfflat index and whether it should be rebuilt for the data (`diesel-vector
    /// reindex`, [`crate::pg::rebuild_ivfflat_index`]): built on an empty table, it recalls poorly.
    Ivfflat {
        /// The lists it was built with.
        lists: i32,
        /// Rows with a vector.
        rows: i64,
        /// True when it was built for far less data (see [`crate::pg::IvfflatStatus::needs_rebuild`]).
        needs_rebuild: bool,
    },
    /// PostgreSQL: an index of another method (such as `hnsw`), which needs no rebuild.
    Other {
        /// The index's access method.
        method: String,
    },
    /// PostgreSQL: the declared vector index does not exist; searches scan every row until it is built
    /// again.
    Missing,
    /// The index keeps no structure on the target's backend (declared `none` there, or SQLite for a column
    /// type only scanned): searches scan every row, and there is nothing to bring up to date.
    Scan,
}

/// One registered vector index of the target, after the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexReport {
    /// The index's name in the registry.
    pub name: String,
    /// Its table.
    pub table: String,
    /// Its vector column.
    pub column: String,
    /// How it stands.
    pub state: TargetIndex,
}

/// The target's index could not be brought up to date after a load.
#[derive(Debug)]
pub(crate) enum IndexUpdateError {
    Query(DieselError),
    #[cfg(feature = "sqlite")]
    Index(crate::sqlite::IndexError),
}

impl From<DieselError> for IndexUpdateError {
    fn from(e: DieselError) -> Self {
        Self::Query(e)
    }
}

/// Why a catalog could not be read.
#[derive(Debug)]
pub(crate) enum CatalogError {
    Query(DieselError),
    Registry(crate::index::RegistryError),
    Migrations(crate::migrations::MigrationError),
}

impl From<DieselError> for CatalogError {
    fn from(e: DieselError) -> Self {
        Self::Query(e)
    }
}

impl From<crate::index::RegistryError> for CatalogError {
    fn from(e: crate::index::RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<crate::migrations::MigrationError> for CatalogError {
    fn from(e: crate::migrations::MigrationError) -> Self {
        Self::Migrations(e)
    }
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Query(e) => write!(f, "reading the catalog: {e}"),
            Self::Registry(e) => write!(f, "reading the vector index registry: {e}"),
            Self::Migrations(e) => write!(f, "{e}"),
        }
    }
}

/// A row as read: each column decoded into its class (or why it could not be), then the orphan flags.
pub(crate) type Cells = Vec<Result<Value, String>>;

/// The reads and writes of rows, per backend. Sealed: implemented for `PgConnection` and
/// `SqliteConnection`. `Send`, so that a copy can read the source on one thread while it writes the
/// target on another.
pub(crate) trait Store:
    crate::migrations::MigrationTarget + crate::migrations::shape::Catalog + Sized + Send
{
    const KIND: BackendKind;
    /// The collation that orders text by its bytes (`"C"` on PostgreSQL, `BINARY` on SQLite), so that
    /// both sides page and merge text keys in the same order.
    const BYTE_ORDER: &'static str;

    /// The application's tables and the registered vector indexes.
    fn catalog(&mut self) -> Result<table::Catalog, CatalogError>;
    /// Runs a `SELECT` and decodes each row's columns into `classes`.
    fn load(&mut self, sql: Sql<'_>, classes: &[Class]) -> QueryResult<Vec<Cells>>;
    /// Runs a statement; returns the rows it changed.
    fn run(&mut self, sql: Sql<'_>) -> QueryResult<usize>;
    /// Inserts rows (already converted to the target's classes), keeping their keys; a row whose key
    /// exists is left alone (`ON CONFLICT (key) DO NOTHING`). Returns how many were inserted.
    fn insert(&mut self, plan: &TablePlan, rows: &[Vec<Value>]) -> QueryResult<usize>;
    /// Makes the id generator of the plan's `reserve` column hand out ids above `max` from now on
    /// (never lowers it).
    fn reserve_ids(&mut self, plan: &TablePlan, max: i64) -> QueryResult<()>;
    /// Runs `f` in a write transaction (SQLite: `BEGIN IMMEDIATE`; with `defer_foreign_keys`, foreign keys
    /// checked at its end, so that a row may reference one later in the same batch).
    fn write_batch<R, E: From<DieselError>>(
        &mut self,
        defer_foreign_keys: bool,
        f: impl FnOnce(&mut Self) -> Result<R, E>,
    ) -> Result<R, E>;
    /// Runs `f` in a savepoint of the current transaction.
    fn savepoint<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E>;
    /// Runs `f` in a read-only transaction that sees one snapshot of the database.
    fn snapshot<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E>;
    /// Before a load: settings for many writes in a row (SQLite: checkpoints of the write-ahead log every
    /// 64 MiB instead of every 4 MiB).
    fn begin_load(&mut self) -> QueryResult<()> {
        Ok(())
    }
    /// After a load: refreshes the planner's statistics (PostgreSQL) and brings each registered index up
    /// to date (SQLite) or says whether it needs a rebuild (PostgreSQL); undoes [`Store::begin_load`].
    fn after_load(&mut self, plans: &[TablePlan], indexes: &[IndexSpec]) -> Result<Vec<IndexReport>, IndexUpdateError>;

    /// Rows of `range` in key order, decoded into `side`'s classes.
    fn read(&mut self, plan: &TablePlan, side: Side, range: &KeyRange<'_>) -> QueryResult<Vec<Cells>> {
        self.load(sql::select(plan, side, range, Self::BYTE_ORDER), &sql::select_classes(plan, side))
    }

    /// The largest key of `range`.
    fn last_key(&mut self, plan: &TablePlan, side: Side, range: &KeyRange<'_>) -> QueryResult<Option<Key>> {
        let classes: Vec<Class> = plan.key.iter().map(|&i| plan.columns[i].class(side)).collect();
        let rows = self.load(sql::last_key(plan, range, Self::BYTE_ORDER), &classes)?;
        rows.into_iter().next().map(|cells| key_of(&cells, plan)).transpose()
    }

    /// Rows in `range`.
    fn count(&mut self, plan: &TablePlan, range: &KeyRange<'_>) -> QueryResult<u64> {
        let rows = self.load(sql::count(plan, range, Self::BYTE_ORDER), &[Class::Integer { bits: 64 }])?;
        match rows.first().and_then(|r| r.first()) {
            Some(Ok(Value::Int(n))) => Ok(u64::try_from(*n).unwrap_or(0)),
            _ => Err(DieselError::DeserializationError("count(*) returned no number".into())),
        }
    }

    /// The rows with these keys, decoded into the target's classes (at most [`LOOKUP_CHUNK`] keys).
    #[cfg(feature = "jsonl")]
    fn lookup(&mut self, plan: &TablePlan, keys: &[Key]) -> QueryResult<Vec<Cells>> {
        let classes: Vec<Class> = plan.columns.iter().map(|c| c.target).collect();
        self.load(sql::lookup(plan, keys, Self::BYTE_ORDER), &classes)
    }

    /// Whether a row's key is in `lo..=hi`.
    #[cfg(feature = "pg")]
    fn any_between(&mut self, plan: &TablePlan, lo: &Key, hi: &Key) -> QueryResult<bool> {
        let rows = self.load(sql::any_between(plan, lo, hi, Self::BYTE_ORDER), &[Class::Integer { bits: 64 }])?;
        Ok(matches!(rows.first().and_then(|r| r.first()), Some(Ok(Value::Int(1)))))
    }

    /// Inserts one row (`ON CONFLICT (key) DO NOTHING`).
    fn insert_one(&mut self, plan: &TablePlan, row: &[Value]) -> QueryResult<usize> {
        self.run(sql::insert(plan, &[row], plan.overriding && Self::KIND == BackendKind::Postgres))
    }
}

/// Keys per `Store::lookup`.
#[cfg(feature = "jsonl")]
pub(crate) const LOOKUP_CHUNK: usize = 500;

/// The key of a row from its decoded cells (a whole row, or just the key's cells in key order).
pub(crate) fn key_of(cells: &[Result<Value, String>], plan: &TablePlan) -> QueryResult<Key> {
    let key_cells: Vec<&Result<Value, String>> = if cells.len() == plan.key.len() {
        cells.iter().collect()
    } else {
        plan.key.iter().filter_map(|&i| cells.get(i)).collect()
    };
    key_cells
        .into_iter()
        .zip(plan.key_names())
        .map(|(cell, name)| match cell {
            Ok(v) => v.key_part().ok_or_else(|| unreadable_key(plan, name, "NULL or not an integer or text")),
            Err(e) => Err(unreadable_key(plan, name, e)),
        })
        .collect::<QueryResult<Vec<_>>>()
        .map(Key)
}

/// The key of a row of values (in the plan's column order).
pub(crate) fn key_of_row(plan: &TablePlan, row: &[Value]) -> QueryResult<Key> {
    plan.key
        .iter()
        .zip(plan.key_names())
        .map(|(&i, name)| {
            row.get(i)
                .and_then(Value::key_part)
                .ok_or_else(|| unreadable_key(plan, name, "NULL or not an integer or text"))
        })
        .collect::<QueryResult<Vec<_>>>()
        .map(Key)
}

fn unreadable_key(plan: &TablePlan, column: &str, why: &str) -> DieselError {
    DieselError::DeserializationError(
        format!("{}.{column}: a primary key value that cannot be read: {why}", plan.name).into(),
    )
}

/// A source row checked and converted to the target's classes, or why it cannot be.
pub(crate) fn check(plan: &TablePlan, key: &Key, cells: Cells) -> Result<Vec<Value>, InvalidRow> {
    let invalid = |reason: String| InvalidRow {
        table: plan.name.clone(),
        key_column: plan.key_label.clone(),
        key: key.clone(),
        reason,
    };
    let n = plan.columns.len();
    let mut values = Vec::with_capacity(n);
    let mut flags = Vec::new();
    for (i, cell) in cells.into_iter().enumerate() {
        match (i < n, cell) {
            (true, Ok(v)) => values.push(v),
            (true, Err(reason)) => return Err(invalid(format!("{}: {reason}", plan.columns[i].name))),
            (false, cell) => flags.push(matches!(cell, Ok(Value::Int(1)))),
        }
    }
    for (check, orphan) in plan.orphan_checks.iter().zip(flags) {
        if orphan {
            let names: Vec<&str> = check.columns.iter().map(|&i| plan.columns[i].name.as_str()).collect();
            let shown: Vec<String> = check.columns.iter().map(|&i| show(&values[i])).collect();
            return Err(invalid(format!(
                "{} {}: no {} row has {} {}",
                names.join(", "),
                shown.join(", "),
                check.parent,
                check.parent_columns.join(", "),
                shown.join(", ")
            )));
        }
    }
    if let Some((dims, vector)) = plan.dims_rule {
        if let (Value::Int(d), Value::Vector(blob)) = (&values[dims], &values[vector]) {
            let found = blob.len() / 4;
            if usize::try_from(*d).ok() != Some(found) {
                return Err(invalid(format!("dims is {d} but the vector has {found} dimensions")));
            }
        }
    }
    for (v, c) in values.iter_mut().zip(&plan.columns) {
        *v = c
            .step
            .apply(std::mem::replace(v, Value::Null))
            .map_err(|reason| invalid(format!("{}: {reason}", c.name)))?;
    }
    Ok(values)
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Text(t) => format!("'{t}'"),
        other => format!("{other:?}"),
    }
}

/// The hash of a row in the target's classes.
pub(crate) fn hash_row(values: &[Value]) -> u64 {
    let mut h = RowHasher::new(b'R');
    for v in values {
        v.hash(&mut h);
    }
    h.finish()
}

/// The hash a row of the target gets when one of its values cannot be read: it matches no source row.
pub(crate) fn unreadable_hash(key: &Key) -> u64 {
    let mut h = RowHasher::new(b'X');
    for part in &key.0 {
        match part {
            value::KeyPart::Int(v) => h.int(*v),
            value::KeyPart::Text(t) => h.text(t),
        };
    }
    h.finish()
}

#[cfg(feature = "pg")]
/// `"name"` with inner quotes doubled: an identifier for SQL the crate writes as text (Diesel's
/// `push_identifier` does the same for statements it renders).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(all(test, feature = "pg"))]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("it\"s; DROP TABLE x"), "\"it\"\"s; DROP TABLE x\"");
        assert_eq!(quote("order"), "\"order\"");
    }
}
