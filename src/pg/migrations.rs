//! The migration runner's PostgreSQL side: pgvector checks, the advisory lock, catalog reads.

use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::migration::Migration;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, Bool, Nullable, Text};
use diesel::PgConnection;
use diesel_migrations::MigrationHarness;

use crate::migrations::shape::{Catalog, Column, Creates, FoundColumn, Table};
use crate::migrations::{embedded_versions, sealed, sorted, MigrationError, MigrationTarget, PG_MIGRATIONS};

/// Key of the session-level advisory lock that serialises migration runs ("dv_migr").
const LOCK_KEY: i64 = 0x0064_765f_6d69_6772;

const TIMESTAMP: &str = "timestamp without time zone";
const VARCHAR_255: &str = "character varying(255)";

/// What each PostgreSQL migration creates, in `format_type` spelling.
const CREATES: &[Creates] = &[
    Creates {
        migration: "create_fragments",
        tables: &[Table {
            name: "fragments",
            columns: &[
                Column { name: "id", ty: "bigint", not_null: true },
                Column { name: "content", ty: "text", not_null: true },
                Column { name: "created_at", ty: TIMESTAMP, not_null: false },
                Column { name: "updated_at", ty: TIMESTAMP, not_null: false },
            ],
            unique: &[&["id"]],
        }],
        others: &[],
    },
    Creates {
        migration: "create_fragment_embeddings",
        tables: &[Table {
            name: "fragment_embeddings",
            columns: &[
                Column { name: "id", ty: "bigint", not_null: true },
                Column { name: "fragment_id", ty: "bigint", not_null: true },
                Column { name: "provider", ty: VARCHAR_255, not_null: true },
                Column { name: "model", ty: VARCHAR_255, not_null: true },
                Column { name: "dims", ty: "integer", not_null: true },
                Column { name: "embedding", ty: "vector(1536)", not_null: false },
                Column { name: "content_hash", ty: VARCHAR_255, not_null: true },
                Column { name: "created_at", ty: TIMESTAMP, not_null: false },
                Column { name: "updated_at", ty: TIMESTAMP, not_null: false },
            ],
            unique: &[&["id"], &["fragment_id", "provider", "model", "content_hash"]],
        }],
        others: &[],
    },
];

#[derive(QueryableByName)]
struct ExtensionState {
    #[diesel(sql_type = Bool)]
    available: bool,
    #[diesel(sql_type = Nullable<Text>)]
    installed: Option<String>,
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

impl sealed::Sealed for PgConnection {}

impl MigrationTarget for PgConnection {
    type Db = Pg;
    const CREATES: &'static [Creates] = CREATES;
    const BACKEND: &'static str = "postgresql";

    fn migrations() -> Result<Vec<Box<dyn Migration<Pg>>>, MigrationError> {
        sorted(&PG_MIGRATIONS)
    }

    fn versions() -> Result<&'static [String], MigrationError> {
        static VERSIONS: OnceLock<Vec<String>> = OnceLock::new();
        embedded_versions::<Pg>(&PG_MIGRATIONS, &VERSIONS)
    }

    fn preflight(&mut self) -> Result<(), MigrationError> {
        let state: ExtensionState = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available, \
                    (SELECT extversion::text FROM pg_extension WHERE extname = 'vector') AS installed, \
                    current_user::text AS role, current_database()::text AS database, \
                    current_setting('is_superuser') = 'on' AS superuser",
        )
        .get_result(self)?;
        if !state.available {
            return Err(MigrationError::PgvectorNotInstalled);
        }
        // A superuser may create any available extension: the first migration's `CREATE EXTENSION`
        // runs without a rehearsal (which would cost as much again: pgvector's script is most of what
        // migrating a fresh database costs). A broken pgvector installation then fails that migration,
        // which rolls back.
        if state.installed.is_some() || state.superuser {
            return Ok(());
        }
        // May this role create it? Try, and always roll back: nothing changes here.
        let attempt = self.transaction::<(), DieselError, _>(|conn| {
            conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")?;
            Err(DieselError::RollbackTransaction)
        });
        match attempt {
            Err(DieselError::RollbackTransaction) | Ok(()) => Ok(()),
            Err(DieselError::DatabaseError(_, info)) => Err(MigrationError::PgvectorNotCreated {
                database: state.database,
                role: state.role,
                reason: info.message().to_owned(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn locked<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, MigrationError>) -> Result<R, MigrationError> {
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
            .execute(self)?;
        let result = f(self);
        let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
            .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
            .execute(self);
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

    fn registered_indexes(&mut self) -> Result<Vec<crate::index::IndexSpec>, MigrationError> {
        crate::index::registry::load(self).map_err(MigrationError::Registry)
    }

    fn after_revert(&mut self, _removed: &[crate::index::IndexSpec]) -> Result<(), MigrationError> {
        Ok(())
    }
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
