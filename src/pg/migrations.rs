//! The migration runner's PostgreSQL side: whether pgvector is usable, the advisory lock, the rehearsal
//! in a scratch schema, catalog reads.
//!
//! The rehearsal runs inside a transaction that is always rolled back. It creates two schemas and puts
//! them first on the `search_path`: the scratch schema, where the migrations' SQL creates its objects,
//! and behind it empty copies (columns, defaults, checks, primary and unique keys) of every table on
//! the connection's `search_path`. So the SQL finds the tables it builds on without touching their rows
//! or taking locks that would block the application's writes, and an object that exists already does
//! not stop a `CREATE`: both are then read from the catalog and compared.

use std::sync::OnceLock;

use diesel::migration::{Migration, CREATE_MIGRATIONS_TABLE};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};

use crate::exec::{self, first, sql, transaction, Exec};
use crate::index::{quote, registry, IndexSpec};
use crate::migrations::backend::Runner;
use crate::migrations::shape::{
    merge_first_wins, FoundColumn, Object, Real, Rehearsal, RehearsalFailure, Shape, Snapshot, Stage, TableShape,
    BOOKKEEPING,
};
use crate::migrations::{embedded_versions, MigrationError, VectorSupport, BOOKKEEPING_TABLE, PG_MIGRATIONS};

/// Key of the session-level advisory lock that serialises migration runs ("dv_migr").
const LOCK_KEY: i64 = 0x0064_765f_6d69_6772;

/// The statement that releases the lock, for an async connection whose future is dropped while it
/// holds it (`src/exec.rs`); the key in decimal, checked against [`LOCK_KEY`] by a test.
const UNLOCK_SQL: &str = "SELECT pg_advisory_unlock(28277649900660594)";

/// The rehearsal's scratch schema (never committed; `diesel print-schema` skips `__` names anyway).
const SCRATCH: &str = "__dv_rehearsal";
/// The schema of the empty copies of the tables on the `search_path`, behind [`SCRATCH`].
const SCRATCH_COPIES: &str = "__dv_rehearsal_tables";

/// `... AND NOT <extension member>` for an object of catalog `class` whose oid is `oid`.
macro_rules! not_extension_member {
    ($class:literal, $oid:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '",
            $class,
            "'::regclass AND d.objid = ",
            $oid,
            " AND d.deptype = 'e')"
        )
    };
}

#[derive(QueryableByName)]
struct ExtensionState {
    #[diesel(sql_type = Bool)]
    available: bool,
    #[diesel(sql_type = Nullable<Text>)]
    schema: Option<String>,
    #[diesel(sql_type = Bool)]
    resolvable: bool,
    #[diesel(sql_type = Text)]
    search_path: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    database: String,
    #[diesel(sql_type = Bool)]
    superuser: bool,
}

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

#[cfg(any(feature = "pg", feature = "async"))]
#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
}

#[cfg(feature = "pg")]
#[derive(QueryableByName)]
struct UniqueKey {
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
}

#[derive(QueryableByName)]
struct TableColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ty: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    not_null: Option<bool>,
}

#[derive(QueryableByName)]
struct TableKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
}

#[derive(QueryableByName)]
struct Owned {
    #[diesel(sql_type = Text)]
    owner: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    detail: Option<String>,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(QueryableByName)]
struct Schemas {
    #[diesel(sql_type = Array<Text>)]
    schemas: Vec<String>,
}

#[derive(QueryableByName)]
struct PathTable {
    #[diesel(sql_type = Text)]
    schema: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Array<Text>)]
    constraints: Vec<String>,
}

/// The runner's PostgreSQL side for a connection: `PgConnection` (feature `pg`) and the crate's
/// `AsyncPgConnection` guard (feature `async`), both over the functions below.
macro_rules! pg_runner {
    ($exec:ty, $migration:ty, $own:expr) => {
        impl Runner for $exec {
            type Db = Pg;
            type Migration = $migration;
            const BACKEND: &'static str = "postgresql";

            fn own_migrations() -> Result<Vec<Box<Self::Migration>>, MigrationError> {
                $own
            }

            fn own_versions() -> Result<&'static [String], MigrationError> {
                own_versions()
            }

            async fn vector_support(&mut self) -> Result<VectorSupport, MigrationError> {
                vector_support(self).await
            }

            async fn try_create_vector(&mut self) -> Result<(), String> {
                try_create_vector(self).await
            }

            async fn has_objects(&mut self) -> Result<bool, MigrationError> {
                has_objects(self).await
            }

            async fn rehearse(
                &mut self,
                applied: &[&Self::Migration],
                pending: &[&Self::Migration],
            ) -> Result<Rehearsal, MigrationError> {
                rehearse(self, applied, pending).await
            }

            async fn real_state(&mut self) -> Result<Real, MigrationError> {
                real_state(self).await
            }

            async fn lock(&mut self) -> Result<(), MigrationError> {
                lock(self).await
            }

            async fn unlock(&mut self) -> Result<(), MigrationError> {
                unlock(self).await
            }

            async fn applied_versions(&mut self) -> Result<Vec<String>, MigrationError> {
                applied_versions(self).await
            }

            async fn adopt(&mut self, version: &str, register: &[IndexSpec]) -> Result<(), MigrationError> {
                adopt(self, version, register).await
            }

            async fn run_one(&mut self, migration: &Self::Migration) -> diesel::migration::Result<()> {
                run_one(self, migration, true).await
            }

            async fn revert_one(&mut self, migration: &Self::Migration) -> diesel::migration::Result<()> {
                run_one(self, migration, false).await
            }

            async fn registered_indexes(&mut self) -> Result<Vec<IndexSpec>, MigrationError> {
                registered_indexes(self).await
            }

            async fn after_revert(&mut self, _removed: &[IndexSpec]) -> Result<(), MigrationError> {
                Ok(())
            }
        }
    };
}

#[cfg(feature = "pg")]
impl crate::migrations::sealed::Sealed for diesel::PgConnection {}

#[cfg(feature = "pg")]
impl crate::migrations::MigrationTarget for diesel::PgConnection {}

#[cfg(feature = "pg")]
pg_runner!(diesel::PgConnection, dyn Migration<Pg>, crate::migrations::sorted(&PG_MIGRATIONS));

#[cfg(feature = "async")]
pg_runner!(
    exec::AsyncPg<'_>,
    crate::migrations::recorded::RecordedMigration<Pg>,
    Ok(crate::migrations::recorded::RecordedMigration::record_all(&PG_MIGRATIONS)?.into_iter().map(Box::new).collect())
);

fn own_versions() -> Result<&'static [String], MigrationError> {
    static VERSIONS: OnceLock<Vec<String>> = OnceLock::new();
    embedded_versions::<Pg>(&PG_MIGRATIONS, &VERSIONS)
}

async fn vector_support<E: Exec<Db = Pg>>(conn: &mut E) -> Result<VectorSupport, MigrationError> {
    // `resolvable`: the `vector` type this connection resolves by name (as Diesel does) is pgvector's.
    let state: ExtensionState = first(
        conn,
        sql("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available, \
                    n.nspname::text AS schema, \
                    coalesce(to_regtype('vector')::oid = (SELECT t.oid FROM pg_type t \
                        WHERE t.typname = 'vector' AND t.typnamespace = e.extnamespace), false) AS resolvable, \
                    current_setting('search_path') AS search_path, \
                    current_user::text AS role, current_database()::text AS database, \
                    current_setting('is_superuser') = 'on' AS superuser \
             FROM (SELECT 1) AS one \
             LEFT JOIN pg_extension e ON e.extname = 'vector' \
             LEFT JOIN pg_namespace n ON n.oid = e.extnamespace"),
    )
    .await?;
    Ok(match state.schema {
        Some(_) if state.resolvable => VectorSupport::Ready,
        Some(schema) => {
            VectorSupport::NotOnSearchPath { database: state.database, schema, search_path: state.search_path }
        }
        None if !state.available => VectorSupport::NotInstalled,
        // A superuser may create any available extension.
        None if state.superuser => VectorSupport::Ready,
        None => VectorSupport::MayNotCreate { database: state.database, role: state.role },
    })
}

async fn try_create_vector<E: Exec<Db = Pg>>(conn: &mut E) -> Result<(), String> {
    // Rehearsed like a migration: pgvector's script runs, and is rolled back.
    let message = |e: diesel::result::Error| match e {
        diesel::result::Error::DatabaseError(_, info) => info.message().to_owned(),
        e => e.to_string(),
    };
    conn.begin().await.map_err(message)?;
    let attempt = conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").await;
    let rolled_back = conn.rollback().await;
    attempt.map_err(message)?;
    rolled_back.map_err(message)
}

async fn has_objects<E: Exec<Db = Pg>>(conn: &mut E) -> Result<bool, MigrationError> {
    let row: Exists = first(
        conn,
        sql(concat!(
            "WITH s AS (SELECT oid FROM pg_namespace WHERE nspname = ANY (current_schemas(false))) \
             SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM s) \
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') \
                 AND c.relname NOT IN ('__diesel_schema_migrations', '__diesel_vector_indexes') AND ",
            not_extension_member!("pg_class", "c.oid"),
            ") OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM s) \
                 AND t.typtype IN ('e', 'd', 'r') AND ",
            not_extension_member!("pg_type", "t.oid"),
            ") OR EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM s) AND ",
            not_extension_member!("pg_proc", "p.oid"),
            ") AS exists"
        )),
    )
    .await?;
    Ok(row.exists)
}

async fn rehearse<E: Exec<Db = Pg>>(
    conn: &mut E,
    applied: &[&E::Migration],
    pending: &[&E::Migration],
) -> Result<Rehearsal, MigrationError> {
    conn.begin().await?;
    conn.batch_execute(super::END_WITH_CLIENT).await?;
    let outcome = rehearse_in_scratch(conn, applied, pending).await;
    conn.rollback().await?;
    outcome
}

async fn real_state<E: Exec<Db = Pg>>(conn: &mut E) -> Result<Real, MigrationError> {
    let path: Schemas = first(conn, sql("SELECT current_schemas(false)::text[] AS schemas")).await?;
    Ok(Real { objects: path_snapshot(conn, &path.schemas).await?, registry: registered_indexes(conn).await? })
}

async fn lock<E: Exec<Db = Pg>>(conn: &mut E) -> Result<(), MigrationError> {
    // Said before the request goes out: once sent, the server grants the lock even if no one waits.
    conn.hold(Some(UNLOCK_SQL));
    let locked = conn.execute(sql("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(LOCK_KEY)).await;
    if locked.is_err() {
        conn.hold(None);
    }
    locked?;
    Ok(())
}

async fn unlock<E: Exec<Db = Pg>>(conn: &mut E) -> Result<(), MigrationError> {
    conn.execute(sql("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(LOCK_KEY)).await?;
    conn.hold(None);
    Ok(())
}

async fn applied_versions<E: Exec<Db = Pg>>(conn: &mut E) -> Result<Vec<String>, MigrationError> {
    if !exists(conn, BOOKKEEPING_TABLE).await? {
        return Ok(Vec::new());
    }
    Ok(recorded_versions(conn).await?)
}

async fn adopt<E: Exec<Db = Pg>>(conn: &mut E, version: &str, register: &[IndexSpec]) -> Result<(), MigrationError> {
    transaction(conn, async |conn: &mut E| {
        if !register.is_empty() {
            conn.batch_execute(&registry::create_table_sql()).await?;
            for spec in register {
                conn.batch_execute(&registry::insert_sql(spec)).await?;
            }
        }
        conn.batch_execute(CREATE_MIGRATIONS_TABLE).await?;
        conn.execute(
            sql("INSERT INTO __diesel_schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind::<Text, _>(version),
        )
        .await?;
        Ok(())
    })
    .await
}

/// Runs one migration up (`up`) or down and records it, as Diesel's `MigrationHarness` does: in a
/// transaction unless the migration runs without one.
async fn run_one<E: Exec<Db = Pg>>(conn: &mut E, migration: &E::Migration, up: bool) -> diesel::migration::Result<()> {
    conn.batch_execute(CREATE_MIGRATIONS_TABLE).await?;
    let version = migration.name().version().to_string();
    let body = async |conn: &mut E| -> diesel::migration::Result<()> {
        if migration.metadata().run_in_transaction() {
            // A migration building an index: a killed runner stops it rather than leaving it to finish.
            conn.batch_execute(super::END_WITH_CLIENT).await?;
        }
        conn.run_migration(migration, up).await?;
        let bookkeeping = if up {
            sql("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
        } else {
            sql("DELETE FROM __diesel_schema_migrations WHERE version = $1")
        };
        conn.execute(bookkeeping.bind::<Text, _>(version)).await?;
        Ok(())
    };
    if migration.metadata().run_in_transaction() {
        conn.begin().await?;
        let result = body(conn).await;
        exec::finish(conn, result).await
    } else {
        body(conn).await
    }
}

async fn registered_indexes<E: Exec<Db = Pg>>(conn: &mut E) -> Result<Vec<IndexSpec>, MigrationError> {
    if !exists(conn, registry::REGISTRY_TABLE).await? {
        return Ok(Vec::new());
    }
    registry::load_rows(conn).await.map_err(MigrationError::Registry)
}

/// The rehearsal itself, inside the transaction the caller rolls back.
async fn rehearse_in_scratch<E: Exec<Db = Pg>>(
    conn: &mut E,
    applied: &[&E::Migration],
    pending: &[&E::Migration],
) -> Result<Rehearsal, MigrationError> {
    let failed = |migration: String, replayed: bool, message: String| Rehearsal {
        stages: Vec::new(),
        failure: Some(RehearsalFailure { migration, replayed, message }),
    };
    let tables = tables_on_path(conn).await?;
    let mut setup = format!("CREATE SCHEMA {}; CREATE SCHEMA {};\n", quote(SCRATCH), quote(SCRATCH_COPIES));
    for table in &tables {
        let copy = format!("{}.{}", quote(SCRATCH_COPIES), quote(&table.name));
        setup.push_str(&format!(
            "CREATE TABLE {copy} (LIKE {}.{} INCLUDING ALL EXCLUDING INDEXES);\n",
            quote(&table.schema),
            quote(&table.name)
        ));
        for constraint in &table.constraints {
            setup.push_str(&format!("ALTER TABLE {copy} ADD {constraint};\n"));
        }
    }
    if let Err(e) = conn.batch_execute(&setup).await {
        return Ok(failed("(copying the tables on the search_path)".to_owned(), true, e.to_string()));
    }
    conn.execute(
        sql("SELECT set_config('search_path', $1 || ', ' || current_setting('search_path'), true)")
            .bind::<Text, _>(format!("{}, {}", quote(SCRATCH), quote(SCRATCH_COPIES))),
    )
    .await?;

    for migration in applied {
        // One that may not run in a transaction (CREATE INDEX CONCURRENTLY) cannot be replayed here; what
        // it made is usually an index that later migrations do not need.
        if !migration.metadata().run_in_transaction() {
            continue;
        }
        if let Err(e) = conn.run_migration(migration, true).await {
            return Ok(failed(migration.name().to_string(), true, e.to_string()));
        }
    }
    let mut rehearsal = Rehearsal { stages: vec![stage(conn).await?], failure: None };
    for migration in pending {
        if !migration.metadata().run_in_transaction() {
            rehearsal.failure = Some(RehearsalFailure {
                migration: migration.name().to_string(),
                replayed: false,
                message: "it does not run in a transaction, so it cannot be rehearsed".to_owned(),
            });
            break;
        }
        match conn.run_migration(migration, true).await {
            Ok(()) => rehearsal.stages.push(stage(conn).await?),
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

/// The scratch space as it stands: the scratch schema's objects, the copies', the lines of everything
/// outside them, and the registry the `search_path` resolves.
async fn stage<E: Exec<Db = Pg>>(conn: &mut E) -> Result<Stage, MigrationError> {
    Ok(Stage {
        objects: schema_snapshot(conn, SCRATCH).await?,
        copies: schema_snapshot(conn, SCRATCH_COPIES).await?,
        outside: outside_lines(conn).await?,
        registry: registered_indexes(conn).await?,
    })
}

/// The tables on the `search_path` (the first of each name, in path order), with their primary key,
/// unique and exclusion constraints, for the rehearsal's copies.
async fn tables_on_path<E: Exec<Db = Pg>>(conn: &mut E) -> QueryResult<Vec<PathTable>> {
    conn.load(sql(concat!(
        "SELECT DISTINCT ON (c.relname) n.nspname::text AS schema, c.relname::text AS name, \
                ARRAY(SELECT pg_get_constraintdef(con.oid) FROM pg_constraint con \
                      WHERE con.conrelid = c.oid AND con.contype IN ('p', 'u', 'x') ORDER BY con.conname)::text[] \
                    AS constraints \
         FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(nspname, ord) \
         JOIN pg_namespace n ON n.nspname = p.nspname \
         JOIN pg_class c ON c.relnamespace = n.oid \
         WHERE c.relkind IN ('r', 'p') AND c.relname <> '__diesel_schema_migrations' AND ",
        not_extension_member!("pg_class", "c.oid"),
        " ORDER BY c.relname, p.ord"
    )))
    .await
}

/// The objects of `schemas`, as the `search_path` resolves them: the first schema with a name wins.
async fn path_snapshot<E: Exec<Db = Pg>>(conn: &mut E, schemas: &[String]) -> QueryResult<Snapshot> {
    let mut snapshot = Snapshot::new();
    for schema in schemas {
        merge_first_wins(&mut snapshot, schema_snapshot(conn, schema).await?);
    }
    Ok(snapshot)
}

/// Every object of one schema that adoption compares, Diesel's bookkeeping and the registry aside.
async fn schema_snapshot<E: Exec<Db = Pg>>(conn: &mut E, schema: &str) -> QueryResult<Snapshot> {
    let mut tables: std::collections::BTreeMap<String, TableShape> = std::collections::BTreeMap::new();
    let columns: Vec<TableColumn> = conn
        .load(
            sql(concat!(
                "SELECT c.relname::text AS table_name, a.attname::text AS name, \
                format_type(a.atttypid, a.atttypmod) AS ty, a.attnotnull AS not_null \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND ",
                not_extension_member!("pg_class", "c.oid"),
                " ORDER BY c.relname, a.attnum"
            ))
            .bind::<Text, _>(schema),
        )
        .await?;
    for row in columns {
        let table = tables.entry(row.table_name).or_default();
        if let (Some(name), Some(ty), Some(not_null)) = (row.name, row.ty, row.not_null) {
            table.columns.push(FoundColumn { name, ty, not_null });
        }
    }
    let keys: Vec<TableKey> = conn
        .load(
            sql("SELECT t.relname::text AS table_name, array_agg(a.attname::text ORDER BY k.ord) AS columns \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE n.nspname = $1 AND t.relkind IN ('r', 'p') AND i.indisunique AND k.ord <= i.indnkeyatts \
         GROUP BY i.indexrelid, t.relname")
            .bind::<Text, _>(schema),
        )
        .await?;
    for key in keys {
        if let Some(table) = tables.get_mut(&key.table_name) {
            table.unique.push(key.columns);
        }
    }
    let mut snapshot = Snapshot::new();
    for (name, mut shape) in tables {
        shape.unique.sort();
        snapshot.insert(Object::Table(name), Shape::Table(shape));
    }
    // Indexes that no constraint owns (a primary key's or unique constraint's is a unique key of its
    // table, whatever its name), with a definition that names no schema.
    let indexes: Vec<Owned> = conn
        .load(
            sql("SELECT t.relname::text AS owner, ic.relname::text AS name, \
                am.amname || CASE WHEN i.indisunique THEN ' unique' ELSE '' END || ' (' || \
                (SELECT string_agg(pg_get_indexdef(i.indexrelid, k, true) || ' ' || coalesce(op.opcname, '?') \
                        || CASE WHEN i.indoption[k - 1] & 1 = 1 THEN ' desc' ELSE '' END \
                        || CASE WHEN i.indoption[k - 1] & 2 = 2 THEN ' nulls first' ELSE '' END, ', ' ORDER BY k) \
                 FROM generate_series(1, i.indnkeyatts::int) AS k \
                 LEFT JOIN pg_opclass op ON op.oid = i.indclass[k - 1]) || ')' \
                || coalesce(' where ' || pg_get_expr(i.indpred, i.indrelid, true), '') \
                || coalesce(' with (' || array_to_string(ic.reloptions, ', ') || ')', '') AS detail \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = ic.relam \
         WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint con \
             WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x'))")
            .bind::<Text, _>(schema),
        )
        .await?;
    for index in indexes {
        let definition = index.detail.unwrap_or_default();
        snapshot.insert(Object::Index { table: index.owner, name: index.name }, Shape::Index(definition));
    }
    let triggers: Vec<Owned> = conn
        .load(
            sql("SELECT t.relname::text AS owner, tg.tgname::text AS name, NULL::text AS detail \
         FROM pg_trigger tg JOIN pg_class t ON t.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND NOT tg.tgisinternal")
            .bind::<Text, _>(schema),
        )
        .await?;
    for trigger in triggers {
        snapshot.insert(Object::Trigger { table: trigger.owner, name: trigger.name }, Shape::Exists);
    }
    // Sequences owned by a column (serial, identity) belong to their table's definition.
    let others: Vec<Owned> = conn
        .load(
            sql(concat!(
        "SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' \
                WHEN 'f' THEN 'foreign table' ELSE 'type' END AS owner, c.relname::text AS name, NULL::text AS detail \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('v', 'm', 'S', 'f', 'c') \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
               AND d.deptype IN ('a', 'i', 'e')) \
         UNION ALL \
         SELECT 'type', t.typname::text, NULL FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname = $1 AND t.typtype IN ('e', 'd', 'r') AND ",
        not_extension_member!("pg_type", "t.oid"),
        " UNION ALL \
         SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END, \
                p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND ",
        not_extension_member!("pg_proc", "p.oid")
    ))
            .bind::<Text, _>(schema),
        )
        .await?;
    for other in others {
        let kind = match other.owner.as_str() {
            "view" => "view",
            "materialized view" => "materialized view",
            "sequence" => "sequence",
            "foreign table" => "foreign table",
            "procedure" => "procedure",
            "aggregate" => "aggregate",
            "function" => "function",
            _ => "type",
        };
        snapshot.insert(Object::Other { kind, name: other.name }, Shape::Exists);
    }
    snapshot.retain(|object, _| !object.table().is_some_and(|t| BOOKKEEPING.contains(&t)));
    Ok(snapshot)
}

/// A line per relation, column, trigger, function and type outside the rehearsal's schemas (and the
/// system's), extension members aside: a migration that changes any of them could not be rehearsed
/// away from the real database.
async fn outside_lines<E: Exec<Db = Pg>>(conn: &mut E) -> QueryResult<std::collections::BTreeSet<String>> {
    let lines: Vec<Line> = conn.load(sql(concat!(
        "WITH s AS (SELECT oid, nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', $1, $2) \
             AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%') \
         SELECT 'schema ' || s.nspname AS line FROM s \
         UNION ALL SELECT s.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN s ON s.oid = c.relnamespace \
             WHERE ",
        not_extension_member!("pg_class", "c.oid"),
        " UNION ALL SELECT s.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
                || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN s ON s.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
         UNION ALL SELECT s.nspname || '.' || c.relname || ' trigger ' || tg.tgname \
             FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN s ON s.oid = c.relnamespace \
             WHERE NOT tg.tgisinternal \
         UNION ALL SELECT s.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
             FROM pg_proc p JOIN s ON s.oid = p.pronamespace WHERE ",
        not_extension_member!("pg_proc", "p.oid"),
        " UNION ALL SELECT s.nspname || '.' || t.typname || ' type' FROM pg_type t JOIN s ON s.oid = t.typnamespace \
             WHERE t.typtype IN ('e', 'd', 'r') AND ",
        not_extension_member!("pg_type", "t.oid")
    ))
    .bind::<Text, _>(SCRATCH)
    .bind::<Text, _>(SCRATCH_COPIES)
    ).await?;
    Ok(lines.into_iter().map(|l| l.line).collect())
}

/// Whether `object` (a name as the `search_path` resolves it) exists.
pub(crate) async fn exists<E: Exec<Db = Pg>>(conn: &mut E, object: &str) -> QueryResult<bool> {
    let row: Exists =
        first(conn, sql("SELECT to_regclass($1) IS NOT NULL AS exists").bind::<Text, _>(object.to_owned())).await?;
    Ok(row.exists)
}

async fn recorded_versions<E: Exec<Db = Pg>>(conn: &mut E) -> QueryResult<Vec<String>> {
    let rows: Vec<Recorded> = conn.load(sql("SELECT version FROM __diesel_schema_migrations ORDER BY version")).await?;
    Ok(rows.into_iter().map(|r| r.version).collect())
}

#[cfg(any(feature = "pg", feature = "async"))]
pub(crate) async fn columns<E: Exec<Db = Pg>>(conn: &mut E, table: &str) -> QueryResult<Vec<FoundColumn>> {
    let rows: Vec<PgColumn> = conn
        .load(
            sql("SELECT attname::text AS name, format_type(atttypid, atttypmod) AS ty, attnotnull AS not_null \
                 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
                 ORDER BY attnum")
            .bind::<Text, _>(table.to_owned()),
        )
        .await?;
    Ok(rows.into_iter().map(|c| FoundColumn { name: c.name, ty: c.ty, not_null: c.not_null }).collect())
}

#[cfg(feature = "pg")]
async fn unique_keys<E: Exec<Db = Pg>>(conn: &mut E, table: &str) -> QueryResult<Vec<Vec<String>>> {
    let rows: Vec<UniqueKey> = conn
        .load(
            sql("SELECT array_agg(a.attname::text ORDER BY k.ord) AS columns \
                 FROM pg_index i \
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique \
                 GROUP BY i.indexrelid")
            .bind::<Text, _>(table.to_owned()),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.columns).collect())
}

#[cfg(feature = "pg")]
impl crate::migrations::shape::Catalog for diesel::PgConnection {
    fn recorded_versions(&mut self) -> QueryResult<Vec<String>> {
        exec::block_on(recorded_versions(self))
    }

    fn exists(&mut self, object: &str) -> QueryResult<bool> {
        exec::block_on(exists(self, object))
    }

    fn columns(&mut self, table: &str) -> QueryResult<Vec<FoundColumn>> {
        exec::block_on(columns(self, table))
    }

    fn unique_keys(&mut self, table: &str) -> QueryResult<Vec<Vec<String>>> {
        exec::block_on(unique_keys(self, table))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_release_statement_names_the_lock() {
        assert_eq!(super::UNLOCK_SQL, format!("SELECT pg_advisory_unlock({})", super::LOCK_KEY));
    }
}
