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

/// The SQL type of a half-precision vector column: pgvector's `halfvec` on PostgreSQL, a BLOB of
/// little-endian `f16` on SQLite. Its Rust type is [`crate::HalfVector`].
///
/// | backend | database type | Rust type |
/// |---|---|---|
/// | PostgreSQL | pgvector's `halfvec` / `halfvec(N)` | [`crate::HalfVector`] |
/// | SQLite | `BLOB` of little-endian `f16` (2 bytes per element) | [`crate::HalfVector`] |
///
/// ```
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::HalfVector;
///
///     items (id) {
///         id -> BigInt,
///         embedding -> HalfVector,
///     }
/// }
/// ```
///
/// Like [`Vector`], the PostgreSQL type is looked up by name (`halfvec`) once per connection.
#[derive(Debug, Clone, Copy, Default, diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
#[cfg_attr(feature = "pg", diesel(postgres_type(name = "halfvec")))]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Binary")))]
pub struct HalfVector;

/// The SQL type of a sparse vector column: pgvector's `sparsevec` on PostgreSQL, a BLOB on SQLite (see
/// [`codec::sparsevec`](crate::codec::sparsevec) for its layout). Its Rust type is
/// [`crate::SparseVector`].
///
/// | backend | database type | Rust type |
/// |---|---|---|
/// | PostgreSQL | pgvector's `sparsevec` / `sparsevec(N)` | [`crate::SparseVector`] |
/// | SQLite | `BLOB`: dimensions, indices, values (little-endian) | [`crate::SparseVector`] |
///
/// ```
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::SparseVector;
///
///     documents (id) {
///         id -> BigInt,
///         terms -> Nullable<SparseVector>,
///     }
/// }
/// ```
///
/// Like [`Vector`], the PostgreSQL type is looked up by name (`sparsevec`) once per connection.
#[derive(Debug, Clone, Copy, Default, diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
#[cfg_attr(feature = "pg", diesel(postgres_type(name = "sparsevec")))]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Binary")))]
pub struct SparseVector;

/// The SQL type of a bit vector column: PostgreSQL's `bit(n)` (or `varbit`), which pgvector's Hamming
/// and Jaccard distances take, and on SQLite a BLOB of the packed bits (sqlite-vec's `bit[N]`). Its Rust
/// type is [`crate::Bit`].
///
/// | backend | database type | Rust type |
/// |---|---|---|
/// | PostgreSQL | `bit(N)` (also `varbit`) | [`crate::Bit`] |
/// | SQLite | `BLOB` of `N / 8` bytes, most significant bit first | [`crate::Bit`] |
///
/// ```
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::Bit;
///
///     items (id) {
///         id -> BigInt,
///         code -> Bit,
///     }
/// }
/// ```
///
/// `bit` is a built-in PostgreSQL type with a fixed OID (1560): no lookup is needed.
///
/// Diesel's `sql_types` also has a `Bit` (a hidden alias of `Binary`, for MySQL), so with both
/// `use diesel::sql_types::*;` and `use diesel_vector::sql_types::*;` the name is ambiguous: import this
/// one by name, which takes precedence over both globs. For `diesel print-schema` (which prints a `bit(n)`
/// column as `Bit`), that is `import_types = ["diesel::sql_types::*", "diesel_vector::sql_types::*",
/// "diesel_vector::sql_types::Bit"]`, which compiles the schema it prints:
///
/// ```
/// diesel::table! {
///     use diesel::sql_types::*;
///     use diesel_vector::sql_types::*;
///     use diesel_vector::sql_types::Bit;
///
///     items (id) {
///         id -> Int4,
///         embedding -> Nullable<Halfvec>,
///         terms -> Nullable<Sparsevec>,
///         #[max_length = 16]
///         code -> Nullable<Bit>,
///         codes -> Nullable<Varbit>,
///         dense -> Nullable<Vector>,
///     }
/// }
///
/// use diesel::sql_types::Nullable;
/// fn is_ours<T: diesel::Expression<SqlType = Nullable<diesel_vector::sql_types::Bit>>>(_: T) {}
/// is_ours(items::code);
/// ```
#[derive(Debug, Clone, Copy, Default, diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
#[cfg_attr(feature = "pg", diesel(postgres_type(oid = 1560, array_oid = 1561)))]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Binary")))]
pub struct Bit;

/// [`HalfVector`] under the name `diesel print-schema` gives pgvector's `halfvec`, so that a generated schema
/// with `import_types = ["diesel::sql_types::*", "diesel_vector::sql_types::*"]` compiles.
pub type Halfvec = HalfVector;

/// [`SparseVector`] under the name `diesel print-schema` gives pgvector's `sparsevec`.
pub type Sparsevec = SparseVector;

/// [`Bit`] under the name `diesel print-schema` gives PostgreSQL's `varbit` (a `bit varying` column reads and
/// writes the same values as `bit`).
pub type Varbit = Bit;
