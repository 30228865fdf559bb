//! The migration runner's SQLite side: an immediate transaction as the lock, the rehearsal in an
//! in-memory database, catalog reads, and the vec0 index tables that SQL migrations cannot manage.

use std::sync::OnceLock;

use diesel::migration::Migration;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;
use diesel_migrations::MigrationHarness;
use tracing::warn;

use super::index;
use super::transaction::{self, SavepointError};
use crate::index::{registry, IndexSpec};
use crate::migrations::backend::Runner;
use crate::migrations::shape::{
    Catalog, FoundColumn, Object, Real, Rehearsal, RehearsalFailure, Shape, Snapshot, Stage, TableShape, BOOKKEEPING,
};
use crate::migrations::{
    embedded_versions, sealed, sorted, MigrationError, MigrationTarget, VectorSupport, BOOKKEEPING_TABLE,
    SQLITE_MIGRATIONS,
};
use diesel::connection::SimpleConnection;

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
    #[diesel(sql_type = Text, column_name = "type")]
    ty: String,
    #[diesel(sql_type = Bool, column_name = "notnull")]
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

#[derive(QueryableByName)]
struct MasterRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    owner: String,
    #[diesel(sql_type = Nullable<Text>)]
    sql: Option<String>,
}

#[derive(QueryableByName)]
struct IndexFlags {
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Bool)]
    partial: bool,
}

#[derive(QueryableByName)]
struct IndexKey {
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Bool)]
    descending: bool,
    #[diesel(sql_type = Nullable<Text>)]
    coll: Option<String>,
}

impl sealed::Sealed for SqliteConnection {}

impl MigrationTarget for SqliteConnection {}

/// SQLite's runner is sync code (an async application runs it on a blocking thread): each future below
/// completes when first polled.
impl Runner for SqliteConnection {
    type Db = Sqlite;
    type Migration = dyn Migration<Sqlite>;
    const BACKEND: &'static str = "sqlite";

    fn own_migrations() -> Result<Vec<Box<dyn Migration<Sqlite>>>, MigrationError> {
        sorted(&SQLITE_MIGRATIONS)
    }

    fn own_versions() -> Result<&'static [String], MigrationError> {
        static VERSIONS: OnceLock<Vec<String>> = OnceLock::new();
        embedded_versions::<Sqlite>(&SQLITE_MIGRATIONS, &VERSIONS)
    }

    async fn vector_support(&mut self) -> Result<VectorSupport, MigrationError> {
        // Migrations need no extension on SQLite (none may name vec0); `after_run` warns when the
        // indexes they register would want sqlite-vec.
        Ok(VectorSupport::Ready)
    }

    async fn try_create_vector(&mut self) -> Result<(), String> {
        Ok(())
    }

    async fn has_objects(&mut self) -> Result<bool, MigrationError> {
        let row: Exists = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 AND name NOT IN ('__diesel_schema_migrations', '__diesel_vector_indexes')) AS \"exists\"",
        )
        .get_result(self)?;
        Ok(row.exists)
    }

    async fn rehearse(
        &mut self,
        applied: &[&Self::Migration],
        pending: &[&Self::Migration],
    ) -> Result<Rehearsal, MigrationError> {
        // An in-memory database with the crate's SQL functions (the registration is not touched: opening
        // it must not change what later connections get).
        let mut scratch = SqliteConnection::establish(":memory:")?;
        super::ConnectionOptions::default().wal(false).apply(&mut scratch)?;
        for migration in applied {
            if let Err(e) = migration.run(&mut scratch) {
                return Ok(Rehearsal {
                    stages: Vec::new(),
                    failure: Some(RehearsalFailure {
                        migration: migration.name().to_string(),
                        replayed: true,
                        message: e.to_string(),
                    }),
                });
            }
        }
        let mut rehearsal = Rehearsal { stages: vec![stage(&mut scratch)?], failure: None };
        for migration in pending {
            match migration.run(&mut scratch) {
                Ok(()) => rehearsal.stages.push(stage(&mut scratch)?),
                Err(e) => {
                    rehearsal.failure = Some(RehearsalFailure {
                        migration: migration.name().to_string(),
                        replayed: false,
                        message: e.to_string(),
                    });
                    break;
                }
            }
        }
        Ok(rehearsal)
    }

    async fn real_state(&mut self) -> Result<Real, MigrationError> {
        Ok(Real { objects: snapshot(self)?, registry: registry::load(self).map_err(MigrationError::Registry)? })
    }

    async fn lock(&mut self) -> Result<(), MigrationError> {
        // BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so concurrent
        // runners see each other's bookkeeping. Each migration runs in its own savepoint inside; the
        // transaction commits whatever succeeded, also when a later migration failed and rolled back.
        // When SQLite ends the transaction itself (a full disk), the commit in `unlock` fails too: the
        // migration's own error, returned first, says more.
        Ok(transaction::begin_top(self, "BEGIN IMMEDIATE")?)
    }

    async fn unlock(&mut self) -> Result<(), MigrationError> {
        transaction::end_top(self, Ok(()))
    }

    async fn applied_versions(&mut self) -> Result<Vec<String>, MigrationError> {
        if !self.exists(BOOKKEEPING_TABLE)? {
            return Ok(Vec::new());
        }
        Ok(self.recorded_versions()?)
    }

    async fn adopt(&mut self, version: &str, register: &[IndexSpec]) -> Result<(), MigrationError> {
        transaction::deferred(self, |conn| {
            if !register.is_empty() {
                SimpleConnection::batch_execute(conn, &registry::create_table_sql())?;
                for spec in register {
                    SimpleConnection::batch_execute(conn, &registry::insert_sql(spec))?;
                }
            }
            record_applied(conn, version)
        })
    }

    async fn run_one(&mut self, migration: &Self::Migration) -> diesel::migration::Result<()> {
        // Diesel's harness, in a savepoint of the crate's own: Diesel's would replace a full disk's
        // error with its failed rollback's.
        MigrationHarness::<Sqlite>::applied_migrations(self)?;
        let version = migration.name().version().to_string();
        let apply = |conn: &mut Self| -> diesel::migration::Result<()> {
            migration.run(conn)?;
            diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES (?)")
                .bind::<Text, _>(&version)
                .execute(conn)?;
            Ok(())
        };
        if migration.metadata().run_in_transaction() {
            transaction::savepoint(self, apply).map_err(SavepointError::into_inner)
        } else {
            apply(self)
        }
    }

    async fn revert_one(&mut self, migration: &Self::Migration) -> diesel::migration::Result<()> {
        let version = migration.name().version().to_string();
        let revert = |conn: &mut Self| -> diesel::migration::Result<()> {
            migration.revert(conn)?;
            diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = ?")
                .bind::<Text, _>(&version)
                .execute(conn)?;
            Ok(())
        };
        if migration.metadata().run_in_transaction() {
            transaction::savepoint(self, revert).map_err(SavepointError::into_inner)
        } else {
            revert(self)
        }
    }

    async fn registered_indexes(&mut self) -> Result<Vec<IndexSpec>, MigrationError> {
        registry::load(self).map_err(MigrationError::Registry)
    }

    async fn after_revert(&mut self, removed: &[IndexSpec]) -> Result<(), MigrationError> {
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

    async fn after_run(&mut self) -> Result<(), MigrationError> {
        if super::sqlite_vec_version(self)?.is_some() {
            return Ok(());
        }
        let wanting: Vec<String> = registry::load(self)
            .map_err(MigrationError::Registry)?
            .into_iter()
            .filter(|s| s.sqlite_index().vec0 && !s.sqlite_keeps_codes())
            .map(|s| s.name().to_owned())
            .collect();
        if !wanting.is_empty() {
            warn!(
                target: "diesel_vector::migrations",
                backend = "sqlite",
                "sqlite-vec is not loaded on this connection: migrations ran as usual, but searches on {} fall back \
                 to an exact scan until a connection with sqlite-vec builds its vec0 table",
                wanting.join(", ")
            );
        }
        Ok(())
    }
}

/// Records `version` as applied without running it (in the caller's transaction).
fn record_applied(conn: &mut SqliteConnection, version: &str) -> Result<(), MigrationError> {
    MigrationHarness::<Sqlite>::applied_migrations(conn).map_err(MigrationError::Harness)?;
    diesel::sql_query("INSERT OR IGNORE INTO __diesel_schema_migrations (version) VALUES (?)")
        .bind::<Text, _>(version)
        .execute(conn)?;
    Ok(())
}

/// The scratch database as it stands.
fn stage(conn: &mut SqliteConnection) -> Result<Stage, MigrationError> {
    Ok(Stage {
        objects: snapshot(conn)?,
        copies: Snapshot::new(),
        outside: Default::default(),
        registry: registry::load(conn).map_err(MigrationError::Registry)?,
    })
}

/// Every object of the main database that adoption compares: tables (virtual ones aside, which only
/// their module can describe), indexes made by `CREATE INDEX`, triggers and views; Diesel's bookkeeping
/// and the registry aside.
fn snapshot(conn: &mut SqliteConnection) -> QueryResult<Snapshot> {
    let rows: Vec<MasterRow> = diesel::sql_query(
        "SELECT type AS kind, name, tbl_name AS owner, sql FROM main.sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    )
    .load(conn)?;
    let mut snapshot = Snapshot::new();
    for row in rows {
        if BOOKKEEPING.contains(&row.owner.as_str()) {
            continue;
        }
        let sql = row.sql.unwrap_or_default();
        match row.kind.as_str() {
            "table" if !sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE") => {
                let mut unique = conn.unique_keys(&row.name)?;
                unique.sort();
                let shape = TableShape { columns: conn.columns(&row.name)?, unique };
                snapshot.insert(Object::Table(row.name), Shape::Table(shape));
            }
            // Indexes without SQL are a constraint's (UNIQUE, PRIMARY KEY): unique keys of their table.
            "index" if !sql.is_empty() => {
                let definition = index_definition(conn, &row.owner, &row.name)?;
                snapshot.insert(Object::Index { table: row.owner, name: row.name }, Shape::Index(definition));
            }
            "trigger" => {
                snapshot.insert(Object::Trigger { table: row.owner, name: row.name }, Shape::Exists);
            }
            "view" => {
                snapshot.insert(Object::Other { kind: "view", name: row.name }, Shape::Exists);
            }
            _ => {}
        }
    }
    Ok(snapshot)
}

/// `unique (a, b desc) partial`: an index's keys (expressions as `<expression>`) and flags.
fn index_definition(conn: &mut SqliteConnection, table: &str, index: &str) -> QueryResult<String> {
    let flags: Option<IndexFlags> =
        diesel::sql_query("SELECT \"unique\" AS is_unique, partial FROM pragma_index_list(?) WHERE name = ?")
            .bind::<Text, _>(table)
            .bind::<Text, _>(index)
            .get_result(conn)
            .optional()?;
    let keys: Vec<IndexKey> = diesel::sql_query(
        "SELECT name, \"desc\" AS descending, coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno",
    )
    .bind::<Text, _>(index)
    .load(conn)?;
    let keys: Vec<String> = keys
        .into_iter()
        .map(|k| {
            let mut key = k.name.unwrap_or_else(|| "<expression>".to_owned());
            if k.descending {
                key.push_str(" desc");
            }
            if let Some(coll) = k.coll.filter(|c| !c.eq_ignore_ascii_case("BINARY")) {
                key.push_str(&format!(" collate {coll}"));
            }
            key
        })
        .collect();
    let (unique, partial) = flags.map_or((false, false), |f| (f.is_unique, f.partial));
    Ok(format!("{}({}){}", if unique { "unique " } else { "" }, keys.join(", "), if partial { " partial" } else { "" }))
}

impl Catalog for SqliteConnection {
    fn recorded_versions(&mut self) -> QueryResult<Vec<String>> {
        let rows: Vec<Recorded> =
            diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version").load(self)?;
        Ok(rows.into_iter().map(|r| r.version).collect())
    }

    fn exists(&mut self, object: &str) -> QueryResult<bool> {
        let row: Exists = super::cached::CachedSql::sql("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ")
            .bind_text(object, ") AS \"exists\"")
            .rows()
            .get_result(self)?;
        Ok(row.exists)
    }

    /// `PRAGMA table_info`, prepared once per connection and table: the table-valued `pragma_table_info(?)`
    /// prepares that same pragma anew inside SQLite on every call (58 us of a 0.85 ms search at 100k rows,
    /// BENCHMARKS.md). The prepared pragma verifies the schema cookies when it runs, so a table altered since
    /// (on any connection) makes SQLite prepare it again: it never answers with columns that are gone.
    fn columns(&mut self, table: &str) -> QueryResult<Vec<FoundColumn>> {
        let rows: Vec<SqliteColumn> =
            super::cached::CachedSql::sql(format!("PRAGMA table_info({})", crate::index::quote(table)))
                .rows()
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
