//! Rows in and out of PostgreSQL for copies and JSON lines: vectors read with `vector_send` (pgvector's
//! binary format, as `bytea`) and written as that format again, with no `Vec<f32>` in between.

use std::io::Write;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text, Timestamp};
use diesel::PgConnection;

use crate::schema::{fragment_embeddings, fragments};
use crate::transfer::{
    EmbeddingRow, EncodedVector, FragmentRow, IndexUpdateError, NewEmbeddingRow, NewFragmentRow, Range, RawEmbedding,
    Store, StoredVector, Table, TargetIndex, ROWS_PER_INSERT,
};

/// Writes bytes that are already pgvector's binary format.
impl ToSql<crate::sql_types::Vector, Pg> for EncodedVector<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.0)?;
        Ok(IsNull::No)
    }
}

#[derive(QueryableByName)]
struct PgEmbedding {
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
    #[diesel(sql_type = Nullable<Binary>)]
    embedding: Option<Vec<u8>>,
    #[diesel(sql_type = Text)]
    content_hash: String,
    #[diesel(sql_type = Nullable<Timestamp>)]
    created_at: Option<chrono::NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    updated_at: Option<chrono::NaiveDateTime>,
    #[diesel(sql_type = Bool)]
    orphan: bool,
}

impl From<PgEmbedding> for RawEmbedding {
    fn from(r: PgEmbedding) -> Self {
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
            stored: r.embedding.map_or(StoredVector::Null, StoredVector::PgBinary),
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

/// The embeddings `inner` selects (a `WHERE` condition, possibly with `ORDER BY` and `LIMIT`), in `order`.
/// The rows are picked in a subquery first, so that `vector_send` and the orphan check run only for them
/// even when the planner (on a table never analysed, right after a load) sorts the whole id range.
///
/// The orphan check is a scalar subquery on the primary key, which PostgreSQL runs as one index probe
/// per row. (`NOT EXISTS` let the planner hash the whole `fragments` table for every batch instead: 50 ms
/// per 500-row batch at 100k fragments, quadratic over a copy.)
fn embeddings_sql(inner: &str, order: &str) -> String {
    format!(
        "SELECT e.id, e.fragment_id, e.provider::text AS provider, e.model::text AS model, e.dims, \
                vector_send(e.embedding) AS embedding, e.content_hash::text AS content_hash, e.created_at, \
                e.updated_at, (SELECT f.id FROM fragments f WHERE f.id = e.fragment_id) IS NULL AS orphan \
         FROM (SELECT * FROM fragment_embeddings WHERE {inner}) e ORDER BY {order}"
    )
}

fn load_embeddings<'q>(
    query: impl diesel::query_dsl::LoadQuery<'q, PgConnection, PgEmbedding>,
    conn: &mut PgConnection,
) -> QueryResult<Vec<RawEmbedding>> {
    Ok(query.load::<PgEmbedding>(conn)?.into_iter().map(RawEmbedding::from).collect())
}

/// Writes rows with binary `COPY FROM` when the target holds none of their ids, and otherwise with
/// `INSERT ... ON CONFLICT (id) DO NOTHING` (`insert`), so the result is always what `insert` gives.
///
/// `COPY` has no `ON CONFLICT`, but it loads rows about 1.4 times faster than multi-row `INSERT`s
/// (`scripts/bench-load.sh`). It runs only when no row of the target has an id between the rows' smallest
/// and largest (the usual case: a copy or an import into an empty range), inside a savepoint; should it
/// fail all the same (a row written with one of these ids meanwhile, a duplicate id among the rows, any
/// other error), the savepoint is rolled back and `insert` runs, with its own conflict handling and errors.
fn copy_or_insert(
    conn: &mut PgConnection,
    table: Table,
    ids: impl Iterator<Item = i64>,
    copy: impl FnOnce(&mut PgConnection) -> QueryResult<usize>,
    insert: impl FnOnce(&mut PgConnection) -> QueryResult<usize>,
) -> QueryResult<usize> {
    let span = ids.fold(None, |span: Option<(i64, i64)>, id| match span {
        None => Some((id, id)),
        Some((lo, hi)) => Some((lo.min(id), hi.max(id))),
    });
    let Some((lo, hi)) = span else { return Ok(0) };
    let taken = diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE id >= $1 AND id <= $2) AS taken",
        table.name()
    ))
    .bind::<BigInt, _>(lo)
    .bind::<BigInt, _>(hi)
    .get_result::<Taken>(conn)?
    .taken;
    if !taken {
        if let Ok(copied) = conn.transaction(copy) {
            return Ok(copied);
        }
    }
    insert(conn)
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    taken: bool,
}

impl Store for PgConnection {
    fn max_id(&mut self, table: Table, upto: i64) -> QueryResult<Option<i64>> {
        diesel::sql_query(format!("SELECT max(id) AS n FROM {} WHERE id <= $1", table.name()))
            .bind::<BigInt, _>(upto)
            .get_result::<MaxId>(self)
            .map(|r| r.n)
    }

    fn count(&mut self, table: Table, after: i64, upto: i64) -> QueryResult<i64> {
        diesel::sql_query(format!("SELECT count(*) AS n FROM {} WHERE id > $1 AND id <= $2", table.name()))
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(upto)
            .get_result::<Number>(self)
            .map(|r| r.n)
    }

    fn fragments(&mut self, range: Range) -> QueryResult<Vec<FragmentRow>> {
        let rows: Vec<FragmentRow> =
            diesel::sql_query(format!("{FRAGMENT_COLUMNS} WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"))
                .bind::<BigInt, _>(range.after)
                .bind::<BigInt, _>(range.upto)
                .bind::<BigInt, _>(range.limit)
                .load(self)?;
        Ok(rows)
    }

    fn embeddings(&mut self, range: Range) -> QueryResult<Vec<RawEmbedding>> {
        load_embeddings(
            diesel::sql_query(embeddings_sql("id > $1 AND id <= $2 ORDER BY id LIMIT $3", "e.id"))
                .bind::<BigInt, _>(range.after)
                .bind::<BigInt, _>(range.upto)
                .bind::<BigInt, _>(range.limit),
            self,
        )
    }

    #[cfg(feature = "jsonl")]
    fn embeddings_of_fragments(&mut self, after: i64, upto: i64) -> QueryResult<Vec<RawEmbedding>> {
        load_embeddings(
            diesel::sql_query(embeddings_sql("fragment_id > $1 AND fragment_id <= $2", "e.fragment_id, e.id"))
                .bind::<BigInt, _>(after)
                .bind::<BigInt, _>(upto),
            self,
        )
    }

    #[cfg(feature = "jsonl")]
    fn fragments_by_id(&mut self, ids: &[i64]) -> QueryResult<Vec<FragmentRow>> {
        let rows: Vec<FragmentRow> = diesel::sql_query(format!("{FRAGMENT_COLUMNS} WHERE id = ANY($1) ORDER BY id"))
            .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
            .load(self)?;
        Ok(rows)
    }

    #[cfg(feature = "jsonl")]
    fn embeddings_by_id(&mut self, ids: &[i64]) -> QueryResult<Vec<RawEmbedding>> {
        load_embeddings(
            diesel::sql_query(embeddings_sql("id = ANY($1)", "e.id")).bind::<diesel::sql_types::Array<BigInt>, _>(ids),
            self,
        )
    }

    fn insert_fragments(&mut self, rows: &[FragmentRow]) -> QueryResult<usize> {
        let values: Vec<NewFragmentRow<'_>> = rows.iter().map(NewFragmentRow::from).collect();
        copy_or_insert(
            self,
            Table::Fragments,
            rows.iter().map(|r| r.id),
            |conn| diesel::copy_from(fragments::table).from_insertable(&values[..]).execute(conn),
            |conn| {
                let mut inserted = 0;
                for chunk in values.chunks(ROWS_PER_INSERT) {
                    inserted += diesel::insert_into(fragments::table)
                        .values(chunk)
                        .on_conflict(fragments::id)
                        .do_nothing()
                        .execute(conn)?;
                }
                Ok(inserted)
            },
        )
    }

    fn insert_embeddings(&mut self, rows: &[EmbeddingRow]) -> QueryResult<usize> {
        // One byte swap per vector, from little-endian f32 to pgvector's binary format.
        let payloads = rows
            .iter()
            .map(|r| {
                r.embedding
                    .as_deref()
                    .map(|le| {
                        let mut pg = Vec::new();
                        crate::codec::sqlite_to_pg_payload(le, &mut pg).map(|()| pg)
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DieselError::SerializationError(Box::new(e)))?;
        let values: Vec<NewEmbeddingRow<'_>> =
            rows.iter().zip(&payloads).map(|(r, pg)| NewEmbeddingRow::new(r, pg.as_deref())).collect();
        copy_or_insert(
            self,
            Table::Embeddings,
            rows.iter().map(|r| r.id),
            |conn| diesel::copy_from(fragment_embeddings::table).from_insertable(&values[..]).execute(conn),
            |conn| {
                let mut inserted = 0;
                for chunk in values.chunks(ROWS_PER_INSERT) {
                    inserted += diesel::insert_into(fragment_embeddings::table)
                        .values(chunk)
                        .on_conflict(fragment_embeddings::id)
                        .do_nothing()
                        .execute(conn)?;
                }
                Ok(inserted)
            },
        )
    }

    fn reserve_ids(&mut self, table: Table, max: i64) -> QueryResult<()> {
        // setval never lowers the sequence here: the new value is at least its last value and the
        // table's largest id. An empty table with an unused sequence is left alone.
        let table = table.name();
        diesel::sql_query(format!(
            "SELECT setval(seq, v, true) FROM ( \
                 SELECT seq, GREATEST($1, coalesce(pg_sequence_last_value(seq), 0), \
                                      (SELECT coalesce(max(id), 0) FROM {table})) AS v \
                 FROM (SELECT pg_get_serial_sequence('{table}', 'id')::regclass AS seq) s \
             ) r WHERE seq IS NOT NULL AND v > 0"
        ))
        .bind::<BigInt, _>(max)
        .execute(self)?;
        Ok(())
    }

    fn write_batch<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        self.transaction(f)
    }

    fn snapshot<R, E: From<DieselError>>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, E>) -> Result<R, E> {
        self.build_transaction().read_only().repeatable_read().run(f)
    }

    fn after_load(&mut self) -> Result<TargetIndex, IndexUpdateError> {
        // Right after a load the planner knows nothing of the rows (autovacuum comes later).
        diesel::sql_query("ANALYZE fragments, fragment_embeddings").execute(self)?;
        Ok(match super::index::index_method(self)? {
            None => TargetIndex::Missing,
            Some(method) if method == "ivfflat" => match super::ivfflat_status(self)? {
                Some(s) => TargetIndex::Ivfflat {
                    lists: s.lists,
                    rows: s.rows,
                    needs_rebuild: s.rows > 0 && s.needs_rebuild(),
                },
                None => TargetIndex::Missing,
            },
            Some(method) => TargetIndex::Other { method },
        })
    }
}
