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
/// `embedding: None` stores NULL (also as a changeset).
#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = fragment_embeddings, treat_none_as_default_value = false, treat_none_as_null = true)]
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
    #[doc(hidden)]
    fn insert_many(&mut self, rows: &[NewFragmentEmbedding<'_>]) -> QueryResult<usize>;
}

#[cfg(any(feature = "pg", feature = "sqlite"))]
macro_rules! upsert_for {
    ($conn:ty, $insert_many:item) => {
        impl Upsert for $conn {
            $insert_many

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
upsert_for!(
    diesel::PgConnection,
    fn insert_many(&mut self, rows: &[NewFragmentEmbedding<'_>]) -> QueryResult<usize> {
        // Binary COPY: each vector goes out in pgvector's binary format, the same bytes as a bind.
        diesel::copy_from(fragment_embeddings::table).from_insertable(rows).execute(self)
    }
);
#[cfg(feature = "sqlite")]
upsert_for!(
    diesel::SqliteConnection,
    fn insert_many(&mut self, rows: &[NewFragmentEmbedding<'_>]) -> QueryResult<usize> {
        // One transaction; Diesel prepares the row statement once and reuses it from its cache.
        crate::sqlite::transaction::deferred(self, |conn| {
            let mut inserted = 0;
            for row in rows {
                inserted += diesel::insert_into(fragment_embeddings::table).values(row).execute(conn)?;
            }
            Ok(inserted)
        })
    }
);

/// Inserts many embeddings at once, the fastest way each backend offers, and returns how many were
/// inserted: PostgreSQL streams them with binary `COPY FROM` (vectors in pgvector's binary format);
/// SQLite inserts them in one transaction. All or nothing: a bad row (a duplicate key, an unknown
/// fragment) fails the whole call and nothing is written.
///
/// Unlike [`NewFragmentEmbedding::upsert`], an existing (fragment, provider, model, content hash) is an
/// error, not an update.
///
/// ```
/// # #[cfg(feature = "sqlite")] fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use diesel::prelude::*;
/// use diesel_vector::models::{insert_embeddings, NewFragmentEmbedding};
/// use diesel_vector::{migrations, schema::fragments, Vector};
///
/// let mut conn = diesel_vector::sqlite::establish(":memory:")?;
/// migrations::run_pending_migrations(&mut conn)?;
/// let fragment: i64 = diesel::insert_into(fragments::table)
///     .values(fragments::content.eq("hello"))
///     .returning(fragments::id)
///     .get_result(&mut conn)?;
/// let vectors: Vec<Vector> = (0..3).map(|i| Vector::new(vec![i as f32 + 1.0; 1536])).collect::<Result<_, _>>()?;
/// let hashes = ["a", "b", "c"];
/// let rows: Vec<NewFragmentEmbedding> =
///     vectors.iter().zip(hashes).map(|(v, h)| NewFragmentEmbedding::new(fragment, "p", "m", v, h)).collect();
/// assert_eq!(insert_embeddings(&mut conn, &rows)?, 3);
/// # Ok(()) }
/// # #[cfg(not(feature = "sqlite"))] fn main() {}
/// ```
///
/// # Errors
///
/// The database's error; nothing was inserted.
pub fn insert_embeddings<C: Upsert>(conn: &mut C, rows: &[NewFragmentEmbedding<'_>]) -> QueryResult<usize> {
    conn.insert_many(rows)
}
