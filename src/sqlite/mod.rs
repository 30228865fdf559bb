//! Everything SQLite-specific: the BLOB format, connection set-up, sqlite-vec registration, the
//! migration runner's SQLite side and the vector index (the crate's quantized codes, sqlite-vec's vec0).

#[cfg(feature = "async")]
mod asynchronous;
mod cached;
mod codes;
mod connection;
pub(crate) mod doctor;
mod exact;
mod expression;
mod extension;
mod functions;
pub(crate) mod index;
mod migrations;
mod parallel;
mod search;
pub(crate) mod transaction;
mod transfer;
mod types;

#[cfg(feature = "async")]
pub use asynchronous::{
    establish_async, index_status_async, rebuild_async, rebuild_index_async, status_async, sync_async,
    sync_index_async, AsyncSqliteConnection,
};
pub use codes::clear_codes_cache;
#[cfg(feature = "r2d2")]
pub use connection::SqliteCustomizer;
pub use connection::{establish, sqlite_vec_version, ConnectionOptions};
pub use extension::{deregister_sqlite_vec, register_sqlite_vec, SQLITE_VEC_COMPILED_IN};
pub use index::{
    index_status, invalid_rows, rebuild, rebuild_index, status, sync, sync_index, IndexError, IndexStatus, InvalidRows,
    SyncReport, INDEX_DIMS, INDEX_TABLE,
};
pub use parallel::close_scan_connections;

/// Ids as a JSON array, for `IN (SELECT value FROM json_each(?))`: one bound parameter for any number of ids.
fn json_ids(ids: &[i64]) -> String {
    format!("[{}]", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
}
