//! What each migration creates, and the comparison of an existing table with it (for adoption).

use diesel::QueryResult;

use super::{MigrationError, Presence};

/// A column as a migration creates it; `ty` is in the backend's catalog spelling.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: &'static str,
    pub not_null: bool,
}

/// A table a migration creates: its columns and unique keys. Extra columns in an existing table are
/// tolerated (an application may have added its own); missing or different ones are not.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub unique: &'static [&'static [&'static str]],
}

/// The objects one migration creates: tables with a checked shape, and other objects (tables, triggers)
/// that must merely exist.
#[derive(Debug)]
pub struct Creates {
    /// The migration's name without its date, such as `create_fragments`.
    pub migration: &'static str,
    pub tables: &'static [Table],
    pub others: &'static [&'static str],
}

/// A column as found in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundColumn {
    pub name: String,
    pub ty: String,
    pub not_null: bool,
}

/// What a backend reads from its catalog for `probe`.
pub trait Catalog {
    fn exists(&mut self, object: &str) -> QueryResult<bool>;
    /// The versions in Diesel's bookkeeping table, which must exist: one `SELECT` (Diesel's
    /// `MigrationHarness::applied_migrations` runs `CREATE TABLE IF NOT EXISTS` first, which costs as much
    /// again on a start-up with nothing to do).
    fn recorded_versions(&mut self) -> QueryResult<Vec<String>>;
    fn columns(&mut self, table: &str) -> QueryResult<Vec<FoundColumn>>;
    /// The column lists of the table's unique constraints and unique indexes.
    fn unique_keys(&mut self, table: &str) -> QueryResult<Vec<Vec<String>>>;
}

/// Finds the [`Creates`] entry for a migration folder name (`2025-01-01-000001_create_fragments`).
pub(crate) fn creates_for<'a>(all: &'a [Creates], name: &str) -> Option<&'a Creates> {
    all.iter().find(|c| name.split_once('_').is_some_and(|(_, rest)| rest == c.migration))
}

/// Decides whether a pending migration's objects are absent (run it), present and compatible (adopt
/// it), or anything else (an error; nothing changes).
pub(crate) fn probe(catalog: &mut impl Catalog, name: &str, creates: &Creates) -> Result<Presence, MigrationError> {
    let objects = creates.tables.iter().map(|t| t.name).chain(creates.others.iter().copied());
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for object in objects {
        if catalog.exists(object)? {
            present.push(object.to_owned());
        } else {
            missing.push(object.to_owned());
        }
    }
    if present.is_empty() {
        return Ok(Presence::Absent);
    }
    // A shape difference in an existing table is the more useful message, whether or not all exist.
    for table in creates.tables.iter().filter(|t| present.iter().any(|p| p == t.name)) {
        let found = catalog.columns(table.name)?;
        let unique = catalog.unique_keys(table.name)?;
        let differences = differences(table, &found, &unique);
        if !differences.is_empty() {
            return Err(MigrationError::IncompatibleTable { table: table.name.to_owned(), differences });
        }
    }
    if !missing.is_empty() {
        return Err(MigrationError::PartiallyPresent { migration: name.to_owned(), present, missing });
    }
    Ok(Presence::Present)
}

/// Each way `found` differs from `expected`, in words.
pub(crate) fn differences(expected: &Table, found: &[FoundColumn], unique: &[Vec<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for column in expected.columns {
        match found.iter().find(|f| f.name == column.name) {
            None => out.push(format!("column {} is missing", column.name)),
            Some(f) => {
                if !f.ty.eq_ignore_ascii_case(column.ty) {
                    out.push(format!("column {} is {}, expected {}", column.name, f.ty, column.ty));
                }
                if f.not_null != column.not_null {
                    let (is, want) = if f.not_null { ("NOT NULL", "nullable") } else { ("nullable", "NOT NULL") };
                    out.push(format!("column {} is {is}, expected {want}", column.name));
                }
            }
        }
    }
    for key in expected.unique {
        if !unique.iter().any(|u| u.len() == key.len() && u.iter().zip(key.iter()).all(|(a, b)| a == b)) {
            out.push(format!("no unique constraint on ({})", key.join(", ")));
        }
    }
    out
}
