//! The `table!` definitions of the tables the migrations create; one schema for both backends.

diesel::table! {
    use diesel::sql_types::*;

    /// Text fragments. PostgreSQL: `bigserial`, `text`, `timestamp`; SQLite: `INTEGER PRIMARY KEY
    /// AUTOINCREMENT`, `TEXT`, `DATETIME`.
    fragments (id) {
        /// The fragment's id.
        id -> BigInt,
        /// The fragment's text.
        content -> Text,
        /// When the row was created (database default).
        created_at -> Nullable<Timestamp>,
        /// When the row was last updated (database default; not maintained by a trigger).
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::sql_types::Vector;

    /// Embeddings of fragments, unique per (fragment, provider, model, content hash). Deleting a
    /// fragment deletes its embeddings.
    fragment_embeddings (id) {
        /// The embedding's id.
        id -> BigInt,
        /// The fragment it embeds.
        fragment_id -> BigInt,
        /// Who computed it, such as `openai` (at most 255 characters).
        provider -> Varchar,
        /// The model, such as `text-embedding-3-small` (at most 255 characters).
        model -> Varchar,
        /// The vector's dimensions (1536 for the column as migrated).
        dims -> Integer,
        /// The vector: pgvector `vector(1536)` or a BLOB of little-endian `f32`.
        embedding -> Nullable<Vector>,
        /// A hash of the embedded text, to skip re-embedding unchanged content (at most 255 characters).
        content_hash -> Varchar,
        /// When the row was created (database default).
        created_at -> Nullable<Timestamp>,
        /// When the row was last updated.
        updated_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(fragment_embeddings -> fragments (fragment_id));
diesel::allow_tables_to_appear_in_same_query!(fragments, fragment_embeddings);

/// The vector index of `fragment_embeddings.embedding`, as the crate's third migration registers it:
/// 1536 dimensions, cosine, filtered by provider and model; PostgreSQL's ivfflat index
/// `fragment_embeddings_cosine_idx` (the application's original), SQLite's structures named
/// `fragment_embeddings_idx*`. The seed schema is one user of the generic index machinery
/// ([`crate::index`]).
///
/// ```
/// let spec = diesel_vector::schema::fragment_embeddings_index();
/// assert_eq!((spec.table(), spec.column(), spec.dims()), ("fragment_embeddings", "embedding", 1536));
/// assert_eq!(spec.partition_by().collect::<Vec<_>>(), ["provider", "model"]);
/// ```
pub fn fragment_embeddings_index() -> &'static crate::index::IndexSpec {
    use crate::index::{IndexSpec, Metric, PgIndex, SqliteIndex};
    static SPEC: std::sync::LazyLock<IndexSpec> = std::sync::LazyLock::new(|| {
        IndexSpec::builder("fragment_embeddings", "embedding", 1536)
            .name("fragment_embeddings_idx")
            .metric(Metric::Cosine)
            .partition_by(["provider", "model"])
            .pg_index(PgIndex::Ivfflat)
            .pg_index_name("fragment_embeddings_cosine_idx")
            .sqlite_index(SqliteIndex::CODES)
            .build()
            .unwrap_or_else(|e| unreachable!("the seed's index is valid: {e}"))
    });
    &SPEC
}

#[cfg(test)]
mod tests {
    use crate::index::registry;

    /// The registering migration's SQL is what the generic layer renders for the seed's spec.
    #[test]
    fn the_registering_migrations_record_the_seed_spec() {
        let spec = super::fragment_embeddings_index();
        for up in [
            include_str!("../migrations_pg/2025-01-01-000003_register_fragment_embeddings_index/up.sql"),
            include_str!("../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/up.sql"),
        ] {
            assert!(up.contains(&registry::create_table_sql()), "{up}");
            assert!(up.contains(&registry::insert_sql(spec)), "{up}\n{}", registry::insert_sql(spec));
        }
        for down in [
            include_str!("../migrations_pg/2025-01-01-000003_register_fragment_embeddings_index/down.sql"),
            include_str!("../migrations_sqlite/2025-01-01-000003_register_fragment_embeddings_index/down.sql"),
        ] {
            assert!(down.contains(&registry::delete_sql(spec)), "{down}");
        }
    }
}
