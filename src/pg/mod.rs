//! Everything PostgreSQL-specific: pgvector's binary format on the wire, the migration runner's
//! PostgreSQL side, search, and the vector indexes.
//!
//! With feature `pg-backend` alone (as under `async`) only what needs no `PgConnection` is built: the
//! types, the DSL's rendering, and the runner's, search's and index's queries, which the `_async` twins
//! run on diesel-async's `AsyncPgConnection`. Feature `pg` adds the sync entry points (libpq).

/// SQL: whether the name `$name` (an SQL expression) is a valid, ready partial index of the table `p.t`: a
/// partition index a filter's search may count on (`partition::partition_index_name`).
macro_rules! partition_index_ready_sql {
    ($name:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM pg_index pi WHERE pi.indexrelid = to_regclass(quote_ident(",
            $name,
            ")) AND pi.indrelid = p.t AND pi.indisvalid AND pi.indisready AND pi.indpred IS NOT NULL)"
        )
    };
}

/// Makes the server end this transaction's statements soon after its client is gone (a killed process, a
/// dropped network): PostgreSQL 14's `client_connection_check_interval`, one second, for the transaction
/// only. Without it a `CREATE INDEX` whose client was killed builds on to the end, holding the lock that
/// blocks the table's writes all the while. Older servers have no such setting: nothing is set there.
pub(crate) const END_WITH_CLIENT: &str = "SELECT set_config('client_connection_check_interval', '1000', true) \
     WHERE current_setting('server_version_num')::int >= 140000";

#[cfg(feature = "pg")]
pub(crate) mod doctor;
mod expression;
mod index;
pub(crate) mod migrations;
mod partition;
#[cfg(any(feature = "pg", feature = "async"))]
mod search;
#[cfg(feature = "pg")]
mod transfer;
mod types;

#[cfg(any(feature = "pg", feature = "async"))]
pub use search::default_ef_search;

pub use crate::index::partition_index_name;
#[cfg(feature = "pg")]
pub use index::{index_method, ivfflat_status, rebuild, rebuild_hnsw_index, rebuild_ivfflat_index, status};
#[cfg(feature = "async")]
pub use index::{rebuild_async, status_async};
pub use index::{recommended_lists, recommended_probes, IvfflatStatus, PgIndexStatus, Rebuild, IVFFLAT_INDEX};

/// The kind [`column_kind_sql`] names.
pub(crate) fn column_kind(kind: &str) -> crate::search::ColumnKind {
    use crate::search::ColumnKind;
    match kind {
        "text" => ColumnKind::Text,
        "integer" => ColumnKind::Integer,
        "bool" => ColumnKind::Bool,
        _ => ColumnKind::Other,
    }
}
#[cfg(feature = "pg")]
pub use partition::{create_partition_index, drop_partition_index};
#[cfg(feature = "async")]
pub use partition::{create_partition_index_async, drop_partition_index_async};
