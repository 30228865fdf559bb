//! Partition indexes: PostgreSQL's partial HNSW index of a vector index over the rows of one value of a
//! partition column (`CREATE INDEX ... WHERE lang = 'fr'`). What both ways of building one share: its name,
//! the checks of the declaration, and its condition, written as the search writes that filter. They are built
//! at run time by `pg::create_partition_index`, or by a migration from [`render_partition_index`].

use std::fmt::Write as _;

use super::generate::Migration;
use super::ident::{literal, quote, shown, shown_column};
use super::registry;
use super::spec::{IndexSpec, PgIndex};
use crate::search::query::FilterValue;
use crate::search::{coerce, ColumnKind, Value};

/// Why a partition index cannot be declared for a vector index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionIndexError {
    /// The vector index keeps no HNSW index on PostgreSQL.
    #[error("partition indexes are HNSW indexes; the vector index {index} keeps {kept} on PostgreSQL")]
    NotHnsw {
        /// The vector index's name.
        index: String,
        /// What it keeps instead.
        kept: PgIndex,
    },
    /// The column is not one of the vector index's partition columns.
    #[error("{column} is not a partition column of the vector index {index} (its partition columns: {columns})")]
    NotPartitionColumn {
        /// The column given.
        column: String,
        /// The vector index's name.
        index: String,
        /// Its partition columns, or `none`.
        columns: String,
    },
    /// A value PostgreSQL's text cannot hold.
    #[error("the value of {column} holds a NUL character, which PostgreSQL's text cannot hold")]
    Nul {
        /// The column.
        column: String,
    },
}

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
    let mut bytes = Vec::with_capacity(column.len() + 2 + text.map_or(0, str::len));
    bytes.extend_from_slice(column.as_bytes());
    bytes.push(0);
    match text {
        None => bytes.push(1),
        Some(t) => {
            bytes.push(2);
            bytes.extend_from_slice(t.as_bytes());
        }
    }
    format!("{}_p{:016x}", super::generate::partition_name_prefix(index), super::fnv1a(&bytes))
}

/// Whether `name` is a partition index's name of `spec` (see [`partition_index_name`]), for `doctor`: such an
/// index belongs to the registered index, whatever value it serves.
#[cfg_attr(not(feature = "pg"), allow(dead_code))] // `doctor` needs libpq
pub(crate) fn is_partition_index_of(spec: &IndexSpec, name: &str) -> bool {
    let Some(index) = spec.pg_index_name() else { return false };
    name.strip_prefix(super::generate::partition_name_prefix(index))
        .and_then(|rest| rest.strip_prefix("_p"))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The partition index's name, once `spec` is checked to have one for `column`.
pub(crate) fn checked_name(spec: &IndexSpec, column: &str, value: &Value) -> Result<String, PartitionIndexError> {
    if spec.pg_index() != PgIndex::Hnsw {
        return Err(PartitionIndexError::NotHnsw { index: spec.name().to_owned(), kept: spec.pg_index() });
    }
    if !spec.partition_by().any(|c| c == column) {
        let columns: Vec<&str> = spec.partition_by().collect();
        return Err(PartitionIndexError::NotPartitionColumn {
            column: column.to_owned(),
            index: spec.name().to_owned(),
            columns: if columns.is_empty() { "none".to_owned() } else { columns.join(", ") },
        });
    }
    if matches!(value, Value::Text(t) if t.contains('\0')) {
        return Err(PartitionIndexError::Nul { column: column.to_owned() });
    }
    // An HNSW index always has a name (the spec gives one).
    partition_index_name(spec, column, value)
        .ok_or_else(|| PartitionIndexError::NotHnsw { index: spec.name().to_owned(), kept: spec.pg_index() })
}

/// The index's condition, written as the search writes the filter (`search::query::push_eq_filters` and the
/// PostgreSQL dialect): the same column expression, operator and constant type, so that PostgreSQL proves
/// that the search's rows are the index's.
pub(crate) fn condition(column: &str, kind: ColumnKind, value: &FilterValue) -> String {
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
pub(crate) fn dollar_quoted(text: &str) -> String {
    let mut tag = String::from("dv");
    while text.contains(&format!("${tag}")) {
        tag.push('x');
    }
    format!("${tag}${text}${tag}$")
}

/// Renders the migration that builds `spec`'s partition index for the rows whose partition column `column`
/// equals `value`: the index [`pg::create_partition_index`](crate::pg) builds at run time, under the same
/// name, for an application that keeps its schema in migrations.
///
/// PostgreSQL's `up.sql` checks that the vector index is registered as declared here (so a declaration that
/// differs from the database's is an error, not an index no search uses), reads the column's type, and
/// builds the index with the condition the search's filter is written with for that type, the value read as
/// that type as a search reads it (`"7"` for an integer column is 7; a value the type cannot hold stops the
/// migration, naming the column). Its `down.sql` drops the index. SQLite keeps no partition indexes (its
/// index's scan applies the partition filter itself): its `up.sql` and `down.sql` only say so, so that both
/// folders keep the same migrations.
///
/// ```
/// use diesel_vector::index::{generate, IndexSpec};
///
/// let spec = IndexSpec::builder("documents", "embedding", 768).partition_by(["lang"]).build()?;
/// let migration = generate::render_partition_index(&spec, "lang", "fr")?;
/// assert_eq!(migration.name, "create_partition_index_documents_embedding_lang_fr");
/// assert!(migration.pg_up.contains("USING hnsw (\"embedding\" vector_cosine_ops)"));
/// assert!(migration.sqlite_up.starts_with("--"));
///
/// // Only an HNSW index on PostgreSQL has them, and only for a partition column.
/// assert!(generate::render_partition_index(&spec, "body", "x").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`PartitionIndexError`] when `spec` keeps no HNSW index on PostgreSQL, `column` is not one of its partition
/// columns, or `value` holds a NUL character.
pub fn render_partition_index(
    spec: &IndexSpec,
    column: &str,
    value: impl Into<Value>,
) -> Result<Migration, PartitionIndexError> {
    let value = value.into();
    let name = checked_name(spec, column, &value)?;
    let shown = match &value {
        Value::Null => "NULL".to_owned(),
        Value::Text(t) => format!("'{t}'"),
        other => other.to_string(),
    };
    // Comments hold no line break of a value: `--` comments end at one.
    let shown: String = shown.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let header = |backend: &str| {
        format!(
            "-- diesel-vector: the partition index {name} of the vector index {} on {}.{}, for the rows where {column} = \
             {shown}, {backend}.\n\
             -- Generated by diesel-vector's migration generator; down.sql undoes exactly this.\n",
            spec.name(),
            spec.table(),
            spec.column(),
        )
    };
    let mut pg_up = header("PostgreSQL");
    let _ = write!(
        pg_up,
        "-- The condition is written as a search writes its filter on the column's type, which is read here.\n{}\n",
        pg_build(spec, column, &value, &name)
    );
    let mut pg_down = header("PostgreSQL");
    let _ = writeln!(pg_down, "DROP INDEX IF EXISTS {};", quote(&name));
    let sqlite_note = "-- SQLite keeps no partition indexes: its index's scan applies the partition filter itself.\n\
                       -- This migration keeps both folders' migrations the same.\n";
    Ok(Migration {
        name: migration_name(spec, column, &value),
        pg_up,
        pg_down,
        sqlite_up: format!("{}{sqlite_note}", header("SQLite")),
        sqlite_down: format!("{}{sqlite_note}", header("SQLite")),
    })
}

/// `create_partition_index_<table>_<vector column>_<column>_<value>`, with anything but ASCII letters and
/// digits as `_` and the value cut to 32 characters.
fn migration_name(spec: &IndexSpec, column: &str, value: &Value) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
    };
    let value = value_text(value).map_or_else(|| "null".to_owned(), |t| clean(&t).chars().take(32).collect());
    format!("create_partition_index_{}_{}_{}_{value}", clean(spec.table()), clean(spec.column()), clean(column))
}

/// The `DO` block of PostgreSQL's `up.sql`: the registry's row must be the declared index's; the column's
/// kind, read as the search's set-up reads it, picks one of the conditions rendered here for each kind (or
/// the reason the value does not fit it).
fn pg_build(spec: &IndexSpec, column: &str, value: &Value, name: &str) -> String {
    let fail =
        |message: &str| format!("RAISE EXCEPTION USING MESSAGE = {};", literal(&format!("diesel-vector: {message}")));
    let table_lit = literal(&quote(spec.table()));
    let registry_table = quote(super::REGISTRY_TABLE);
    let declared = format!(
        "the vector index {} on {} ({}, {}, HNSW index {}, partition columns {}) is not registered as this \
         migration expects: apply the vector index's migration first, or generate this one from the vector index's \
         own declaration",
        shown(spec.name()),
        shown_column(spec.table(), spec.column()),
        spec.element().pg_type(spec.dims()),
        spec.metric().name(),
        shown(spec.pg_index_name().unwrap_or_default()),
        spec.partition_by().map(shown).collect::<Vec<_>>().join(", "),
    );
    let mut body = String::from("DECLARE\n    kind text;\n    cond text;\nBEGIN\n");
    let _ = write!(
        body,
        "    IF to_regclass({}) IS NULL THEN\n        {}\n    END IF;\n",
        literal(&registry_table),
        fail(&declared)
    );
    let _ = write!(
        body,
        "    IF NOT EXISTS (SELECT 1 FROM {registry_table} WHERE name = {} AND table_name = {} AND id_column = {} \
         AND vector_column = {} AND element = {} AND dims = {} AND metric = {} AND partition_by = {} \
         AND pg_index = {} AND pg_index_name = {}) THEN\n        {}\n    END IF;\n",
        literal(spec.name()),
        literal(spec.table()),
        literal(spec.id_column()),
        literal(spec.column()),
        literal(spec.element().name()),
        spec.dims(),
        literal(spec.metric().name()),
        literal(&registry::json_names(spec.partition_by())),
        literal(spec.pg_index().name()),
        literal(spec.pg_index_name().unwrap_or_default()),
        fail(&declared),
    );
    let _ = write!(
        body,
        "    SELECT {} INTO kind FROM pg_attribute a {}\n     \
         WHERE a.attrelid = to_regclass({table_lit}) AND a.attname = {} AND a.attnum > 0 AND NOT a.attisdropped;\n    \
         IF kind IS NULL THEN\n        {}\n    END IF;\n    CASE kind\n",
        column_kind_sql!(),
        column_base_type_sql!(),
        literal(column),
        fail(&format!("{} does not exist", shown_column(spec.table(), column))),
    );
    for (kind, label) in [
        (ColumnKind::Text, "text"),
        (ColumnKind::Integer, "integer"),
        (ColumnKind::Bool, "bool"),
        (ColumnKind::Other, "other"),
    ] {
        let arm = match coerce(value, kind) {
            Ok(filter) => format!("cond := {};", literal(&condition(column, kind, &filter))),
            Err(hint) => fail(&format!("{value} does not fit {}{hint}", shown_column(spec.table(), column))),
        };
        let _ = writeln!(body, "        WHEN {} THEN {arm}", literal(label));
    }
    // The same statement `pg::create_partition_index` runs.
    let create = super::generate::pg_create_index_named(spec, PgIndex::Hnsw, name, "", " WHERE ")
        .unwrap_or_default()
        .replacen("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1);
    let create = create.strip_suffix(';').unwrap_or(&create);
    let _ = write!(body, "    END CASE;\n    EXECUTE {} || cond;\nEND", literal(create));
    let tag = super::generate::dollar_tag(&body);
    format!("DO {tag}\n{body}\n{tag};")
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
    fn names_are_the_ones_indexes_were_built_under() {
        // Indexes built by earlier builds keep being found: the hash is fixed.
        assert_eq!(
            name_of("documents_embedding_cosine_idx", "lang", Some("fr")),
            "documents_embedding_cosine_idx_p96eb8af5ffce2c43"
        );
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

    #[test]
    fn a_migration_is_refused_for_what_has_no_partition_index() {
        let spec = IndexSpec::builder("documents", "embedding", 3).partition_by(["lang"]).build().unwrap();
        let err = render_partition_index(&spec, "body", "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "body is not a partition column of the vector index __dv_documents_embedding (its partition columns: lang)"
        );
        let err = render_partition_index(&spec, "lang", "a\0b").unwrap_err();
        assert!(matches!(err, PartitionIndexError::Nul { .. }), "{err}");
        let ivf = IndexSpec::builder("documents", "embedding", 3)
            .partition_by(["lang"])
            .pg_index(PgIndex::Ivfflat)
            .build()
            .unwrap();
        let err = render_partition_index(&ivf, "lang", "fr").unwrap_err();
        assert!(err.to_string().starts_with("partition indexes are HNSW indexes"), "{err}");
    }

    #[test]
    fn hostile_values_and_names_stay_inside_their_literals() {
        let spec = IndexSpec::builder("my \"docs\"; --", "embedding", 3).partition_by(["la'ng"]).build().unwrap();
        let value = "fr'); DROP TABLE x; --\n$dv$ $dv1$";
        let m = render_partition_index(&spec, "la'ng", value).unwrap();
        let name = partition_index_name(&spec, "la'ng", &Value::Text(value.into())).unwrap();
        assert!(m.pg_down.ends_with(&format!("DROP INDEX IF EXISTS {};\n", quote(&name))));
        // The header's comment lines hold no line break of the value.
        for line in m.pg_up.lines().take(2).chain(m.sqlite_up.lines()) {
            assert!(line.starts_with("--"), "{line}");
        }
        assert!(m.name.starts_with("create_partition_index_my__docs______embedding_la_ng_fr"), "{}", m.name);
        assert!(m.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }
}
