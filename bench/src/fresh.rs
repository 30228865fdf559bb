//! Fresh databases for every timed run: PostgreSQL databases created (from a prepared template) and
//! dropped on the server named by `PG_DATABASE_URL`, and SQLite files in a private directory.
//!
//! Every name starts with `dvload_` and the process id, so two reports on one server never collide, and
//! whatever a run creates it removes, also when it fails ([`Drop`]).

use std::cell::RefCell;
use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;

/// The PostgreSQL server the report runs against, through a superuser URL (creating pgvector needs one).
pub struct PgServer {
    url: String,
    prefix: String,
    created: RefCell<Vec<String>>,
}

impl PgServer {
    /// The server of `PG_DATABASE_URL` (falling back to `DATABASE_URL`, as the tests do).
    pub fn from_env() -> Result<Self, String> {
        let url = std::env::var("PG_DATABASE_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .map_err(|_| "set PG_DATABASE_URL to a PostgreSQL superuser URL (pgvector installed)".to_owned())?;
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(format!("PG_DATABASE_URL is not a postgres:// URL: {url}"));
        }
        Ok(Self { url, prefix: format!("dvload_{}", std::process::id()), created: RefCell::new(Vec::new()) })
    }

    /// A database name of this process: `dvload_<pid>_<what>`.
    pub fn name(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        with_database(&self.url, name)
    }

    fn admin(&self) -> Result<PgConnection, String> {
        PgConnection::establish(&self.url).map_err(|e| format!("connecting to {}: {e}", self.url))
    }

    /// Creates database `name`, a copy of `template` (or an empty one), and returns its URL.
    pub fn create(&self, name: &str, template: Option<&str>) -> Result<String, String> {
        let mut admin = self.admin()?;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        admin.batch_execute(&sql).map_err(|e| format!("{sql}: {e}"))?;
        self.created.borrow_mut().push(name.to_owned());
        Ok(self.url(name))
    }

    /// Drops database `name` (closing anything still connected to it).
    pub fn drop_database(&self, name: &str) -> Result<(), String> {
        let mut admin = self.admin()?;
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        admin.batch_execute(&sql).map_err(|e| format!("{sql}: {e}"))?;
        self.created.borrow_mut().retain(|n| n != name);
        Ok(())
    }

    /// Writes every dirty buffer out, so that a timed run does not pay for the previous run's writes.
    pub fn checkpoint(&self) -> Result<(), String> {
        self.admin()?.batch_execute("CHECKPOINT").map_err(|e| format!("CHECKPOINT: {e}"))
    }

    /// The installed version of extension `name` in the server's default database, or `not installed`.
    pub fn extension_version(&self, name: &str) -> String {
        #[derive(QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        self.admin()
            .ok()
            .and_then(|mut c| {
                diesel::sql_query("SELECT default_version AS version FROM pg_available_extensions WHERE name = $1")
                    .bind::<diesel::sql_types::Text, _>(name)
                    .get_result::<Version>(&mut c)
                    .ok()
            })
            .map_or_else(|| "not installed".to_owned(), |v| v.version)
    }

    /// `SHOW name` on the server.
    pub fn setting(&self, name: &str) -> String {
        #[derive(QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        self.admin()
            .ok()
            .and_then(|mut c| {
                diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
                    .get_result::<Setting>(&mut c)
                    .ok()
            })
            .map_or_else(|| "unknown".to_owned(), |s| s.value)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        for name in self.created.take() {
            let _ = self.drop_database(&name);
        }
    }
}

/// Flushes every file's dirty pages to disk (`sync`), so that the write-back of one run's files does not
/// throttle the next run. Best effort.
pub fn sync() {
    let _ = std::process::Command::new("sync").status();
}

/// `url` with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A private directory for SQLite files, removed with everything in it on drop.
pub struct ScratchDir {
    dir: PathBuf,
}

impl ScratchDir {
    /// A new directory under the system's temporary directory (`TMPDIR`).
    pub fn new() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("dvload_{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    /// The path of file `name` in the directory, as a string.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// Removes an SQLite database and its `-wal` / `-shm` / `-journal` files.
    pub fn remove_db(&self, path: &str) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }

    /// Copies the database at `from` (closed, checkpointed) to a new file `to`.
    pub fn copy_db(&self, from: &str, to: &str) -> Result<(), String> {
        self.remove_db(to);
        std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copying {from} to {to}: {e}"))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
