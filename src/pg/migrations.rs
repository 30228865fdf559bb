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

use diesel::connection::SimpleConnection;
use diesel::migration::Migration;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};
use diesel::PgConnection;
use diesel_migrations::MigrationHarness;

use crate::index::{quote, registry, IndexSpec};
use crate::migrations::shape::{
    merge_first_wins, Catalog, FoundColumn, Object, Real, Rehearsal, RehearsalFailure, Shape, Snapshot, Stage,
    TableShape, BOOKKEEPING,
};
use crate::migrations::{
    embedded_versions, sealed, sorted, MigrationError, MigrationTarget, VectorSupport, PG_MIGRATIONS,
};

/// Key of the session-level advisory lock that serialises migration runs ("dv_migr").
const LOCK_KEY: i64 = 0x0064_765f_6d69_6772;

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

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
}

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

impl sealed::Sealed for PgConnection {}

impl MigrationTarget for PgConnection {
    type Db = Pg;
    const BACKEND: &'static str = "postgresql";

    fn own_migrations() -> Result<Vec<Box<dyn Migration<Pg>>>, MigrationError> {
        sorted(&PG_MIGRATIONS)
    }

    fn own_versions() -> Result<&'static [String], MigrationError> {
        static VERSIONS: OnceLock<Vec<String>> = OnceLock::new();
        embedded_versions::<Pg>(&PG_MIGRATIONS, &VERSIONS)
    }

    fn vector_support(&mut self) -> Result<VectorSupport, MigrationError> {
        // `resolvable`: the `vector` type this connection resolves by name (as Diesel does) is pgvector's.
        let state: ExtensionState = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available, \
                    n.nspname::text AS schema, \
                    coalesce(to_regtype('vector')::oid = (SELECT t.oid FROM pg_type t \
                        WHERE t.typname = 'vector' AND t.typnamespace = e.extnamespace), false) AS resolvable, \
                    current_setting('search_path') AS search_path, \
                    current_user::text AS role, current_database()::text AS database, \
                    current_setting('is_superuser') = 'on' AS superuser \
             FROM (SELECT 1) AS one \
             LEFT JOIN pg_extension e ON e.extname = 'vector' \
             LEFT JOIN pg_namespace n ON n.oid = e.extnamespace",
        )
        .get_result(self)?;
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

    fn try_create_vector(&mut self) -> Result<(), String> {
        // Rehearsed like a migration: pgvector's script runs, and is rolled back.
        let attempt = self.transaction::<(), DieselError, _>(|conn| {
            conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")?;
            Err(DieselError::RollbackTransaction)
        });
        match attempt {
            Err(DieselError::RollbackTransaction) | Ok(()) => Ok(()),
            Err(DieselError::DatabaseError(_, info)) => Err(info.message().to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn has_objects(&mut self) -> Result<bool, MigrationError> {
        let row: Exists = diesel::sql_query(concat!(
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
        ))
        .get_result(self)?;
        Ok(row.exists)
    }

    fn rehearse(
        &mut self,
        applied: &[&dyn Migration<Pg>],
        pending: &[&dyn Migration<Pg>],
    ) -> Result<Rehearsal, MigrationError> {
        let mut outcome = None;
        let result = self.transaction::<(), DieselError, _>(|conn| {
            outcome = Some(rehearse_in_scratch(conn, applied, pending));
            Err(DieselError::RollbackTransaction)
        });
        match result {
            Ok(()) | Err(DieselError::RollbackTransaction) => {}
            Err(e) => return Err(e.into()),
        }
        outcome.unwrap_or_else(|| unreachable!("the closure ran"))
    }

    fn real_state(&mut self) -> Result<Real, MigrationError> {
        let path: Schemas = diesel::sql_query("SELECT current_schemas(false)::text[] AS schemas").get_result(self)?;
        Ok(Real { objects: path_snapshot(self, &path.schemas)?, registry: self.registered_indexes()? })
    }

    fn locked<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, MigrationError>) -> Result<R, MigrationError> {
        diesel::sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(LOCK_KEY).execute(self)?;
        let result = f(self);
        let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(LOCK_KEY).execute(self);
        let value = result?;
        unlocked?;
        Ok(value)
    }

    fn record_applied(&mut self, version: &str) -> Result<(), MigrationError> {
        MigrationHarness::<Pg>::applied_migrations(self).map_err(MigrationError::Harness)?;
        diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind::<Text, _>(version)
            .execute(self)?;
        Ok(())
    }

    fn registered_indexes(&mut self) -> Result<Vec<IndexSpec>, MigrationError> {
        registry::load(self).map_err(MigrationError::Registry)
    }

    fn after_revert(&mut self, _removed: &[IndexSpec]) -> Result<(), MigrationError> {
        Ok(())
    }
}

/// The rehearsal itself, inside the transaction the caller rolls back.
fn rehearse_in_scratch(
    conn: &mut PgConnection,
    applied: &[&dyn Migration<Pg>],
    pending: &[&dyn Migration<Pg>],
) -> Result<Rehearsal, MigrationError> {
    let failed = |migration: String, replayed: bool, message: String| Rehearsal {
        stages: Vec::new(),
        failure: Some(RehearsalFailure { migration, replayed, message }),
    };
    let tables = tables_on_path(conn)?;
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
    if let Err(e) = conn.batch_execute(&setup) {
        return Ok(failed("(copying the tables on the search_path)".to_owned(), true, e.to_string()));
    }
    diesel::sql_query("SELECT set_config('search_path', $1 || ', ' || current_setting('search_path'), true)")
        .bind::<Text, _>(format!("{}, {}", quote(SCRATCH), quote(SCRATCH_COPIES)))
        .execute(conn)?;

    for migration in applied {
        // One that may not run in a transaction (CREATE INDEX CONCURRENTLY) cannot be replayed here; what
        // it made is usually an index that later migrations do not need.
        if !migration.metadata().run_in_transaction() {
            continue;
        }
        if let Err(e) = migration.run(conn) {
            return Ok(failed(migration.name().to_string(), true, e.to_string()));
        }
    }
    let mut rehearsal = Rehearsal { stages: vec![stage(conn)?], failure: None };
    for migration in pending {
        if !migration.metadata().run_in_transaction() {
            rehearsal.failure = Some(RehearsalFailure {
                migration: migration.name().to_string(),
                replayed: false,
                message: "it does not run in a transaction, so it cannot be rehearsed".to_owned(),
            });
            break;
        }
        match migration.run(conn) {
            Ok(()) => rehearsal.stages.push(stage(conn)?),
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
fn stage(conn: &mut PgConnection) -> Result<Stage, MigrationError> {
    Ok(Stage {
        objects: schema_snapshot(conn, SCRATCH)?,
        copies: schema_snapshot(conn, SCRATCH_COPIES)?,
        outside: outside_lines(conn)?,
        registry: registry::load(conn).map_err(MigrationError::Registry)?,
    })
}

/// The tables on the `search_path` (the first of each name, in path order), with their primary key,
/// unique and exclusion constraints, for the rehearsal's copies.
fn tables_on_path(conn: &mut PgConnection) -> QueryResult<Vec<PathTable>> {
    diesel::sql_query(concat!(
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
    ))
    .load(conn)
}

/// The objects of `schemas`, as the `search_path` resolves them: the first schema with a name wins.
fn path_snapshot(conn: &mut PgConnection, schemas: &[String]) -> QueryResult<Snapshot> {
    let mut snapshot = Snapshot::new();
    for schema in schemas {
        merge_first_wins(&mut snapshot, schema_snapshot(conn, schema)?);
    }
    Ok(snapshot)
}

/// Every object of one schema that adoption compares, Diesel's bookkeeping and the registry aside.
fn schema_snapshot(conn: &mut PgConnection, schema: &str) -> QueryResult<Snapshot> {
    let mut tables: std::collections::BTreeMap<String, TableShape> = std::collections::BTreeMap::new();
    let columns: Vec<TableColumn> = diesel::sql_query(concat!(
        "SELECT c.relname::text AS table_name, a.attname::text AS name, \
                format_type(a.atttypid, a.atttypmod) AS ty, a.attnotnull AS not_null \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND ",
        not_extension_member!("pg_class", "c.oid"),
        " ORDER BY c.relname, a.attnum"
    ))
    .bind::<Text, _>(schema)
    .load(conn)?;
    for row in columns {
        let table = tables.entry(row.table_name).or_default();
        if let (Some(name), Some(ty), Some(not_null)) = (row.name, row.ty, row.not_null) {
            table.columns.push(FoundColumn { name, ty, not_null });
        }
    }
    let keys: Vec<TableKey> = diesel::sql_query(
        "SELECT t.relname::text AS table_name, array_agg(a.attname::text ORDER BY k.ord) AS columns \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE n.nspname = $1 AND t.relkind IN ('r', 'p') AND i.indisunique AND k.ord <= i.indnkeyatts \
         GROUP BY i.indexrelid, t.relname",
    )
    .bind::<Text, _>(schema)
    .load(conn)?;
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
    let indexes: Vec<Owned> = diesel::sql_query(
        "SELECT t.relname::text AS owner, ic.relname::text AS name, \
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
             WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x'))",
    )
    .bind::<Text, _>(schema)
    .load(conn)?;
    for index in indexes {
        let definition = index.detail.unwrap_or_default();
        snapshot.insert(Object::Index { table: index.owner, name: index.name }, Shape::Index(definition));
    }
    let triggers: Vec<Owned> = diesel::sql_query(
        "SELECT t.relname::text AS owner, tg.tgname::text AS name, NULL::text AS detail \
         FROM pg_trigger tg JOIN pg_class t ON t.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND NOT tg.tgisinternal",
    )
    .bind::<Text, _>(schema)
    .load(conn)?;
    for trigger in triggers {
        snapshot.insert(Object::Trigger { table: trigger.owner, name: trigger.name }, Shape::Exists);
    }
    // Sequences owned by a column (serial, identity) belong to their table's definition.
    let others: Vec<Owned> = diesel::sql_query(concat!(
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
    .bind::<Text, _>(schema)
    .load(conn)?;
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
fn outside_lines(conn: &mut PgConnection) -> QueryResult<std::collections::BTreeSet<String>> {
    let lines: Vec<Line> = diesel::sql_query(concat!(
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
    .load(conn)?;
    Ok(lines.into_iter().map(|l| l.line).collect())
}

impl Catalog for PgConnection {
    fn recorded_versions(&mut self) -> QueryResult<Vec<String>> {
        let rows: Vec<Recorded> =
            diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version").load(self)?;
        Ok(rows.into_iter().map(|r| r.version).collect())
    }

    fn exists(&mut self, object: &str) -> QueryResult<bool> {
        let row: Exists = diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS exists")
            .bind::<Text, _>(object)
            .get_result(self)?;
        Ok(row.exists)
    }

    fn columns(&mut self, table: &str) -> QueryResult<Vec<FoundColumn>> {
        let rows: Vec<PgColumn> = diesel::sql_query(
            "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS ty, attnotnull AS not_null \
             FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        )
        .bind::<Text, _>(table)
        .load(self)?;
        Ok(rows.into_iter().map(|c| FoundColumn { name: c.name, ty: c.ty, not_null: c.not_null }).collect())
    }

    fn unique_keys(&mut self, table: &str) -> QueryResult<Vec<Vec<String>>> {
        let rows: Vec<UniqueKey> = diesel::sql_query(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) AS columns \
             FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = to_regclass($1) AND i.indisunique \
             GROUP BY i.indexrelid",
        )
        .bind::<Text, _>(table)
        .load(self)?;
        Ok(rows.into_iter().map(|r| r.columns).collect())
    }
}
