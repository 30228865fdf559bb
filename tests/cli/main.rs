//! The `diesel-vector` binary, run as a child process against real databases: PostgreSQL (a fresh
//! database per test, `FreshDb`) and SQLite files in temporary directories.

#[path = "../common/mod.rs"]
mod common;

mod app;
mod app_migrations;
mod commands;
mod copy;
mod defects;
mod full_disk;
mod generate;
mod jsonl;
mod keys;
mod reliability;
mod search;

use std::path::Path;
use std::process::{Command, Output};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_vector::database::DatabaseConnection;
use diesel_vector::models::{FragmentEmbedding, NewFragmentEmbedding};
use diesel_vector::schema::{fragment_embeddings, fragments};
use diesel_vector::Vector;

pub use common::pg::FreshDb;

/// The binary, with `DATABASE_URL` cleared so each test says what it means.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_diesel-vector"));
    cmd.env_remove("DATABASE_URL");
    cmd
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Runs the binary and returns its standard output; panics with both streams when it fails.
#[track_caller]
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "diesel-vector {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// Runs the binary, expects it to fail, and returns (stdout, stderr).
#[track_caller]
pub fn fails(args: &[&str]) -> (String, String) {
    let out = run(args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "diesel-vector {args:?} should fail:\n{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

/// An SQLite file path in `dir`.
pub fn sqlite_file(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

/// The `i`-th test vector: the edge values first (±0, ±f32::MAX, ±MIN_POSITIVE, subnormals...), one
/// element of random finite bits, then smooth values; different for every `i`.
pub fn vector(i: usize) -> Vector {
    let edges = common::edge_values();
    let mut rng = common::Rng::new(i as u64);
    let odd = edges.len() + i % 64;
    let values = (0..1536)
        .map(|j| {
            if j < edges.len() {
                edges[j]
            } else if j == odd {
                loop {
                    let x = f32::from_bits(rng.next_u64() as u32);
                    if x.is_finite() {
                        break x;
                    }
                }
            } else {
                ((i * 1536 + j) as f32 * 0.618_034).sin() * 3.0
            }
        })
        .collect();
    Vector::new(values).unwrap()
}

macro_rules! seed_rows {
    ($conn:expr, $fragments:expr, $per_fragment:expr, $vector:expr) => {{
        let conn = $conn;
        let mut next = 0usize;
        for start in (0..$fragments).step_by(500) {
            let contents: Vec<String> = (start..($fragments).min(start + 500))
                .map(|i| format!("fragment {i}: \"quoted\", accented \u{e9}, newline\nand tab\t"))
                .collect();
            let ids: Vec<i64> = diesel::insert_into(fragments::table)
                .values(contents.iter().map(|c| fragments::content.eq(c)).collect::<Vec<_>>())
                .returning(fragments::id)
                .get_results(conn)
                .unwrap();
            let mut rows = Vec::new();
            for id in ids {
                for k in 0..$per_fragment {
                    rows.push((id, k, next));
                    next += 1;
                }
            }
            for chunk in rows.chunks(200) {
                let vectors: Vec<Vector> = chunk.iter().map(|(_, _, n)| $vector(*n)).collect();
                let models: Vec<String> = chunk.iter().map(|(_, k, _)| format!("model-{k}")).collect();
                let hashes: Vec<String> = chunk.iter().map(|(_, _, n)| format!("hash-{n}")).collect();
                let values: Vec<NewFragmentEmbedding<'_>> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (id, _, n))| {
                        let mut e = NewFragmentEmbedding::new(*id, "provider", &models[i], &vectors[i], &hashes[i]);
                        if n % 10 == 9 {
                            e.embedding = None;
                        }
                        e
                    })
                    .collect();
                diesel::insert_into(fragment_embeddings::table).values(&values).execute(conn).unwrap();
            }
        }
        // Gaps in both id sequences, and NULL timestamps.
        conn.batch_execute(
            "DELETE FROM fragments WHERE id % 97 = 0; \
             UPDATE fragments SET updated_at = NULL WHERE id % 7 = 0; \
             UPDATE fragment_embeddings SET created_at = NULL WHERE id % 11 = 0;",
        )
        .unwrap();
    }};
}

/// Migrates `url` and fills it with `fragments` fragments of `per_fragment` embeddings each, the `n`-th
/// embedding [`vector`]`(n)` and every tenth NULL, then deletes every 97th fragment so that ids have gaps.
pub fn seed(url: &str, fragments: usize, per_fragment: usize) {
    seed_with(url, fragments, per_fragment, vector);
}

/// [`seed`] with vectors of moderate values, whose distances are finite (for searches).
pub fn seed_smooth(url: &str, fragments: usize, per_fragment: usize) {
    seed_with(url, fragments, per_fragment, smooth);
}

/// The `n`-th vector of [`seed_smooth`].
pub fn smooth(n: usize) -> Vector {
    common::smooth(1536, n as f32)
}

fn seed_with(url: &str, fragments: usize, per_fragment: usize, vector: fn(usize) -> Vector) {
    let mut conn = DatabaseConnection::establish(url).unwrap();
    conn.run_pending_migrations().unwrap();
    match &mut conn {
        DatabaseConnection::Pg(c) => seed_rows!(c, fragments, per_fragment, vector),
        DatabaseConnection::Sqlite(c) => seed_rows!(c, fragments, per_fragment, vector),
        _ => unreachable!(),
    }
}

/// A fragment row with its timestamps.
pub type FragmentDump = (i64, String, Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>);
/// An embedding row with its vector's bits.
pub type EmbeddingDump = (
    i64,
    i64,
    String,
    String,
    i32,
    Option<Vec<u32>>,
    String,
    Option<chrono::NaiveDateTime>,
    Option<chrono::NaiveDateTime>,
);

fn dump_embedding(e: FragmentEmbedding) -> EmbeddingDump {
    let bits = e.embedding.as_ref().map(common::bits);
    (e.id, e.fragment_id, e.provider, e.model, e.dims, bits, e.content_hash, e.created_at, e.updated_at)
}

macro_rules! dump_rows {
    ($conn:expr) => {{
        let conn = $conn;
        let f: Vec<FragmentDump> = fragments::table
            .order(fragments::id)
            .select((fragments::id, fragments::content, fragments::created_at, fragments::updated_at))
            .load(conn)
            .unwrap();
        let e: Vec<FragmentEmbedding> = fragment_embeddings::table
            .order(fragment_embeddings::id)
            .select(FragmentEmbedding::as_select())
            .load(conn)
            .unwrap();
        (f, e.into_iter().map(dump_embedding).collect())
    }};
}

/// Every row of both tables, in id order, vectors as bits: equal dumps are bit-exact copies.
pub fn dump(url: &str) -> (Vec<FragmentDump>, Vec<EmbeddingDump>) {
    match &mut DatabaseConnection::establish(url).unwrap() {
        DatabaseConnection::Pg(c) => dump_rows!(c),
        DatabaseConnection::Sqlite(c) => dump_rows!(c),
        _ => unreachable!(),
    }
}

/// Rows of `table` in the database at `url`.
pub fn count(url: &str, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let query = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"));
    match &mut DatabaseConnection::establish(url).unwrap() {
        DatabaseConnection::Pg(c) => query.get_result::<N>(c).unwrap().n,
        DatabaseConnection::Sqlite(c) => query.get_result::<N>(c).unwrap().n,
        _ => unreachable!(),
    }
}
