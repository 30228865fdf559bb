//! Vector indexes on any table: declared once ([`IndexSpec`]), recorded in the database ([`registry`]),
//! created by generated migrations for both backends ([`generate`]).
//!
//! An index says which column of which table holds vectors, of what type, dimensions and metric, which
//! columns a search may filter on by equality, and what each backend keeps to search it fast:
//!
//! | backend | structures |
//! |---|---|
//! | PostgreSQL | pgvector's HNSW or ivfflat index with the metric's operator class |
//! | SQLite | a change queue filled by triggers (any writer keeps it repairable) and a state row; from them the crate keeps its quantized codes and/or sqlite-vec's `vec0` table |
//!
//! The crate's own `fragment_embeddings` is one such index (`fragment_embeddings_idx`), registered by the
//! crate's third migration.
//!
//! ```
//! use diesel_vector::index::{generate, IndexSpec, Metric};
//!
//! let spec = IndexSpec::builder("documents", "embedding", 768)
//!     .metric(Metric::L2)
//!     .partition_by(["lang"])
//!     .build()?;
//! let migration = generate::render(&spec, &generate::Options::default().add_column(true));
//! // migration.pg_up, pg_down, sqlite_up, sqlite_down: write them with generate::write.
//! # let _ = migration;
//! # Ok::<(), diesel_vector::index::SpecError>(())
//! ```

/// SQL: the kind a column's values compare as (`text`, `bool`, `integer` or `other`, read by
/// `pg::column_kind`), from `bt`, its type or a domain's base type ([`column_base_type_sql`]). The search's
/// set-up and a partition index's condition read it alike, so that both compare a filter's value the same way.
#[allow(unused_macros)] // the PostgreSQL modules and partition indexes' migrations use them
macro_rules! column_kind_sql {
    () => {
        "CASE WHEN bt.typcategory = 'S' THEN 'text' WHEN bt.typcategory = 'B' THEN 'bool' \
         WHEN bt.typname IN ('int2', 'int4', 'int8') THEN 'integer' ELSE 'other' END"
    };
}

/// SQL: `ty`, the type of the `pg_attribute` row `a`, and `bt`, a domain's base type or that type.
#[allow(unused_macros)]
macro_rules! column_base_type_sql {
    () => {
        "JOIN pg_type ty ON ty.oid = a.atttypid \
         JOIN pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END"
    };
}

mod declare;
pub mod generate;
mod ident;
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
pub(crate) mod partition;
pub mod registry;
mod spec;

#[doc(hidden)]
pub use declare::__check;
pub use declare::{IntegerSqlType, VectorIndex};
#[allow(unused_imports)] // each backend uses them
pub(crate) use ident::{literal, quote};
pub use ident::{shown, shown_column, Ident, IdentError, MAX_IDENT_BYTES};
#[cfg(any(feature = "pg-backend", feature = "sqlite"))]
pub use partition::{partition_index_name, PartitionIndexError};
pub use registry::{RegistryError, REGISTRY_TABLE};
#[cfg(feature = "sqlite")]
pub(crate) use spec::differences;
pub use spec::{Element, IndexSpec, IndexSpecBuilder, Metric, PgIndex, SpecError, SqliteIndex};

/// SplitMix64's finaliser: a bijection of `u64` whose every output bit depends on every input bit, which
/// spreads a hash's bits (FNV's, a sum's) so that any range of them is a fair hash.
pub(crate) fn splitmix_finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a: a stable hash for derived names.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
