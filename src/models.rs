//! Models for [`crate::schema`], usable on both backends.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{fragment_embeddings, fragments};
use crate::Vector;

/// A row of `fragments`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = fragments)]
pub struct Fragment {
    /// The fragment's id.
    pub id: i64,
    /// The fragment's text.
    pub content: String,
    /// When the row was created.
    pub created_at: Option<NaiveDateTime>,
    /// When the row was last updated.
    pub updated_at: Option<NaiveDateTime>,
}

/// A fragment to insert; the database assigns the id and timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Insertable)]
#[diesel(table_name = fragments)]
pub struct NewFragment<'a> {
    /// The fragment's text.
    pub content: &'a str,
}

/// A row of `fragment_embeddings`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Associations)]
#[diesel(table_name = fragment_embeddings, belongs_to(Fragment))]
pub struct FragmentEmbedding {
    /// The embedding's id.
    pub id: i64,
    /// The fragment it embeds.
    pub fragment_id: i64,
    /// Who computed it.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The vector's dimensions.
    pub dims: i32,
    /// The vector.
    pub embedding: Option<Vector>,
    /// A hash of the embedded text.
    pub content_hash: String,
    /// When the row was created.
    pub created_at: Option<NaiveDateTime>,
    /// When the row was last updated.
    pub updated_at: Option<NaiveDateTime>,
}

/// An embedding to insert. Build it with [`NewFragmentEmbedding::new`], which fills `dims` from the
/// vector so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = fragment_embeddings)]
pub struct NewFragmentEmbedding<'a> {
    /// The fragment it embeds.
    pub fragment_id: i64,
    /// Who computed it.
    pub provider: &'a str,
    /// The model.
    pub model: &'a str,
    /// The vector's dimensions.
    pub dims: i32,
    /// The vector.
    pub embedding: Option<&'a Vector>,
    /// A hash of the embedded text.
    pub content_hash: &'a str,
}

impl<'a> NewFragmentEmbedding<'a> {
    /// An embedding of `fragment_id` by `provider`/`model`, with `dims` taken from the vector.
    pub fn new(
        fragment_id: i64,
        provider: &'a str,
        model: &'a str,
        embedding: &'a Vector,
        content_hash: &'a str,
    ) -> Self {
        Self {
            fragment_id,
            provider,
            model,
            // A Vector has at most MAX_DIMS (16000) elements.
            dims: i32::try_from(embedding.dims()).unwrap_or(i32::MAX),
            embedding: Some(embedding),
            content_hash,
        }
    }
}

impl NewFragmentEmbedding<'_> {
    /// Inserts the embedding, or, when one exists for the same (fragment, provider, model, content
    /// hash), replaces its vector and dims and sets `updated_at`. Returns the row's id. On SQLite the
    /// vector index follows (its triggers queue the change).
    ///
    /// # Errors
    ///
    /// The database's error, such as a foreign key violation for an unknown fragment.
    pub fn upsert<C: Upsert>(&self, conn: &mut C) -> QueryResult<i64> {
        conn.upsert_embedding(self)
    }
}

/// Connections [`NewFragmentEmbedding::upsert`] works on (PostgreSQL and SQLite). Sealed.
pub trait Upsert: crate::migrations::sealed::Sealed {
    #[doc(hidden)]
    fn upsert_embedding(&mut self, embedding: &NewFragmentEmbedding<'_>) -> QueryResult<i64>;
}

macro_rules! upsert_for {
    ($conn:ty) => {
        impl Upsert for $conn {
            fn upsert_embedding(&mut self, embedding: &NewFragmentEmbedding<'_>) -> QueryResult<i64> {
                use diesel::upsert::excluded;
                use fragment_embeddings::dsl as e;
                diesel::insert_into(e::fragment_embeddings)
                    .values(embedding)
                    .on_conflict((e::fragment_id, e::provider, e::model, e::content_hash))
                    .do_update()
                    .set((
                        e::embedding.eq(excluded(e::embedding)),
                        e::dims.eq(excluded(e::dims)),
                        e::updated_at.eq(diesel::dsl::now.nullable()),
                    ))
                    .returning(e::id)
                    .get_result(self)
            }
        }
    };
}

#[cfg(feature = "pg")]
upsert_for!(diesel::PgConnection);
#[cfg(feature = "sqlite")]
upsert_for!(diesel::SqliteConnection);
