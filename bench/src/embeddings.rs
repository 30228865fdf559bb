//! The generated embeddings the database reports load: `n` rows of `fragment_embeddings`, one per
//! fragment (fragment ids `1..=n`), each with a uniform random 1536-dimension vector from a fixed seed,
//! and the same rows pre-encoded for PostgreSQL's binary `COPY`.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::{codec, Vector};

use crate::fresh::{PgServer, ScratchDir};
use crate::workloads::{uniform_values, DIMS, SEED};

/// The provider of every generated row.
pub const PROVIDER: &str = "openai";
/// The model of every generated row.
pub const MODEL: &str = "text-embedding-3-small";

/// `n` generated embeddings.
pub struct Dataset {
    pub vectors: Vec<Vector>,
    pub hashes: Vec<String>,
}

impl Dataset {
    /// Row `i` gets the vector drawn from seed `SEED ^ splitmix(i)` and content hash `i` in hex.
    pub fn generate(n: usize) -> Self {
        let vectors = (0..n)
            .map(|i| {
                let values = uniform_values(DIMS, SEED ^ splitmix(i as u64));
                Vector::new(values).expect("uniform values are finite")
            })
            .collect();
        let hashes = (0..n).map(|i| format!("{i:016x}")).collect();
        Self { vectors, hashes }
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Bytes of vector data (pgvector's binary format) a load moves.
    pub fn vector_bytes(&self) -> usize {
        self.len() * codec::pg_encoded_len(DIMS)
    }

    /// The fragment of row `i`.
    pub fn fragment_id(i: usize) -> i64 {
        i as i64 + 1
    }

    /// The id and timestamps a row gets when it is loaded with explicit ids (the copy's sources).
    pub fn id(i: usize) -> i64 {
        i as i64 + 1
    }

    pub fn timestamp(i: usize) -> NaiveDateTime {
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).and_then(|d| d.and_hms_opt(12, 0, 0)).expect("valid date");
        start + chrono::Duration::seconds(i as i64)
    }

    /// The rows as the crate's bulk insert takes them.
    pub fn new_rows(&self) -> Vec<NewFragmentEmbedding<'_>> {
        self.vectors
            .iter()
            .zip(&self.hashes)
            .enumerate()
            .map(|(i, (v, h))| NewFragmentEmbedding::new(Self::fragment_id(i), PROVIDER, MODEL, v, h))
            .collect()
    }

    /// A binary `COPY` stream of `(fragment_id, provider, model, dims, embedding, content_hash)`: the
    /// columns `insert_embeddings` writes, the database filling in id and timestamps.
    pub fn copy_stream(&self) -> Vec<u8> {
        self.encode_copy(false)
    }

    /// A binary `COPY` stream of every column, `(id, fragment_id, provider, model, dims, embedding,
    /// content_hash, created_at, updated_at)`, with [`Self::id`] and [`Self::timestamp`].
    pub fn copy_stream_with_ids(&self) -> Vec<u8> {
        self.encode_copy(true)
    }

    fn encode_copy(&self, with_ids: bool) -> Vec<u8> {
        let row_len = 2 + 9 * 4 + 8 + 8 + 4 + 8 + 8 + PROVIDER.len() + MODEL.len() + 16 + codec::pg_encoded_len(DIMS);
        let mut out = Vec::with_capacity(19 + self.len() * row_len + 2);
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        out.extend_from_slice(&0i32.to_be_bytes()); // flags
        out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        for (i, (v, hash)) in self.vectors.iter().zip(&self.hashes).enumerate() {
            out.extend_from_slice(&(if with_ids { 9i16 } else { 6i16 }).to_be_bytes());
            if with_ids {
                field(&mut out, &Self::id(i).to_be_bytes());
            }
            field(&mut out, &Self::fragment_id(i).to_be_bytes());
            field(&mut out, PROVIDER.as_bytes());
            field(&mut out, MODEL.as_bytes());
            field(&mut out, &(DIMS as i32).to_be_bytes());
            field(&mut out, &codec::encode_pg(v));
            field(&mut out, hash.as_bytes());
            if with_ids {
                let micros = pg_timestamp(Self::timestamp(i)).to_be_bytes();
                field(&mut out, &micros);
                field(&mut out, &micros);
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }
}

/// One field of a binary `COPY` row: its length, then its bytes.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// PostgreSQL's binary `timestamp`: microseconds since 2000-01-01 00:00:00.
fn pg_timestamp(t: NaiveDateTime) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid date");
    (t - epoch).num_microseconds().expect("in range")
}

/// SQLite's text form of a timestamp, as Diesel writes it.
pub fn sqlite_timestamp(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SQL that inserts fragments `1..=n` (`'fragment <id>'`) into a migrated database, on either backend.
pub fn insert_fragments_sql(n: usize) -> String {
    format!(
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n}) \
         INSERT INTO fragments (id, content) SELECT x, 'fragment ' || x FROM g"
    )
}

/// Migrates a database and gives it fragments `1..=n` (what every load needs for its foreign keys).
pub fn prepare_schema<C>(conn: &mut C, n: usize) -> Result<(), String>
where
    C: diesel_vector::migrations::MigrationTarget + SimpleConnection,
{
    diesel_vector::migrations::run_pending_migrations(conn).map_err(|e| format!("migrating: {e}"))?;
    if n > 0 {
        conn.batch_execute(&insert_fragments_sql(n)).map_err(|e| format!("inserting fragments: {e}"))?;
    }
    Ok(())
}

/// A migrated PostgreSQL database and SQLite file holding fragments `1..=n` and no embeddings, which every
/// run that loads embeddings starts from a copy of. Dropped with the value.
pub struct Templates<'a> {
    pub pg: &'a PgServer,
    pub scratch: &'a ScratchDir,
    pg_template: String,
    sqlite_template: String,
}

impl<'a> Templates<'a> {
    /// Creates both templates (`VACUUM ANALYZE` on PostgreSQL, so no run pays for setting hint bits).
    pub fn prepare(n: usize, pg: &'a PgServer, scratch: &'a ScratchDir) -> Result<Self, String> {
        let pg_template = pg.name(&format!("template_{n}"));
        pg.drop_database(&pg_template)?;
        let url = pg.create(&pg_template, None)?;
        {
            let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
            prepare_schema(&mut conn, n)?;
            conn.batch_execute("VACUUM ANALYZE").map_err(|e| e.to_string())?;
        }
        let sqlite_template = scratch.path(&format!("template_{n}.db"));
        scratch.remove_db(&sqlite_template);
        {
            let mut conn = diesel_vector::sqlite::establish(&sqlite_template).map_err(|e| e.to_string())?;
            prepare_schema(&mut conn, n)?;
        }
        Ok(Self { pg, scratch, pg_template, sqlite_template })
    }

    /// A fresh PostgreSQL database copied from the template, after a `CHECKPOINT` and a `sync` (so a run
    /// neither pays for the previous run's dirty buffers nor is slowed by the write-back of its WAL).
    /// Returns its name and URL; drop it with [`PgServer::drop_database`].
    pub fn fresh_pg(&self, what: &str) -> Result<(String, String), String> {
        self.pg.checkpoint()?;
        crate::fresh::sync();
        let name = self.pg.name(what);
        let url = self.pg.create(&name, Some(&self.pg_template))?;
        Ok((name, url))
    }

    /// A fresh SQLite file copied from the template, after a `sync`; remove it with
    /// [`ScratchDir::remove_db`].
    pub fn fresh_sqlite(&self, what: &str) -> Result<String, String> {
        let path = self.scratch.path(&format!("{what}.db"));
        self.scratch.copy_db(&self.sqlite_template, &path)?;
        crate::fresh::sync();
        Ok(path)
    }
}

impl Drop for Templates<'_> {
    fn drop(&mut self) {
        let _ = self.pg.drop_database(&self.pg_template);
        self.scratch.remove_db(&self.sqlite_template);
    }
}
