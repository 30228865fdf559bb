//! Tests against real SQLite databases, with sqlite-vec compiled in (default features) or not.

#[path = "../common/mod.rs"]
mod common;

mod any_table;
mod bad_input;
mod codes;
mod connection;
mod diesel_cli;
mod divided_scan;
mod dsl;
mod full_disk;
#[cfg(feature = "sqlite-vec")]
mod index;
#[cfg(feature = "sqlite-vec")]
mod interop;
mod migrations;
mod round_trip;
mod search;
mod search_any;
mod search_types;
mod vector_types;
mod versions;

use std::sync::RwLock;

use diesel::connection::SimpleConnection;
use diesel::SqliteConnection;

/// Registering or removing the sqlite-vec auto-extension changes what every connection opened
/// afterwards gets. Tests open connections under the read lock; the test that toggles the extension
/// holds the write lock.
pub static EXTENSION_REGISTRATION: RwLock<()> = RwLock::new(());

/// An in-memory database set up by the crate.
pub fn conn() -> SqliteConnection {
    let _guard = EXTENSION_REGISTRATION.read().unwrap();
    diesel_vector::sqlite::establish(":memory:").unwrap()
}

/// An in-memory database with an `items` table matching [`items`].
pub fn conn_with_items() -> SqliteConnection {
    let mut conn = conn();
    conn.batch_execute("CREATE TABLE items (id INTEGER PRIMARY KEY, embedding BLOB)").unwrap();
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
