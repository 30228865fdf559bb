//! Tests against a real PostgreSQL with pgvector. They need `PG_DATABASE_URL` (or a postgres
//! `DATABASE_URL`) and fail, never skip, without one: `scripts/test.sh` provisions a server.

#[path = "../common/mod.rs"]
mod common;

mod any_table;
mod bad_input;
mod diesel_cli;
mod dsl;
mod interop;
mod migrations;
mod round_trip;
mod search;
mod search_any;
mod search_types;
mod vector_types;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// A connection inside a test transaction (rolled back at the end), with pgvector created.
pub fn conn() -> PgConnection {
    let mut conn = common::pg::shared_conn_with_pgvector();
    conn.begin_test_transaction().unwrap();
    conn
}

/// A connection with an `items` table (in the test transaction) matching [`items`].
pub fn conn_with_items() -> PgConnection {
    let mut conn = conn();
    conn.batch_execute("CREATE TEMPORARY TABLE items (id integer PRIMARY KEY, embedding vector)").unwrap();
    conn
}

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    items (id) {
        id -> Integer,
        embedding -> Nullable<Vector>,
    }
}

pub use common::pg::{with_user, FreshDb};
