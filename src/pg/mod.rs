//! Everything PostgreSQL-specific: pgvector's binary format on the wire, the migration runner's
//! PostgreSQL side, search, and the ivfflat index.

mod expression;
mod index;
mod migrations;
mod search;
mod types;

pub use index::{
    ivfflat_status, rebuild_ivfflat_index, recommended_lists, recommended_probes, IvfflatStatus, IVFFLAT_INDEX,
};
