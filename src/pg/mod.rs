//! Everything PostgreSQL-specific: pgvector's binary format on the wire.

mod expression;
mod types;
