//! Everything PostgreSQL-specific: pgvector's binary format on the wire, and the migration runner's
//! PostgreSQL side.

mod migrations;
mod types;
