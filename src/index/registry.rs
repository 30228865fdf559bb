//! The registry: one row per vector index, in the database itself.
//!
//! The migration that creates an index also records it in [`REGISTRY_TABLE`] (its name starts with `__`,
//! so `diesel print-schema` leaves it out of the application's `schema.rs`). Any tool can then find every
//! vector index of a database without the application's Rust code: the CLI's `search`, `doctor`,
//! `reindex` and `copy` read it with [`load`].
//!
//! The table is the same on both backends:
//!
//! | column | holds |
//! |---|---|
//! | `name` | the index's name (primary key) |
//! | `table_name`, `id_column`, `vector_column` | where the vectors are |
//! | `element`, `dims`, `metric` | `vector` / `halfvec` / `bit` / `sparsevec`, dimensions, metric name |
//! | `partition_by` | the equality-filter columns, a JSON array of names |
//! | `pg_index`, `pg_index_name` | PostgreSQL's index: `hnsw`, `ivfflat` or `none`, and its name |
//! | `sqlite_index` | what SQLite keeps: `codes`, `vec0`, `codes,vec0` or `none` |
//! | `format` | the row's format version (1) |
//!
//! Like the pgvector extension, the registry table is shared by every index and stays when the last
//! index is reverted; a down migration deletes only its own row.

use std::fmt;

use super::ident::{literal, quote};
use super::spec::{Element, IndexSpec, Metric, SpecError, SqliteIndex};

/// The registry table's name.
pub const REGISTRY_TABLE: &str = "__diesel_vector_indexes";

/// The registry rows' format this build writes and reads.
pub const REGISTRY_FORMAT: i32 = 1;

/// `CREATE TABLE IF NOT EXISTS` for the registry: the same statement on both backends.
pub fn create_table_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    \
             name TEXT PRIMARY KEY NOT NULL,\n    \
             table_name TEXT NOT NULL,\n    \
             id_column TEXT NOT NULL,\n    \
             vector_column TEXT NOT NULL,\n    \
             element TEXT NOT NULL,\n    \
             dims INTEGER NOT NULL CHECK (dims > 0),\n    \
             metric TEXT NOT NULL,\n    \
             partition_by TEXT NOT NULL DEFAULT '[]',\n    \
             pg_index TEXT NOT NULL,\n    \
             pg_index_name TEXT,\n    \
             sqlite_index TEXT NOT NULL,\n    \
             format INTEGER NOT NULL DEFAULT 1\n\
         );",
        quote(REGISTRY_TABLE)
    )
}

/// The `INSERT` that records `spec`: the same statement on both backends. Every value is a literal
/// (a migration file has no bind parameters), with inner quotes doubled.
pub fn insert_sql(spec: &IndexSpec) -> String {
    let pg_index_name = spec.pg_index_name().map_or_else(|| "NULL".to_owned(), literal);
    format!(
        "{}{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {REGISTRY_FORMAT});",
        insert_prefix(),
        literal(spec.name()),
        literal(spec.table()),
        literal(spec.id_column()),
        literal(spec.column()),
        literal(spec.element().name()),
        spec.dims(),
        literal(spec.metric().name()),
        literal(&json_names(spec.partition_by())),
        literal(spec.pg_index().name()),
        pg_index_name,
        literal(spec.sqlite_index().name()),
    )
}

/// [`insert_sql`] up to the index name's literal.
pub(crate) fn insert_prefix() -> String {
    format!(
        "INSERT INTO {} (name, table_name, id_column, vector_column, element, dims, metric, partition_by, pg_index, \
         pg_index_name, sqlite_index, format)\n    VALUES (",
        quote(REGISTRY_TABLE)
    )
}

/// The `DELETE` that forgets `spec` (its down migration).
pub fn delete_sql(spec: &IndexSpec) -> String {
    format!("{}{};", delete_prefix(), literal(spec.name()))
}

/// [`delete_sql`] up to the index name's literal.
pub(crate) fn delete_prefix() -> String {
    format!("DELETE FROM {} WHERE name = ", quote(REGISTRY_TABLE))
}

/// A registry row as stored, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct RegistryRow {
    /// `name`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub name: String,
    /// `table_name`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub table_name: String,
    /// `id_column`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub id_column: String,
    /// `vector_column`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub vector_column: String,
    /// `element`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub element: String,
    /// `dims`.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub dims: i64,
    /// `metric`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub metric: String,
    /// `partition_by`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub partition_by: String,
    /// `pg_index`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub pg_index: String,
    /// `pg_index_name`.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub pg_index_name: Option<String>,
    /// `sqlite_index`.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub sqlite_index: String,
    /// `format`.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub format: i64,
}

/// The registry's rows as [`RegistryRow`] reads them, with the integers as `BIGINT` on both backends.
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
macro_rules! select_rows_sql {
    () => {
        "SELECT name, table_name, id_column, vector_column, element, CAST(dims AS BIGINT) AS dims, metric, \
         partition_by, pg_index, pg_index_name, sqlite_index, CAST(format AS BIGINT) AS format \
         FROM __diesel_vector_indexes"
    };
}

#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
/// The `SELECT` that [`load`] runs: every row, by name.
pub(crate) const SELECT_ROWS: &str = concat!(select_rows_sql!(), " ORDER BY name");

#[cfg(feature = "sqlite")]
/// The row of one name, bound after this.
pub(crate) const SELECT_ROW_NAMED: &str = concat!(select_rows_sql!(), " WHERE name = ");

impl RegistryRow {
    /// Checks the row and makes the spec it records.
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidRow`] naming the row and what is wrong with it (a row edited by hand, or
    /// written by a newer diesel-vector).
    pub fn to_spec(&self) -> Result<IndexSpec, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidRow { name: self.name.clone(), reason };
        if self.format != i64::from(REGISTRY_FORMAT) {
            return Err(invalid(format!(
                "its format is {}, this diesel-vector reads format {REGISTRY_FORMAT}: upgrade diesel-vector",
                self.format
            )));
        }
        let spec_err = |e: SpecError| invalid(e.to_string());
        let partition_by = parse_json_names(&self.partition_by).map_err(|reason| {
            invalid(format!("partition_by {:?} is not a JSON array of names: {reason}", self.partition_by))
        })?;
        let dims = u64::try_from(self.dims).unwrap_or(0);
        let element: Element = self.element.parse().map_err(spec_err)?;
        let metric: Metric = self.metric.parse().map_err(spec_err)?;
        let mut sqlite_index: SqliteIndex = self.sqlite_index.parse().map_err(spec_err)?;
        if sqlite_index.codes && !super::spec::codes_fit(element, metric) {
            // Written by an earlier diesel-vector, which accepted `codes` on columns they cannot index (the
            // default for every type then) and kept none for them: the row means what that build kept.
            sqlite_index.codes = false;
            sqlite_index.vectors = false;
        }
        let mut builder = IndexSpec::builder(&self.table_name, &self.vector_column, dims)
            .name(&self.name)
            .id_column(&self.id_column)
            .element(element)
            .metric(metric)
            .partition_by(partition_by)
            .pg_index(self.pg_index.parse().map_err(spec_err)?)
            .sqlite_index(sqlite_index);
        if let Some(name) = &self.pg_index_name {
            builder = builder.pg_index_name(name);
        }
        builder.build().map_err(spec_err)
    }
}

/// Why the registry could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A row does not describe a valid index.
    #[error("the vector index registry's row `{name}` is not valid: {reason}")]
    InvalidRow {
        /// The row's `name`.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// No index of that name, or on that table and column, is registered.
    #[error("{0}")]
    NotFound(NotFound),
    /// A query failed.
    #[error("reading the vector index registry failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// What was looked for in the registry and not found, and what is there instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// What was asked for (`table documents`, `documents.embedding`, `index x`).
    pub wanted: String,
    /// The indexes that are registered, as `table.column` (followed by the index's name where a column has
    /// several).
    pub registered: Vec<String>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no vector index is registered for {}", self.wanted)?;
        if self.registered.is_empty() {
            f.write_str(
                ": this database has none (an index is registered by the migration that creates it; generate one \
                 with diesel-vector's migration generator)",
            )
        } else {
            write!(f, "; registered: {}", self.registered.join(", "))
        }
    }
}

/// Every index a database's registry records, by name; none when the registry does not exist.
///
/// # Errors
///
/// [`RegistryError::Query`] when reading fails, [`RegistryError::InvalidRow`] for a row that does not
/// describe a valid index.
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
pub fn load<C>(conn: &mut C) -> Result<Vec<IndexSpec>, RegistryError>
where
    C: crate::migrations::shape::Catalog,
    for<'a> diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'a, C, RegistryRow>,
{
    use diesel::RunQueryDsl;
    if !conn.exists(REGISTRY_TABLE)? {
        return Ok(Vec::new());
    }
    let rows: Vec<RegistryRow> = diesel::sql_query(SELECT_ROWS).load(conn)?;
    rows.iter().map(RegistryRow::to_spec).collect()
}

/// [`load`] on a diesel-async connection (`AsyncPgConnection`, or `SyncConnectionWrapper<SqliteConnection>`
/// with feature `sqlite`).
///
/// # Errors
///
/// As [`load`].
#[cfg(feature = "async")]
pub fn load_async<C: crate::migrations::AsyncMigrationTarget>(
    conn: &mut C,
) -> impl std::future::Future<Output = Result<Vec<IndexSpec>, RegistryError>> + Send + '_ {
    conn.registry()
}

/// Every row of the registry, which must exist, checked: [`load`] for the crate's sync and async
/// connections alike.
#[cfg(feature = "pg-backend")]
pub(crate) async fn load_rows<E: crate::exec::Exec>(conn: &mut E) -> Result<Vec<IndexSpec>, RegistryError>
where
    RegistryRow: diesel::QueryableByName<E::Db>,
{
    let rows: Vec<RegistryRow> = conn.load(crate::exec::sql(SELECT_ROWS)).await?;
    rows.iter().map(RegistryRow::to_spec).collect()
}

/// The index named `name` among `specs`, which must be on `table` when one is given.
///
/// ```
/// use diesel_vector::index::{registry, IndexSpec};
///
/// let specs = [IndexSpec::builder("documents", "embedding", 3).name("docs_cos").build()?];
/// assert_eq!(registry::named(&specs, "docs_cos", Some("documents"))?.column(), "embedding");
/// let err = registry::named(&specs, "docs_cos", Some("notes")).unwrap_err();
/// assert!(err.to_string().contains("index docs_cos on table notes (it is on table documents)"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`RegistryError::NotFound`] naming what is registered.
pub fn named<'a>(specs: &'a [IndexSpec], name: &str, table: Option<&str>) -> Result<&'a IndexSpec, RegistryError> {
    let found = specs.iter().find(|s| s.name() == name);
    if let Some(spec) = found.filter(|s| table.is_none_or(|t| s.table() == t)) {
        return Ok(spec);
    }
    let wanted = match (table, found) {
        (Some(table), Some(spec)) => format!(
            "index {} on table {} (it is on table {})",
            super::shown(name),
            super::shown(table),
            super::shown(spec.table())
        ),
        (Some(table), None) => format!("index {} on table {}", super::shown(name), super::shown(table)),
        (None, _) => format!("index {}", super::shown(name)),
    };
    Err(RegistryError::NotFound(NotFound { wanted, registered: registered_names(specs) }))
}

/// Finds one index among `specs`: by `table.column`, by table alone when the table has exactly one index,
/// or by index name (`table` naming an index, `column` `None`) when no table of that name has one.
///
/// # Errors
///
/// [`RegistryError::NotFound`] naming what is registered; a table with several indexes needs its column,
/// and a column with several indexes (say Hamming and Jaccard on one `bit` column) needs the index's name.
pub fn find<'a>(specs: &'a [IndexSpec], table: &str, column: Option<&str>) -> Result<&'a IndexSpec, RegistryError> {
    let matching: Vec<&IndexSpec> =
        specs.iter().filter(|s| s.table() == table && column.is_none_or(|c| s.column() == c)).collect();
    if let [found] = matching[..] {
        return Ok(found);
    }
    if matching.is_empty() && column.is_none() {
        if let Some(found) = specs.iter().find(|s| s.name() == table) {
            return Ok(found);
        }
    }
    let names = |of: &[&IndexSpec]| of.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    let shown_table = super::shown(table);
    let wanted = match column {
        Some(column) if matching.len() > 1 => {
            format!(
                "{} alone (it has several: {}; name the index)",
                super::shown_column(table, column),
                names(&matching)
            )
        }
        Some(column) => super::shown_column(table, column),
        None if matching.len() > 1 && matching.iter().all(|s| s.column() == matching[0].column()) => format!(
            "table {shown_table} alone (it has several, all of column {}: {}; name the index)",
            super::shown(matching[0].column()),
            names(&matching)
        ),
        None if matching.len() > 1 => format!("table {shown_table} alone (it has several: name the column)"),
        None => format!("table {shown_table}"),
    };
    Err(RegistryError::NotFound(NotFound { wanted, registered: registered_names(specs) }))
}

/// How [`NotFound::registered`] names `specs`: `table.column`, with the index's name after it where the
/// column has several.
pub(crate) fn registered_names(specs: &[IndexSpec]) -> Vec<String> {
    specs
        .iter()
        .map(|s| {
            let shared = specs.iter().filter(|o| o.table() == s.table() && o.column() == s.column()).count() > 1;
            let on = super::shown_column(s.table(), s.column());
            if shared {
                format!("{on} (index {})", super::shown(s.name()))
            } else {
                on
            }
        })
        .collect()
}

/// `names` as a JSON array of strings.
pub(crate) fn json_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in name.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

/// Parses a JSON array of strings (what [`json_names`] writes, or any equivalent JSON).
pub(crate) fn parse_json_names(text: &str) -> Result<Vec<String>, String> {
    let mut chars = text.trim().chars().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
    };
    if chars.next() != Some('[') {
        return Err("it does not start with `[`".into());
    }
    let mut names = Vec::new();
    skip_ws(&mut chars);
    if chars.peek() == Some(&']') {
        chars.next();
    } else {
        loop {
            skip_ws(&mut chars);
            if chars.next() != Some('"') {
                return Err("an element is not a string".into());
            }
            let mut name = String::new();
            loop {
                match chars.next().ok_or("a string is not closed")? {
                    '"' => break,
                    '\\' => match chars.next().ok_or("a string ends in `\\`")? {
                        '"' => name.push('"'),
                        '\\' => name.push('\\'),
                        '/' => name.push('/'),
                        'n' => name.push('\n'),
                        't' => name.push('\t'),
                        'r' => name.push('\r'),
                        'b' => name.push('\u{8}'),
                        'f' => name.push('\u{c}'),
                        'u' => {
                            let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                            let code =
                                u32::from_str_radix(&hex, 16).map_err(|_| "a `\\u` escape is not 4 hex digits")?;
                            name.push(char::from_u32(code).ok_or("a `\\u` escape is not a character")?);
                        }
                        _ => return Err("an unknown escape".into()),
                    },
                    c => name.push(c),
                }
            }
            names.push(name);
            skip_ws(&mut chars);
            match chars.next() {
                Some(',') => continue,
                Some(']') => break,
                _ => return Err("elements are not separated by `,` or closed by `]`".into()),
            }
        }
    }
    skip_ws(&mut chars);
    if chars.next().is_some() {
        return Err("text follows the closing `]`".into());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Element, Metric, PgIndex, SqliteIndex};

    #[test]
    fn names_round_trip_through_json() {
        let names = ["lang", r#"odd "name""#, r"back\slash", "ünï côdé", "a,b", "]"];
        let json = json_names(names);
        assert_eq!(parse_json_names(&json).unwrap(), names);
        assert_eq!(parse_json_names("[]").unwrap(), Vec::<String>::new());
        assert_eq!(parse_json_names(r#" [ "a" , "b" ] "#).unwrap(), ["a", "b"]);
        assert_eq!(parse_json_names(r#"["\u00e9\/"]"#).unwrap(), ["é/"]);
        for bad in ["", "[", r#"["a""#, r#"["a",]"#, "[1]", r#"["a"] x"#, r#"["\q"]"#, r#"{"a":1}"#] {
            assert!(parse_json_names(bad).is_err(), "{bad}");
        }
    }

    fn row(spec: &IndexSpec) -> RegistryRow {
        RegistryRow {
            name: spec.name().into(),
            table_name: spec.table().into(),
            id_column: spec.id_column().into(),
            vector_column: spec.column().into(),
            element: spec.element().name().into(),
            dims: spec.dims().into(),
            metric: spec.metric().name().into(),
            partition_by: json_names(spec.partition_by()),
            pg_index: spec.pg_index().name().into(),
            pg_index_name: spec.pg_index_name().map(Into::into),
            sqlite_index: spec.sqlite_index().name().into(),
            format: 1,
        }
    }

    #[test]
    fn a_row_gives_back_its_spec() {
        let spec = IndexSpec::builder("my docs", r#"emb"ed"#, 3072)
            .id_column("doc id")
            .metric(Metric::InnerProduct)
            .partition_by(["lang", "tenant"])
            .pg_index(PgIndex::Ivfflat)
            .sqlite_index(SqliteIndex::NONE)
            .build()
            .unwrap();
        assert_eq!(row(&spec).to_spec().unwrap(), spec);
        let bits = IndexSpec::builder("t", "b", 1024).element(Element::Bit).pg_index(PgIndex::None).build().unwrap();
        assert_eq!(row(&bits).to_spec().unwrap(), bits);
        // An earlier build registered `codes` for bit columns (and kept none): the row still loads, as
        // what that build kept.
        let mut earlier = row(&bits);
        earlier.sqlite_index = "codes".into();
        assert_eq!(earlier.to_spec().unwrap().sqlite_index(), SqliteIndex::NONE);
        earlier.sqlite_index = "codes,vec0".into();
        assert_eq!(earlier.to_spec().unwrap().sqlite_index(), SqliteIndex::VEC0);
    }

    #[test]
    fn a_row_edited_by_hand_is_named_with_its_fault() {
        let spec = IndexSpec::builder("docs", "embedding", 768).build().unwrap();
        let mut bad = row(&spec);
        bad.dims = -5;
        assert_eq!(
            bad.to_spec().unwrap_err().to_string(),
            "the vector index registry's row `__dv_docs_embedding` is not valid: 0 dimensions for a `vector` column: \
             expected 1 to 16000"
        );
        let mut bad = row(&spec);
        bad.metric = "dot".into();
        assert!(bad.to_spec().unwrap_err().to_string().contains("unknown metric `dot`"));
        let mut bad = row(&spec);
        bad.partition_by = "lang".into();
        assert!(bad.to_spec().unwrap_err().to_string().contains("not a JSON array"));
        let mut bad = row(&spec);
        bad.format = 2;
        assert!(bad.to_spec().unwrap_err().to_string().contains("upgrade diesel-vector"));
    }

    #[test]
    fn find_by_table_and_column() {
        let a = IndexSpec::builder("docs", "embedding", 3).build().unwrap();
        let b = IndexSpec::builder("docs", "title_embedding", 3).build().unwrap();
        let c = IndexSpec::builder("images", "clip", 3).build().unwrap();
        let specs = [a.clone(), b.clone(), c.clone()];
        assert_eq!(find(&specs, "images", None).unwrap(), &c);
        assert_eq!(find(&specs, "docs", Some("title_embedding")).unwrap(), &b);
        let err = find(&specs, "docs", None).unwrap_err().to_string();
        assert!(err.contains("it has several: name the column"), "{err}");
        let err = find(&specs, "users", None).unwrap_err().to_string();
        assert_eq!(
            err,
            "no vector index is registered for table users; registered: docs.embedding, docs.title_embedding, images.clip"
        );
        assert!(find(&[], "users", None).unwrap_err().to_string().contains("this database has none"));

        // By name; and two indexes on one column need it.
        let jaccard = IndexSpec::builder("images", "clip", 3).name("images_clip_jaccard").build().unwrap();
        let specs = [a.clone(), c.clone(), jaccard.clone()];
        assert_eq!(find(&specs, "images_clip_jaccard", None).unwrap(), &jaccard);
        assert_eq!(find(&specs, a.name(), None).unwrap(), &a);
        let err = find(&specs, "images", Some("clip")).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "images.clip alone (it has several: {}, images_clip_jaccard; name the index)",
                c.name()
            )),
            "{err}"
        );
    }
}
