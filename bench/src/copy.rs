//! Workload 4 of issue 6, copy between backends: `diesel_vector::copy::copy` of `n` fragments and `n`
//! embeddings from PostgreSQL to SQLite and from SQLite to PostgreSQL, against the rate of each stage of
//! the pipeline measured alone in the same rounds.
//!
//! - **Copies** run in a child process (this binary again, `--copy-child FROM TO`), so that their peak
//!   resident set size (`VmHWM`, read by the child from `/proc/self/status` when it is done) is the
//!   copy's own. The child times the copy's phases from its progress events: `setup` (connections, the
//!   target's migrations, id reservation), `fragments`, `embeddings`, `verify` (both sides read again
//!   and compared) and `index` (SQLite: the vec0 index built; PostgreSQL: `ANALYZE`). The target is a
//!   fresh database each time (PostgreSQL: an empty database, which the copy migrates; SQLite: a new
//!   file); the sources are made once per size.
//! - **Stages**, each alone on the same rows, in this process: reading PostgreSQL by binary `COPY TO`
//!   and by the copy's own keyset query (`vector_send`, 500 rows per query, mirrored from
//!   `src/pg/transfer.rs`), scanning SQLite through the C API, inserting into SQLite through the C API
//!   (ids kept, one transaction), and binary `COPY FROM` into PostgreSQL (pre-encoded). The write
//!   stages start from a migrated database that holds the fragments, so they write embeddings only.
//!
//! The bar compares like with like: the copy's `embeddings` phase against the slower of its two stages,
//! both moving the same `n` embeddings.

use std::io::{Read as _, Write};
use std::process::Command;
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::pg::CopyFormat;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text, Timestamp};
use diesel::PgConnection;
use diesel_vector::copy::{CopyEvent, CopyOptions};
use diesel_vector::schema::fragment_embeddings;

use crate::embeddings::{sqlite_timestamp, Dataset, Templates, MODEL, PROVIDER};
use crate::harness::Stats;
use crate::raw_sqlite::{RawDb, Value};
use crate::rounds::{self, Bar, Contender, Cpu, Runs, Sample};
use crate::workloads::DIMS;

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
pub const PHASES: [&str; 5] = ["setup", "fragments", "embeddings", "verify", "index"];

/// What the copy stage contenders read and write, and where the copies go.
pub struct CopyInputs<'a> {
    dataset: &'a Dataset,
    templates: &'a Templates<'a>,
    copy_stream: Vec<u8>,
    pg_source: String,
    pg_source_url: String,
    sqlite_source: String,
}

impl<'a> CopyInputs<'a> {
    /// Makes the two sources: the template's fragments and the dataset's embeddings with ids `1..=n`
    /// and fixed timestamps, on PostgreSQL (then `VACUUM ANALYZE`) and in an SQLite file.
    pub fn prepare(dataset: &'a Dataset, templates: &'a Templates<'a>) -> Result<Self, String> {
        let copy_stream = dataset.copy_stream_with_ids();
        let (pg_source, pg_source_url) = templates.fresh_pg(&format!("copy_source_{}", dataset.len()))?;
        {
            let mut conn = PgConnection::establish(&pg_source_url).map_err(|e| e.to_string())?;
            pg_copy_from(&mut conn, &copy_stream).map_err(|e| e.to_string())?;
            conn.batch_execute("VACUUM ANALYZE").map_err(|e| e.to_string())?;
        }
        let sqlite_source = templates.fresh_sqlite(&format!("copy_source_{}", dataset.len()))?;
        let mut db = RawDb::open(&sqlite_source)?;
        db.exec(crate::load::SQLITE_PRAGMAS)?;
        sqlite_insert_with_ids(&mut db, dataset)?;
        drop(db);
        Ok(Self { dataset, templates, copy_stream, pg_source, pg_source_url, sqlite_source })
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

    fn copy_to_sqlite(&self) -> Result<Sample, String> {
        let target = self.templates.scratch.path("copy_target.db");
        self.templates.scratch.remove_db(&target);
        crate::fresh::sync();
        let result = run_child(&self.pg_source_url, &target);
        self.templates.scratch.remove_db(&target);
        result
    }

    fn copy_to_pg(&self) -> Result<Sample, String> {
        let pg = self.templates.pg;
        pg.checkpoint()?;
        crate::fresh::sync();
        let name = pg.name("copy_target");
        let url = pg.create(&name, None)?;
        let result = run_child(&self.sqlite_source, &url);
        pg.drop_database(&name)?;
        result
    }

    fn stage_pg_copy_to(&self) -> Result<Sample, String> {
        let mut conn = PgConnection::establish(&self.pg_source_url).map_err(|e| e.to_string())?;
        let clock = CpuClock::start(&mut conn);
        let start = Instant::now();
        let mut reader = diesel::copy_to(fragment_embeddings::table)
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
        if bytes < self.dataset.vector_bytes() {
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
            .run(|conn| pg_keyset_read(conn, BATCH))
            .map_err(|e| e.to_string())?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu = clock.stop();
        expect_rows(rows, self.dataset.len())?;
        Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
    }

    fn stage_sqlite_scan(&self) -> Result<Sample, String> {
        let mut db = RawDb::open(&self.sqlite_source)?;
        db.exec(crate::load::SQLITE_PRAGMAS)?;
        let clock = CpuClock::client_only();
        let start = Instant::now();
        let mut stmt = db.prepare(
            "SELECT id, fragment_id, provider, model, dims, embedding, content_hash, created_at, updated_at \
             FROM fragment_embeddings ORDER BY id",
        )?;
        let (mut rows, mut bytes, mut ids) = (0usize, 0usize, 0i64);
        let mut vector = Vec::new();
        while stmt.step()? {
            ids = ids.wrapping_add(stmt.column_int(0) ^ stmt.column_int(1) ^ stmt.column_int(4));
            for text in [2, 3, 6, 7, 8] {
                bytes += stmt.column_bytes(text).len();
            }
            // Copied out, as any reader that keeps the row must.
            vector.clear();
            vector.extend_from_slice(stmt.column_bytes(5));
            bytes += vector.len();
            rows += 1;
        }
        drop(stmt);
        let seconds = start.elapsed().as_secs_f64();
        let cpu = clock.stop();
        std::hint::black_box((bytes, ids));
        expect_rows(rows, self.dataset.len())?;
        Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
    }

    fn stage_sqlite_insert(&self) -> Result<Sample, String> {
        let path = self.templates.fresh_sqlite("copy_stage")?;
        let result = (|| {
            let mut db = RawDb::open(&path)?;
            db.exec(crate::load::SQLITE_PRAGMAS)?;
            let clock = CpuClock::client_only();
            let start = Instant::now();
            sqlite_insert_with_ids(&mut db, self.dataset)?;
            let seconds = start.elapsed().as_secs_f64();
            let cpu = clock.stop();
            drop(db);
            let mut conn = diesel_vector::sqlite::establish(&path).map_err(|e| e.to_string())?;
            let count: i64 = fragment_embeddings::table.count().get_result(&mut conn).map_err(|e| e.to_string())?;
            expect_rows(count as usize, self.dataset.len())?;
            Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
        })();
        self.templates.scratch.remove_db(&path);
        result
    }

    fn stage_pg_copy_from(&self) -> Result<Sample, String> {
        let (name, url) = self.templates.fresh_pg("copy_stage")?;
        let result = (|| {
            let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
            let clock = CpuClock::start(&mut conn);
            let start = Instant::now();
            let inserted = pg_copy_from(&mut conn, &self.copy_stream).map_err(|e| e.to_string())?;
            let seconds = start.elapsed().as_secs_f64();
            let cpu = clock.stop();
            expect_rows(inserted, self.dataset.len())?;
            Ok(Sample { cpu: Some(cpu), ..Sample::seconds(seconds) })
        })();
        self.templates.pg.drop_database(&name)?;
        result
    }
}

impl Drop for CopyInputs<'_> {
    fn drop(&mut self) {
        let _ = self.templates.pg.drop_database(&self.pg_source);
        self.templates.scratch.remove_db(&self.sqlite_source);
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

/// Binary `COPY FROM` of every column from a stream made by [`Dataset::copy_stream_with_ids`].
fn pg_copy_from(conn: &mut PgConnection, stream: &[u8]) -> QueryResult<usize> {
    use fragment_embeddings::dsl as e;
    diesel::copy_from(e::fragment_embeddings)
        .from_raw_data(
            (
                e::id,
                e::fragment_id,
                e::provider,
                e::model,
                e::dims,
                e::embedding,
                e::content_hash,
                e::created_at,
                e::updated_at,
            ),
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

/// Every embedding with its id and timestamps, one prepared statement in one transaction.
fn sqlite_insert_with_ids(db: &mut RawDb, dataset: &Dataset) -> Result<(), String> {
    db.exec("BEGIN")?;
    let mut stmt = db.prepare(
        "INSERT INTO fragment_embeddings (id, fragment_id, provider, model, dims, embedding, content_hash, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?;
    for (i, (v, hash)) in dataset.vectors.iter().zip(&dataset.hashes).enumerate() {
        let blob = diesel_vector::codec::encode_sqlite(v);
        let at = sqlite_timestamp(Dataset::timestamp(i));
        stmt.execute(&[
            Value::Int(Dataset::id(i)),
            Value::Int(Dataset::fragment_id(i)),
            Value::Text(PROVIDER),
            Value::Text(MODEL),
            Value::Int(DIMS as i64),
            Value::Blob(&blob),
            Value::Text(hash),
            Value::Text(&at),
            Value::Text(&at),
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

/// The copy's read of `fragment_embeddings` (`embeddings_sql` in `src/pg/transfer.rs`, which is private
/// to the crate): keyset pages of `batch` rows with `vector_send`. Returns the rows read.
fn pg_keyset_read(conn: &mut PgConnection, batch: i64) -> QueryResult<usize> {
    let sql = "SELECT e.id, e.fragment_id, e.provider::text AS provider, e.model::text AS model, e.dims, \
                vector_send(e.embedding) AS embedding, e.content_hash::text AS content_hash, e.created_at, \
                e.updated_at, (SELECT f.id FROM fragments f WHERE f.id = e.fragment_id) IS NULL AS orphan \
         FROM (SELECT * FROM fragment_embeddings WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3) e ORDER BY e.id";
    let (mut after, mut rows) = (i64::MIN, 0usize);
    loop {
        let page: Vec<PgRow> = diesel::sql_query(sql)
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(i64::MAX)
            .bind::<BigInt, _>(batch)
            .load(conn)?;
        let Some(last) = page.last() else { return Ok(rows) };
        after = last.id;
        rows += page.len();
    }
}

/// The marker of the child's result line on its standard output.
const CHILD_MARKER: &str = "dvload-copy-child";

/// Runs one copy in a child process and reads its phases and peak RSS.
fn run_child(from: &str, to: &str) -> Result<Sample, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .args(["--copy-child", from, to])
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

/// In the child process (`--copy-child FROM TO`): runs the copy, prints its phases and peak RSS, and
/// returns the exit code. `None` when this process is not a copy child.
pub fn child_main() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("--copy-child") {
        return None;
    }
    let (Some(from), Some(to)) = (args.get(2), args.get(3)) else {
        eprintln!("usage: --copy-child FROM TO");
        return Some(2);
    };
    // A connection of our own to the PostgreSQL side, to read the CPU time of the copy's backend.
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
            CopyEvent::Table { table: "fragments", .. } => marks.push(("fragments", at)),
            CopyEvent::Table { table: "fragment_embeddings", .. } => {
                marks.push(("embeddings", at));
                cpu_before = cpu_at(&mut watcher);
            }
            CopyEvent::Verifying { table: "fragments" } => {
                cpu_after = cpu_at(&mut watcher);
                marks.push(("verify", start.elapsed().as_secs_f64()));
            }
            CopyEvent::UpdatingIndex => marks.push(("index", at)),
            _ => {}
        }
    };
    let result = diesel_vector::copy::copy(from, to, &CopyOptions::default(), &mut on_event);
    let total = start.elapsed().as_secs_f64();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            println!("{e}");
            return Some(1);
        }
    };
    if !report.is_verified() {
        println!("not verified: {report:?}");
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
pub fn report(runs: &[Runs], dataset: &Dataset) -> Vec<Bar> {
    let n = dataset.len();
    let get = |name: &str| runs.iter().find(|r| r.name == name).expect("contender exists");
    println!("## Copy between backends, {n} fragments and {n} embeddings\n");
    println!(
        "Copies: the whole run, in a child process; stages: the same {n} embeddings alone. CPU seconds (medians) \
         are those of the client (the copy's process, or the stage's thread) and of the PostgreSQL backends; for \
         the copies they cover the `embeddings` phase only.\n"
    );
    println!(
        "| contender | median s | IQR s | min-max s | embeddings/s | MB/s of vectors | client CPU s | server CPU s |"
    );
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
            dataset.vector_bytes() as f64 / s.median / 1e6,
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
    println!("The bar's comparison: the copy's `embeddings` phase against the slower of its stages, per repetition:\n");
    println!("| direction | read stage | write stage | embeddings phase s | slower stage s | copy / slower stage, median (min-max) |");
    println!("|---|---|---|---:|---:|---|");
    for (copy, reads, write) in [
        (names::PG_TO_SQLITE, [names::PG_COPY_TO, names::PG_KEYSET_READ], names::SQLITE_INSERT),
        (names::SQLITE_TO_PG, [names::SQLITE_SCAN, names::SQLITE_SCAN], names::PG_COPY_FROM),
    ] {
        let phase = get(copy).phase("embeddings");
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
            per_rep.push((r.name, r.phase("embeddings")));
        } else {
            per_rep.push((r.name, r.seconds()));
        }
    }
    rounds::print_repetitions(" (copies: their `embeddings` phase)", &per_rep);
    bars
}
