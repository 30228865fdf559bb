//! SQL types, for `table!` and `print-schema`.

/// The SQL type of a vector column, one marker for both backends.
///
/// | backend | database type | Rust type |
/// |---|---|---|
/// | PostgreSQL | pgvector's `vector` / `vector(N)` | [`crate::Vector`] |
/// | SQLite | `BLOB` of little-endian `f32` | [`crate::Vector`] |
///
/// One `table!` therefore serves both backends:
///
/// ```
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::Vector;
///
///     items (id) {
///         id -> BigInt,
///         embedding -> Nullable<Vector>,
///     }
/// }
/// ```
///
/// On PostgreSQL, Diesel looks the `vector` type up by name once per connection, following the
/// connection's `search_path`: the schema pgvector was created in must be on it. For `diesel
/// print-schema`, set `import_types = ["diesel::sql_types::*", "diesel_vector::sql_types::*"]` and
/// `generate_missing_sql_type_definitions = false` so the generated schema uses this type.
#[derive(Debug, Clone, Copy, Default, diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
#[cfg_attr(feature = "pg", diesel(postgres_type(name = "vector")))]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Binary")))]
pub struct Vector;
