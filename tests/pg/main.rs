//! Tests against a real PostgreSQL with pgvector. They need `PG_DATABASE_URL` (or a postgres
//! `DATABASE_URL`) and fail, never skip, without one: `scripts/test.sh` provisions a server.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod diesel_cli;
mod interop;
mod migrations;
mod round_trip;
mod search;

use std::sync::Once;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// A connection inside a test transaction (rolled back at the end), with pgvector created.
pub fn conn() -> PgConnection {
    static EXTENSION: Once = Once::new();
    let url = common::pg_url();
    EXTENSION.call_once(|| {
        let mut conn = PgConnection::establish(&url).unwrap();
        conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").unwrap();
    });
    let mut conn = PgConnection::establish(&url).unwrap();
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

/// A database of its own for tests that migrate (outside any test transaction); dropped at the end.
pub struct FreshDb {
    pub url: String,
    name: String,
}

impl FreshDb {
    pub fn create() -> Self {
        Self::owned_by(None)
    }

    /// A database owned by `owner` (a role name), or by the connecting superuser.
    pub fn owned_by(owner: Option<&str>) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("dv_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::establish(&common::pg_url()).unwrap();
        let owner = owner.map(|o| format!(" OWNER {o}")).unwrap_or_default();
        admin.batch_execute(&format!("CREATE DATABASE {name}{owner}")).unwrap();
        Self { url: with_database(&common::pg_url(), &name), name }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&common::pg_url()) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    match query {
        Some(q) => format!("{scheme}://{host}/{database}?{q}"),
        None => format!("{scheme}://{host}/{database}"),
    }
}

/// `url` connecting as `user` with `password`.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}
