//! The SQL the copy runs on application tables, built once for both backends: every identifier quoted,
//! every column qualified (`t."col"`: SQLite reads a double-quoted name that matches no column as a string
//! literal, a qualified one is an error), every value bound.
//!
//! [`Sql`] is a Diesel query node of SQL pieces, identifiers and bound values; each backend renders it
//! (`pg/transfer.rs`, `sqlite/transfer.rs`) and Diesel caches its prepared statement by its text.

use std::borrow::Cow;

use diesel::query_builder::{Query, QueryId};
use diesel::sql_types::Untyped;
use diesel::RunQueryDsl;

use super::table::{Side, TablePlan};
use super::value::{Class, Key, KeyPart, Value};

/// One piece of a statement.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    Sql(Cow<'a, str>),
    /// An identifier, quoted by the backend.
    Ident(&'a str),
    Int(i64),
    Key(&'a KeyPart),
    /// A value bound as its column's type on this backend.
    Value(&'a Value, Class),
}

/// A statement over application tables: SQL, identifiers and bound values.
#[derive(Debug, Default)]
pub(crate) struct Sql<'a> {
    pub(crate) pieces: Vec<Piece<'a>>,
}

impl QueryId for Sql<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Sql<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Sql<'_> {}

/// The alias every statement gives the table it reads.
const ALIAS: &str = "t";

impl<'a> Sql<'a> {
    pub(crate) fn push(&mut self, sql: impl Into<Cow<'a, str>>) -> &mut Self {
        self.pieces.push(Piece::Sql(sql.into()));
        self
    }

    pub(crate) fn ident(&mut self, name: &'a str) -> &mut Self {
        self.pieces.push(Piece::Ident(name));
        self
    }

    /// `t."name"`.
    pub(crate) fn column(&mut self, name: &'a str) -> &mut Self {
        self.push(ALIAS).push(".").ident(name)
    }

    pub(crate) fn int(&mut self, v: i64) -> &mut Self {
        self.pieces.push(Piece::Int(v));
        self
    }

    pub(crate) fn value(&mut self, v: &'a Value, class: Class) -> &mut Self {
        self.pieces.push(Piece::Value(v, class));
        self
    }

    /// `name, name, ...` with `each` writing one.
    fn list<T>(&mut self, items: impl IntoIterator<Item = T>, mut each: impl FnMut(&mut Self, T)) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            each(self, item);
        }
        self
    }

    /// The key's columns as an expression ordered by bytes for text: `t."id"`, or
    /// `(t."a", t."b" COLLATE "C")` for several (a row value, compared column by column).
    fn key_expr(&mut self, plan: &'a TablePlan, byte_order: &'static str) -> &mut Self {
        let many = plan.key.len() > 1;
        if many {
            self.push("(");
        }
        self.key_list(plan, byte_order, "");
        if many {
            self.push(")");
        }
        self
    }

    /// The key's columns as a list, each followed by `suffix` (for `ORDER BY`, which takes no row value).
    fn key_list(&mut self, plan: &'a TablePlan, byte_order: &'static str, suffix: &'static str) -> &mut Self {
        self.list(plan.key.iter().zip(&plan.key_kinds), |s, (&i, kind)| {
            s.column(&plan.columns[i].name);
            if *kind == super::value::KeyKind::Text {
                s.push(" COLLATE ").push(byte_order);
            }
            s.push(suffix);
        })
    }

    fn key_value(&mut self, key: &'a Key) -> &mut Self {
        let many = key.0.len() > 1;
        if many {
            self.push("(");
        }
        self.list(&key.0, |s, p| {
            s.pieces.push(Piece::Key(p));
        });
        if many {
            self.push(")");
        }
        self
    }

    /// ` WHERE key > after AND key <= upto` (each only when given).
    fn range(&mut self, plan: &'a TablePlan, range: &KeyRange<'a>, byte_order: &'static str) -> &mut Self {
        let mut first = true;
        for (bound, op) in [(range.after, " > "), (range.upto, " <= ")] {
            if let Some(key) = bound {
                self.push(if first { " WHERE " } else { " AND " });
                first = false;
                self.key_expr(plan, byte_order).push(op).key_value(key);
            }
        }
        self
    }
}

/// Rows with `after < key <= upto` (each bound optional), at most `limit`, in key order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyRange<'a> {
    pub(crate) after: Option<&'a Key>,
    pub(crate) upto: Option<&'a Key>,
    pub(crate) limit: Option<i64>,
}

/// The classes a [`select`] returns, in order: the columns', then one integer per orphan check.
pub(crate) fn select_classes(plan: &TablePlan, side: Side) -> Vec<Class> {
    let checks = if side == Side::Source { plan.orphan_checks.len() } else { 0 };
    plan.columns.iter().map(|c| c.class(side)).chain(std::iter::repeat_n(Class::Integer { bits: 64 }, checks)).collect()
}

/// `SELECT` of every planned column of `range`, in key order; on the source, followed by one `0`/`1` per
/// orphan check (1: the row references a parent row that does not exist).
pub(crate) fn select<'a>(plan: &'a TablePlan, side: Side, range: &KeyRange<'a>, byte_order: &'static str) -> Sql<'a> {
    let mut sql = Sql::default();
    sql.push("SELECT ");
    sql.list(plan.column_names(), |s, name| {
        s.column(name);
    });
    if side == Side::Source {
        for check in &plan.orphan_checks {
            // 1 when every referencing column is set and no parent row matches them.
            sql.push(", CASE WHEN ");
            for (n, &i) in check.columns.iter().enumerate() {
                sql.push(if n > 0 { " AND " } else { "" }).column(&plan.columns[i].name).push(" IS NOT NULL");
            }
            sql.push(" AND NOT EXISTS (SELECT 1 FROM ").ident(&check.parent).push(" p WHERE ");
            for (n, (&i, parent)) in check.columns.iter().zip(&check.parent_columns).enumerate() {
                sql.push(if n > 0 { " AND " } else { "" })
                    .push("p.")
                    .ident(parent)
                    .push(" = ")
                    .column(&plan.columns[i].name);
            }
            sql.push(") THEN 1 ELSE 0 END");
        }
    }
    sql.push(" FROM ").ident(&plan.name).push(" ").push(ALIAS);
    sql.range(plan, range, byte_order).push(" ORDER BY ").key_list(plan, byte_order, "");
    if let Some(limit) = range.limit {
        sql.push(" LIMIT ").int(limit);
    }
    sql
}

/// The key columns of the last row of `range` (the largest key).
pub(crate) fn last_key<'a>(plan: &'a TablePlan, range: &KeyRange<'a>, byte_order: &'static str) -> Sql<'a> {
    let mut sql = Sql::default();
    sql.push("SELECT ").list(plan.key_names(), |s, name| {
        s.column(name);
    });
    sql.push(" FROM ").ident(&plan.name).push(" ").push(ALIAS);
    // Descending on each column: the key order reversed.
    sql.range(plan, range, byte_order).push(" ORDER BY ").key_list(plan, byte_order, " DESC").push(" LIMIT 1");
    sql
}

/// `SELECT count(*)` of `range`.
pub(crate) fn count<'a>(plan: &'a TablePlan, range: &KeyRange<'a>, byte_order: &'static str) -> Sql<'a> {
    let mut sql = Sql::default();
    sql.push("SELECT count(*) FROM ").ident(&plan.name).push(" ").push(ALIAS);
    sql.range(plan, range, byte_order);
    sql
}

#[cfg(feature = "jsonl")]
/// `SELECT` of every planned column of the rows with these keys (no orphan checks), in key order.
pub(crate) fn lookup<'a>(plan: &'a TablePlan, keys: &'a [Key], byte_order: &'static str) -> Sql<'a> {
    let mut sql = Sql::default();
    sql.push("SELECT ");
    sql.list(plan.column_names(), |s, name| {
        s.column(name);
    });
    sql.push(" FROM ").ident(&plan.name).push(" ").push(ALIAS).push(" WHERE ");
    // Plain equality: no collation needed, and the primary key's index serves it.
    let many = plan.key.len() > 1;
    if many {
        sql.push("(");
    }
    sql.list(plan.key_names(), |s, name| {
        s.column(name);
    });
    if many {
        sql.push(")");
    }
    sql.push(" IN (").list(keys, |s, key| {
        s.key_value(key);
    });
    sql.push(") ORDER BY ").key_list(plan, byte_order, "");
    sql
}

/// `INSERT INTO "t" (...) [OVERRIDING SYSTEM VALUE] VALUES (...), ... ON CONFLICT (key) DO NOTHING`.
pub(crate) fn insert<'a, R: AsRef<[Value]>>(plan: &'a TablePlan, rows: &'a [R], overriding: bool) -> Sql<'a> {
    let mut sql = Sql::default();
    sql.push("INSERT INTO ").ident(&plan.name).push(" (").list(plan.column_names(), |s, name| {
        s.ident(name);
    });
    sql.push(")");
    if overriding {
        sql.push(" OVERRIDING SYSTEM VALUE");
    }
    sql.push(" VALUES ");
    sql.list(rows, |s, row| {
        s.push("(").list(row.as_ref().iter().zip(&plan.columns), |s, (v, c)| {
            s.value(v, c.target);
        });
        s.push(")");
    });
    sql.push(" ON CONFLICT (").list(plan.key_names(), |s, name| {
        s.ident(name);
    });
    sql.push(") DO NOTHING");
    sql
}

#[cfg(feature = "pg")]
/// Whether any row has a key in `lo..=hi`: `SELECT EXISTS (...)`.
pub(crate) fn any_between<'a>(plan: &'a TablePlan, lo: &'a Key, hi: &'a Key, byte_order: &'static str) -> Sql<'a> {
    let mut sql = Sql::default();
    sql.push("SELECT CASE WHEN EXISTS (SELECT 1 FROM ").ident(&plan.name).push(" ").push(ALIAS).push(" WHERE ");
    sql.key_expr(plan, byte_order).push(" >= ").key_value(lo).push(" AND ");
    sql.key_expr(plan, byte_order).push(" <= ").key_value(hi).push(") THEN 1 ELSE 0 END");
    sql
}
