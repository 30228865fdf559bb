//! Throwaway PostgreSQL databases: one per run (KNN) or per repetition (migrations), dropped afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use crate::db_harness::BoxError;

/// The server to use: `PG_DATABASE_URL`, else a `postgres` `DATABASE_URL`. The role must be able to create
/// databases and the pgvector extension.
pub fn server_url() -> Option<String> {
    std::env::var("PG_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|url| url.starts_with("postgres"))
}

/// A database of its own, dropped (with `FORCE`) when this value is.
#[derive(Debug)]
pub struct FreshDb {
    pub url: String,
    name: String,
    server: String,
}

impl FreshDb {
    /// Creates `bench_<label>_<pid>_<n>` on the server at `server`.
    ///
    /// # Errors
    ///
    /// Connecting or `CREATE DATABASE` failed.
    pub fn create(server: &str, label: &str) -> Result<Self, BoxError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("bench_{label}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        PgConnection::establish(server)?.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(Self { url: with_database(server, &name), name, server: server.to_owned() })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to it.
    ///
    /// # Errors
    ///
    /// Connecting failed.
    pub fn conn(&self) -> Result<PgConnection, BoxError> {
        Ok(PgConnection::establish(&self.url)?)
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.server) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    match query {
        Some(q) => format!("{scheme}://{host}/{database}?{q}"),
        None => format!("{scheme}://{host}/{database}"),
    }
}
