//! Vector embeddings for [Diesel] on PostgreSQL ([pgvector]) and SQLite ([sqlite-vec]), with the same
//! models, schema and queries.
//!
//! - [`Vector`]: the value type, an owned list of `f32` that is valid by construction (non-empty, finite,
//!   at most [`MAX_DIMS`] dimensions).
//! - [`sql_types::Vector`]: one SQL type for both backends, pgvector's `vector` on PostgreSQL and a BLOB
//!   of little-endian `f32` (the format sqlite-vec reads) on SQLite.
//! - pgvector's other types, each a value type and an SQL type for both backends: [`HalfVector`]
//!   (`halfvec`), [`SparseVector`] (`sparsevec`) and [`Bit`] (`bit`); [`VectorKind`] names the four.
//! - [`codec`]: the wire formats as pure functions.
//! - [`sqlite`]: opening SQLite connections with sqlite-vec registered and foreign keys on.
//! - [`multi_connection_support!`]: the impls a `#[derive(MultiConnection)]` enum needs; [`multi_connection`]:
//!   multi-row inserts and upserts through such an enum ([`multi_connection_dispatch!`]).
//! - [`schema`] and [`models`]: `fragments` and `fragment_embeddings`, one schema for both backends.
//! - [`migrations`]: the embedded migrations per backend and a runner with locking, adoption of existing
//!   tables, extension checks and telemetry; [`database::DatabaseConnection`] picks the backend from a URL.
//! - [`dsl`]: typed distances (`l2_distance`, `cosine_distance`, `l1_distance`, `max_inner_product`) for your
//!   own queries, and `hamming_distance`, `jaccard_distance` on bit strings, rendering pgvector's operators or
//!   sqlite-vec's (and the crate's) functions ([`VectorExpressionMethods`]).
//! - [`search`]: k-nearest-neighbour search over any table with a registered vector index ([`index`]),
//!   typed or at run time, with filters, the same answers on both backends, using pgvector's HNSW or ivfflat
//!   or the SQLite index where they help; `fragment_embeddings` through `search::Search`.
//! - [`pg`]: the PostgreSQL indexes' status and rebuild.
//! - [`copy`], [`doctor`] and `jsonl`: copying an application's tables between databases of either backend
//!   (resumable, verified), diagnosis of any database's vector indexes and their repair, JSON lines; the
//!   `diesel-vector` command line (feature
//!   `cli`) is a thin layer over them.
//!
//! # Features
//!
//! - `sqlite` (default): the SQLite backend.
//! - `bundled` (default): build SQLite from source (modern SQLite); without it the system's libsqlite3 is used.
//! - `sqlite-vec` (default): compile sqlite-vec in and register it on every SQLite connection.
//! - `pg`: the PostgreSQL backend (pgvector) on `diesel::PgConnection`, through libpq.
//! - `pg-backend`: PostgreSQL without a connection (no libpq): the types, the DSL, `multi_connection_support!`.
//! - `async`: `_async` twins of the runner, index maintenance, registry and search for diesel-async's
//!   `AsyncPgConnection` (tokio-postgres, no libpq) and, with `sqlite`, its `SyncConnectionWrapper<SqliteConnection>`
//!   ([`migrations::run_pending_migrations_async`], `sqlite::sync_async`, `pg::status_async`,
//!   `search::IndexSearch::run_async`, ...).
//! - `serde`: `Serialize`/`Deserialize` for [`Vector`] and [`HalfVector`] (sequences of numbers),
//!   [`SparseVector`] and [`Bit`] (pgvector's text forms).
//! - `r2d2`: [`sqlite::SqliteCustomizer`], to set pooled SQLite connections up.
//! - `jsonl`: `jsonl::export` / `jsonl::import`, an application's tables as JSON lines (adds `serde_json`).
//! - `cli`: the `diesel-vector` binary (`pg`, `sqlite`, `jsonl` and `clap`).
//!
//! `pg`, `sqlite` and `async` add up in any combination; with none, the value type and codecs still build.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel::prelude::*;
//! use diesel_vector::Vector;
//!
//! diesel::table! {
//!     use diesel::sql_types::*;
//!     use diesel_vector::sql_types::Vector;
//!     items (id) {
//!         id -> Integer,
//!         embedding -> Vector,
//!     }
//! }
//!
//! let mut conn = diesel_vector::sqlite::establish(":memory:")?;
//! diesel::sql_query("CREATE TABLE items (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL)").execute(&mut conn)?;
//!
//! let v = Vector::new(vec![0.25, -1.5, 3.0])?;
//! diesel::insert_into(items::table)
//!     .values((items::id.eq(1), items::embedding.eq(&v)))
//!     .execute(&mut conn)?;
//! let back: Vector = items::table.select(items::embedding).first(&mut conn)?;
//! assert_eq!(back, v);
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! ```
//!
//! [Diesel]: https://diesel.rs
//! [pgvector]: https://github.com/pgvector/pgvector
//! [sqlite-vec]: https://github.com/asg017/sqlite-vec
#![deny(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// `pg-backend` alone (no `pg`, `async` or `sqlite`) builds the queries that the runner, the search and the
// index maintenance send, for `pg` and `async` to run: nothing in that build runs them.
#![cfg_attr(
    all(feature = "pg-backend", not(any(feature = "pg", feature = "async", feature = "sqlite"))),
    allow(dead_code, unused_imports, unused_macros)
)]

pub mod ann;
mod bit;
pub mod codec;
#[cfg(any(feature = "pg", feature = "sqlite"))]
pub mod copy;
#[cfg(any(feature = "pg", feature = "sqlite"))]
pub mod database;
#[cfg(any(feature = "pg", feature = "sqlite"))]
pub mod doctor;
pub mod dsl;
mod error;
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
mod exec;
mod halfvec;
#[macro_use]
pub mod index;
mod kind;
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
pub mod migrations;
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
pub mod models;
mod multi;
pub mod multi_connection;
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
pub mod schema;
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
pub mod search;
pub mod simd;
mod sparsevec;
pub mod sql_types;
#[cfg(any(feature = "pg", feature = "sqlite"))]
mod transfer;
mod vector;

#[cfg(all(feature = "jsonl", any(feature = "pg", feature = "sqlite")))]
pub mod jsonl;
#[cfg(feature = "pg-backend")]
pub mod pg;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use bit::Bit;
pub use dsl::VectorExpressionMethods;
pub use error::VectorError;
pub use halfvec::HalfVector;
pub use kind::VectorKind;
pub use sparsevec::SparseVector;
pub use vector::{Vector, MAX_DIMS};

#[doc(hidden)]
pub mod __private {
    pub use diesel;
}
