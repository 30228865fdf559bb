//! Everything PostgreSQL-specific: pgvector's binary format on the wire, the migration runner's
//! PostgreSQL side, search, and the ivfflat index.

pub(crate) mod doctor;
mod expression;
mod index;
mod migrations;
mod search;

pub use search::default_ef_search;
mod transfer;
mod types;

pub use index::{
    index_method, ivfflat_status, rebuild, rebuild_hnsw_index, rebuild_ivfflat_index, recommended_lists,
    recommended_probes, status, IvfflatStatus, PgIndexStatus, Rebuild, IVFFLAT_INDEX,
};
