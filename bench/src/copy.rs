//! Workload 4, copy between backends, on an application's own table: `diesel_vector::copy::copy` of `n`
//! rows of `documents (id, lang, title, published_at, embedding)` (1536 dimensions; no `fragments`
//! anywhere) from PostgreSQL to SQLite and from SQLite to PostgreSQL, against the rate of each stage of
//! the pipeline measured alone in the same rounds.
//!
//! - **Copies** run in a child process (this binary again, `--copy-child FROM TO PG_DIR SQLITE_DIR`), so
//!   that their peak resident set size (`VmHWM`, read by the child from `/proc/self/status` when it is done)
//!   is the copy's own. The target is an empty database each time (PostgreSQL: a new database; SQLite: a
//!   new file), which the copy migrates with the application's migrations (`PG_DIR`, `SQLITE_DIR`). The
//!   child times the copy's phases from its progress events: `setup` (connections, both catalogs, the
//!   target's migrations, the resume check, id reservation), `rows` (the table's rows), `verify` (both
//!   sides read again and compared) and `index` (PostgreSQL: `ANALYZE`). The sources are made once per size.
//! - **Stages**, each alone on the same rows, in this process: reading PostgreSQL by binary `COPY TO` and
//!   by the copy's own keyset query (500 rows per query, mirrored from `src/transfer/sql.rs`), scanning
//!   SQLite through the C API, inserting into SQLite through the C API (ids kept, one transaction), and
//!   binary `COPY FROM` into PostgreSQL (pre-encoded). The write stages start from a migrated, empty table.
//!
//! The bar compares like with like: the copy's `rows` phase against the slower of its two stages, both
//! moving the same `n` rows.

use std::io::{Read as _, Write};
use std::process::Command;
use std::time::Instant;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::pg::CopyFormat;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Text, Timestamp};
use diesel::PgConnection;
use diesel_vector::copy::{CopyEvent, CopyOptions};
use diesel_vector::{codec, Vector};

use crate::fresh::{PgServer, ScratchDir};
use crate::harness::Stats;
use crate::raw_sqlite::{RawDb, Value};
use crate::rounds::{self, Bar, Contender, Cpu, Runs, Sample};
use crate::workloads::{uniform_values, DIMS, SEED};

/// Contender names.
pub mod names {
    pub const PG_TO_SQLITE: &str = "copy PostgreSQL -> SQLite";
    pub const SQLITE_TO_PG: &str = "copy SQLite -> PostgreSQL";
    pub const PG_COPY_TO: &str = "stage: PostgreSQL COPY TO (binary)";
    pub const PG_KEYSET_READ: &str = "stage: PostgreSQL keyset read (the copy's query)";
    pub const SQLITE_SCAN: &str = "stage: SQLite scan (C API)";
    pub const SQLITE_INSERT: &str = "stage: SQLite insert (C API, one transaction)";
    pub const PG_COPY_FROM: &str = "stage: PostgreSQL COPY FROM (binary, pre-encoded)";
}

/// The copy's phases, in order, as the child reports them.
pub const PHASES: [&str; 4] = ["setup", "rows", "verify", "index"];

/// The application's table, as its own migrations create it on each backend.
const PG_SCHEMA: &str = "CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE documents (
    id BIGSERIAL PRIMARY KEY,
    lang TEXT NOT NULL,
    title TEXT NOT NULL,
    published_at TIMESTAMP NOT NULL,
    embedding vector(1536) NOT NULL
);";
const SQLITE_SCHEMA: &str = "CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lang TEXT NOT NULL,
    title TEXT NOT NULL,
    published_at TIMESTAMP NOT NULL,
    embedding BLOB NOT NULL
);";

/// `n` generated documents: row `i` has id `i + 1`, one of three languages, a title, a timestamp with
/// microseconds, and a uniform random vector from a fixed seed.
pub struct Documents {
    vectors: Vec<Vector>,
}

impl Documents {
    pub fn generate(n: usize) -> Self {
        let vectors = (0..n)
            .map(|i| Vector::new(uniform_values(DIMS, SEED ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))))
            .collect::<Result<_, _>>()
            .expect("uniform values are finite");
        Self { vectors }
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Bytes of vector data (pgvector's binary format) a copy moves.
    pub fn vector_bytes(&self) -> usize {
        self.len() * codec::pg_encoded_len(DIMS)
    }

    fn lang(i: usize) -> &'static str {
        ["en", "fr", "de"][i % 3]
    }

    fn title(i: usize) -> String {
        format!("document {i}: a title of some length, as titles go")
    }

    fn published_at(i: usize) -> NaiveDateTime {
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).and_then(|d| d.and_hms_opt(12, 0, 0)).expect("valid date");
        start + chrono::Duration::microseconds(i as i64 * 1_000_003)
    }

    /// A binary `COPY` stream of every column, ids included.
    fn copy_stream(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * (codec::pg_encoded_len(DIMS) + 100) + 21);
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid date");
        for (i, v) in self.vectors.iter().enumerate() {
            out.extend_from_slice(&5i16.to_be_bytes());
            field(&mut out, &(i as i64 + 1).to_be_bytes());
            field(&mut out, Self::lang(i).as_bytes());
            field(&mut out, Self::title(i).as_bytes());
            let micros = (Self::published_at(i) - epoch).num_microseconds().expect("in range");
            field(&mut out, &micros.to_be_bytes());
            field(&mut out, &codec::encode_pg(v));
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

/// What the copy stage contenders read and write, and where the copies go.
pub struct CopyInputs<'a> {
    documents: &'a Documents,
    pg: &'a PgServer,
    scratch: &'a ScratchDir,
    migrations: std::path::PathBuf,
    copy_stream: Vec<u8>,
    pg_source: String,
    pg_source_url: String,
    pg_template: String,
    sqlite_source: String,
    sqlite_template: String,
}

impl<'a> CopyInputs<'a> {
    /// Makes the application's migration folders, the two sources (`VACUUM ANALYZE` on PostgreSQL) and
    /// two empty migrated templates for the write stages.
    pub fn prepare(documents: &'a Documents, pg: &'a PgServer, scratch: &'a ScratchDir) -> Result<Self, String> {
        let n = documents.len();
        let migrations = std::path::PathBuf::from(scratch.path(&format!("copy_migrations_{n}")));
        let _ = std::fs::remove_dir_all(&migrations);
        for (folder, up) in [("pg", PG_SCHEMA), ("sqlite", SQLITE_SCHEMA)] {
            let dir = migrations.join(folder).join("2025-03-01-000001_create_documents");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("up.sql"), up).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("down.sql"), "DROP TABLE documents;").map_err(|e| e.to_string())?;
        }
        let copy_stream = documents.copy_stream();
        let pg_template = pg.name(&format!("copy_template_{n}"));
        pg.drop_database(&pg_template)?;
        let url = pg.create(&pg_template, None)?;
        PgConnection::establish(&url)
            .map_err(|e| e.to_string())?
            .batch_execute(PG_SCHEMA)
            .map_err(|e| e.to_string())?;
        let pg_source = pg.name(&format!("copy_source_{n}"));
        pg.drop_database(&pg_source)?;
        let pg_source_url = pg.create(&pg_source, Some(&pg_template))?;
        {
            let mut conn = PgConnection::establish(&pg_source_url).map_err(|e| e.to_string())?;
            pg_copy_from(&mut conn, &copy_stream).map_err(|e| e.to_string())?;
            conn.batch_execute("VACUUM ANALYZE").map_err(|e| e.to_string())?;
        }
        let sqlite_template = scratch.path(&format!("copy_template_{n}.db"));
        scratch.remove_db(&sqlite_template);
        let mut db = RawDb::open(&sqlite_template)?;
        db.exec(crate::load::SQLITE_PRAGMAS)?;
        db.exec(SQLITE_SCHEMA)?;
        drop(db);
        let sqlite_source = scratch.path(&format!("copy_source_{n}.db"));
        scratch.copy_db(&sqlite_template, &sqlite_source)?;
        let mut db = RawDb::open(&sqlite_source)?;
        db.exec(crate::load::SQLITE_PRAGMAS)?;
        sqlite_insert(&mut db, documents)?;
        drop(db);
        Ok(Self {
            documents,
            pg,
            scratch,
            migrations,
            copy_stream,
            pg_source,
            pg_source_url,
            pg_template,
            sqlite_source,
            sqlite_template,
        })
    }

    pub fn contenders(&self) -> Vec<Contender<'_>> {
        vec![
            Contender { name: names::PG_TO_SQLITE, run: Box::new(move || self.copy_to_sqlite()) },
            Contender { name: names::SQLITE_TO_PG, run: Box::new(move || self.copy_to_pg()) },
            Contender { name: names::PG_COPY_TO, run: Box::new(move || self.stage_pg_copy_to()) },
            Contender { name: names::PG_KEYSET_READ, run: Box::new(move || self.stage_pg_keyset_read()) },
            Contender { name: names::SQLITE_SCAN, run: Box::new(move || self.stage_sqlite_scan()) },
            Contender { name: names::SQLITE_INSERT, run: Box::new(move || self.stage_sqlite_insert()) },
            Contender { name: names::PG_COPY_FROM, run: Box::new(move || self.stage_pg_copy_from()) },
        ]
    }

    fn child(&self, from: &str, to: &str) -> Result<Sample, String> {
        let dir = |d: &str| self.migrations.join(d).to_string_lossy().into_owned();
        run_child(from, to, &dir("pg"), &dir("sqlite"))
    }

    fn copy_to_sqlite(&self) -> Result<Sample, String> {
        let target = self.scratch.path("copy_target.db");
        self.scratch.remove_db(&target);
        crate::fresh::sync();
        let result = self.child(&self.pg_source_url, &target);
        self.scratch.remove_db(&target);
        result
    }

    fn copy_to_pg(&self) -> Result<Sample, String> {
        self.pg.checkpoint()?;
        crate::fresh::sync();
        let name = self.pg.name("copy_target");
        let url = self.pg.create(&name, None)?;
        let result = self.child(&self.sqlite_source, &url);
        self.pg.drop_database(&name)?;
        result
    }

    fn stage_pg_copy_to(&self) -> Result<Sample, String> {
        let mut conn = PgConnection::establish(&self.pg_source_url).map_err(|e| e.to_string())?;
        let clock = CpuClock::start(&mut conn);
        let start = Instant::now();
        let mut reader = diesel::copy_to(documents::table)
            .with_format(CopyFormat::Binary)
            .load_raw(&mut conn)
            .map_err(|e| e.to_string())?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut bytes = 0usize;
        loop {
            let read = reader.read(&mut buffer).map_err(|e| e.to_string())?;
            if read == 0 {
                break;
            }
            bytes += read;
        }
        drop(reader);
        let seconds = start.elapsed().as_secs_f64();
        let cpu = clock.stop();
        if bytes < self.documents.vector_bytes() {
            return Err(format!("COPY TO sent {bytes} bytes, less than the vectors alone"));
        }
        Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
    }

    fn stage_pg_keyset_read(&self) -> Result<Sample, String> {
        let mut conn = PgConnection::establish(&self.pg_source_url).map_err(|e| e.to_string())?;
        let clock = CpuClock::start(&mut conn);
        let start = Instant::now();
        let rows = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run(|conn| pg_keyset_read(conn, BATCH, self.documents.len() as i64))
            .map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu = clock.stop();
        expect_rows(rows, self.documents.len())?;
        Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
    }

    fn stage_sqlite_scan(&self) -> Result<Sample, String> {
        let mut db = RawDb::open(&self.sqlite_source)?;
        db.exec(crate::load::SQLITE_PRAGMAS)?;
        let clock = CpuClock::client_only();
        let start = Instant::now();
        let mut stmt = db.prepare("SELECT id, lang, title, published_at, embedding FROM documents ORDER BY id")?;
        let (mut rows, mut bytes, mut ids) = (0usize, 0usize, 0i64);
        let mut vector = Vec::new();
        while stmt.step()? {
            ids = ids.wrapping_add(stmt.column_int(0));
            for text in [1, 2, 3] {
                bytes += stmt.column_bytes(text).len();
            }
            // Copied out, as any reader that keeps the row must.
            vector.clear();
            vector.extend_from_slice(stmt.column_bytes(4));
            bytes += vector.len();
            rows += 1;
        }
        drop(stmt);
        let seconds = start.elapsed().as_secs_f64();
        let cpu = clock.stop();
        std::hint::black_box((bytes, ids));
        expect_rows(rows, self.documents.len())?;
        Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
    }

    fn stage_sqlite_insert(&self) -> Result<Sample, String> {
        let path = self.scratch.path("copy_stage.db");
        self.scratch.copy_db(&self.sqlite_template, &path)?;
        crate::fresh::sync();
        let result = (|| {
            let mut db = RawDb::open(&path)?;
            db.exec(crate::load::SQLITE_PRAGMAS)?;
            let clock = CpuClock::client_only();
            let start = Instant::now();
            sqlite_insert(&mut db, self.documents)?;
            let seconds = start.elapsed().as_secs_f64();
            let cpu = clock.stop();
            drop(db);
            let mut conn = diesel_vector::sqlite::establish(&path).map_err(|e| e.to_string())?;
            let count: i64 = documents::table.count().get_result(&mut conn).map_err(|e| e.to_string())?;
            expect_rows(count as usize, self.documents.len())?;
            Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
        })();
        self.scratch.remove_db(&path);
        result
    }

    fn stage_pg_copy_from(&self) -> Result<Sample, String> {
        self.pg.checkpoint()?;
        crate::fresh::sync();
        let name = self.pg.name("copy_stage");
        let url = self.pg.create(&name, Some(&self.pg_template))?;
        let result = (|| {
            let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
            let clock = CpuClock::start(&mut conn);
            let start = Instant::now();
            let inserted = pg_copy_from(&mut conn, &self.copy_stream).map_err(|e| e.to_string())?;
            let seconds = start.elapsed().as_secs_f64();
            let cpu = clock.stop();
            expect_rows(inserted, self.documents.len())?;
            Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
        })();
        self.pg.drop_database(&name)?;
        result
    }
}

impl Drop for CopyInputs<'_> {
    fn drop(&mut self) {
        let _ = self.pg.drop_database(&self.pg_source);
        let _ = self.pg.drop_database(&self.pg_template);
        self.scratch.remove_db(&self.sqlite_source);
        self.scratch.remove_db(&self.sqlite_template);
        let _ = std::fs::remove_dir_all(&self.migrations);
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;
    documents (id) {
        id -> BigInt,
        lang -> Text,
        title -> Text,
        published_at -> Timestamp,
        embedding -> Vector,
    }
}

/// CPU used by this thread and, for a PostgreSQL stage, by the connection's backend.
struct CpuClock {
    backend: Option<i32>,
    client: f64,
    server: f64,
}

impl CpuClock {
    fn start(conn: &mut PgConnection) -> Self {
        let backend = crate::cpu::backend_pid(conn);
        Self { backend, client: crate::cpu::thread(), server: backend.map_or(0.0, crate::cpu::of_pid) }
    }

    fn client_only() -> Self {
        Self { backend: None, client: crate::cpu::thread(), server: 0.0 }
    }

    fn stop(&self) -> Cpu {
        Cpu {
            client: crate::cpu::thread() - self.client,
            server: self.backend.map_or(0.0, |pid| crate::cpu::of_pid(pid) - self.server),
        }
    }
}

/// Rows per read of the keyset stage: the copy's default batch.
const BATCH: i64 = 500;

fn expect_rows(got: usize, expected: usize) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!("expected {expected} rows, got {got}"))
    }
}

/// Binary `COPY FROM` of a stream made by [`Documents::copy_stream`].
fn pg_copy_from(conn: &mut PgConnection, stream: &[u8]) -> QueryResult<usize> {
    use documents::dsl as d;
    diesel::copy_from(d::documents)
        .from_raw_data(
            (d::id, d::lang, d::title, d::published_at, d::embedding),
            |out: &mut dyn Write| -> QueryResult<()> {
                for piece in stream.chunks(64 * 1024) {
                    out.write_all(piece).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                }
                Ok(())
            },
        )
        .with_format(CopyFormat::Binary)
        .execute(conn)
}

/// Every document with its id, timestamps in Diesel's text form, one prepared statement in one
/// transaction.
fn sqlite_insert(db: &mut RawDb, documents: &Documents) -> Result<(), String> {
    db.exec("BEGIN")?;
    let mut stmt =
        db.prepare("INSERT INTO documents (id, lang, title, published_at, embedding) VALUES (?, ?, ?, ?, ?)")?;
    for (i, v) in documents.vectors.iter().enumerate() {
        let blob = codec::encode_sqlite(v);
        let title = Documents::title(i);
        let at = Documents::published_at(i).format("%F %T%.f").to_string();
        stmt.execute(&[
            Value::Int(i as i64 + 1),
            Value::Text(Documents::lang(i)),
            Value::Text(&title),
            Value::Text(&at),
            Value::Blob(&blob),
        ])?;
    }
    drop(stmt);
    db.exec("COMMIT")
}

/// A row as the copy's PostgreSQL read returns it.
#[derive(QueryableByName)]
#[allow(dead_code)] // read, as the copy reads it, and dropped
struct PgRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    lang: String,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = Timestamp)]
    published_at: chrono::NaiveDateTime,
    #[diesel(sql_type = Binary)]
    embedding: Vec<u8>,
}

/// The copy's read (`select` in `src/transfer/sql.rs`, which is private to the crate): keyset pages of
/// `batch` rows, every column qualified, the vector in its binary format. Returns the rows read.
fn pg_keyset_read(conn: &mut PgConnection, batch: i64, upto: i64) -> QueryResult<usize> {
    const COLUMNS: &str =
        "SELECT t.\"id\", t.\"lang\", t.\"title\", t.\"published_at\", t.\"embedding\" FROM \"documents\" t";
    let mut rows = 0usize;
    let mut page: Vec<PgRow> = diesel::sql_query(format!("{COLUMNS} WHERE t.\"id\" <= $1 ORDER BY t.\"id\" LIMIT $2"))
        .bind::<BigInt, _>(upto)
        .bind::<BigInt, _>(batch)
        .load(conn)?;
    let next = format!("{COLUMNS} WHERE t.\"id\" > $1 AND t.\"id\" <= $2 ORDER BY t.\"id\" LIMIT $3");
    loop {
        let Some(last) = page.last() else { return Ok(rows) };
        let after = last.id;
        rows += page.len();
        page = diesel::sql_query(&next)
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(upto)
            .bind::<BigInt, _>(batch)
            .load(conn)?;
    }
}

/// The marker of the child's result line on its standard output.
const CHILD_MARKER: &str = "dvload-copy-child";

/// Runs one copy in a child process and reads its phases and peak RSS.
fn run_child(from: &str, to: &str, pg_dir: &str, sqlite_dir: &str) -> Result<Sample, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .args(["--copy-child", from, to, pg_dir, sqlite_dir])
        .output()
        .map_err(|e| format!("starting the copy's child process: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the copy failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(CHILD_MARKER))
        .ok_or_else(|| format!("the copy's child printed no result: {stdout}"))?;
    let mut sample = Sample::default();
    for field in line.split_whitespace() {
        let (key, value) = field.split_once('=').ok_or_else(|| format!("bad field {field:?}"))?;
        match key {
            "total" => sample.seconds = value.parse().map_err(|e| format!("{field}: {e}"))?,
            "vmhwm_kib" => sample.peak_rss_kib = Some(value.parse().map_err(|e| format!("{field}: {e}"))?),
            "cpu_client" => sample.cpu.get_or_insert_with(Cpu::default).client = parse(value)?,
            "cpu_server" => sample.cpu.get_or_insert_with(Cpu::default).server = parse(value)?,
            phase => {
                let name = PHASES.iter().find(|p| **p == phase).ok_or_else(|| format!("unknown phase {phase}"))?;
                sample.phases.push((name, value.parse().map_err(|e| format!("{field}: {e}"))?));
            }
        }
    }
    Ok(sample)
}

fn parse(value: &str) -> Result<f64, String> {
    value.parse().map_err(|e| format!("{value}: {e}"))
}

/// In the child process (`--copy-child FROM TO PG_DIR SQLITE_DIR`): runs the copy, prints its phases and
/// peak RSS, and returns the exit code. `None` when this process is not a copy child.
pub fn child_main() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("--copy-child") {
        return None;
    }
    let (Some(from), Some(to), Some(pg_dir), Some(sqlite_dir)) = (args.get(2), args.get(3), args.get(4), args.get(5))
    else {
        eprintln!("usage: --copy-child FROM TO PG_DIR SQLITE_DIR");
        return Some(2);
    };
    // A connection of our own to the PostgreSQL side, to read the CPU time of the copy's backends.
    let pg_url = [from, to].into_iter().find(|u| u.starts_with("postgres"));
    let mut watcher = pg_url.and_then(|u| PgConnection::establish(u).ok());
    let cpu_at = |watcher: &mut Option<PgConnection>| Cpu {
        client: crate::cpu::process(),
        server: watcher.as_mut().map_or(0.0, crate::cpu::other_backends),
    };
    let start = Instant::now();
    let mut marks: Vec<(&'static str, f64)> = Vec::new();
    let (mut cpu_before, mut cpu_after) = (Cpu::default(), Cpu::default());
    let mut on_event = |event: CopyEvent<'_>| {
        let at = start.elapsed().as_secs_f64();
        match event {
            CopyEvent::Table { .. } => {
                marks.push(("rows", at));
                cpu_before = cpu_at(&mut watcher);
            }
            CopyEvent::Verifying { .. } => {
                cpu_after = cpu_at(&mut watcher);
                marks.push(("verify", start.elapsed().as_secs_f64()));
            }
            CopyEvent::UpdatingIndex => marks.push(("index", at)),
            _ => {}
        }
    };
    let options = CopyOptions::default().pg_migrations(pg_dir).sqlite_migrations(sqlite_dir);
    let result = diesel_vector::copy::copy(from, to, &options, &mut on_event);
    let total = start.elapsed().as_secs_f64();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            println!("{e}");
            return Some(1);
        }
    };
    if !report.is_verified() || report.tables.len() != 1 || report.tables[0].inserted == 0 {
        println!("not verified, or nothing copied: {report:?}");
        return Some(1);
    }
    // Phase i runs from its mark (setup: from the start) to the next mark (the last: to the end).
    let mut starts = vec![("setup", 0.0)];
    starts.extend(marks);
    let mut line = format!("{CHILD_MARKER} total={total:.6}");
    for (i, (name, at)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(total, |(_, t)| *t);
        line.push_str(&format!(" {name}={:.6}", end - at));
    }
    line.push_str(&format!(" vmhwm_kib={}", vm_hwm_kib().unwrap_or(0)));
    line.push_str(&format!(
        " cpu_client={:.3} cpu_server={:.3}",
        cpu_after.client - cpu_before.client,
        cpu_after.server - cpu_before.server
    ));
    println!("{line}");
    Some(0)
}

/// This process's peak resident set size, from `/proc/self/status`.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Prints the copy tables for one size and returns its bars.
pub fn report(runs: &[Runs], documents: &Documents) -> Vec<Bar> {
    let n = documents.len();
    let get = |name: &str| runs.iter().find(|r| r.name == name).expect("contender exists");
    println!("## Copy between backends, {n} rows of an application's `documents` table\n");
    println!(
        "Copies: the whole run, in a child process, the target migrated by the copy with the application's \
         migrations; stages: the same {n} rows alone. CPU seconds (medians) are those of the client (the copy's \
         process, or the stage's thread) and of the PostgreSQL backends; for the copies they cover the `rows` \
         phase only.\n"
    );
    println!("| contender | median s | IQR s | min-max s | rows/s | MB/s of vectors | client CPU s | server CPU s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let s = r.stats();
        let cpu = |side: fn(&Cpu) -> f64| {
            let v: Vec<f64> = r.samples.iter().filter_map(|s| s.cpu.as_ref().map(side)).collect();
            if v.is_empty() {
                "n/a".to_owned()
            } else {
                format!("{:.2}", Stats::of(&v).median)
            }
        };
        println!(
            "| {} | {:.3} | {:.3}-{:.3} | {:.3}-{:.3} | {:.0} | {:.1} | {} | {} |",
            r.name,
            s.median,
            s.q1,
            s.q3,
            s.min,
            s.max,
            n as f64 / s.median,
            documents.vector_bytes() as f64 / s.median / 1e6,
            cpu(|c| c.client),
            cpu(|c| c.server),
        );
    }
    println!();
    println!("Phases of the copies, median seconds (min-max), and peak RSS of the copy's process:\n");
    println!("| copy | {} | total | peak RSS MiB, median (max) |", PHASES.join(" | "));
    println!("|---|{}---:|---:|", "---:|".repeat(PHASES.len()));
    for name in [names::PG_TO_SQLITE, names::SQLITE_TO_PG] {
        let r = get(name);
        let mut row = format!("| {name} |");
        for phase in PHASES {
            let s = Stats::of(&r.phase(phase));
            row.push_str(&format!(" {:.3} ({:.3}-{:.3}) |", s.median, s.min, s.max));
        }
        let rss: Vec<f64> = r.samples.iter().filter_map(|s| s.peak_rss_kib).map(|k| k as f64 / 1024.0).collect();
        let rss = Stats::of(&rss);
        row.push_str(&format!(" {:.3} | {:.1} ({:.1}) |", r.stats().median, rss.median, rss.max));
        println!("{row}");
    }
    println!();

    let mut bars = Vec::new();
    println!("The bar's comparison: the copy's `rows` phase against the slower of its stages, per repetition:\n");
    println!("| direction | read stage | write stage | rows phase s | slower stage s | copy / slower stage, median (min-max) |");
    println!("|---|---|---|---:|---:|---|");
    for (copy, reads, write) in [
        (names::PG_TO_SQLITE, [names::PG_COPY_TO, names::PG_KEYSET_READ], names::SQLITE_INSERT),
        (names::SQLITE_TO_PG, [names::SQLITE_SCAN, names::SQLITE_SCAN], names::PG_COPY_FROM),
    ] {
        let phase = get(copy).phase("rows");
        for (k, read) in reads.iter().enumerate() {
            if k == 1 && reads[0] == reads[1] {
                continue;
            }
            let slower: Vec<f64> =
                get(read).seconds().iter().zip(get(write).seconds()).map(|(r, w)| r.max(w)).collect();
            let ratios = Stats::of(&rounds::throughput_ratios(&phase, &slower));
            println!(
                "| {copy} | {read} | {write} | {:.3} | {:.3} | {:.1}% ({:.1}-{:.1}) |",
                Stats::of(&phase).median,
                Stats::of(&slower).median,
                ratios.median * 100.0,
                ratios.min * 100.0,
                ratios.max * 100.0
            );
            if k == 0 {
                bars.push(Bar {
                    what: format!("{copy} >= 80% of the slower stage ({read} / {write}), {n} rows"),
                    measured: format!(
                        "{:.1}% ({:.1}-{:.1})",
                        ratios.median * 100.0,
                        ratios.min * 100.0,
                        ratios.max * 100.0
                    ),
                    met: ratios.median >= 0.8,
                });
            }
        }
        let rss = get(copy).samples.iter().filter_map(|s| s.peak_rss_kib).max().unwrap_or(0);
        bars.push(Bar {
            what: format!("{copy}: peak RSS <= 64 MiB, {n} rows"),
            measured: format!("{:.1} MiB (largest of the repetitions)", rss as f64 / 1024.0),
            met: rss > 0 && rss <= 64 * 1024,
        });
    }
    println!();
    let mut per_rep: Vec<(&str, Vec<f64>)> = Vec::new();
    for r in runs {
        if r.name == names::PG_TO_SQLITE || r.name == names::SQLITE_TO_PG {
            per_rep.push((r.name, r.phase("rows")));
        } else {
            per_rep.push((r.name, r.seconds()));
        }
    }
    rounds::print_repetitions(" (copies: their `rows` phase)", &per_rep);
    bars
}
