//! Everything SQLite-specific: the BLOB format, connection set-up and sqlite-vec registration.

mod connection;
mod expression;
mod extension;
mod functions;
mod types;

#[cfg(feature = "r2d2")]
pub use connection::SqliteCustomizer;
pub use connection::{establish, sqlite_vec_version, ConnectionOptions};
pub use extension::{deregister_sqlite_vec, register_sqlite_vec, SQLITE_VEC_COMPILED_IN};
