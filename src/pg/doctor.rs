//! What [`crate::doctor::diagnose`] reads on PostgreSQL: the server, pgvector, the foreign key, rows and
//! the vector index.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::PgConnection;

use crate::doctor::{DoctorError, Extension, Facts, ForeignKeys, IndexState, RowCountsRow, ROW_COUNTS};
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
    let tables = conn.exists("fragments")? && conn.exists("fragment_embeddings")?;
    if !tables {
        return Ok(Facts { server_version: server.version, extension, foreign_keys: None, rows: None, index: None });
    }
    let fk: ForeignKey = diesel::sql_query(
        "SELECT count(*) > 0 AS declared, coalesce(bool_or(convalidated), false) AS enforced FROM pg_constraint \
         WHERE conrelid = 'fragment_embeddings'::regclass AND confrelid = 'fragments'::regclass AND contype = 'f'",
    )
    .get_result(conn)?;
    let rows: RowCountsRow = diesel::sql_query(ROW_COUNTS).get_result(conn)?;
    let index = match super::index_method(conn)?.as_deref() {
        None => IndexState::Missing,
        Some("ivfflat") => super::ivfflat_status(conn)?.map_or(IndexState::Missing, IndexState::Ivfflat),
        Some(method) => IndexState::Other { method: method.to_owned() },
    };
    Ok(Facts {
        server_version: server.version,
        extension,
        foreign_keys: Some(ForeignKeys { declared: fk.declared, enforced: fk.enforced }),
        rows: Some(rows.into()),
        index: Some(index),
    })
}
