//! Partial indexes per partition value: pgvector's index of a vector index built over the rows of one value
//! of a partition column only (`CREATE INDEX ... WHERE lang = 'fr'`).
//!
//! A filter that leaves a small share of the rows, or rows far from the query, makes an HNSW index walk
//! much of its graph before enough rows pass (pgvector's iterative scan), and the search widens
//! `hnsw.ef_search` for it. An index of the partition's own rows answers that filter like an unfiltered
//! search of a small table: on 100k x 1536 embeddings whose French fifth lies away from most queries, the
//! search took 0.93-1.37 ms with recall 1.000 against 1.1-2.0 ms and 0.98-0.995 through the table's index
//! (BENCHMARKS.md, "PostgreSQL's filtered search"). PostgreSQL picks the partial index itself for a query
//! planned with that filter's value; the search finds it by its name ([`partition_index_name`]), keeps the
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
use crate::index::{quote, IndexSpec, PgIndex};
use crate::search::query::FilterValue;
use crate::search::{coerce, ColumnKind, Value};

/// The most bytes of the table's index name kept at the start of a partition index's name (PostgreSQL's
/// names hold 63 bytes; the rest is `_p` and 16 hex digits).
const NAME_PREFIX_BYTES: usize = 45;

/// The name of the partial index of `spec` for the rows whose `column` equals `value`: the table's index name
/// (its first 45 bytes), `_p` and a 64-bit hash of the column and the value as text (as PostgreSQL prints it:
/// `7` and `"7"` are the same value). `None` when `spec` has no PostgreSQL index.
pub fn partition_index_name(spec: &IndexSpec, column: &str, value: &Value) -> Option<String> {
    Some(name_of(spec.pg_index_name()?, column, value_text(value).as_deref()))
}

/// A filter value as PostgreSQL prints it (as `pg_stats` holds it), `None` for NULL: what the search's set-up
/// sends, and what partition indexes are named by.
pub(crate) fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_owned()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Text(t) => Some(t.clone()),
    }
}

/// See [`partition_index_name`]: FNV-1a over the column, a zero byte, and a tag and the text (the tag tells
/// NULL from any text).
pub(crate) fn name_of(index: &str, column: &str, text: Option<&str>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(column.as_bytes());
    feed(&[0]);
    match text {
        None => feed(&[1]),
        Some(t) => {
            feed(&[2]);
            feed(t.as_bytes());
        }
    }
    format!("{}_p{hash:016x}", name_prefix(index))
}

/// The start of the table's index name that its partition indexes' names begin with.
fn name_prefix(index: &str) -> &str {
    let mut end = index.len().min(NAME_PREFIX_BYTES);
    while !index.is_char_boundary(end) {
        end -= 1;
    }
    &index[..end]
}

/// Whether `name` is a partition index's name of `spec` (see [`partition_index_name`]), for `doctor`: such an
/// index belongs to the registered index, whatever value it serves.
#[cfg_attr(not(feature = "pg"), allow(dead_code))] // `doctor` needs libpq
pub(crate) fn is_partition_index_of(spec: &IndexSpec, name: &str) -> bool {
    let Some(index) = spec.pg_index_name() else { return false };
    name.strip_prefix(name_prefix(index))
        .and_then(|rest| rest.strip_prefix("_p"))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

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
/// [`diesel::result::Error::QueryBuilderError`] when `spec` has no HNSW index on PostgreSQL, `column` is
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

fn refused(message: String) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(message.into())
}

fn name_for(spec: &IndexSpec, column: &str, value: &Value) -> QueryResult<String> {
    partition_index_name(spec, column, value)
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
    let name = name_for(spec, column, value)?;
    if spec.pg_index() != PgIndex::Hnsw {
        return Err(refused(format!(
            "partition indexes are HNSW indexes; the vector index {} keeps {} on PostgreSQL",
            spec.name(),
            spec.pg_index()
        )));
    }
    if !spec.partition_by().any(|c| c == column) {
        let columns: Vec<&str> = spec.partition_by().collect();
        return Err(refused(format!(
            "{column} is not a partition column of the vector index {} (its partition columns: {})",
            spec.name(),
            if columns.is_empty() { "none".to_owned() } else { columns.join(", ") }
        )));
    }
    transaction(conn, async |conn: &mut E| {
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

/// The index's condition, written as the search writes the filter (`search::query::push_eq_filters` and the
/// PostgreSQL dialect): the same column expression, operator and constant type, so that PostgreSQL proves
/// that the search's rows are the index's.
fn condition(column: &str, kind: ColumnKind, value: &FilterValue) -> String {
    let column = quote(column);
    match value {
        FilterValue::Null => format!("{column} IS NULL"),
        FilterValue::Integer(i) => format!("{column} = '{i}'::bigint"),
        FilterValue::Bool(b) => format!("{column} = {b}"),
        FilterValue::Text(t) if kind == ColumnKind::Other => {
            format!("CAST({column} AS TEXT) = {}::text", dollar_quoted(t))
        }
        FilterValue::Text(t) => format!("{column} = {}::text", dollar_quoted(t)),
    }
}

/// `text` as a dollar-quoted literal whose tag the text does not hold (independent of
/// `standard_conforming_strings`; nothing in it is read as an escape).
fn dollar_quoted(text: &str) -> String {
    let mut tag = String::from("dv");
    while text.contains(&format!("${tag}")) {
        tag.push('x');
    }
    format!("${tag}${text}${tag}$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgres_and_tell_values_apart() {
        let long = "a".repeat(63);
        let name = name_of(&long, "lang", Some("fr"));
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&"a".repeat(45)));
        assert_ne!(name_of("i", "lang", Some("fr")), name_of("i", "lang", Some("en")));
        assert_ne!(name_of("i", "lang", Some("")), name_of("i", "lang", None));
        assert_ne!(name_of("i", "la", Some("ngx")), name_of("i", "lang", Some("x")));
        // A multi-byte character is never cut.
        let name = name_of(&format!("{}é", "a".repeat(44)), "c", Some("v"));
        assert!(name.starts_with(&"a".repeat(44)) && !name.contains('é'));
        // 7 and "7" are one value, as PostgreSQL prints it.
        assert_eq!(value_text(&Value::Integer(7)), value_text(&Value::Text("7".into())));
    }

    #[test]
    fn partition_index_names_are_recognised_as_the_registered_index_s() {
        let spec = IndexSpec::builder("documents", "embedding", 3).partition_by(["lang"]).build().unwrap();
        let name = partition_index_name(&spec, "lang", &Value::Text("fr".into())).unwrap();
        assert!(is_partition_index_of(&spec, &name));
        assert!(!is_partition_index_of(&spec, spec.pg_index_name().unwrap()));
        assert!(!is_partition_index_of(&spec, &format!("{name}x")));
        assert!(!is_partition_index_of(&spec, "documents_embedding_other_idx"));
        let other = IndexSpec::builder("documents", "body_embedding", 3).build().unwrap();
        assert!(!is_partition_index_of(&other, &name));
    }

    #[test]
    fn literals_are_dollar_quoted_with_a_tag_the_text_does_not_hold() {
        assert_eq!(dollar_quoted("fr"), "$dv$fr$dv$");
        assert_eq!(dollar_quoted("it's"), "$dv$it's$dv$");
        assert_eq!(dollar_quoted("a$dv"), "$dvx$a$dv$dvx$");
        assert_eq!(dollar_quoted("$dv$x$dvx"), "$dvxx$$dv$x$dvx$dvxx$");
        assert_eq!(
            condition("la\"ng", ColumnKind::Text, &FilterValue::Text("x".into())),
            "\"la\"\"ng\" = $dv$x$dv$::text"
        );
        assert_eq!(condition("n", ColumnKind::Integer, &FilterValue::Integer(-5)), "\"n\" = '-5'::bigint");
        assert_eq!(
            condition("n", ColumnKind::Other, &FilterValue::Text("x".into())),
            "CAST(\"n\" AS TEXT) = $dv$x$dv$::text"
        );
        assert_eq!(condition("n", ColumnKind::Text, &FilterValue::Null), "\"n\" IS NULL");
    }
}
