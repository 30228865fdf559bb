//! Workload 2 of issue 6, bulk insert: `n` embeddings into a freshly migrated database that holds their
//! `n` fragments, one contender per way of loading them.
//!
//! - PostgreSQL: the crate's [`insert_embeddings`] (Diesel's `COPY FROM ... (FORMAT binary)` through
//!   `from_insertable`) against the same `COPY` fed with a binary stream built before the clock starts
//!   (Diesel's `from_raw_data`, written in 64 KiB pieces: libpq's `PQputCopyData` with no encoding left
//!   to do) and against Diesel batch `INSERT`s (1000 rows per statement, one transaction).
//! - SQLite: [`insert_embeddings`] (one transaction) against a prepared statement stepped in a loop
//!   through SQLite's C API ([`crate::raw_sqlite`]) with the same pragmas (those of
//!   `diesel_vector::sqlite::establish`: WAL, `synchronous = NORMAL`, foreign keys) and the same single
//!   transaction, and, for information, Diesel multi-row `INSERT`s.
//!
//! Every run gets its own database (PostgreSQL: `CREATE DATABASE ... TEMPLATE` of a migrated database
//! with the fragments, after a `CHECKPOINT` and a `sync`; SQLite: a copy of a template file), which is
//! checked after the clock stops (row count, and three rows read back bit for bit) and dropped.

use std::io::Write;
use std::time::Instant;

use diesel::pg::CopyFormat;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_vector::models::insert_embeddings;
use diesel_vector::schema::fragment_embeddings;
use diesel_vector::{codec, Vector};

use crate::embeddings::{Dataset, Templates, MODEL, PROVIDER};
use crate::raw_sqlite::{RawDb, Value};
use crate::rounds::{Contender, Sample};
use crate::workloads::DIMS;

/// Contender names, shared with the report's bar checks.
pub mod names {
    pub const PG_CRATE: &str = "insert_embeddings (Diesel COPY FROM, binary)";
    pub const PG_RAW_COPY: &str = "raw binary COPY, pre-encoded (Diesel from_raw_data)";
    pub const PG_BATCH_INSERT: &str = "Diesel batch INSERT, 1000 rows/statement";
    pub const SQLITE_CRATE: &str = "insert_embeddings (one transaction)";
    pub const SQLITE_RAW: &str = "raw prepared statement loop (C API)";
    pub const SQLITE_MULTI_ROW: &str = "Diesel multi-row INSERT, 500 rows/statement";
}

/// Rows per Diesel batch `INSERT` on PostgreSQL (6 binds each: 6000 binds, under the 65535 limit).
const PG_INSERT_CHUNK: usize = 1000;
/// Rows per multi-row `INSERT` on SQLite (3000 binds, under SQLite's 32766).
const SQLITE_INSERT_CHUNK: usize = 500;
/// Bytes per `PQputCopyData` call of the raw `COPY` contender.
const COPY_PIECE: usize = 64 * 1024;

/// The pragmas `diesel_vector::sqlite::establish` sets on a file database (busy timeout 5 s).
pub const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

/// The statement Diesel prepares for one `NewFragmentEmbedding` on SQLite.
const SQLITE_INSERT: &str = "INSERT INTO `fragment_embeddings` (`fragment_id`, `provider`, `model`, `dims`, \
     `embedding`, `content_hash`) VALUES (?, ?, ?, ?, ?, ?)";

/// Everything the contenders of one size share: the rows, the pre-encoded `COPY` stream, and the
/// templates every run starts from.
pub struct LoadInputs<'a> {
    pub dataset: &'a Dataset,
    copy_stream: Vec<u8>,
    templates: &'a Templates<'a>,
}

impl<'a> LoadInputs<'a> {
    /// Encodes the `COPY` stream.
    pub fn prepare(dataset: &'a Dataset, templates: &'a Templates<'a>) -> Self {
        Self { copy_stream: dataset.copy_stream(), dataset, templates }
    }

    /// The PostgreSQL contenders; the first is the crate's, the second the baseline.
    pub fn pg_contenders(&self) -> Vec<Contender<'_>> {
        vec![
            Contender {
                name: names::PG_CRATE,
                run: Box::new(move || {
                    let rows = self.dataset.new_rows();
                    self.pg_run(|conn| insert_embeddings(conn, &rows))
                }),
            },
            Contender {
                name: names::PG_RAW_COPY,
                run: Box::new(move || {
                    self.pg_run(|conn| {
                        use fragment_embeddings::dsl as e;
                        diesel::copy_from(e::fragment_embeddings)
                            .from_raw_data(
                                (e::fragment_id, e::provider, e::model, e::dims, e::embedding, e::content_hash),
                                |out: &mut dyn Write| -> QueryResult<()> {
                                    for piece in self.copy_stream.chunks(COPY_PIECE) {
                                        out.write_all(piece)
                                            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                                    }
                                    Ok(())
                                },
                            )
                            .with_format(CopyFormat::Binary)
                            .execute(conn)
                    })
                }),
            },
            Contender {
                name: names::PG_BATCH_INSERT,
                run: Box::new(move || {
                    let rows = self.dataset.new_rows();
                    self.pg_run(|conn| {
                        conn.transaction(|conn| {
                            let mut inserted = 0;
                            for chunk in rows.chunks(PG_INSERT_CHUNK) {
                                inserted +=
                                    diesel::insert_into(fragment_embeddings::table).values(chunk).execute(conn)?;
                            }
                            Ok(inserted)
                        })
                    })
                }),
            },
        ]
    }

    /// The SQLite contenders; the first is the crate's, the second the baseline.
    pub fn sqlite_contenders(&self) -> Vec<Contender<'_>> {
        vec![
            Contender {
                name: names::SQLITE_CRATE,
                run: Box::new(move || {
                    let rows = self.dataset.new_rows();
                    self.sqlite_run(|path| {
                        let mut conn = diesel_vector::sqlite::establish(path).map_err(|e| e.to_string())?;
                        let start = Instant::now();
                        let inserted = insert_embeddings(&mut conn, &rows).map_err(|e| e.to_string())?;
                        Ok((start.elapsed().as_secs_f64(), inserted))
                    })
                }),
            },
            Contender {
                name: names::SQLITE_RAW,
                run: Box::new(move || self.sqlite_run(|path| raw_sqlite_insert(path, self.dataset))),
            },
            Contender {
                name: names::SQLITE_MULTI_ROW,
                run: Box::new(move || {
                    let rows = self.dataset.new_rows();
                    self.sqlite_run(|path| {
                        let mut conn = diesel_vector::sqlite::establish(path).map_err(|e| e.to_string())?;
                        let start = Instant::now();
                        let inserted = conn
                            .transaction(|conn| {
                                let mut inserted = 0;
                                for chunk in rows.chunks(SQLITE_INSERT_CHUNK) {
                                    inserted +=
                                        diesel::insert_into(fragment_embeddings::table).values(chunk).execute(conn)?;
                                }
                                QueryResult::Ok(inserted)
                            })
                            .map_err(|e| e.to_string())?;
                        Ok((start.elapsed().as_secs_f64(), inserted))
                    })
                }),
            },
        ]
    }

    /// A fresh PostgreSQL database from the template, `job` timed on it, the result checked, the
    /// database dropped.
    fn pg_run(&self, job: impl FnOnce(&mut PgConnection) -> QueryResult<usize>) -> Result<Sample, String> {
        let (name, url) = self.templates.fresh_pg("load_run")?;
        let result = (|| {
            let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
            let start = Instant::now();
            let inserted = job(&mut conn).map_err(|e| e.to_string())?;
            let seconds = start.elapsed().as_secs_f64();
            check_loaded_pg(&mut conn, self.dataset, inserted)?;
            Ok(Sample::seconds(seconds))
        })();
        self.templates.pg.drop_database(&name)?;
        result
    }

    /// A fresh SQLite file from the template; `job` opens it, times its own work and returns the
    /// seconds and rows inserted; the result is checked and the file removed.
    fn sqlite_run(&self, job: impl FnOnce(&str) -> Result<(f64, usize), String>) -> Result<Sample, String> {
        let path = self.templates.fresh_sqlite("load_run")?;
        let result = job(&path).and_then(|(seconds, inserted)| {
            let mut conn = diesel_vector::sqlite::establish(&path).map_err(|e| e.to_string())?;
            check_loaded_sqlite(&mut conn, self.dataset, inserted)?;
            Ok(Sample::seconds(seconds))
        });
        self.templates.scratch.remove_db(&path);
        result
    }
}

/// The raw SQLite contender: the pragmas, then `BEGIN`, one prepared statement bound and stepped per
/// row, `COMMIT`. Returns the seconds from `BEGIN` to `COMMIT` and the rows inserted.
fn raw_sqlite_insert(path: &str, dataset: &Dataset) -> Result<(f64, usize), String> {
    let mut db = RawDb::open(path)?;
    db.exec(SQLITE_PRAGMAS)?;
    let start = Instant::now();
    db.exec("BEGIN")?;
    {
        let mut stmt = db.prepare(SQLITE_INSERT)?;
        for (i, (v, hash)) in dataset.vectors.iter().zip(&dataset.hashes).enumerate() {
            let blob = codec::encode_sqlite(v);
            stmt.execute(&[
                Value::Int(Dataset::fragment_id(i)),
                Value::Text(PROVIDER),
                Value::Text(MODEL),
                Value::Int(DIMS as i64),
                Value::Blob(&blob),
                Value::Text(hash),
            ])?;
        }
    }
    db.exec("COMMIT")?;
    Ok((start.elapsed().as_secs_f64(), dataset.len()))
}

/// Rows whose vectors are read back after a load: the first, the middle and the last.
fn probes(n: usize) -> [usize; 3] {
    [0, n / 2, n.saturating_sub(1)]
}

macro_rules! check_loaded {
    ($name:ident, $conn:ty) => {
        /// The load inserted every row, and three of them read back as generated, bit for bit.
        pub fn $name(conn: &mut $conn, dataset: &Dataset, inserted: usize) -> Result<(), String> {
            use fragment_embeddings::dsl as e;
            let n = dataset.len();
            let count: i64 = e::fragment_embeddings.count().get_result(conn).map_err(|e| e.to_string())?;
            if inserted != n || count != n as i64 {
                return Err(format!("expected {n} rows; the load reported {inserted}, the table holds {count}"));
            }
            for i in probes(n) {
                let (fragment_id, provider, model, dims, embedding): (i64, String, String, i32, Option<Vector>) =
                    e::fragment_embeddings
                        .filter(e::content_hash.eq(&dataset.hashes[i]))
                        .select((e::fragment_id, e::provider, e::model, e::dims, e::embedding))
                        .get_result(conn)
                        .map_err(|e| e.to_string())?;
                let bits = |v: &Vector| v.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let same_vector = embedding.as_ref().map(bits) == Some(bits(&dataset.vectors[i]));
                if fragment_id != Dataset::fragment_id(i)
                    || provider != PROVIDER
                    || model != MODEL
                    || dims != DIMS as i32
                    || !same_vector
                {
                    return Err(format!("row {i} does not read back as it was generated"));
                }
            }
            Ok(())
        }
    };
}

check_loaded!(check_loaded_pg, PgConnection);
check_loaded!(check_loaded_sqlite, SqliteConnection);
