//! What [`crate::doctor::diagnose`] reads on SQLite: the library, sqlite-vec, the foreign key, rows and
//! the vec0 index.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::SqliteConnection;

use crate::doctor::{DoctorError, Extension, Facts, ForeignKeys, IndexState, RowCountsRow, ROW_COUNTS};
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
    let tables = conn.exists("fragments")? && conn.exists("fragment_embeddings")?;
    if !tables {
        return Ok(Facts { server_version: library.version, extension, foreign_keys: None, rows: None, index: None });
    }
    let rows: RowCountsRow = diesel::sql_query(ROW_COUNTS).get_result(conn)?;
    let index = match super::index_status(conn) {
        Ok(status) => Some(IndexState::Vec0(status)),
        Err(super::IndexError::NotMigrated { .. }) => None,
        Err(e) => return Err(DoctorError::Index(e)),
    };
    Ok(Facts {
        server_version: library.version,
        extension,
        foreign_keys: Some(ForeignKeys { declared: library.declared, enforced: library.enforced }),
        rows: Some(rows.into()),
        index,
    })
}
