//! pgvector's index of a vector index ([`IndexSpec`]): how it stands ([`status`]) and rebuilding it as
//! ivfflat or HNSW ([`rebuild`]); the seed's `fragment_embeddings_cosine_idx` through the same functions.
//!
//! ivfflat partitions vectors into `lists` clusters when the index is built; an index built on an empty
//! table (as the migration does) has meaningless clusters and poor recall until it is rebuilt after the
//! data is loaded. pgvector recommends `lists = rows / 1000` up to a million rows and `sqrt(rows)` beyond,
//! and probing `sqrt(lists)` lists per query as a start; [`rebuild_ivfflat_index`] follows the first, and
//! the search's default probes ([`recommended_probes`]) the second with a floor of 10 for recall.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
#[cfg(feature = "pg")]
use diesel::PgConnection;

use crate::exec::{self, first, sql, transaction, Exec};
use crate::index::generate::pg_create_index_sql;
use crate::index::{quote, IndexSpec, PgIndex};

/// The index's name, as the original migration creates it.
pub const IVFFLAT_INDEX: &str = "fragment_embeddings_cosine_idx";

/// The ivfflat index's size against the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfflatStatus {
    /// The lists the index was built with (pgvector's default is 100).
    pub lists: i32,
    /// Rows of `fragment_embeddings` with an embedding.
    pub rows: i64,
}

impl IvfflatStatus {
    /// The lists pgvector recommends for `rows`.
    pub fn recommended_lists(&self) -> i32 {
        recommended_lists(self.rows)
    }

    /// True when the index has far more lists than the data supports (as when it was built on an empty
    /// table): more than twice the recommended count.
    pub fn needs_rebuild(&self) -> bool {
        self.lists > 2 * self.recommended_lists()
    }
}

/// pgvector's recommendation: `rows / 1000` lists up to a million rows, `sqrt(rows)` beyond; at least 1.
pub fn recommended_lists(rows: i64) -> i32 {
    let lists = if rows <= 1_000_000 { rows / 1000 } else { rows.isqrt() };
    i32::try_from(lists.max(1)).unwrap_or(i32::MAX)
}

/// The probes a search uses by default for an index of `lists` lists: pgvector's `sqrt(lists)`, but at
/// least 10 (or every list, when there are fewer). Recall first: on 20k embedding-like vectors with 20
/// lists, `sqrt(lists)` = 5 probes found 93-97% of the true 10 nearest depending on the k-means run,
/// 10 probes all of them.
pub fn recommended_probes(lists: i32) -> u32 {
    let lists = lists.max(1).unsigned_abs();
    let root = lists.isqrt();
    let sqrt = if root * root < lists { root + 1 } else { root };
    sqrt.max(lists.min(10))
}

/// A vector index on PostgreSQL and how it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgIndexStatus {
    /// The index's name in PostgreSQL.
    pub name: String,
    /// Its access method (`hnsw`, `ivfflat`, ...), `None` when the index does not exist.
    pub method: Option<String>,
    /// ivfflat's lists (pgvector's default is 100), `None` for other methods.
    pub lists: Option<i32>,
    /// Whether PostgreSQL can use it (`false` after a failed `CREATE INDEX CONCURRENTLY`).
    pub valid: bool,
    /// Rows of the table with a vector.
    pub rows: i64,
}

impl PgIndexStatus {
    /// The lists pgvector recommends for the rows.
    pub fn recommended_lists(&self) -> i32 {
        recommended_lists(self.rows)
    }

    /// True for an ivfflat index with far more lists than the data supports (as when it was built on an
    /// empty table): more than twice the recommended count. Such an index recalls poorly until rebuilt.
    pub fn needs_rebuild(&self) -> bool {
        self.lists.is_some_and(|lists| lists > 2 * self.recommended_lists())
    }
}

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Nullable<Text>)]
    method: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    lists: Option<i32>,
    #[diesel(sql_type = Bool)]
    valid: bool,
}

/// The PostgreSQL index of `spec` (by its registered name) and the rows it covers. An index that does not
/// exist has `method: None`; a spec without a PostgreSQL index is described the same way.
///
/// # Errors
///
/// A failing query (the table or column missing, say).
#[cfg(feature = "pg")]
pub fn status(conn: &mut PgConnection, spec: &IndexSpec) -> QueryResult<PgIndexStatus> {
    exec::block_on(status_with(conn, spec))
}

/// [`status`] on diesel-async's `AsyncPgConnection`.
///
/// # Errors
///
/// As [`status`].
#[cfg(feature = "async")]
pub async fn status_async(conn: &mut diesel_async::AsyncPgConnection, spec: &IndexSpec) -> QueryResult<PgIndexStatus> {
    status_with(&mut exec::AsyncPg::new(conn), spec).await
}

async fn status_with<E: Exec<Db = Pg>>(conn: &mut E, spec: &IndexSpec) -> QueryResult<PgIndexStatus> {
    let name = spec.pg_index_name().unwrap_or_default().to_owned();
    let regclass = spec.pg_index_name().map(quote);
    let row: StatusRow = first(conn, sql(
        "SELECT (SELECT am.amname::text FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.oid = to_regclass($1)) \
                    AS method, \
                (SELECT CASE WHEN am.amname = 'ivfflat' THEN coalesce((SELECT option_value::int \
                          FROM pg_options_to_table(c.reloptions) WHERE option_name = 'lists'), 100) END \
                 FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.oid = to_regclass($1)) AS lists, \
                coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)), false) AS valid",
    )
    .bind::<Nullable<Text>, _>(regclass))
    .await?;
    let rows = count_rows(conn, spec).await?;
    Ok(PgIndexStatus { name, method: row.method, lists: row.lists, valid: row.valid, rows })
}

/// How [`rebuild`] builds an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rebuild {
    /// ivfflat with `lists` lists (`None`: the lists pgvector recommends for the rows).
    Ivfflat {
        /// The lists.
        lists: Option<i32>,
    },
    /// HNSW with pgvector's defaults (`m` 16, `ef_construction` 64).
    Hnsw,
}

/// Rebuilds `spec`'s PostgreSQL index under its name, with its operator class (and its halfvec cast above
/// 2000 dimensions), in one transaction; returns what was built. The old index stays in place if
/// anything fails.
///
/// An ivfflat build needs memory for pgvector's k-means (about 60 MB at 100 lists of 1536 dimensions) and
/// is refused when `maintenance_work_mem` (64 MB by default) is smaller. When it is, the build is retried
/// once the setting is raised, for this transaction only (`SET LOCAL`), to the figure pgvector names in
/// its error; an `info` event on `diesel_vector::index` records it.
///
/// # Errors
///
/// A failing query; [`diesel::result::Error::QueryBuilderError`] when the spec has no PostgreSQL index
/// name or its metric has no index of that kind (see [`IndexSpec`]'s checks).
#[cfg(feature = "pg")]
pub fn rebuild(conn: &mut PgConnection, spec: &IndexSpec, how: Rebuild) -> QueryResult<PgIndexStatus> {
    exec::block_on(rebuild_with(conn, spec, how))
}

/// [`rebuild`] on diesel-async's `AsyncPgConnection`. Dropping the future before it finishes rolls the
/// rebuild back (the old index stays).
///
/// # Errors
///
/// As [`rebuild`].
#[cfg(feature = "async")]
pub async fn rebuild_async(
    conn: &mut diesel_async::AsyncPgConnection,
    spec: &IndexSpec,
    how: Rebuild,
) -> QueryResult<PgIndexStatus> {
    rebuild_with(&mut exec::AsyncPg::new(conn), spec, how).await
}

async fn rebuild_with<E: Exec<Db = Pg>>(conn: &mut E, spec: &IndexSpec, how: Rebuild) -> QueryResult<PgIndexStatus> {
    let Some(name) = spec.pg_index_name() else {
        return Err(diesel::result::Error::QueryBuilderError(
            format!("the vector index {} has no PostgreSQL index to rebuild", spec.name()).into(),
        ));
    };
    let (method, lists) = match how {
        Rebuild::Ivfflat { lists } => (PgIndex::Ivfflat, Some(lists)),
        // A binary-quantized index stays one: an HNSW index on the vectors' signs.
        Rebuild::Hnsw if spec.pg_index() == PgIndex::BinaryQuantized => (PgIndex::BinaryQuantized, None),
        Rebuild::Hnsw => (PgIndex::Hnsw, None),
    };
    transaction(conn, async |conn: &mut E| {
        conn.batch_execute(super::END_WITH_CLIENT).await?;
        let lists = match lists {
            Some(Some(lists)) => Some(lists.max(1)),
            Some(None) => Some(recommended_lists(count_rows(conn, spec).await?)),
            None => None,
        };
        let with = lists.map(|l| format!(" WITH (lists = {l})")).unwrap_or_default();
        let create = pg_create_index_sql(spec, method, &with).ok_or_else(|| {
            diesel::result::Error::QueryBuilderError(
                format!("pgvector has no {method} index for {} on `{}` columns", spec.metric(), spec.element()).into(),
            )
        })?;
        conn.batch_execute(&format!("DROP INDEX IF EXISTS {}", quote(name))).await?;
        // pgvector checks memory twice (the samples, then the k-means as a whole), so a second refusal
        // with a larger figure is possible; each attempt runs in a savepoint.
        let mut raised = 0;
        loop {
            conn.begin().await?;
            let attempt = conn.batch_execute(&create).await;
            match exec::finish(conn, attempt).await {
                Ok(()) => break,
                Err(e) => {
                    let mb = kmeans_memory_mb(&e).filter(|_| raised < 3).ok_or(e)?;
                    raised += 1;
                    conn.batch_execute(&format!("SET LOCAL maintenance_work_mem = '{mb}MB'")).await?;
                    tracing::info!(
                        target: "diesel_vector::index",
                        backend = "postgresql",
                        index = name,
                        maintenance_work_mem_mb = mb,
                        "maintenance_work_mem raised for this ivfflat rebuild, as pgvector asked"
                    );
                }
            }
        }
        let status = status_with(conn, spec).await?;
        tracing::info!(
            target: "diesel_vector::index",
            backend = "postgresql",
            index = name,
            method = method.name(),
            lists = status.lists,
            rows = status.rows,
            "vector index rebuilt"
        );
        Ok(status)
    })
    .await
}

/// The seed's index as an [`IvfflatStatus`].
#[cfg(feature = "pg")]
#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = Nullable<Integer>)]
    lists: Option<i32>,
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

/// The lists and rows of `fragment_embeddings_cosine_idx`, or `None` when it does not exist.
///
/// # Errors
///
/// A failing catalog query.
#[cfg(feature = "pg")]
pub fn ivfflat_status(conn: &mut PgConnection) -> QueryResult<Option<IvfflatStatus>> {
    let status: Status = diesel::sql_query(
        "SELECT (SELECT coalesce((SELECT option_value::int FROM pg_options_to_table(c.reloptions) \
                                   WHERE option_name = 'lists'), 100) \
                 FROM pg_class c WHERE c.oid = to_regclass('fragment_embeddings_cosine_idx')) AS lists, \
                (SELECT count(*) FROM fragment_embeddings WHERE embedding IS NOT NULL) AS rows",
    )
    .get_result(conn)?;
    Ok(status.lists.map(|lists| IvfflatStatus { lists, rows: status.rows }))
}

/// Rebuilds `fragment_embeddings_cosine_idx` as ivfflat with the lists pgvector recommends for the rows
/// ([`rebuild`] for the seed's index); returns the lists.
///
/// # Errors
///
/// A failing query; the old index stays in place.
#[cfg(feature = "pg")]
pub fn rebuild_ivfflat_index(conn: &mut PgConnection) -> QueryResult<i32> {
    let status = rebuild(conn, seed(), Rebuild::Ivfflat { lists: None })?;
    Ok(status.lists.unwrap_or(1))
}

/// The memory pgvector's ivfflat build asked for, from its error "memory required is N MB,
/// maintenance_work_mem is M MB", or `None` for any other error.
fn kmeans_memory_mb(e: &diesel::result::Error) -> Option<u64> {
    let diesel::result::Error::DatabaseError(_, info) = e else { return None };
    let rest = info.message().strip_prefix("memory required is ")?;
    let (mb, rest) = rest.split_once(" MB")?;
    rest.starts_with(", maintenance_work_mem is").then_some(())?;
    mb.parse().ok()
}

/// The access method of `fragment_embeddings_cosine_idx` (`ivfflat`, `hnsw`, ...), or `None` when the
/// index does not exist.
///
/// # Errors
///
/// A failing catalog query.
#[cfg(feature = "pg")]
pub fn index_method(conn: &mut PgConnection) -> QueryResult<Option<String>> {
    Ok(status(conn, seed())?.method)
}

/// Replaces `fragment_embeddings_cosine_idx` with an hnsw index under the same name ([`rebuild`] for the
/// seed's index with [`Rebuild::Hnsw`]).
///
/// # Errors
///
/// A failing query; the old index stays in place.
#[cfg(feature = "pg")]
pub fn rebuild_hnsw_index(conn: &mut PgConnection) -> QueryResult<()> {
    rebuild(conn, seed(), Rebuild::Hnsw).map(|_| ())
}

#[cfg(feature = "pg")]
fn seed() -> &'static IndexSpec {
    crate::schema::fragment_embeddings_index()
}

async fn count_rows<E: Exec<Db = Pg>>(conn: &mut E, spec: &IndexSpec) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count = first(
        conn,
        sql(format!(
            "SELECT count(*) AS n FROM {} t WHERE t.{} IS NOT NULL",
            quote(spec.table()),
            quote(spec.column())
        )),
    )
    .await?;
    Ok(count.n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_probes_follow_pgvectors_advice() {
        assert_eq!(recommended_lists(0), 1);
        assert_eq!(recommended_lists(20_000), 20);
        assert_eq!(recommended_lists(1_000_000), 1000);
        assert_eq!(recommended_lists(4_000_000), 2000);
        assert_eq!(recommended_probes(1), 1);
        assert_eq!(recommended_probes(4), 4);
        assert_eq!(recommended_probes(20), 10);
        assert_eq!(recommended_probes(100), 10);
        assert_eq!(recommended_probes(1000), 32);
    }

    fn db_error(message: &str) -> diesel::result::Error {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
    }

    #[test]
    fn the_memory_pgvector_asks_for_is_read_from_its_error_and_nothing_else() {
        let e = db_error("memory required is 65 MB, maintenance_work_mem is 64 MB");
        assert_eq!(kmeans_memory_mb(&e), Some(65));
        assert_eq!(kmeans_memory_mb(&db_error("memory required is lots")), None);
        assert_eq!(kmeans_memory_mb(&db_error("relation \"x\" does not exist")), None);
        assert_eq!(kmeans_memory_mb(&diesel::result::Error::NotFound), None);
    }
}
