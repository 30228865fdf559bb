//! Moving rows between databases, shared by [`crate::copy`] and `crate::jsonl`: the backend-neutral form
//! of a row, its validation, its hash, and the reads and writes each backend implements ([`Store`], in
//! `pg/transfer.rs` and `sqlite/transfer.rs`).
//!
//! Vectors travel as raw bytes, never as `Vec<f32>`: PostgreSQL rows are read with `vector_send`
//! (pgvector's binary format) and SQLite rows as BLOBs, then converted to one form, little-endian `f32`
//! (sqlite-vec's), by the codec's validating conversions. Writers bind those bytes as they are
//! (SQLite) or after one byte swap (PostgreSQL).

pub(crate) mod checksum;
pub(crate) mod verify;

use std::fmt;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use crate::schema::{fragment_embeddings, fragments};
use crate::search::EMBEDDING_DIMS;
use checksum::RowHasher;

/// The two tables that move, in the order they are written (embeddings need their fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Fragments,
    Embeddings,
}

impl Table {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Fragments => "fragments",
            Self::Embeddings => "fragment_embeddings",
        }
    }
}

/// A row of `fragments`, read the same way from either backend.
#[derive(Debug, Clone, PartialEq, diesel::QueryableByName)]
pub(crate) struct FragmentRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub(crate) content: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
    pub(crate) created_at: Option<NaiveDateTime>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
    pub(crate) updated_at: Option<NaiveDateTime>,
}

/// A valid row of `fragment_embeddings`; the vector, if any, as little-endian `f32` bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EmbeddingRow {
    pub(crate) id: i64,
    pub(crate) fragment_id: i64,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) dims: i32,
    pub(crate) embedding: Option<Vec<u8>>,
    pub(crate) content_hash: String,
    pub(crate) created_at: Option<NaiveDateTime>,
    pub(crate) updated_at: Option<NaiveDateTime>,
}

/// The vector column as the database holds it, before validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoredVector {
    Null,
    /// pgvector's binary format, from `vector_send`.
    #[cfg_attr(not(feature = "pg"), allow(dead_code))]
    PgBinary(Vec<u8>),
    /// An SQLite BLOB (or a vector parsed from JSON), meant to be little-endian `f32`.
    #[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
    Blob(Vec<u8>),
    /// An SQLite value of another storage class (`TEXT`, `INTEGER`, `REAL`), or unparsable JSON.
    #[cfg_attr(not(any(feature = "sqlite", feature = "jsonl")), allow(dead_code))]
    NotABlob(String),
}

/// A row of `fragment_embeddings` as read, before validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawEmbedding {
    /// The row, with `embedding` still `None`.
    pub(crate) row: EmbeddingRow,
    pub(crate) stored: StoredVector,
    /// Whether its fragment is missing (possible on SQLite written without foreign keys).
    pub(crate) orphan: bool,
}

/// A source row that cannot be copied as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRow {
    /// The table, `fragment_embeddings`.
    pub table: &'static str,
    /// The row's id.
    pub id: i64,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} id {}: {}", self.table, self.id, self.reason)
    }
}

/// The rows that pass `check`, and the invalid ones, each in the order read.
pub(crate) fn partition_checked<Raw, Row>(
    raws: impl IntoIterator<Item = Raw>,
    mut check: impl FnMut(Raw) -> Result<Row, InvalidRow>,
) -> (Vec<Row>, Vec<InvalidRow>) {
    let raws = raws.into_iter();
    let mut rows = Vec::with_capacity(raws.size_hint().0);
    let mut invalid = Vec::new();
    for raw in raws {
        match check(raw) {
            Ok(row) => rows.push(row),
            Err(bad) => invalid.push(bad),
        }
    }
    (rows, invalid)
}

/// Adds skipped rows to a report's list, which keeps the first [`verify::MAX_REPORTED_INVALID`].
pub(crate) fn keep_reported(kept: &mut Vec<InvalidRow>, rows: Vec<InvalidRow>) {
    let room = verify::MAX_REPORTED_INVALID.saturating_sub(kept.len());
    kept.extend(rows.into_iter().take(room));
}

impl RawEmbedding {
    /// Checks the row and converts its vector to little-endian `f32` bytes: the vector must decode (no
    /// NaN or infinity, a whole number of floats, a sound pgvector header), have `dims` dimensions and
    /// the column's 1536, and the fragment must exist.
    pub(crate) fn validate(self) -> Result<EmbeddingRow, InvalidRow> {
        let Self { mut row, stored, orphan } = self;
        let invalid = |reason: String| InvalidRow { table: Table::Embeddings.name(), id: row.id, reason };
        if orphan {
            return Err(invalid(format!("its fragment {} does not exist", row.fragment_id)));
        }
        let bytes = match stored {
            StoredVector::Null => None,
            StoredVector::PgBinary(bytes) => {
                let mut le = Vec::new();
                crate::codec::pg_payload_to_sqlite(&bytes, &mut le).map_err(|e| invalid(e.to_string()))?;
                Some(le)
            }
            StoredVector::Blob(bytes) => {
                crate::codec::decode_sqlite(&bytes).map_err(|e| invalid(e.to_string()))?;
                Some(bytes)
            }
            StoredVector::NotABlob(class) => {
                return Err(invalid(format!("the embedding is stored as {class}, not as a BLOB of little-endian f32")))
            }
        };
        if let Some(bytes) = &bytes {
            let dims = bytes.len() / 4;
            if usize::try_from(row.dims).ok() != Some(dims) {
                return Err(invalid(format!("dims is {} but the vector has {dims} dimensions", row.dims)));
            }
            if dims != EMBEDDING_DIMS {
                return Err(invalid(format!("the vector has {dims} dimensions; the column holds {EMBEDDING_DIMS}")));
            }
        }
        row.embedding = bytes;
        Ok(row)
    }
}

impl FragmentRow {
    pub(crate) fn hash(&self) -> u64 {
        RowHasher::new(b'F')
            .int(self.id)
            .text(&self.content)
            .timestamp(self.created_at)
            .timestamp(self.updated_at)
            .finish()
    }
}

impl EmbeddingRow {
    pub(crate) fn hash(&self) -> u64 {
        RowHasher::new(b'E')
            .int(self.id)
            .int(self.fragment_id)
            .text(&self.provider)
            .text(&self.model)
            .int(i64::from(self.dims))
            .vector(self.embedding.as_deref())
            .text(&self.content_hash)
            .timestamp(self.created_at)
            .timestamp(self.updated_at)
            .finish()
    }
}

/// What became of the target's vector index after rows were written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetIndex {
    /// SQLite: the vec0 index was brought up to date (`applied` queued changes, or rebuilt).
    Vec0Synced {
        /// Whether the vec0 table was rebuilt from scratch.
        rebuilt: bool,
        /// Changes applied (rows indexed, on a rebuild).
        applied: i64,
    },
    /// SQLite without sqlite-vec: the changes wait in the queue for a connection that has it.
    Vec0Pending,
    /// SQLite: the index's structures (the crate's codes; vec0 where kept and sqlite-vec is loaded) were
    /// brought up to date.
    Synced {
        /// What the index keeps.
        structures: crate::index::SqliteIndex,
        /// Whether they were rebuilt from scratch.
        rebuilt: bool,
        /// Changes applied (rows indexed, on a rebuild).
        applied: i64,
    },
    /// PostgreSQL: the ivfflat index and whether it should be rebuilt for the data
    /// (`diesel-vector reindex`, [`crate::pg::rebuild_ivfflat_index`]).
    Ivfflat {
        /// The lists it was built with.
        lists: i32,
        /// Rows with an embedding.
        rows: i64,
        /// True when it was built for far less data (see [`crate::pg::IvfflatStatus::needs_rebuild`]).
        needs_rebuild: bool,
    },
    /// PostgreSQL: an index of another method (such as `hnsw`), which needs no rebuild.
    Other {
        /// The index's access method.
        method: String,
    },
    /// PostgreSQL: no vector index; searches scan every row.
    Missing,
}

/// Before every id: where a scan from the start begins.
pub(crate) const BEFORE_ALL: i64 = i64::MIN;

/// Rows `after < id <= upto`, at most `limit`, in id order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub(crate) after: i64,
    pub(crate) upto: i64,
    pub(crate) limit: i64,
}

/// The reads and writes of rows, per backend. Sealed: implemented for `PgConnection` and
/// `SqliteConnection`. `Send`, so that [`crate::copy`] can read the source on one thread while it writes the target on another.
pub(crate) trait Store:
    crate::migrations::sealed::Sealed + crate::migrations::shape::Catalog + Sized + Send
{
    /// Whether `fragments` and `fragment_embeddings` exist.
    fn tables_exist(&mut self) -> Result<bool, crate::migrations::MigrationError> {
        Ok(self.exists("fragments")? && self.exists("fragment_embeddings")?)
    }
    /// The largest id of `table` not above `upto`, if any.
    fn max_id(&mut self, table: Table, upto: i64) -> QueryResult<Option<i64>>;
    /// Rows of `table` with `after < id <= upto`.
    fn count(&mut self, table: Table, after: i64, upto: i64) -> QueryResult<i64>;
    fn fragments(&mut self, range: Range) -> QueryResult<Vec<FragmentRow>>;
    fn embeddings(&mut self, range: Range) -> QueryResult<Vec<RawEmbedding>>;
    /// Embeddings whose `fragment_id` is in `(after, upto]`, ordered by fragment then id.
    #[cfg(feature = "jsonl")]
    fn embeddings_of_fragments(&mut self, after: i64, upto: i64) -> QueryResult<Vec<RawEmbedding>>;
    #[cfg(feature = "jsonl")]
    fn fragments_by_id(&mut self, ids: &[i64]) -> QueryResult<Vec<FragmentRow>>;
    #[cfg(feature = "jsonl")]
    fn embeddings_by_id(&mut self, ids: &[i64]) -> QueryResult<Vec<RawEmbedding>>;
    /// Inserts rows keeping their ids; a row whose id exists is left alone (`ON CONFLICT (id) DO
    /// NOTHING`). Returns how many were inserted.
    fn insert_fragments(&mut self, rows: &[FragmentRow]) -> QueryResult<usize>;
    fn insert_embeddings(&mut self, rows: &[EmbeddingRow]) -> QueryResult<usize>;
    /// Makes the id generator of `table` hand out ids above `max` from now on (never lowers it).
    fn reserve_ids(&mut self, table: Table, max: i64) -> QueryResult<()>;
    /// Runs `f` in a write transaction (SQLite: `BEGIN IMMEDIATE`).
    fn write_batch<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E>;
    /// Runs `f` in a read-only transaction that sees one snapshot of the database.
    fn snapshot<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E>;
    /// After a load: brings the vector index up to date (SQLite) or refreshes the planner's statistics and
    /// reports whether the index needs a rebuild (PostgreSQL).
    fn after_load(&mut self) -> Result<TargetIndex, IndexUpdateError>;
}

/// The SQLite index could not be synced after a load.
#[derive(Debug)]
pub(crate) enum IndexUpdateError {
    Query(DieselError),
    #[cfg(feature = "sqlite")]
    Index(crate::sqlite::IndexError),
}

impl From<DieselError> for IndexUpdateError {
    fn from(e: DieselError) -> Self {
        Self::Query(e)
    }
}

/// How many rows go into one multi-row INSERT statement (PostgreSQL, when COPY cannot be used): 9
/// columns each, well under PostgreSQL's 65535 bind parameters.
#[cfg(feature = "pg")]
pub(crate) const ROWS_PER_INSERT: usize = 1000;

/// Binds bytes already in the connection's vector format (pgvector binary on PostgreSQL, little-endian
/// `f32` on SQLite) as [`crate::sql_types::Vector`], with no decoding.
#[derive(Debug, Clone, Copy, diesel::expression::AsExpression)]
#[diesel(sql_type = crate::sql_types::Vector)]
pub(crate) struct EncodedVector<'a>(pub(crate) &'a [u8]);

#[derive(Insertable)]
#[diesel(table_name = fragments, treat_none_as_default_value = false)]
pub(crate) struct NewFragmentRow<'a> {
    id: i64,
    content: &'a str,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

impl<'a> From<&'a FragmentRow> for NewFragmentRow<'a> {
    fn from(r: &'a FragmentRow) -> Self {
        Self { id: r.id, content: &r.content, created_at: r.created_at, updated_at: r.updated_at }
    }
}

#[derive(Insertable)]
#[diesel(table_name = fragment_embeddings, treat_none_as_default_value = false)]
pub(crate) struct NewEmbeddingRow<'a> {
    id: i64,
    fragment_id: i64,
    provider: &'a str,
    model: &'a str,
    dims: i32,
    embedding: Option<EncodedVector<'a>>,
    content_hash: &'a str,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

impl<'a> NewEmbeddingRow<'a> {
    /// The row with `embedding` bound as `encoded` (already in the target's format).
    pub(crate) fn new(r: &'a EmbeddingRow, encoded: Option<&'a [u8]>) -> Self {
        Self {
            id: r.id,
            fragment_id: r.fragment_id,
            provider: &r.provider,
            model: &r.model,
            dims: r.dims,
            embedding: encoded.map(EncodedVector),
            content_hash: &r.content_hash,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A table's rows as the copy and verification see them: read raw, checked, hashed.
pub(crate) trait Rows {
    type Raw;
    /// `Send`: checked rows are handed from the reading thread to the writing one.
    type Row: Send;
    const TABLE: Table;
    fn read<S: Store>(store: &mut S, range: Range) -> QueryResult<Vec<Self::Raw>>;
    fn id(raw: &Self::Raw) -> i64;
    fn row_id(row: &Self::Row) -> i64;
    fn check(raw: Self::Raw) -> Result<Self::Row, InvalidRow>;
    fn write<S: Store>(store: &mut S, rows: &[Self::Row]) -> QueryResult<usize>;
    fn hash(row: &Self::Row) -> u64;
}

/// `fragments`.
pub(crate) struct Fragments;
/// `fragment_embeddings`.
pub(crate) struct Embeddings;

impl Rows for Fragments {
    type Raw = FragmentRow;
    type Row = FragmentRow;
    const TABLE: Table = Table::Fragments;
    fn read<S: Store>(store: &mut S, range: Range) -> QueryResult<Vec<FragmentRow>> {
        store.fragments(range)
    }
    fn id(raw: &FragmentRow) -> i64 {
        raw.id
    }
    fn row_id(row: &FragmentRow) -> i64 {
        row.id
    }
    fn check(raw: FragmentRow) -> Result<FragmentRow, InvalidRow> {
        Ok(raw)
    }
    fn write<S: Store>(store: &mut S, rows: &[FragmentRow]) -> QueryResult<usize> {
        store.insert_fragments(rows)
    }
    fn hash(row: &FragmentRow) -> u64 {
        row.hash()
    }
}

impl Rows for Embeddings {
    type Raw = RawEmbedding;
    type Row = EmbeddingRow;
    const TABLE: Table = Table::Embeddings;
    fn read<S: Store>(store: &mut S, range: Range) -> QueryResult<Vec<RawEmbedding>> {
        store.embeddings(range)
    }
    fn id(raw: &RawEmbedding) -> i64 {
        raw.row.id
    }
    fn row_id(row: &EmbeddingRow) -> i64 {
        row.id
    }
    fn check(raw: RawEmbedding) -> Result<EmbeddingRow, InvalidRow> {
        raw.validate()
    }
    fn write<S: Store>(store: &mut S, rows: &[EmbeddingRow]) -> QueryResult<usize> {
        store.insert_embeddings(rows)
    }
    fn hash(row: &EmbeddingRow) -> u64 {
        row.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(dims: i32, stored: StoredVector) -> RawEmbedding {
        RawEmbedding {
            row: EmbeddingRow {
                id: 7,
                fragment_id: 3,
                provider: "p".into(),
                model: "m".into(),
                dims,
                embedding: None,
                content_hash: "h".into(),
                created_at: None,
                updated_at: None,
            },
            stored,
            orphan: false,
        }
    }

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn valid_vectors_from_either_backend_become_the_same_bytes() {
        let v = crate::Vector::new((0..1536).map(|i| i as f32 - 700.5).collect()).unwrap();
        let from_pg = raw(1536, StoredVector::PgBinary(crate::codec::encode_pg(&v))).validate().unwrap();
        let from_lite = raw(1536, StoredVector::Blob(crate::codec::encode_sqlite(&v).into_owned())).validate().unwrap();
        assert_eq!(from_pg, from_lite);
        assert_eq!(from_pg.hash(), from_lite.hash());
        assert_eq!(raw(1536, StoredVector::Null).validate().unwrap().embedding, None);
    }

    #[test]
    fn invalid_rows_are_named_with_the_reason() {
        let mut nan = vec![1.0; 1536];
        nan[5] = f32::NAN;
        let cases = [
            (raw(1536, StoredVector::Blob(le(&nan))), "vector element 5 is NaN"),
            (raw(1536, StoredVector::Blob(vec![0; 6])), "not a whole number of 4-byte floats"),
            (raw(3, StoredVector::Blob(le(&[1.0; 1536]))), "dims is 3 but the vector has 1536 dimensions"),
            (raw(2, StoredVector::Blob(le(&[1.0; 2]))), "the vector has 2 dimensions; the column holds 1536"),
            (raw(1536, StoredVector::NotABlob("text".into())), "stored as text"),
        ];
        for (row, reason) in cases {
            let err = row.validate().unwrap_err();
            assert_eq!(err.id, 7);
            assert!(err.reason.contains(reason), "{err}");
        }
        let mut orphan = raw(1536, StoredVector::Null);
        orphan.orphan = true;
        assert_eq!(orphan.validate().unwrap_err().reason, "its fragment 3 does not exist");
    }
}
