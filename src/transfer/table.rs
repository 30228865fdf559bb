//! Tables as the catalogs describe them ([`TableSpec`]), and the plan that matches a source's tables with a
//! target's ([`plan`]): which tables move, in which order (parents first), which columns, converted how,
//! paged by which key. Everything here is decided before a row is written; every way the two schemas do
//! not fit is a [`SchemaError`] naming the table and column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::value::{step, Class, ColumnType, KeyKind, Step};
use crate::database::BackendKind;
use crate::index::IndexSpec;

/// A column as a catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnSpec {
    pub(crate) name: String,
    pub(crate) ty: ColumnType,
    pub(crate) not_null: bool,
    /// A default, an identity, a serial, or SQLite's rowid alias: the column may be left out of an insert.
    pub(crate) has_default: bool,
    /// Computed by the database (`GENERATED ALWAYS AS (...)`): never written.
    pub(crate) generated: bool,
    /// PostgreSQL `GENERATED ALWAYS AS IDENTITY`: an insert needs `OVERRIDING SYSTEM VALUE`.
    pub(crate) identity_always: bool,
}

/// A foreign key: `columns` of the table reference `parent_columns` of `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignKey {
    pub(crate) columns: Vec<String>,
    pub(crate) parent: String,
    pub(crate) parent_columns: Vec<String>,
}

/// What hands out a table's new ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdGenerator {
    /// Nothing (a key the application chooses).
    None,
    /// PostgreSQL: a sequence (serial or identity), moved with `setval`.
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    Sequence,
    /// SQLite `AUTOINCREMENT`: `sqlite_sequence`, moved by hand.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Autoincrement,
    /// SQLite `INTEGER PRIMARY KEY` without `AUTOINCREMENT`: the next id is always the largest plus one;
    /// nothing to move (and nothing that could be moved ahead of the rows).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Rowid,
}

/// A table as a catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableSpec {
    pub(crate) name: String,
    pub(crate) columns: Vec<ColumnSpec>,
    pub(crate) primary_key: Vec<String>,
    pub(crate) foreign_keys: Vec<ForeignKey>,
    pub(crate) ids: IdGenerator,
}

impl TableSpec {
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One database's application tables, and its vector indexes.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    /// The backend it was read from; `None` for a JSON lines file's headers.
    pub(crate) backend: Option<BackendKind>,
    /// Every application table (internal ones left out: see [`is_internal`]), by name.
    pub(crate) tables: Vec<TableSpec>,
    /// The vector indexes its registry records.
    pub(crate) indexes: Vec<IndexSpec>,
    /// Whether the database uses the crate's own schema (`fragments`, `fragment_embeddings`).
    pub(crate) uses_crate_schema: bool,
}

impl Catalog {
    pub(crate) fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }

    fn vector_column(&self, table: &str, column: &str) -> Option<Class> {
        self.indexes
            .iter()
            .find(|s| s.table() == table && s.column() == column)
            .map(|s| Class::Vector { element: s.element(), dims: Some(s.dims()) })
    }
}

/// Whether a table is the database's or the crate's rather than the application's: Diesel's bookkeeping
/// and anything else starting with `__` (the index registry, the default index names), SQLite's own
/// `sqlite_*`, and the SQLite structures of every registered index.
pub(crate) fn is_internal(name: &str, indexes: &[IndexSpec]) -> bool {
    name.starts_with("__")
        || name.starts_with("sqlite_")
        || indexes.iter().any(|s| s.sqlite_internal_tables().iter().any(|t| t == name))
}

/// Whether a database uses the crate's own `fragments` schema: one of the crate's versions (`crate_versions`)
/// is among those `applied` where one of its tables exists (an application's migration may share a version:
/// see `Catalog::has_crate_tables`), or the registry (`indexes`) holds the crate's own index.
pub(crate) fn uses_crate_schema<C: crate::migrations::shape::Catalog>(
    conn: &mut C,
    applied: &[String],
    crate_versions: &[String],
    indexes: &[IndexSpec],
) -> diesel::QueryResult<bool> {
    Ok((applied.iter().any(|v| crate_versions.contains(v)) && conn.has_crate_tables()?)
        || indexes.iter().any(|s| s.name() == "fragment_embeddings_idx"))
}

/// The crate's own index on `fragment_embeddings`, as its third migration registers it. A source migrated
/// before that migration (which a copy only reads, never migrates) has its structures but no registry row:
/// it is taken to have the index all the same, so that its queue and state tables are not taken for data.
pub(crate) fn seed_index() -> Option<IndexSpec> {
    use crate::index::{PgIndex, SqliteIndex};
    IndexSpec::builder("fragment_embeddings", "embedding", 1536)
        .name("fragment_embeddings_idx")
        .partition_by(["provider", "model"])
        .pg_index(PgIndex::Ivfflat)
        .pg_index_name("fragment_embeddings_cosine_idx")
        .sqlite_index(SqliteIndex::VEC0)
        .build()
        .ok()
}

/// Which side of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Target,
}

/// A column that moves: how it is read on each side and converted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnPlan {
    pub(crate) name: String,
    pub(crate) source: Class,
    pub(crate) target: Class,
    pub(crate) step: Step,
}

impl ColumnPlan {
    pub(crate) fn class(&self, side: Side) -> Class {
        match side {
            Side::Source => self.source,
            Side::Target => self.target,
        }
    }
}

/// A foreign key checked on the source as rows are read (an SQLite source may hold rows whose parent
/// is missing: SQLite enforces foreign keys only on connections that ask).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrphanCheck {
    /// Indices into the plan's columns.
    pub(crate) columns: Vec<usize>,
    pub(crate) parent: String,
    pub(crate) parent_columns: Vec<String>,
}

/// How one table moves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TablePlan {
    pub(crate) name: String,
    pub(crate) columns: Vec<ColumnPlan>,
    /// The primary key's columns, as indices into `columns`, in key order.
    pub(crate) key: Vec<usize>,
    pub(crate) key_kinds: Vec<KeyKind>,
    /// `id`, or `(a, b)`: how reports name the key.
    pub(crate) key_label: String,
    /// The single integer key column whose id generator is moved past the copied ids on the target.
    pub(crate) reserve: Option<usize>,
    pub(crate) orphan_checks: Vec<OrphanCheck>,
    /// The crate's `fragment_embeddings`: (`dims`, `embedding`) column indices, whose agreement the
    /// crate's SQLite schema requires and its PostgreSQL schema does not check.
    pub(crate) dims_rule: Option<(usize, usize)>,
    /// PostgreSQL target: an identity column `GENERATED ALWAYS` is written (`OVERRIDING SYSTEM VALUE`).
    pub(crate) overriding: bool,
}

impl TablePlan {
    pub(crate) fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    pub(crate) fn key_names(&self) -> impl Iterator<Item = &str> {
        self.key.iter().map(|&i| self.columns[i].name.as_str())
    }
}

/// A column whose values cannot move to the target column as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconvertible {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// Its type on the source (as the source's catalog spells it).
    pub source_type: String,
    /// Its type on the target, if there is one (JSON lines export: none).
    pub target_type: Option<String>,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Unconvertible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target_type {
            Some(target) => {
                write!(f, "{}.{}: {} -> {}: {}", self.table, self.column, self.source_type, target, self.reason)
            }
            None => write!(f, "{}.{}: {}: {}", self.table, self.column, self.source_type, self.reason),
        }
    }
}

/// Why the source's tables cannot move to the target as they are. Found before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The source has no application table to move.
    #[error("the source has no tables to copy (only internal ones, or none at all)")]
    NoTables,
    /// Tables asked for by name that the source does not have.
    #[error("the source has no table {}", list(.0))]
    NoSuchTables(Vec<String>),
    /// Source tables the target lacks.
    #[error(
        "the target has no table {}: create it with the application's migrations first, or leave it out",
        list(.0)
    )]
    MissingTables(Vec<String>),
    /// Source columns the target's table lacks.
    #[error("the target's {table} has no column {}", list(.columns))]
    MissingColumns {
        /// The table.
        table: String,
        /// The columns.
        columns: Vec<String>,
    },
    /// Target columns that need a value (`NOT NULL`, no default) which the source does not have.
    #[error("the target's {table} requires column {} (NOT NULL, no default), which the source lacks", list(.columns))]
    UnfilledColumns {
        /// The table.
        table: String,
        /// The columns.
        columns: Vec<String>,
    },
    /// Columns whose values cannot move without loss.
    #[error("{} column(s) cannot be converted without loss:{}", .0.len(), lines(.0))]
    Unconvertible(Vec<Unconvertible>),
    /// A table without a primary key (needed to page, resume and verify it).
    #[error(
        "{table} has no primary key on the {side}: rows are paged, resumed and verified by their key \
         (Diesel needs one too)"
    )]
    NoPrimaryKey {
        /// The table.
        table: String,
        /// `source` or `target`.
        side: &'static str,
    },
    /// The two sides' primary keys differ.
    #[error("{table}'s primary key is ({}) on the source but ({}) on the target", .on_source.join(", "), .on_target.join(", "))]
    KeyMismatch {
        /// The table.
        table: String,
        /// The source's key columns.
        on_source: Vec<String>,
        /// The target's.
        on_target: Vec<String>,
    },
    /// A key column of a type that cannot page the table the same way on both backends.
    #[error("{table}.{column}: a primary key column of type {ty} cannot page the table (integers and text can)")]
    UnsupportedKey {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        ty: String,
    },
    /// Foreign keys that form a cycle between tables: no order writes parents first.
    #[error("the foreign keys of {} form a cycle, so no order writes every parent before its children", .0.join(" -> "))]
    ForeignKeyCycle(Vec<String>),
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

fn lines(items: &[Unconvertible]) -> String {
    items.iter().map(|u| format!("\n  {u}")).collect()
}

/// Matches `source`'s tables (all of them, or `selected`) with `target`'s: one plan per table, parents
/// first. `target: None` plans an export (each column keeps its source class).
pub(crate) fn plan(
    source: &Catalog,
    target: Option<&Catalog>,
    selected: &[String],
) -> Result<Vec<TablePlan>, SchemaError> {
    let tables = select(source, selected)?;
    if let Some(target) = target {
        let missing: Vec<String> =
            tables.iter().filter(|t| target.table(&t.name).is_none()).map(|t| t.name.clone()).collect();
        if !missing.is_empty() {
            return Err(SchemaError::MissingTables(missing));
        }
    }
    let mut plans = Vec::with_capacity(tables.len());
    let mut unconvertible = Vec::new();
    for table in &tables {
        let counterpart = target.and_then(|t| t.table(&table.name));
        if let Some(plan) = plan_table(source, table, target, counterpart, &mut unconvertible)? {
            plans.push(plan);
        }
    }
    if !unconvertible.is_empty() {
        return Err(SchemaError::Unconvertible(unconvertible));
    }
    // Parents first, by the foreign keys the writing side enforces.
    let order_by = target.unwrap_or(source);
    order(plans, |name| order_by.table(name).map(|t| t.foreign_keys.as_slice()).unwrap_or_default())
}

fn select<'a>(source: &'a Catalog, selected: &[String]) -> Result<Vec<&'a TableSpec>, SchemaError> {
    if selected.is_empty() {
        if source.tables.is_empty() {
            return Err(SchemaError::NoTables);
        }
        return Ok(source.tables.iter().collect());
    }
    let unknown: Vec<String> = selected.iter().filter(|n| source.table(n).is_none()).cloned().collect();
    if !unknown.is_empty() {
        return Err(SchemaError::NoSuchTables(unknown));
    }
    let wanted: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
    Ok(source.tables.iter().filter(|t| wanted.contains(t.name.as_str())).collect())
}

/// The class a column is read as: a registered vector column is a vector on SQLite too; an SQLite BLOB
/// whose counterpart is a vector becomes one.
fn class_of(catalog: &Catalog, table: &str, column: &ColumnSpec, other: Option<Class>) -> Option<Class> {
    if let Some(v) = catalog.vector_column(table, &column.name) {
        return Some(v);
    }
    match (column.ty.class, other) {
        (Some(Class::Bytes), Some(v @ Class::Vector { .. })) if catalog.backend == Some(BackendKind::Sqlite) => Some(v),
        (class, _) => class,
    }
}

fn plan_table(
    source: &Catalog,
    table: &TableSpec,
    target: Option<&Catalog>,
    counterpart: Option<&TableSpec>,
    unconvertible: &mut Vec<Unconvertible>,
) -> Result<Option<TablePlan>, SchemaError> {
    if table.primary_key.is_empty() {
        return Err(SchemaError::NoPrimaryKey { table: table.name.clone(), side: "source" });
    }
    if let Some(t) = counterpart {
        if t.primary_key.is_empty() {
            return Err(SchemaError::NoPrimaryKey { table: table.name.clone(), side: "target" });
        }
        if t.primary_key != table.primary_key {
            return Err(SchemaError::KeyMismatch {
                table: table.name.clone(),
                on_source: table.primary_key.clone(),
                on_target: t.primary_key.clone(),
            });
        }
        let missing: Vec<String> =
            table.columns.iter().filter(|c| t.column(&c.name).is_none()).map(|c| c.name.clone()).collect();
        if !missing.is_empty() {
            return Err(SchemaError::MissingColumns { table: table.name.clone(), columns: missing });
        }
        let unfilled: Vec<String> = t
            .columns
            .iter()
            .filter(|c| c.not_null && !c.has_default && !c.generated && table.column(&c.name).is_none())
            .map(|c| c.name.clone())
            .collect();
        if !unfilled.is_empty() {
            return Err(SchemaError::UnfilledColumns { table: table.name.clone(), columns: unfilled });
        }
    }
    let mut columns = Vec::with_capacity(table.columns.len());
    let mut overriding = false;
    let before = unconvertible.len();
    for column in &table.columns {
        let theirs = counterpart.and_then(|t| t.column(&column.name));
        // Computed by the target: neither written nor compared.
        if theirs.is_some_and(|c| c.generated) {
            continue;
        }
        let their_class = match (target, theirs) {
            (Some(target), Some(c)) => class_of(target, &table.name, c, column.ty.class),
            _ => None,
        };
        let source_class = class_of(source, &table.name, column, their_class);
        let target_class = match (target, theirs) {
            (Some(target), Some(c)) => class_of(target, &table.name, c, source_class),
            _ => source_class,
        };
        let mut refuse = |reason: String| {
            unconvertible.push(Unconvertible {
                table: table.name.clone(),
                column: column.name.clone(),
                source_type: column.ty.name.clone(),
                target_type: theirs.map(|c| c.ty.name.clone()),
                reason,
            })
        };
        let (Some(from), Some(to)) = (source_class, target_class) else {
            refuse(match source_class {
                None => "a type the copy does not know how to read".into(),
                Some(_) => "a type the copy does not know how to write".into(),
            });
            continue;
        };
        // SQLite keeps `bit` as whole bytes (sqlite-vec's format): other lengths have no BLOB.
        let sqlite_side = [(source.backend, from), (target.and_then(|t| t.backend), to)];
        if let Some(bits) = sqlite_side.iter().find_map(|(backend, class)| match (backend, class) {
            (Some(BackendKind::Sqlite), Class::Vector { element: crate::index::Element::Bit, dims: Some(d) })
                if d % 8 != 0 =>
            {
                Some(*d)
            }
            _ => None,
        }) {
            refuse(format!("a bit({bits}) column cannot be stored on SQLite, whose BLOBs hold whole bytes"));
            continue;
        }
        match step(from, to) {
            Ok(step) => {
                overriding |= theirs.is_some_and(|c| c.identity_always);
                columns.push(ColumnPlan { name: column.name.clone(), source: from, target: to, step });
            }
            Err(reason) => refuse(reason),
        }
    }
    if unconvertible.len() > before {
        return Ok(None);
    }
    let mut key = Vec::with_capacity(table.primary_key.len());
    let mut key_kinds = Vec::with_capacity(table.primary_key.len());
    for name in &table.primary_key {
        let unsupported = |ty: &str| SchemaError::UnsupportedKey {
            table: table.name.clone(),
            column: name.clone(),
            ty: ty.to_owned(),
        };
        let Some(i) = columns.iter().position(|c| &c.name == name) else {
            return Err(unsupported("generated"));
        };
        let (Some(a), Some(b)) = (columns[i].source.key_kind(), columns[i].target.key_kind()) else {
            let ty = table.column(name).map_or("?", |c| c.ty.name.as_str());
            return Err(unsupported(ty));
        };
        if a != b {
            return Err(unsupported(&format!(
                "{} on the source, {} on the target",
                columns[i].source.name(),
                columns[i].target.name()
            )));
        }
        key.push(i);
        key_kinds.push(a);
    }
    let key_label = match table.primary_key.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    };
    let ids = counterpart.map_or(IdGenerator::None, |t| t.ids);
    let reserve = match (key.as_slice(), key_kinds.as_slice(), ids) {
        ([i], [KeyKind::Int], IdGenerator::Sequence | IdGenerator::Autoincrement) => Some(*i),
        _ => None,
    };
    let orphan_checks = if source.backend == Some(BackendKind::Sqlite) {
        table
            .foreign_keys
            .iter()
            .filter_map(|fk| {
                let columns: Option<Vec<usize>> =
                    fk.columns.iter().map(|c| columns.iter().position(|p| &p.name == c)).collect();
                Some(OrphanCheck {
                    columns: columns?,
                    parent: fk.parent.clone(),
                    parent_columns: fk.parent_columns.clone(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let dims_rule = if source.uses_crate_schema && table.name == "fragment_embeddings" {
        let dims = columns.iter().position(|c| c.name == "dims" && matches!(c.source, Class::Integer { .. }));
        let vector = columns.iter().position(|c| c.name == "embedding" && matches!(c.source, Class::Vector { .. }));
        dims.zip(vector)
    } else {
        None
    };
    Ok(Some(TablePlan {
        name: table.name.clone(),
        columns,
        key,
        key_kinds,
        key_label,
        reserve,
        orphan_checks,
        dims_rule,
        overriding,
    }))
}

/// Orders the plans parents first (each table after the tables its foreign keys reference; a table's
/// reference to itself does not count), ties broken by name. A cycle is an error naming it.
fn order<'a>(
    plans: Vec<TablePlan>,
    foreign_keys: impl Fn(&str) -> &'a [ForeignKey],
) -> Result<Vec<TablePlan>, SchemaError> {
    let names: BTreeSet<String> = plans.iter().map(|p| p.name.clone()).collect();
    // parent -> children, and each table's count of parents still to place.
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut parents: BTreeMap<String, BTreeSet<String>> = names.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
    for name in &names {
        for fk in foreign_keys(name) {
            if fk.parent != *name && names.contains(&fk.parent) {
                children.entry(fk.parent.clone()).or_default().insert(name.clone());
                parents.entry(name.clone()).or_default().insert(fk.parent.clone());
            }
        }
    }
    let mut ready: BTreeSet<String> = parents.iter().filter(|(_, p)| p.is_empty()).map(|(n, _)| n.clone()).collect();
    let mut sorted = Vec::with_capacity(names.len());
    while let Some(name) = ready.pop_first() {
        for child in children.get(&name).into_iter().flatten() {
            if let Some(p) = parents.get_mut(child) {
                p.remove(&name);
                if p.is_empty() {
                    ready.insert(child.clone());
                }
            }
        }
        parents.remove(&name);
        sorted.push(name);
    }
    if !parents.is_empty() {
        return Err(SchemaError::ForeignKeyCycle(cycle(&parents)));
    }
    let mut plans: BTreeMap<String, TablePlan> = plans.into_iter().map(|p| (p.name.clone(), p)).collect();
    Ok(sorted.into_iter().filter_map(|n| plans.remove(&n)).collect())
}

/// One cycle among the tables left unplaced (each has a parent left): follows parents until a table
/// repeats.
fn cycle(parents: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let Some(start) = parents.keys().next() else { return Vec::new() };
    let mut path = vec![start.clone()];
    loop {
        let last = path.last().cloned().unwrap_or_default();
        let Some(next) = parents.get(&last).and_then(|p| p.iter().find(|n| parents.contains_key(*n))) else {
            return path;
        };
        if let Some(at) = path.iter().position(|n| n == next) {
            let mut cycle = path.split_off(at);
            cycle.push(next.clone());
            // Parent before child, as the arrows read.
            cycle.reverse();
            return cycle;
        }
        path.push(next.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Element;

    fn col(name: &str, class: Option<Class>, ty: &str) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            ty: ColumnType { class, name: ty.into() },
            not_null: false,
            has_default: false,
            generated: false,
            identity_always: false,
        }
    }

    fn int() -> Option<Class> {
        Some(Class::Integer { bits: 64 })
    }

    fn text() -> Option<Class> {
        Some(Class::Text { max_chars: None, nul: true })
    }

    fn table(name: &str, columns: Vec<ColumnSpec>, fks: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: name.into(),
            columns,
            primary_key: vec!["id".into()],
            foreign_keys: fks
                .iter()
                .map(|(c, p)| ForeignKey {
                    columns: vec![(*c).into()],
                    parent: (*p).into(),
                    parent_columns: vec!["id".into()],
                })
                .collect(),
            ids: IdGenerator::Sequence,
        }
    }

    fn catalog(backend: BackendKind, tables: Vec<TableSpec>) -> Catalog {
        Catalog { backend: Some(backend), tables, indexes: Vec::new(), uses_crate_schema: false }
    }

    fn names(plans: &[TablePlan]) -> Vec<&str> {
        plans.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn parents_come_first_and_self_references_do_not_count() {
        let tables = vec![
            table("comments", vec![col("id", int(), "int8"), col("post_id", int(), "int8")], &[("post_id", "posts")]),
            table("posts", vec![col("id", int(), "int8"), col("author", int(), "int8")], &[("author", "users")]),
            table("users", vec![col("id", int(), "int8"), col("boss", int(), "int8")], &[("boss", "users")]),
            table("tags", vec![col("id", int(), "int8")], &[]),
        ];
        let c = catalog(BackendKind::Postgres, tables);
        let plans = plan(&c, Some(&c), &[]).unwrap();
        assert_eq!(names(&plans), ["tags", "users", "posts", "comments"]);
        assert_eq!(plans[0].reserve, Some(0));
        let only = plan(&c, Some(&c), &["comments".into(), "users".into()]).unwrap();
        assert_eq!(names(&only), ["comments", "users"], "posts left out: no order between them");
    }

    #[test]
    fn a_cycle_between_tables_is_named() {
        let tables = vec![
            table("a", vec![col("id", int(), "int8"), col("b_id", int(), "int8")], &[("b_id", "b")]),
            table("b", vec![col("id", int(), "int8"), col("c_id", int(), "int8")], &[("c_id", "c")]),
            table("c", vec![col("id", int(), "int8"), col("a_id", int(), "int8")], &[("a_id", "a")]),
            table("d", vec![col("id", int(), "int8"), col("a_id", int(), "int8")], &[("a_id", "a")]),
        ];
        let c = catalog(BackendKind::Postgres, tables);
        let err = plan(&c, Some(&c), &[]).unwrap_err();
        let SchemaError::ForeignKeyCycle(cycle) = &err else { panic!("{err}") };
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4, "{err}");
        assert!(err.to_string().starts_with("the foreign keys of "), "{err}");
    }

    #[test]
    fn what_the_target_lacks_is_named() {
        let source = catalog(
            BackendKind::Sqlite,
            vec![
                table("t", vec![col("id", int(), "INTEGER"), col("x", text(), "TEXT")], &[]),
                table("u", vec![col("id", int(), "INTEGER")], &[]),
            ],
        );
        let lacks_u = catalog(BackendKind::Postgres, vec![table("t", vec![col("id", int(), "int8")], &[])]);
        assert_eq!(plan(&source, Some(&lacks_u), &[]).unwrap_err(), SchemaError::MissingTables(vec!["u".into()]));
        assert_eq!(
            plan(&source, Some(&lacks_u), &["t".into()]).unwrap_err().to_string(),
            "the target's t has no column x"
        );
        assert_eq!(
            plan(&source, Some(&lacks_u), &["v".into()]).unwrap_err(),
            SchemaError::NoSuchTables(vec!["v".into()])
        );
        let mut required = col("y", text(), "text");
        required.not_null = true;
        let demands_y = catalog(BackendKind::Postgres, vec![table("u", vec![col("id", int(), "int8"), required], &[])]);
        assert!(plan(&source, Some(&demands_y), &["u".into()]).unwrap_err().to_string().contains("requires column y"));
    }

    #[test]
    fn lossy_and_unknown_columns_are_all_named_before_anything_moves() {
        let source = catalog(
            BackendKind::Postgres,
            vec![table(
                "events",
                vec![
                    col("id", int(), "bigint"),
                    col("payload", None, "jsonb"),
                    col("score", Some(Class::Real { bits: 64, sqlite: false }), "double precision"),
                ],
                &[],
            )],
        );
        let target = catalog(
            BackendKind::Sqlite,
            vec![table(
                "events",
                vec![col("id", int(), "INTEGER"), col("payload", text(), "TEXT"), col("score", int(), "INTEGER")],
                &[],
            )],
        );
        let err = plan(&source, Some(&target), &[]).unwrap_err();
        let SchemaError::Unconvertible(cols) = &err else { panic!("{err}") };
        assert_eq!(cols.iter().map(|c| c.column.as_str()).collect::<Vec<_>>(), ["payload", "score"]);
        assert!(
            err.to_string().contains("events.payload: jsonb -> TEXT: a type the copy does not know how to read"),
            "{err}"
        );
    }

    #[test]
    fn an_sqlite_blob_facing_a_vector_is_read_as_one() {
        let v = Some(Class::Vector { element: Element::Vector, dims: Some(3) });
        let lite = catalog(
            BackendKind::Sqlite,
            vec![table("d", vec![col("id", int(), "INTEGER"), col("e", Some(Class::Bytes), "BLOB")], &[])],
        );
        let pg = catalog(
            BackendKind::Postgres,
            vec![table("d", vec![col("id", int(), "int8"), col("e", v, "vector(3)")], &[])],
        );
        let plans = plan(&lite, Some(&pg), &[]).unwrap();
        assert_eq!(Some(plans[0].columns[1].source), v);
        let back = plan(&pg, Some(&lite), &[]).unwrap();
        assert_eq!(Some(back[0].columns[1].target), v);
        assert_eq!(plan(&lite, Some(&lite), &[]).unwrap()[0].columns[1].target, Class::Bytes);
    }

    #[test]
    fn keys_must_agree_and_page_alike() {
        let mut keyless = table("t", vec![col("id", int(), "INTEGER")], &[]);
        keyless.primary_key.clear();
        let source = catalog(BackendKind::Sqlite, vec![keyless]);
        assert!(plan(&source, None, &[]).unwrap_err().to_string().starts_with("t has no primary key on the source"));
        let mut stamped = table("t", vec![col("id", Some(Class::Timestamp), "timestamp")], &[]);
        stamped.ids = IdGenerator::None;
        let err = plan(&catalog(BackendKind::Postgres, vec![stamped]), None, &[]).unwrap_err();
        assert!(matches!(err, SchemaError::UnsupportedKey { .. }), "{err}");
    }
}
