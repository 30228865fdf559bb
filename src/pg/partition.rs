//! Partial indexes per partition value: pgvector's index of a vector index built over the rows of one value
//! of a partition column only (`CREATE INDEX ... WHERE lang = 'fr'`).
//!
//! A filter that leaves a small share of the rows, or rows far from the query, makes an HNSW index walk
//! much of its graph before enough rows pass (pgvector's iterative scan), and the search widens
//! `hnsw.ef_search` for it. An index of the partition's own rows answers that filter like an unfiltered
//! search of a small table: on 100k x 1536 embeddings whose French fifth lies away from most queries, the
//! search took 0.93-1.37 ms with recall 1.000 against 1.1-2.0 ms and 0.98-0.995 through the table's index
//! (BENCHMARKS.md, "PostgreSQL's filtered search"). PostgreSQL picks the partial index itself for a query
//! planned with that filter's value; the search finds it by its name ([`partition_index_name`](crate::index::partition_index_name)), keeps the
//! unfiltered `ef_search` and has its query planned with its values (`plan_cache_mode`).
//!
//! Worth it for a few large partitions searched often: each index costs its build and every write to its
//! rows, like the table's own.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
#[cfg(feature = "pg")]
use diesel::PgConnection;

use crate::exec::{self, sql, transaction, Exec};
use crate::index::generate::pg_create_index_named;
use crate::index::partition::{checked_name, condition};
use crate::index::{quote, IndexSpec, PgIndex};
use crate::search::{coerce, Value};

/// Builds the partial index of `spec` for the rows whose partition column `column` equals `value` (see the
/// module's docs), with the table's index's method and operator class, unless an index of that name exists;
/// returns its name. `value` is read as the column's type, as a search's filter is, and the index's
/// condition is written as the search writes that filter, so that PostgreSQL matches the two.
///
/// `CREATE INDEX` holds a lock that blocks writes to the table while it builds (about 6 s for 20k rows of
/// 1536 dimensions); run it when writes can wait.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel::prelude::*;
/// use diesel_vector::index::IndexSpec;
/// use diesel_vector::pg;
///
/// let spec = IndexSpec::builder("documents", "embedding", 1536).partition_by(["lang"]).build()?;
/// let mut conn = PgConnection::establish("postgres://localhost/app")?;
/// let name = pg::create_partition_index(&mut conn, &spec, "lang", "fr")?;
/// assert_eq!(Some(name), pg::partition_index_name(&spec, "lang", &"fr".into()));
/// // Searches among French rows now run on it.
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`diesel::result::Error::QueryBuilderError`] when `spec` has no HNSW index on PostgreSQL, an index of
/// its name is registered with another declaration (metric, type, columns or PostgreSQL index), `column` is
/// not one of its partition columns, the table or the column does not exist, or `value` does not fit the
/// column's type; a failing `CREATE INDEX`.
#[cfg(feature = "pg")]
pub fn create_partition_index(
    conn: &mut PgConnection,
    spec: &IndexSpec,
    column: &str,
    value: impl Into<Value>,
) -> QueryResult<String> {
    exec::block_on(create_with(conn, spec, column, &value.into()))
}

/// [`create_partition_index`] on diesel-async's `AsyncPgConnection`.
///
/// # Errors
///
/// As [`create_partition_index`].
#[cfg(feature = "async")]
pub async fn create_partition_index_async(
    conn: &mut diesel_async::AsyncPgConnection,
    spec: &IndexSpec,
    column: &str,
    value: impl Into<Value>,
) -> QueryResult<String> {
    create_with(&mut exec::AsyncPg::new(conn), spec, column, &value.into()).await
}

/// Drops the partial index of `spec` for `column` = `value`; whether there was one.
///
/// # Errors
///
/// [`diesel::result::Error::QueryBuilderError`] when `spec` has no PostgreSQL index; a failing query.
#[cfg(feature = "pg")]
pub fn drop_partition_index(
    conn: &mut PgConnection,
    spec: &IndexSpec,
    column: &str,
    value: impl Into<Value>,
) -> QueryResult<bool> {
    exec::block_on(drop_with(conn, spec, column, &value.into()))
}

/// [`drop_partition_index`] on diesel-async's `AsyncPgConnection`.
///
/// # Errors
///
/// As [`drop_partition_index`].
#[cfg(feature = "async")]
pub async fn drop_partition_index_async(
    conn: &mut diesel_async::AsyncPgConnection,
    spec: &IndexSpec,
    column: &str,
    value: impl Into<Value>,
) -> QueryResult<bool> {
    drop_with(&mut exec::AsyncPg::new(conn), spec, column, &value.into()).await
}

/// Whether two declarations of an index are the same on PostgreSQL (what its registry row and its
/// partition indexes' migrations compare).
fn same_on_postgres(a: &IndexSpec, b: &IndexSpec) -> bool {
    (a.table(), a.column(), a.id_column(), a.element(), a.dims(), a.metric(), a.pg_index(), a.pg_index_name())
        == (b.table(), b.column(), b.id_column(), b.element(), b.dims(), b.metric(), b.pg_index(), b.pg_index_name())
        && a.partition_by().eq(b.partition_by())
}

/// `spec` as PostgreSQL builds it, for messages.
fn described(spec: &IndexSpec) -> String {
    let partitions: Vec<_> = spec.partition_by().map(crate::index::shown).collect();
    format!(
        "{} {} of {}, {} index {}, partition columns {}",
        spec.element().pg_type(spec.dims()),
        spec.metric().name(),
        crate::index::shown_column(spec.table(), spec.column()),
        spec.pg_index().name(),
        crate::index::shown(spec.pg_index_name().unwrap_or_default()),
        partitions.join(", ")
    )
}

fn refused(message: String) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(message.into())
}

fn name_for(spec: &IndexSpec, column: &str, value: &Value) -> QueryResult<String> {
    crate::index::partition_index_name(spec, column, value)
        .ok_or_else(|| refused(format!("the vector index {} has no PostgreSQL index", spec.name())))
}

#[derive(QueryableByName)]
struct Kind {
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Nullable<Text>)]
    found: Option<String>,
}

async fn create_with<E: Exec<Db = Pg>>(
    conn: &mut E,
    spec: &IndexSpec,
    column: &str,
    value: &Value,
) -> QueryResult<String> {
    let name = checked_name(spec, column, value).map_err(|e| refused(e.to_string()))?;
    transaction(conn, async |conn: &mut E| {
        conn.batch_execute(super::END_WITH_CLIENT).await?;
        // The index is built as `spec` says (its operator class from the metric): one registered under the
        // same name otherwise would leave it to no search, while it slows every write.
        if super::migrations::exists(conn, &quote(crate::index::REGISTRY_TABLE)).await? {
            let registered = crate::index::registry::load_rows(conn).await.map_err(|e| refused(e.to_string()))?;
            if let Some(other) = registered.iter().find(|r| r.name() == spec.name() && !same_on_postgres(r, spec)) {
                return Err(refused(format!(
                    "the vector index {} is registered as {}, not as declared here ({}): build its partition index \
                     from the registered declaration",
                    crate::index::shown(spec.name()),
                    described(other),
                    described(spec)
                )));
            }
        }
        // The column's kind as the search's set-up reads it, which decides how a filter's value compares.
        let kind: Kind = exec::first(
            conn,
            sql(concat!(
                "SELECT (SELECT ",
                column_kind_sql!(),
                " FROM pg_attribute a ",
                column_base_type_sql!(),
                " WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) \
                 AS kind"
            ))
            .bind::<Text, _>(quote(spec.table()))
            .bind::<Text, _>(column),
        )
        .await?;
        let Some(kind) = kind.kind.as_deref().map(super::column_kind) else {
            return Err(refused(format!("{} has no column {column}", spec.table())));
        };
        let filter = coerce(value, kind)
            .map_err(|hint| refused(format!("{value} does not fit {}.{column}{hint}", spec.table())))?;
        let condition = format!(" WHERE {}", condition(column, kind, &filter));
        let create = pg_create_index_named(spec, PgIndex::Hnsw, &name, "", &condition)
            .ok_or_else(|| refused(format!("pgvector has no HNSW index for {} here", spec.metric())))?
            .replacen("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1);
        conn.batch_execute(&create).await?;
        tracing::info!(
            target: "diesel_vector::index",
            backend = "postgresql",
            index = name.as_str(),
            table = spec.table(),
            column,
            "partition index built"
        );
        Ok(name)
    })
    .await
}

async fn drop_with<E: Exec<Db = Pg>>(conn: &mut E, spec: &IndexSpec, column: &str, value: &Value) -> QueryResult<bool> {
    let name = name_for(spec, column, value)?;
    // Only an index of this table: a name is looked up in the search path, as the search looks it up.
    let found: Found = exec::first(
        conn,
        sql("SELECT (SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indexrelid = to_regclass($1) AND i.indrelid = to_regclass($2)) AS found")
        .bind::<Text, _>(quote(&name))
        .bind::<Text, _>(quote(spec.table())),
    )
    .await?;
    if found.found.is_none() {
        return Ok(false);
    }
    conn.batch_execute(&format!("DROP INDEX IF EXISTS {}", quote(&name))).await?;
    Ok(true)
}
