//! The migration runner's SQLite side: an immediate transaction as the lock, catalog reads, and the
//! vec0 index table that SQL migrations cannot manage.

use std::sync::OnceLock;

use diesel::migration::Migration;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;
use diesel_migrations::MigrationHarness;
use tracing::warn;

use super::index;
use crate::migrations::shape::{Catalog, Column, Creates, FoundColumn, Table};
use crate::migrations::{embedded_versions, sealed, sorted, MigrationError, MigrationTarget, SQLITE_MIGRATIONS};

/// What each SQLite migration creates, in declared-type spelling. `INTEGER PRIMARY KEY` columns are
/// reported nullable by SQLite's catalog, whatever they hold.
const CREATES: &[Creates] = &[
    Creates {
        migration: "create_fragments",
        tables: &[Table {
            name: "fragments",
            columns: &[
                Column { name: "id", ty: "INTEGER", not_null: false },
                Column { name: "content", ty: "TEXT", not_null: true },
                Column { name: "created_at", ty: "DATETIME", not_null: false },
                Column { name: "updated_at", ty: "DATETIME", not_null: false },
            ],
            unique: &[],
        }],
        others: &[],
    },
    Creates {
        migration: EMBEDDINGS_MIGRATION,
        tables: &[Table {
            name: "fragment_embeddings",
            columns: &[
                Column { name: "id", ty: "INTEGER", not_null: false },
                Column { name: "fragment_id", ty: "INTEGER", not_null: true },
                Column { name: "provider", ty: "TEXT", not_null: true },
                Column { name: "model", ty: "TEXT", not_null: true },
                Column { name: "dims", ty: "INTEGER", not_null: true },
                Column { name: "embedding", ty: "BLOB", not_null: false },
                Column { name: "content_hash", ty: "TEXT", not_null: true },
                Column { name: "created_at", ty: "DATETIME", not_null: false },
                Column { name: "updated_at", ty: "DATETIME", not_null: false },
            ],
            unique: &[&["fragment_id", "provider", "model", "content_hash"]],
        }],
        others: &[
            "fragment_embeddings_idx_queue",
            "fragment_embeddings_idx_state",
            "fragment_embeddings_idx_insert",
            "fragment_embeddings_idx_update",
            "fragment_embeddings_idx_delete",
        ],
    },
];

const EMBEDDINGS_MIGRATION: &str = "create_fragment_embeddings";

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
}

#[derive(QueryableByName)]
struct IndexName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

impl sealed::Sealed for SqliteConnection {}

impl MigrationTarget for SqliteConnection {
    type Db = Sqlite;
    const CREATES: &'static [Creates] = CREATES;
    const BACKEND: &'static str = "sqlite";

    fn migrations() -> Result<Vec<Box<dyn Migration<Sqlite>>>, MigrationError> {
        sorted(&SQLITE_MIGRATIONS)
    }

    fn versions() -> Result<&'static [String], MigrationError> {
        static VERSIONS: OnceLock<Vec<String>> = OnceLock::new();
        embedded_versions::<Sqlite>(&SQLITE_MIGRATIONS, &VERSIONS)
    }

    fn preflight(&mut self) -> Result<(), MigrationError> {
        if super::sqlite_vec_version(self)?.is_none() {
            warn!(
                target: "diesel_vector::migrations",
                backend = "sqlite",
                "sqlite-vec is not loaded on this connection: migrations run as usual, but vector searches \
                 fall back to an exact scan until a connection with sqlite-vec builds the index"
            );
        }
        Ok(())
    }

    fn locked<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, MigrationError>) -> Result<R, MigrationError> {
        // BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so concurrent
        // runners see each other's bookkeeping. Each migration runs in its own savepoint inside; the
        // transaction commits whatever succeeded, also when a later migration failed and rolled back.
        let mut outcome = None;
        self.immediate_transaction(|conn| {
            outcome = Some(f(conn));
            diesel::QueryResult::Ok(())
        })?;
        outcome.unwrap_or_else(|| unreachable!("the closure ran"))
    }

    fn record_applied(&mut self, version: &str) -> Result<(), MigrationError> {
        MigrationHarness::<Sqlite>::applied_migrations(self).map_err(MigrationError::Harness)?;
        diesel::sql_query("INSERT OR IGNORE INTO __diesel_schema_migrations (version) VALUES (?)")
            .bind::<Text, _>(version)
            .execute(self)?;
        Ok(())
    }

    fn registered_indexes(&mut self) -> Result<Vec<crate::index::IndexSpec>, MigrationError> {
        crate::index::registry::load(self).map_err(MigrationError::Registry)
    }

    fn after_revert(&mut self, removed: &[crate::index::IndexSpec]) -> Result<(), MigrationError> {
        // The down migration took the index out of the registry: its vec0 table (if any) would only go
        // stale, and only a connection with sqlite-vec can drop it.
        for spec in removed.iter().filter(|s| s.sqlite_index().vec0) {
            if !self.exists(spec.vec0_table())? || index::drop_vec0(self, spec)? {
                continue;
            }
            warn!(
                target: "diesel_vector::migrations",
                backend = "sqlite",
                "the vec0 table {} outlives its index because sqlite-vec is not loaded on this connection; it is \
                 rebuilt when the index's migration runs again",
                spec.vec0_table()
            );
        }
        Ok(())
    }
}

impl Catalog for SqliteConnection {
    fn recorded_versions(&mut self) -> QueryResult<Vec<String>> {
        let rows: Vec<Recorded> =
            diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version").load(self)?;
        Ok(rows.into_iter().map(|r| r.version).collect())
    }

    fn exists(&mut self, object: &str) -> QueryResult<bool> {
        let row: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?) AS \"exists\"")
            .bind::<Text, _>(object)
            .get_result(self)?;
        Ok(row.exists)
    }

    fn columns(&mut self, table: &str) -> QueryResult<Vec<FoundColumn>> {
        let rows: Vec<SqliteColumn> = diesel::sql_query(
            "SELECT name, type AS ty, \"notnull\" AS not_null FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<Text, _>(table)
        .load(self)?;
        Ok(rows.into_iter().map(|c| FoundColumn { name: c.name, ty: c.ty, not_null: c.not_null }).collect())
    }

    fn unique_keys(&mut self, table: &str) -> QueryResult<Vec<Vec<String>>> {
        let indexes: Vec<IndexName> = diesel::sql_query("SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1")
            .bind::<Text, _>(table)
            .load(self)?;
        let mut keys = Vec::with_capacity(indexes.len());
        for index in indexes {
            let columns: Vec<IndexName> = diesel::sql_query("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                .bind::<Text, _>(&index.name)
                .load(self)?;
            keys.push(columns.into_iter().map(|c| c.name).collect());
        }
        Ok(keys)
    }
}

/// Rows of a table, for the index module's status report.
pub(super) fn count(conn: &mut SqliteConnection, sql: &str) -> QueryResult<i64> {
    diesel::sql_query(sql).get_result::<Count>(conn).map(|c| c.count)
}
