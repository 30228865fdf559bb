//! Rows in and out of SQLite for copies and JSON lines: vectors read as BLOBs (after checking the
//! storage class, since SQLite hands TEXT out as bytes too) and written as BLOBs.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

#[cfg(feature = "jsonl")]
use super::json_ids;
use crate::schema::{fragment_embeddings, fragments};
use crate::transfer::{
    EmbeddingRow, EncodedVector, FragmentRow, IndexUpdateError, NewEmbeddingRow, NewFragmentRow, Range, RawEmbedding,
    Store, StoredVector, Table, TargetIndex,
};

/// Binds bytes that are already little-endian `f32` as a BLOB.
impl ToSql<crate::sql_types::Vector, Sqlite> for EncodedVector<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0);
        Ok(IsNull::No)
    }
}

#[derive(QueryableByName)]
struct SqliteEmbedding {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    fragment_id: i64,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    model: String,
    #[diesel(sql_type = Integer)]
    dims: i32,
    /// The BLOB, or NULL when the value is NULL or of another storage class.
    #[diesel(sql_type = Nullable<Binary>)]
    embedding: Option<Vec<u8>>,
    /// `typeof(embedding)`: `blob`, `null`, `text`, `integer` or `real`.
    #[diesel(sql_type = Text)]
    storage_class: String,
    #[diesel(sql_type = Text)]
    content_hash: String,
    #[diesel(sql_type = Nullable<Timestamp>)]
    created_at: Option<chrono::NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    updated_at: Option<chrono::NaiveDateTime>,
    #[diesel(sql_type = Bool)]
    orphan: bool,
}

impl From<SqliteEmbedding> for RawEmbedding {
    fn from(r: SqliteEmbedding) -> Self {
        let stored = match (r.embedding, r.storage_class.as_str()) {
            (Some(blob), _) => StoredVector::Blob(blob),
            (None, "null") => StoredVector::Null,
            (None, _) => StoredVector::NotABlob(r.storage_class.to_uppercase()),
        };
        Self {
            row: EmbeddingRow {
                id: r.id,
                fragment_id: r.fragment_id,
                provider: r.provider,
                model: r.model,
                dims: r.dims,
                embedding: None,
                content_hash: r.content_hash,
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            stored,
            orphan: r.orphan,
        }
    }
}

#[derive(QueryableByName)]
struct MaxId {
    #[diesel(sql_type = Nullable<BigInt>)]
    n: Option<i64>,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const FRAGMENT_COLUMNS: &str = "SELECT id, content, created_at, updated_at FROM fragments";

const EMBEDDING_COLUMNS: &str = "SELECT e.id, e.fragment_id, e.provider, e.model, e.dims, \
     CASE WHEN typeof(e.embedding) = 'blob' THEN e.embedding END AS embedding, \
     typeof(e.embedding) AS storage_class, e.content_hash, e.created_at, e.updated_at, f.id IS NULL AS orphan \
     FROM fragment_embeddings e LEFT JOIN fragments f ON f.id = e.fragment_id";

fn load_embeddings<'q>(
    query: impl diesel::query_dsl::LoadQuery<'q, SqliteConnection, SqliteEmbedding>,
    conn: &mut SqliteConnection,
) -> QueryResult<Vec<RawEmbedding>> {
    Ok(query.load::<SqliteEmbedding>(conn)?.into_iter().map(RawEmbedding::from).collect())
}

impl Store for SqliteConnection {
    fn max_id(&mut self, table: Table, upto: i64) -> QueryResult<Option<i64>> {
        diesel::sql_query(format!("SELECT max(id) AS n FROM {} WHERE id <= ?", table.name()))
            .bind::<BigInt, _>(upto)
            .get_result::<MaxId>(self)
            .map(|r| r.n)
    }

    fn count(&mut self, table: Table, after: i64, upto: i64) -> QueryResult<i64> {
        diesel::sql_query(format!("SELECT count(*) AS n FROM {} WHERE id > ? AND id <= ?", table.name()))
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(upto)
            .get_result::<Number>(self)
            .map(|r| r.n)
    }

    fn fragments(&mut self, range: Range) -> QueryResult<Vec<FragmentRow>> {
        let rows: Vec<FragmentRow> =
            diesel::sql_query(format!("{FRAGMENT_COLUMNS} WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"))
                .bind::<BigInt, _>(range.after)
                .bind::<BigInt, _>(range.upto)
                .bind::<BigInt, _>(range.limit)
                .load(self)?;
        Ok(rows)
    }

    fn embeddings(&mut self, range: Range) -> QueryResult<Vec<RawEmbedding>> {
        load_embeddings(
            diesel::sql_query(format!("{EMBEDDING_COLUMNS} WHERE e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?"))
                .bind::<BigInt, _>(range.after)
                .bind::<BigInt, _>(range.upto)
                .bind::<BigInt, _>(range.limit),
            self,
        )
    }

    #[cfg(feature = "jsonl")]
    fn embeddings_of_fragments(&mut self, after: i64, upto: i64) -> QueryResult<Vec<RawEmbedding>> {
        load_embeddings(
            diesel::sql_query(format!(
                "{EMBEDDING_COLUMNS} WHERE e.fragment_id > ? AND e.fragment_id <= ? ORDER BY e.fragment_id, e.id"
            ))
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(upto),
            self,
        )
    }

    #[cfg(feature = "jsonl")]
    fn fragments_by_id(&mut self, ids: &[i64]) -> QueryResult<Vec<FragmentRow>> {
        let rows: Vec<FragmentRow> =
            diesel::sql_query(format!("{FRAGMENT_COLUMNS} WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"))
                .bind::<Text, _>(json_ids(ids))
                .load(self)?;
        Ok(rows)
    }

    #[cfg(feature = "jsonl")]
    fn embeddings_by_id(&mut self, ids: &[i64]) -> QueryResult<Vec<RawEmbedding>> {
        load_embeddings(
            diesel::sql_query(format!(
                "{EMBEDDING_COLUMNS} WHERE e.id IN (SELECT value FROM json_each(?)) ORDER BY e.id"
            ))
            .bind::<Text, _>(json_ids(ids)),
            self,
        )
    }

    // One row per statement: Diesel prepares it once and reuses it from its cache, which SQLite runs
    // faster than a multi-row INSERT that has to be compiled anew for every batch (measured with
    // `scripts/bench-load.sh`: about 1.2 times faster for embeddings). The caller holds the transaction.
    fn insert_fragments(&mut self, rows: &[FragmentRow]) -> QueryResult<usize> {
        let mut inserted = 0;
        for row in rows {
            inserted += diesel::insert_into(fragments::table)
                .values(NewFragmentRow::from(row))
                .on_conflict(fragments::id)
                .do_nothing()
                .execute(self)?;
        }
        Ok(inserted)
    }

    fn insert_embeddings(&mut self, rows: &[EmbeddingRow]) -> QueryResult<usize> {
        let mut inserted = 0;
        for row in rows {
            // Little-endian f32 is SQLite's format already: the bytes are bound as they are.
            inserted += diesel::insert_into(fragment_embeddings::table)
                .values(NewEmbeddingRow::new(row, row.embedding.as_deref()))
                .on_conflict(fragment_embeddings::id)
                .do_nothing()
                .execute(self)?;
        }
        Ok(inserted)
    }

    fn reserve_ids(&mut self, table: Table, max: i64) -> QueryResult<()> {
        // AUTOINCREMENT hands out max(seq, largest rowid) + 1; raising seq reserves the ids up to max.
        // (SQLite raises seq itself when a row is inserted with an explicit larger id.)
        super::transaction::immediate(self, |conn| {
            diesel::sql_query(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, 0 \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)",
            )
            .bind::<Text, _>(table.name())
            .execute(conn)?;
            diesel::sql_query("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?")
                .bind::<BigInt, _>(max)
                .bind::<Text, _>(table.name())
                .execute(conn)?;
            Ok(())
        })
    }

    fn write_batch<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        super::transaction::immediate(self, f)
    }

    fn snapshot<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        super::transaction::deferred(self, f)
    }

    fn after_load(&mut self) -> Result<TargetIndex, IndexUpdateError> {
        let structures = crate::schema::fragment_embeddings_index().sqlite_index();
        if structures == crate::index::SqliteIndex::VEC0 {
            if super::sqlite_vec_version(self)?.is_none() {
                return Ok(TargetIndex::Vec0Pending);
            }
            let report = super::sync_index(self).map_err(IndexUpdateError::Index)?;
            return Ok(TargetIndex::Vec0Synced { rebuilt: report.rebuilt, applied: report.applied });
        }
        // The crate's codes need no extension.
        let report = super::sync_index(self).map_err(IndexUpdateError::Index)?;
        Ok(TargetIndex::Synced { structures, rebuilt: report.rebuilt, applied: report.applied })
    }
}
