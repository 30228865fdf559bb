//! What [`crate::doctor::diagnose`] reads on SQLite: the library and sqlite-vec, every registered index
//! against the catalog (its queue, state, vec0 table and the rows it leaves out), vec0 tables no index
//! owns, and the crate's own `fragments` schema when it exists.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::SqliteConnection;

use crate::doctor::{
    id_unique, registry_rows, DoctorError, Extension, Facts, ForeignKeys, IndexReport, IndexState, RowCountsRow,
    Unregistered, NAMED_IDS, ROW_COUNTS,
};
use crate::index::IndexSpec;
use crate::migrations::shape::Catalog;

#[derive(QueryableByName)]
struct Library {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Bool)]
    declared: bool,
    #[diesel(sql_type = Bool)]
    enforced: bool,
}

pub(crate) fn facts(conn: &mut SqliteConnection) -> Result<Facts, DoctorError> {
    let library: Library = diesel::sql_query(
        "SELECT 'SQLite ' || sqlite_version() AS version, \
                EXISTS (SELECT 1 FROM pragma_foreign_key_list('fragment_embeddings') WHERE \"table\" = 'fragments') \
                    AS declared, \
                (SELECT foreign_keys FROM pragma_foreign_keys) AS enforced",
    )
    .get_result(conn)?;
    let extension = Extension::SqliteVec { version: super::sqlite_vec_version(conn)? };
    let fragments = if conn.exists("fragments")? && conn.exists("fragment_embeddings")? {
        let rows: RowCountsRow = diesel::sql_query(ROW_COUNTS).get_result(conn)?;
        Some((ForeignKeys { declared: library.declared, enforced: library.enforced }, rows.into()))
    } else {
        None
    };
    let (specs, invalid_registry_rows) = registry_rows(conn)?;
    let mut indexes = Vec::with_capacity(specs.len());
    for spec in &specs {
        indexes.push(index_report(conn, spec)?);
    }
    let unregistered = leftover_vec0_tables(conn, &specs)?;
    Ok(Facts { server_version: library.version, extension, indexes, invalid_registry_rows, unregistered, fragments })
}

fn index_report(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<IndexReport, DoctorError> {
    let columns = conn.columns(spec.table())?;
    let Some(column_type) = columns.iter().find(|c| c.name == spec.column()).map(|c| c.ty.clone()) else {
        return Ok(IndexReport::missing(spec));
    };
    let missing_columns = spec.columns_missing(|c| columns.iter().any(|f| f.name == c));
    if !missing_columns.is_empty() {
        return Ok(IndexReport { column_type: Some(column_type), missing_columns, ..IndexReport::missing(spec) });
    }
    let id_unique = id_unique(conn, &crate::index::generate::sqlite_id_unique(spec))?;
    let state = match super::status(conn, spec) {
        Ok(status) => {
            let invalid = super::invalid_rows(conn, spec, NAMED_IDS).map_err(DoctorError::Index)?;
            IndexState::Sqlite { status, invalid }
        }
        Err(super::IndexError::NotMigrated { .. }) => IndexState::NotSetUp,
        Err(e) => return Err(DoctorError::Index(e)),
    };
    Ok(IndexReport {
        spec: spec.clone(),
        column_type: Some(column_type),
        state: Some(state),
        id_unique: Some(id_unique),
        missing_columns,
    })
}

/// vec0 tables that no registered index owns.
fn leftover_vec0_tables(conn: &mut SqliteConnection, specs: &[IndexSpec]) -> Result<Vec<Unregistered>, DoctorError> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' \
         AND lower(sql) LIKE '%using vec0%' ORDER BY name",
    )
    .load(conn)?;
    Ok(tables
        .into_iter()
        .filter(|t| !specs.iter().any(|s| s.sqlite_index().vec0 && s.vec0_table() == t.name))
        .map(|t| Unregistered::Vec0Table { name: t.name })
        .collect())
}
