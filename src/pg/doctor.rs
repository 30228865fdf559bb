//! What [`crate::doctor::diagnose`] reads on PostgreSQL: the server and pgvector, every registered index
//! against the catalog, the pgvector columns and indexes the registry does not know, and the crate's own
//! `fragments` schema when it exists.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::PgConnection;

use crate::doctor::{
    id_unique, registry_rows, DoctorError, Extension, Facts, ForeignKeys, IndexReport, IndexState, PgIndexInfo,
    RowCountsRow, Unregistered, ROW_COUNTS,
};
use crate::index::{quote, IndexSpec};
use crate::migrations::shape::Catalog;

#[derive(QueryableByName)]
struct Server {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Nullable<Text>)]
    available: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    installed: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    schema: Option<String>,
    #[diesel(sql_type = Bool)]
    on_search_path: bool,
}

#[derive(QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = Bool)]
    declared: bool,
    #[diesel(sql_type = Bool)]
    enforced: bool,
}

pub(crate) fn facts(conn: &mut PgConnection) -> Result<Facts, DoctorError> {
    let server: Server = diesel::sql_query(
        "SELECT 'PostgreSQL ' || current_setting('server_version') AS version, \
                (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available, \
                (SELECT extversion::text FROM pg_extension WHERE extname = 'vector') AS installed, \
                (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector') AS schema, \
                to_regtype('vector') IS NOT NULL AS on_search_path",
    )
    .get_result(conn)?;
    let extension = Extension::Pgvector {
        available: server.available,
        installed: server.installed,
        schema: server.schema,
        on_search_path: server.on_search_path,
    };
    let fragments = if conn.exists("fragments")? && conn.exists("fragment_embeddings")? {
        let fk: ForeignKey = diesel::sql_query(
            "SELECT count(*) > 0 AS declared, coalesce(bool_or(convalidated), false) AS enforced FROM pg_constraint \
             WHERE conrelid = 'fragment_embeddings'::regclass AND confrelid = 'fragments'::regclass AND contype = 'f'",
        )
        .get_result(conn)?;
        let rows: RowCountsRow = diesel::sql_query(ROW_COUNTS).get_result(conn)?;
        Some((ForeignKeys { declared: fk.declared, enforced: fk.enforced }, rows.into()))
    } else {
        None
    };
    let (specs, invalid_registry_rows) = registry_rows(conn)?;
    let mut indexes = Vec::with_capacity(specs.len());
    for spec in &specs {
        indexes.push(index_report(conn, spec)?);
    }
    let unregistered = unregistered(conn, &specs)?;
    Ok(Facts { server_version: server.version, extension, indexes, invalid_registry_rows, unregistered, fragments })
}

fn index_report(conn: &mut PgConnection, spec: &IndexSpec) -> Result<IndexReport, DoctorError> {
    let columns = conn.columns(&quote(spec.table()))?;
    let Some(column_type) = columns.iter().find(|c| c.name == spec.column()).map(|c| c.ty.clone()) else {
        return Ok(IndexReport::missing(spec));
    };
    let missing_columns = spec.columns_missing(|c| columns.iter().any(|f| f.name == c));
    if !missing_columns.is_empty() {
        return Ok(IndexReport { column_type: Some(column_type), missing_columns, ..IndexReport::missing(spec) });
    }
    let id_unique = id_unique(conn, &crate::index::generate::pg_id_unique(spec))?;
    let status = super::status(conn, spec)?;
    let (definition, operator_class_matches) = match (&status.method, spec.pg_index_name()) {
        (Some(_), Some(name)) => {
            let definition = index_definition(conn, name)?;
            // The operator class names the indexed type and the metric: `vector_cosine_ops`,
            // `halfvec_cosine_ops` for the cast above 2000 dimensions.
            // Binary quantization: `bit_hamming_ops` on the vectors' signs, whatever the search's metric.
            let expected = if spec.pg_index() == crate::index::PgIndex::BinaryQuantized {
                "bit_hamming_ops".to_owned()
            } else {
                format!("{}_{}_ops", spec.pg_cast().unwrap_or(spec.element()).name(), spec.metric().opclass_suffix())
            };
            let words = || definition.split(|c: char| !c.is_ascii_alphanumeric() && c != '_');
            let matches = words().any(|w| w == expected)
                && (spec.pg_index() != crate::index::PgIndex::BinaryQuantized
                    || words().any(|w| w == "binary_quantize"));
            (Some(definition), Some(matches))
        }
        _ => (None, None),
    };
    let partition_indexes = partition_indexes(conn, spec)?;
    Ok(IndexReport {
        spec: spec.clone(),
        column_type: Some(column_type),
        state: Some(IndexState::Pg { status, definition, operator_class_matches, partition_indexes }),
        id_unique: Some(id_unique),
        missing_columns,
    })
}

/// The partition indexes of `spec` (partial indexes of its table named as `pg::partition_index_name` names
/// them).
fn partition_indexes(conn: &mut PgConnection, spec: &IndexSpec) -> Result<Vec<PgIndexInfo>, DoctorError> {
    let partial: Vec<VectorIndex> = diesel::sql_query(
        "SELECT ns.nspname::text AS schema_name, tc.relname::text AS table_name, $2::text AS column_name, \
                ic.relname::text AS name, am.amname::text AS method, ix.indisvalid AS valid, NULL::int4 AS lists, \
                pg_get_indexdef(ic.oid) AS definition \
         FROM pg_index ix JOIN pg_class ic ON ic.oid = ix.indexrelid JOIN pg_am am ON am.oid = ic.relam \
         JOIN pg_class tc ON tc.oid = ix.indrelid JOIN pg_namespace ns ON ns.oid = tc.relnamespace \
         WHERE ix.indrelid = to_regclass($1) AND ix.indpred IS NOT NULL ORDER BY 4",
    )
    .bind::<Text, _>(quote(spec.table()))
    .bind::<Text, _>(spec.column())
    .load(conn)?;
    Ok(partial
        .into_iter()
        .filter(|p| crate::index::partition::is_partition_index_of(spec, &p.name))
        .map(|p| PgIndexInfo {
            name: p.name,
            method: p.method,
            valid: p.valid,
            lists: None,
            definition: p.definition,
            rows: None,
        })
        .collect())
}

fn index_definition(conn: &mut PgConnection, name: &str) -> QueryResult<String> {
    #[derive(QueryableByName)]
    struct Definition {
        #[diesel(sql_type = Text)]
        definition: String,
    }
    diesel::sql_query("SELECT coalesce(pg_get_indexdef(to_regclass($1)), '') AS definition")
        .bind::<Text, _>(quote(name))
        .get_result::<Definition>(conn)
        .map(|d| d.definition)
}

#[derive(QueryableByName)]
struct VectorColumn {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    column_type: String,
    #[diesel(sql_type = BigInt)]
    rows_estimate: i64,
}

#[derive(QueryableByName)]
struct VectorIndex {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = Bool)]
    valid: bool,
    #[diesel(sql_type = Nullable<Integer>)]
    lists: Option<i32>,
    #[diesel(sql_type = Text)]
    definition: String,
}

/// Whether the column `a` of the index `ix` is one it indexes: a key column, or one its key expressions read
/// (as `varattno` in the expressions' node tree). A partial index's condition depends on its columns too
/// (`pg_depend` lists them alike), but they are not indexed.
macro_rules! indexed_column_sql {
    () => {
        "(a.attnum = ANY(ix.indkey::int2[]) OR coalesce(ix.indexprs::text ~ (':varattno ' || a.attnum || ' '), false))"
    };
}

/// Columns of pgvector's types, and columns with an HNSW or ivfflat index, outside the system schemas.
const VECTOR_COLUMNS: &str = concat!(
    "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name, \
         a.attname::text AS column_name, format_type(a.atttypid, a.atttypmod) AS column_type, \
         greatest(c.reltuples, 0)::int8 AS rows_estimate \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_type t ON t.oid = a.atttypid \
     WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
       AND (t.typname IN ('vector', 'halfvec', 'sparsevec') OR EXISTS ( \
            SELECT 1 FROM pg_depend d JOIN pg_class ic ON ic.oid = d.objid JOIN pg_am am ON am.oid = ic.relam \
            JOIN pg_index ix ON ix.indexrelid = ic.oid \
            WHERE d.classid = 'pg_class'::regclass AND d.refobjid = c.oid AND d.refobjsubid = a.attnum \
              AND am.amname IN ('hnsw', 'ivfflat') AND ",
    indexed_column_sql!(),
    ")) ORDER BY 1, 2, 3"
);

/// pgvector's indexes with the columns they index (through `pg_depend`, which also covers expression
/// indexes such as the halfvec cast; a partial index's condition columns left out).
const VECTOR_INDEXES: &str = concat!(
    "SELECT n.nspname::text AS schema_name, tc.relname::text AS table_name, \
         a.attname::text AS column_name, ic.relname::text AS name, am.amname::text AS method, \
         ix.indisvalid AS valid, \
         CASE WHEN am.amname = 'ivfflat' THEN coalesce((SELECT o.option_value::int \
             FROM pg_options_to_table(ic.reloptions) o WHERE o.option_name = 'lists'), 100) END AS lists, \
         pg_get_indexdef(ic.oid) AS definition \
     FROM pg_index ix JOIN pg_class ic ON ic.oid = ix.indexrelid JOIN pg_am am ON am.oid = ic.relam \
     JOIN pg_class tc ON tc.oid = ix.indrelid JOIN pg_namespace n ON n.oid = tc.relnamespace \
     JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = ic.oid AND d.refobjid = tc.oid \
         AND d.refobjsubid > 0 \
     JOIN pg_attribute a ON a.attrelid = tc.oid AND a.attnum = d.refobjsubid \
     WHERE am.amname IN ('hnsw', 'ivfflat') AND ",
    indexed_column_sql!(),
    " ORDER BY 1, 2, 3, 4"
);

fn unregistered(conn: &mut PgConnection, specs: &[IndexSpec]) -> Result<Vec<Unregistered>, DoctorError> {
    let columns: Vec<VectorColumn> = diesel::sql_query(VECTOR_COLUMNS).load(conn)?;
    let indexes: Vec<VectorIndex> = diesel::sql_query(VECTOR_INDEXES).load(conn)?;
    let registered_column =
        |table: &str, column: &str| specs.iter().find(|s| s.table() == table && s.column() == column);
    let mut out = Vec::new();
    for c in columns {
        let on_column = indexes.iter().filter(|i| {
            i.schema_name == c.schema_name && i.table_name == c.table_name && i.column_name == c.column_name
        });
        match registered_column(&c.table_name, &c.column_name) {
            // A registered column: only the pgvector indexes the registry does not name.
            Some(spec) => {
                let unknown = |i: &&VectorIndex| {
                    Some(i.name.as_str()) != spec.pg_index_name()
                        && !crate::index::partition::is_partition_index_of(spec, &i.name)
                };
                for i in on_column.filter(unknown) {
                    let info = index_info(conn, i)?;
                    out.push(Unregistered::PgIndex {
                        table: c.table_name.clone(),
                        column: c.column_name.clone(),
                        registered_as: spec.name().to_owned(),
                        index: info,
                    });
                }
            }
            None => {
                // A partition index depends on its condition's column too (`lang` of `WHERE lang = 'fr'`): it is
                // the registered index's, and such a column is no vector column.
                let theirs = |i: &VectorIndex| {
                    specs.iter().any(|s| {
                        s.table() == i.table_name && crate::index::partition::is_partition_index_of(s, &i.name)
                    })
                };
                let on_column: Vec<&VectorIndex> = on_column.filter(|i| !theirs(i)).collect();
                let vector_type = ["vector", "halfvec", "sparsevec"].iter().any(|t| c.column_type.starts_with(t));
                if on_column.is_empty() && !vector_type {
                    continue;
                }
                let mut infos = Vec::new();
                for i in on_column {
                    infos.push(index_info(conn, i)?);
                }
                out.push(Unregistered::PgColumn {
                    schema: c.schema_name,
                    table: c.table_name,
                    column: c.column_name,
                    column_type: c.column_type,
                    rows_estimate: c.rows_estimate,
                    indexes: infos,
                });
            }
        }
    }
    Ok(out)
}

/// An index found in the catalog; an ivfflat one with its rows counted (its lists are judged against them).
fn index_info(conn: &mut PgConnection, i: &VectorIndex) -> Result<PgIndexInfo, DoctorError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows = match i.lists {
        Some(_) => Some(
            diesel::sql_query(format!(
                "SELECT count(*) AS n FROM {}.{} t WHERE t.{} IS NOT NULL",
                quote(&i.schema_name),
                quote(&i.table_name),
                quote(&i.column_name)
            ))
            .get_result::<Count>(conn)?
            .n,
        ),
        None => None,
    };
    Ok(PgIndexInfo {
        name: i.name.clone(),
        method: i.method.clone(),
        valid: i.valid,
        lists: i.lists,
        definition: i.definition.clone(),
        rows,
    })
}
