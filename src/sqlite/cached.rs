//! Statements written at run time that Diesel keeps prepared.
//!
//! Diesel prepares a `sql_query` again on every call (it cannot know whether the text will be the same), and
//! a search on SQLite runs a few such statements before it reads a row: whether the index's tables exist, its
//! state and generations, the table's columns, the database's file. [`CachedSql`] says the text may be cached:
//! Diesel then keeps the prepared statement per connection, keyed by the text, so each one is prepared once
//! per connection and index. Names are quoted into the text (one statement per index); values are binds.

use std::borrow::Cow;

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Text};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;

use crate::exec::Rows;

/// SQL text and binds, in order; run it with [`CachedSql::rows`] and Diesel's `RunQueryDsl` (rows read by
/// name, as from `sql_query`).
pub(crate) struct CachedSql<'a> {
    pieces: Vec<Piece<'a>>,
}

enum Piece<'a> {
    Sql(Cow<'a, str>),
    Text(&'a str),
    Int(i64),
    Blob(&'a [u8]),
}

impl<'a> CachedSql<'a> {
    /// The statement's text up to its first bind (or all of it).
    pub(crate) fn sql(sql: impl Into<Cow<'a, str>>) -> Self {
        CachedSql { pieces: vec![Piece::Sql(sql.into())] }
    }

    /// A text bind (`?`) here, then `sql`.
    pub(crate) fn bind_text(mut self, value: &'a str, sql: impl Into<Cow<'a, str>>) -> Self {
        self.pieces.push(Piece::Text(value));
        self.pieces.push(Piece::Sql(sql.into()));
        self
    }

    /// An integer bind (`?`) here, then `sql`.
    pub(crate) fn bind_i64(mut self, value: i64, sql: impl Into<Cow<'a, str>>) -> Self {
        self.pieces.push(Piece::Int(value));
        self.pieces.push(Piece::Sql(sql.into()));
        self
    }

    /// A BLOB bind (`?`) here, then `sql`.
    pub(crate) fn bind_blob(mut self, value: &'a [u8], sql: impl Into<Cow<'a, str>>) -> Self {
        self.pieces.push(Piece::Blob(value));
        self.pieces.push(Piece::Sql(sql.into()));
        self
    }

    /// The query, its rows read by column name.
    pub(crate) fn rows(self) -> Rows<Self> {
        Rows(self)
    }
}

impl QueryId for CachedSql<'_> {
    type QueryId = ();
    // The text is the cache key.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Sqlite> for CachedSql<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        for piece in &self.pieces {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Text(value) => out.push_bind_param::<Text, _>(value)?,
                Piece::Int(value) => out.push_bind_param::<BigInt, _>(value)?,
                Piece::Blob(value) => out.push_bind_param::<Binary, _>(value)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};
    use diesel::SqliteConnection;
    use std::sync::{Arc, Mutex};

    use super::CachedSql;

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    struct Prepared(Arc<Mutex<Vec<String>>>);

    impl Instrumentation for Prepared {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                self.0.lock().unwrap().push(sql.to_owned());
            }
        }
    }

    #[test]
    fn a_statement_is_prepared_once_per_connection_and_text_and_binds_its_values() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let cached = Arc::new(Mutex::new(Vec::new()));
        conn.set_instrumentation(Prepared(Arc::clone(&cached)));
        // A hostile name, quoted into the text; the value is a bind.
        conn.batch_execute(
            r#"CREATE TABLE "a?b""" (name TEXT, n INTEGER); INSERT INTO "a?b""" VALUES ('x', 1), ('y', 2)"#,
        )
        .unwrap();
        for name in ["x", "y", "x"] {
            let rows: Vec<Row> = CachedSql::sql(r#"SELECT name, n FROM "a?b""" WHERE name = "#)
                .bind_text(name, " ORDER BY n")
                .rows()
                .load(&mut conn)
                .unwrap();
            assert_eq!(rows, [Row { name: name.to_owned(), n: if name == "x" { 1 } else { 2 } }]);
        }
        assert_eq!(cached.lock().unwrap().len(), 1, "{:?}", cached.lock().unwrap());
    }

    #[test]
    fn integer_and_blob_binds_are_values_of_their_type() {
        #[derive(QueryableByName, Debug, PartialEq)]
        struct Typed {
            #[diesel(sql_type = Text)]
            n: String,
            #[diesel(sql_type = Text)]
            b: String,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let cached = Arc::new(Mutex::new(Vec::new()));
        conn.set_instrumentation(Prepared(Arc::clone(&cached)));
        for (n, bytes) in [(i64::MIN, &b"\x00'?"[..]), (42, &b""[..])] {
            let row: Typed = CachedSql::sql("SELECT typeof(")
                .bind_i64(n, ") || ':' || ")
                .bind_i64(n, " AS n, typeof(")
                .bind_blob(bytes, ") || ':' || hex(")
                .bind_blob(bytes, ") AS b")
                .rows()
                .get_result(&mut conn)
                .unwrap();
            let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            assert_eq!(row, Typed { n: format!("integer:{n}"), b: format!("blob:{hex}") });
        }
        assert_eq!(cached.lock().unwrap().len(), 1, "{:?}", cached.lock().unwrap());
    }
}
