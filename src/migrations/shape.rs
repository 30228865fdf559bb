//! Catalog snapshots and the comparisons that adoption makes.
//!
//! A [`Snapshot`] holds the objects of one database (or of the rehearsal's scratch space) by identity:
//! tables with their columns and unique keys, indexes, triggers, and other named objects. The runner
//! compares the real database's with the ones a rehearsal of the migrations produced.

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryResult;

use crate::index::IndexSpec;

/// A column as found in the catalog; `ty` is in the backend's spelling (`format_type` on PostgreSQL, the
/// declared type on SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundColumn {
    pub name: String,
    pub ty: String,
    pub not_null: bool,
}

/// What the runner and the crate's status reports read from a backend's catalog.
pub trait Catalog {
    fn exists(&mut self, object: &str) -> QueryResult<bool>;
    /// The versions in Diesel's bookkeeping table, which must exist: one `SELECT` (Diesel's
    /// `MigrationHarness::applied_migrations` runs `CREATE TABLE IF NOT EXISTS` first, which costs as much
    /// again on a start-up with nothing to do).
    fn recorded_versions(&mut self) -> QueryResult<Vec<String>>;
    fn columns(&mut self, table: &str) -> QueryResult<Vec<FoundColumn>>;
    /// The column lists of the table's unique constraints and unique indexes.
    fn unique_keys(&mut self, table: &str) -> QueryResult<Vec<Vec<String>>>;

    /// Whether a table of the crate's own `fragments` schema exists. Diesel records a migration by its
    /// version alone, and an application's migration may carry one of the crate's versions (written before
    /// `generate::write` refused them, or by hand): a recorded version says the crate's schema is in use only
    /// where its tables are.
    fn has_crate_tables(&mut self) -> QueryResult<bool> {
        Ok(self.exists("fragments")? || self.exists("fragment_embeddings")?)
    }
}

/// Tables the runner never compares: Diesel's bookkeeping and the vector index registry, whose rows
/// are compared as registrations instead.
pub const BOOKKEEPING: [&str; 2] = ["__diesel_schema_migrations", crate::index::REGISTRY_TABLE];

/// A schema object, by identity. Indexes and triggers belong to their table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    Table(String),
    Index {
        table: String,
        name: String,
    },
    Trigger {
        table: String,
        name: String,
    },
    /// A view, sequence, type, function...: `kind` says which.
    Other {
        kind: &'static str,
        name: String,
    },
}

impl Object {
    /// The object's name, as error messages list it.
    pub fn name(&self) -> &str {
        match self {
            Self::Table(name) | Self::Other { name, .. } => name,
            Self::Index { name, .. } | Self::Trigger { name, .. } => name,
        }
    }

    /// The table the object belongs to, if any (a table belongs to itself).
    pub fn table(&self) -> Option<&str> {
        match self {
            Self::Table(table) | Self::Index { table, .. } | Self::Trigger { table, .. } => Some(table),
            Self::Other { .. } => None,
        }
    }
}

/// What is compared of an object besides its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Table(TableShape),
    /// An index's definition: method, uniqueness, keys with their operator classes, predicate, options.
    Index(String),
    /// Only its existence.
    Exists,
}

/// A table's columns and unique keys. Comparisons tolerate extra columns and extra unique keys in the
/// real table (an application may have added its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableShape {
    pub columns: Vec<FoundColumn>,
    pub unique: Vec<Vec<String>>,
}

/// Objects by identity.
pub type Snapshot = BTreeMap<Object, Shape>;

/// Adds `objects` to `snapshot`, keeping what is already there: with schemas read in search-path order,
/// the first schema that has a table wins, with its indexes and triggers.
pub fn merge_first_wins(snapshot: &mut Snapshot, objects: Snapshot) {
    let claimed: BTreeSet<String> = snapshot.keys().filter_map(|o| o.table().map(str::to_owned)).collect();
    for (object, shape) in objects {
        let taken = match object.table() {
            Some(table) => claimed.contains(table),
            None => snapshot.contains_key(&object),
        };
        if !taken {
            snapshot.insert(object, shape);
        }
    }
}

/// The database as a rehearsal left it after one migration (or before the first pending one).
#[derive(Debug, Clone, Default)]
pub struct Stage {
    /// The objects the migrations made, in the scratch space.
    pub objects: Snapshot,
    /// PostgreSQL: the empty copies of the database's tables the migrations' SQL finds behind the
    /// scratch space, with what the migrations added to them (indexes, triggers, columns).
    pub copies: Snapshot,
    /// PostgreSQL: a line per object outside the rehearsal's schemas (`schema.name kind`, columns,
    /// triggers, functions), to notice a migration that changes anything there.
    pub outside: BTreeSet<String>,
    /// The vector indexes the registry records.
    pub registry: Vec<IndexSpec>,
}

/// Why a rehearsal stopped early.
#[derive(Debug, Clone)]
pub struct RehearsalFailure {
    /// The migration that failed or could not be rehearsed.
    pub migration: String,
    /// Whether it is an applied migration replayed to rebuild the state before the pending ones.
    pub replayed: bool,
    /// The database's message.
    pub message: String,
}

/// What the runner learnt by running the migrations in a scratch space that is thrown away.
#[derive(Debug, Clone, Default)]
pub struct Rehearsal {
    /// `stages[0]`: after the applied migrations; `stages[k]`: after the `k`-th pending one. Fewer
    /// than the pending migrations plus one when the rehearsal stopped (see `failure`).
    pub stages: Vec<Stage>,
    pub failure: Option<RehearsalFailure>,
}

/// The real database, for comparison with the rehearsal.
#[derive(Debug, Clone, Default)]
pub struct Real {
    pub objects: Snapshot,
    pub registry: Vec<IndexSpec>,
}

/// What a migration does to a table, which is what a real table is compared on. A table it creates (or
/// drops) is compared whole: every column and unique key it has, extra ones tolerated (an application
/// may have added its own). A table it changes is compared on what it changes: the columns it adds,
/// drops or alters, and the unique keys it adds or drops; the rest of the table is not the migration's
/// business (it may have drifted from the migrations' history without concerning this one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Focus {
    whole: bool,
    columns: BTreeSet<String>,
    unique: Vec<Vec<String>>,
}

impl Focus {
    /// The focus of a change from `before` to `after` (both the same object's shape, or absent).
    pub fn of_change(before: Option<&Shape>, after: Option<&Shape>) -> Self {
        let empty = TableShape::default();
        fn table(s: Option<&Shape>) -> Option<&TableShape> {
            match s {
                Some(Shape::Table(t)) => Some(t),
                _ => None,
            }
        }
        let whole = before.is_none() || after.is_none();
        let (a, b) = match (table(before), table(after)) {
            (None, None) => return Self { whole, ..Self::default() },
            (a, b) => (a.unwrap_or(&empty), b.unwrap_or(&empty)),
        };
        let mut columns = BTreeSet::new();
        for c in &a.columns {
            if b.columns.iter().find(|d| d.name == c.name) != Some(c) {
                columns.insert(c.name.clone());
            }
        }
        for c in &b.columns {
            if a.columns.iter().find(|d| d.name == c.name) != Some(c) {
                columns.insert(c.name.clone());
            }
        }
        let mut unique: Vec<Vec<String>> = a.unique.iter().filter(|k| !b.unique.contains(k)).cloned().collect();
        unique.extend(b.unique.iter().filter(|k| !a.unique.contains(k)).cloned());
        Self { whole, columns, unique }
    }
}

fn same_type(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether the real object (`real`) is what `expected` says, under `focus`.
pub fn matches(real: Option<&Shape>, expected: Option<&Shape>, focus: &Focus) -> bool {
    match (real, expected) {
        (None, None) => true,
        (Some(Shape::Table(real)), Some(Shape::Table(expected))) => table_differences(expected, real, focus).is_empty(),
        (Some(real), Some(expected)) => real == expected,
        _ => false,
    }
}

/// Each way the real table `found` differs from `expected`, in words.
pub fn table_differences(expected: &TableShape, found: &TableShape, focus: &Focus) -> Vec<String> {
    let mut out = Vec::new();
    let compared = |name: &str| focus.whole || focus.columns.contains(name);
    for column in expected.columns.iter().filter(|c| compared(&c.name)) {
        match found.columns.iter().find(|f| f.name == column.name) {
            None => out.push(format!("column {} is missing", column.name)),
            Some(f) => {
                if !same_type(&f.ty, &column.ty) {
                    out.push(format!("column {} is {}, expected {}", column.name, f.ty, column.ty));
                }
                if f.not_null != column.not_null {
                    let (is, want) = if f.not_null { ("NOT NULL", "nullable") } else { ("nullable", "NOT NULL") };
                    out.push(format!("column {} is {is}, expected {want}", column.name));
                }
            }
        }
    }
    for name in &focus.columns {
        if !expected.columns.iter().any(|c| &c.name == name) && found.columns.iter().any(|c| &c.name == name) {
            out.push(format!("column {name} exists, expected no such column"));
        }
    }
    for key in expected.unique.iter().filter(|k| focus.whole || focus.unique.contains(k)) {
        if !found.unique.contains(key) {
            out.push(format!("no unique constraint on ({})", key.join(", ")));
        }
    }
    for key in &focus.unique {
        if !expected.unique.contains(key) && found.unique.contains(key) {
            out.push(format!("a unique constraint on ({}) exists, expected none", key.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, not_null: bool) -> FoundColumn {
        FoundColumn { name: name.into(), ty: ty.into(), not_null }
    }

    fn table(columns: &[FoundColumn], unique: &[&[&str]]) -> Shape {
        Shape::Table(TableShape {
            columns: columns.to_vec(),
            unique: unique.iter().map(|k| k.iter().map(|c| (*c).to_owned()).collect()).collect(),
        })
    }

    #[test]
    fn extra_columns_are_tolerated_unless_a_migration_touches_them() {
        let before = table(&[col("id", "bigint", true)], &[&["id"]]);
        let after = table(&[col("id", "bigint", true), col("embedding", "vector(3)", false)], &[&["id"]]);
        let focus = Focus::of_change(Some(&before), Some(&after));
        let real_with = table(
            &[col("id", "bigint", true), col("embedding", "vector(3)", false), col("x", "text", false)],
            &[&["id"]],
        );
        assert!(matches(Some(&real_with), Some(&after), &focus));
        assert!(!matches(Some(&real_with), Some(&before), &focus), "the added column must be absent before");
        let real_without = table(&[col("id", "bigint", true), col("x", "text", false)], &[&["id"]]);
        assert!(matches(Some(&real_without), Some(&before), &focus));
        assert!(!matches(Some(&real_without), Some(&after), &focus));
    }

    #[test]
    fn a_changed_table_is_compared_on_what_the_change_touches() {
        let before = table(&[col("id", "bigint", true), col("x", "text", false)], &[]);
        let after = table(&[col("id", "bigint", true), col("x", "text", false), col("v", "vector(3)", false)], &[]);
        let focus = Focus::of_change(Some(&before), Some(&after));
        // The real table lost `x` by hand: not this migration's business.
        let real = table(&[col("id", "bigint", true), col("v", "vector(3)", false)], &[]);
        assert!(matches(Some(&real), Some(&after), &focus));
        let created = Focus::of_change(None, Some(&after));
        assert!(!matches(Some(&real), Some(&after), &created), "a table the migration creates is compared whole");
    }

    #[test]
    fn differences_are_worded_for_people() {
        let expected = TableShape {
            columns: vec![col("embedding", "vector(1536)", false), col("id", "bigint", true)],
            unique: vec![vec!["a".into(), "b".into()]],
        };
        let found = TableShape { columns: vec![col("embedding", "text", true)], unique: vec![] };
        let whole = Focus { whole: true, ..Focus::default() };
        assert_eq!(
            table_differences(&expected, &found, &whole),
            [
                "column embedding is text, expected vector(1536)",
                "column embedding is NOT NULL, expected nullable",
                "column id is missing",
                "no unique constraint on (a, b)"
            ]
        );
    }

    #[test]
    fn the_first_schema_on_the_path_wins() {
        let mut snapshot = Snapshot::new();
        snapshot.insert(Object::Table("t".into()), Shape::Exists);
        let mut later = Snapshot::new();
        later.insert(Object::Index { table: "t".into(), name: "i".into() }, Shape::Index("x".into()));
        later.insert(Object::Table("u".into()), Shape::Exists);
        merge_first_wins(&mut snapshot, later);
        assert_eq!(snapshot.len(), 2, "the index of the shadowed table is left out: {snapshot:?}");
    }
}
