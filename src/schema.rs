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
