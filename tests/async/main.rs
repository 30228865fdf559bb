//! diesel-vector on diesel-async, as an async application uses it: `AsyncPgConnection`s in a deadpool
//! (tokio-postgres, no libpq) and SQLite through `SyncConnectionWrapper`, on a multi-thread tokio runtime.
//! The PostgreSQL tests need `PG_DATABASE_URL` and fail, never skip, without one.

#[path = "../common/mod.rs"]
mod common;

mod pg;
mod search;
#[cfg(feature = "sqlite")]
mod sqlite;
mod types;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    /// The application's own table, with the column the generated index migration adds.
    documents (id) {
        id -> BigInt,
        lang -> Text,
        title -> Text,
        body -> Text,
        embedding -> Nullable<Vector>,
    }
}

/// The language of document `i`: the index's partition column.
pub fn lang(i: usize) -> &'static str {
    ["en", "fr", "de"][i % 3]
}
