//! The SQLite vector index: sqlite-vec's `vec0` table `fragment_embeddings_idx`, kept in step with
//! `fragment_embeddings` by a change queue.
//!
//! No migration names vec0 (the diesel CLI cannot load sqlite-vec). Instead the migrations install plain
//! triggers that record the id of every inserted, updated or deleted embedding in
//! `fragment_embeddings_idx_queue`; they work on any connection, so no write ever fails for want of the
//! extension. On a connection that has sqlite-vec, [`sync_index`] applies the queue to the vec0 table in
//! one transaction (creating or rebuilding the table when it is missing or marked for rebuild); searches
//! call it first. Without sqlite-vec, searches scan `fragment_embeddings` exactly instead.
//!
//! The vec0 table partitions by `provider` and `model`, so a KNN query for one model only reads that
//! model's vectors, and uses cosine distance over 1536 dimensions. Zero vectors, which have no cosine
//! distance, are left out of it.
//!
//! ```
//! # #[cfg(feature = "sqlite-vec")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_vector::{migrations, sqlite};
//!
//! let mut conn = sqlite::establish(":memory:")?;
//! migrations::run_pending_migrations(&mut conn)?;
//! let report = sqlite::sync_index(&mut conn)?;
//! assert!(report.rebuilt, "the first sync builds the vec0 table");
//! assert!(sqlite::index_status(&mut conn)?.is_up_to_date());
//! # Ok(()) }
//! # #[cfg(not(feature = "sqlite-vec"))] fn main() {}
//! ```

use std::fmt;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::SqliteConnection;
use tracing::info;

use super::migrations::count;
use super::transaction::{self, SavepointError};
use crate::migrations::shape::Catalog;

/// The vec0 table's name.
pub const INDEX_TABLE: &str = "fragment_embeddings_idx";

/// The dimensions the vec0 index holds (the schema's `vector(1536)`).
pub const INDEX_DIMS: usize = 1536;

/// The vec0 table. `chunk_size=64`: vec0 keeps vectors in chunks, one BLOB per chunk, and writes each new
/// vector into its chunk's BLOB in place. A row's cost grows with the chunk's size: SQLite reaches an
/// offset in a large BLOB by walking its chain of overflow pages, and a chunk larger than the page cache
/// (2 MB by default) is read back from the file for every row. sqlite-vec's default of 1024 vectors of
/// 1536 dims is a 6 MB BLOB, about 300 us per row, mostly in system time; 64 vectors (384 KB) build the
/// index over ten times faster at 10k and 100k rows and answer KNN queries as fast (BENCHMARKS.md).
/// sqlite-vec requires a multiple of 8.
const CREATE_INDEX: &str = "CREATE VIRTUAL TABLE fragment_embeddings_idx USING vec0(\
     provider text partition key, \
     model text partition key, \
     embedding float[1536] distance_metric=cosine, \
     chunk_size=64)";

/// Rows that belong in the index: an embedding that is not the zero vector.
const INDEXABLE: &str = "e.embedding IS NOT NULL AND vec_distance_l2(e.embedding, zeroblob(length(e.embedding))) > 0";

/// Why the index could not be brought up to date.
#[derive(Debug)]
#[non_exhaustive]
pub enum IndexError {
    /// sqlite-vec is not loaded on this connection (searches fall back to an exact scan).
    ExtensionMissing,
    /// The migrations have not created `fragment_embeddings` and its change queue yet.
    NotMigrated,
    /// A query failed.
    Query(diesel::result::Error),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExtensionMissing => f.write_str(
                "sqlite-vec is not loaded on this connection: open it with diesel_vector::sqlite::establish in a \
                 build with the `sqlite-vec` feature",
            ),
            Self::NotMigrated => f.write_str(
                "fragment_embeddings and its index queue do not exist: run diesel_vector::migrations::run_pending_migrations first",
            ),
            Self::Query(e) => write!(f, "updating the vector index failed: {e}"),
        }
    }
}

impl std::error::Error for IndexError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Query(e) => Some(e),
            _ => None,
        }
    }
}

impl From<diesel::result::Error> for IndexError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

/// What [`sync_index`] or [`rebuild_index`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether the vec0 table was (re)built from `fragment_embeddings`.
    pub rebuilt: bool,
    /// How many queued changes were applied (or rows indexed, on a rebuild).
    pub applied: i64,
}

/// The state of the index, readable with or without sqlite-vec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStatus {
    /// sqlite-vec's version on this connection, if loaded.
    pub sqlite_vec: Option<String>,
    /// Whether the vec0 table exists.
    pub table_exists: bool,
    /// Whether the next sync rebuilds it from scratch.
    pub needs_rebuild: bool,
    /// Changes recorded by the triggers and not yet applied.
    pub pending_changes: i64,
    /// Rows in the vec0 table (only countable with sqlite-vec).
    pub indexed_rows: Option<i64>,
    /// Rows of `fragment_embeddings` that belong in the index (non-null embedding).
    pub embedded_rows: i64,
}

impl IndexStatus {
    /// True when the vec0 table exists, nothing is pending and no rebuild is due.
    pub fn is_up_to_date(&self) -> bool {
        self.table_exists && !self.needs_rebuild && self.pending_changes == 0
    }
}

#[derive(QueryableByName)]
struct State {
    #[diesel(sql_type = BigInt)]
    needs_rebuild: i64,
    #[diesel(sql_type = BigInt)]
    pending: i64,
}

fn state(conn: &mut SqliteConnection) -> Result<State, IndexError> {
    if !conn.exists("fragment_embeddings_idx_state")? || !conn.exists("fragment_embeddings")? {
        return Err(IndexError::NotMigrated);
    }
    Ok(diesel::sql_query(
        "SELECT (SELECT needs_rebuild FROM fragment_embeddings_idx_state) AS needs_rebuild, \
                (SELECT count(*) FROM fragment_embeddings_idx_queue) AS pending",
    )
    .get_result(conn)?)
}

fn require_extension(conn: &mut SqliteConnection) -> Result<(), IndexError> {
    match super::sqlite_vec_version(conn)? {
        Some(_) => Ok(()),
        None => Err(IndexError::ExtensionMissing),
    }
}

/// Brings the vec0 index up to date: applies the queued changes, or rebuilds the table from
/// `fragment_embeddings` when it is missing, marked for rebuild, or cannot be updated. One immediate
/// transaction; a no-op (one read) when nothing is pending.
///
/// # Errors
///
/// [`IndexError::ExtensionMissing`] without sqlite-vec, [`IndexError::NotMigrated`] before the
/// migrations, or a failing query (nothing of the sync is kept).
pub fn sync_index(conn: &mut SqliteConnection) -> Result<SyncReport, IndexError> {
    require_extension(conn)?;
    let before = state(conn)?;
    if before.needs_rebuild == 0 && before.pending == 0 && conn.exists(INDEX_TABLE)? {
        return Ok(SyncReport { rebuilt: false, applied: 0 });
    }
    let report = transaction::immediate(conn, |conn| {
        let now = state(conn)?;
        if now.needs_rebuild != 0 || !conn.exists(INDEX_TABLE)? {
            return rebuild_in_transaction(conn);
        }
        match transaction::savepoint(conn, apply_queue) {
            Ok(applied) => Ok(SyncReport { rebuilt: false, applied }),
            // A damaged vec0 table: start again from the base table.
            Err(SavepointError::RolledBack(_)) => rebuild_in_transaction(conn),
            // SQLite ended the transaction (a full disk): nothing more may run in it.
            Err(SavepointError::TransactionEnded(e)) => Err(e),
        }
    })?;
    info!(target: "diesel_vector::index", rebuilt = report.rebuilt, applied = report.applied, "sqlite vector index synced");
    Ok(report)
}

/// Drops and rebuilds the vec0 table from `fragment_embeddings`, in one immediate transaction.
///
/// # Errors
///
/// As [`sync_index`].
pub fn rebuild_index(conn: &mut SqliteConnection) -> Result<SyncReport, IndexError> {
    require_extension(conn)?;
    state(conn)?;
    let report = transaction::immediate(conn, rebuild_in_transaction)?;
    info!(target: "diesel_vector::index", rebuilt = true, applied = report.applied, "sqlite vector index rebuilt");
    Ok(report)
}

/// The index's state. Works without sqlite-vec (then `indexed_rows` is `None`).
///
/// # Errors
///
/// [`IndexError::NotMigrated`] before the migrations, or a failing query.
pub fn index_status(conn: &mut SqliteConnection) -> Result<IndexStatus, IndexError> {
    let state = state(conn)?;
    let sqlite_vec = super::sqlite_vec_version(conn)?;
    let table_exists = conn.exists(INDEX_TABLE)?;
    let indexed_rows = match (&sqlite_vec, table_exists) {
        (Some(_), true) => Some(count(conn, "SELECT count(*) AS count FROM fragment_embeddings_idx")?),
        _ => None,
    };
    let embedded_rows = count(conn, "SELECT count(*) AS count FROM fragment_embeddings WHERE embedding IS NOT NULL")?;
    Ok(IndexStatus {
        sqlite_vec,
        table_exists,
        needs_rebuild: state.needs_rebuild != 0,
        pending_changes: state.pending,
        indexed_rows,
        embedded_rows,
    })
}

fn apply_queue(conn: &mut SqliteConnection) -> Result<i64, IndexError> {
    let pending = count(conn, "SELECT count(*) AS count FROM fragment_embeddings_idx_queue")?;
    // vec0 has no working upsert: delete every queued id, then insert the rows that still exist.
    conn.batch_execute(&format!(
        "DELETE FROM fragment_embeddings_idx WHERE rowid IN (SELECT embedding_id FROM fragment_embeddings_idx_queue);
         INSERT INTO fragment_embeddings_idx (rowid, provider, model, embedding)
             SELECT e.id, e.provider, e.model, e.embedding
             FROM fragment_embeddings_idx_queue q JOIN fragment_embeddings e ON e.id = q.embedding_id
             WHERE {INDEXABLE};
         DELETE FROM fragment_embeddings_idx_queue;"
    ))?;
    Ok(pending)
}

fn rebuild_in_transaction(conn: &mut SqliteConnection) -> Result<SyncReport, IndexError> {
    conn.batch_execute(&format!(
        "DROP TABLE IF EXISTS fragment_embeddings_idx;
         {CREATE_INDEX};
         INSERT INTO fragment_embeddings_idx (rowid, provider, model, embedding)
             SELECT e.id, e.provider, e.model, e.embedding FROM fragment_embeddings e WHERE {INDEXABLE};
         DELETE FROM fragment_embeddings_idx_queue;
         UPDATE fragment_embeddings_idx_state SET needs_rebuild = 0;"
    ))?;
    let applied = count(conn, "SELECT count(*) AS count FROM fragment_embeddings_idx")?;
    Ok(SyncReport { rebuilt: true, applied })
}

/// Drops the vec0 table if sqlite-vec is loaded; returns whether it could.
pub(super) fn drop_index_table(conn: &mut SqliteConnection) -> QueryResult<bool> {
    if super::sqlite_vec_version(conn)?.is_none() {
        return Ok(false);
    }
    conn.batch_execute("DROP TABLE IF EXISTS fragment_embeddings_idx")?;
    Ok(true)
}
