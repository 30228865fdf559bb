//! Helpers shared by the test binaries (each includes this file with `#[path]`).
#![allow(dead_code)]

use diesel_vector::Vector;

/// The edge values every round trip must carry bit-exact.
pub fn edge_values() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),            // smallest subnormal
        -f32::from_bits(0x007f_ffff), // largest negative subnormal
        f32::EPSILON,
        std::f32::consts::PI,
        1e-30,
        123_456.79,
    ]
}

/// A deterministic vector of `dims` elements that includes the edge values.
pub fn sample(dims: usize) -> Vector {
    let edges = edge_values();
    let values =
        (0..dims).map(|i| if i < edges.len() { edges[i] } else { ((i as f32) * 0.618_034).sin() * 3.0 }).collect();
    Vector::new(values).unwrap()
}

/// A deterministic vector of moderate values (no extremes), for distance computations.
pub fn smooth(dims: usize, seed: f32) -> Vector {
    Vector::new((0..dims).map(|i| ((i as f32) * 0.618_034 + seed).sin()).collect()).unwrap()
}

/// A 1536-dim vector with the edge values, varied by `i`.
pub fn sample_1536(i: usize) -> Vector {
    let mut values = sample(1536).into_inner();
    values[20] = i as f32;
    Vector::new(values).unwrap()
}

/// The dimension counts that round trips cover.
pub const ROUND_TRIP_DIMS: [usize; 5] = [1, 3, 14, 1536, 16_000];

pub fn bits(v: &Vector) -> Vec<u32> {
    v.as_slice().iter().map(|x| x.to_bits()).collect()
}

/// Asserts two vectors are identical to the bit (so `-0.0` differs from `0.0`).
#[track_caller]
pub fn assert_bit_exact(actual: &Vector, expected: &Vector) {
    assert_eq!(actual.dims(), expected.dims(), "dimensions differ");
    assert!(bits(actual) == bits(expected), "vectors differ in their bits");
}

/// Cosine distance computed in f64, for comparisons with the databases' own.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    1.0 - dot / (na.sqrt() * nb.sqrt())
}

/// The PostgreSQL URL: `PG_DATABASE_URL`, else `DATABASE_URL`. PostgreSQL tests never skip: without a
/// URL they fail and say how to get one.
#[track_caller]
pub fn pg_url() -> String {
    std::env::var("PG_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|url| url.starts_with("postgres"))
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL tests need PG_DATABASE_URL (or a postgres:// DATABASE_URL). \
                 `scripts/test.sh` provisions PostgreSQL 15 + pgvector and sets it."
            )
        })
}

pub mod app;
pub mod bulk;
pub mod documents;
pub mod images;
#[cfg(feature = "pg")]
pub mod pg;
pub mod telemetry;
pub mod types;

/// Spawns this test binary again to run one `#[ignore]`d helper test in a separate process, with
/// `env` set. Returns the child process.
pub fn spawn_helper(test_name: &str, env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", test_name, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    cmd.spawn().unwrap()
}

/// The diesel CLI to test against: `DIESEL_CLI`, else `diesel` on the PATH. When neither runs, the
/// test fails if `CI` or `DIESEL_VECTOR_REQUIRE_CLI` is set (scripts/test.sh sets it after installing
/// the CLI), and otherwise says loudly that it is skipped.
pub fn diesel_cli() -> Option<std::path::PathBuf> {
    let cli = std::env::var_os("DIESEL_CLI").map(std::path::PathBuf::from).unwrap_or_else(|| "diesel".into());
    let works = std::process::Command::new(&cli).arg("--version").output().is_ok_and(|o| o.status.success());
    if works {
        return Some(cli);
    }
    if std::env::var_os("CI").is_some() || std::env::var_os("DIESEL_VECTOR_REQUIRE_CLI").is_some() {
        panic!("the diesel CLI is required here but `{}` does not run: scripts/test.sh installs it", cli.display());
    }
    eprintln!("SKIPPED: the diesel CLI is not installed (scripts/test.sh installs it and runs this test)");
    None
}

/// Runs the diesel CLI from the repository root (where diesel.toml lives) and returns its stdout;
/// panics with its output when it fails.
pub fn run_diesel(cli: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(cli).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "diesel {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// A small deterministic PRNG (splitmix64), so generated data is the same on every run and backend.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// `n` embedding-like vectors of `dims` dimensions. Like real text embeddings they share a common
/// direction (unrelated texts still have cosine similarity about 0.5) and cluster hierarchically:
/// `clusters` subtopics grouped five to a topic (about 0.7 within a topic, 0.85 within a subtopic).
pub fn clustered(seed: u64, n: usize, dims: usize, clusters: usize) -> Vec<Vector> {
    let mut rng = Rng::new(seed);
    let random = |rng: &mut Rng| -> Vec<f32> { (0..dims).map(|_| rng.unit()).collect() };
    let common = random(&mut rng);
    let topics: Vec<Vec<f32>> = (0..clusters.div_ceil(5)).map(|_| random(&mut rng)).collect();
    let subtopics: Vec<Vec<f32>> = (0..clusters).map(|_| random(&mut rng)).collect();
    let (a, b, c, d) = (0.5f32.sqrt(), 0.2f32.sqrt(), 0.15f32.sqrt(), 0.15f32.sqrt());
    (0..n)
        .map(|i| {
            let (s, t) = (&subtopics[i % clusters], &topics[(i % clusters) / 5]);
            let v = (0..dims).map(|j| a * common[j] + b * t[j] + c * s[j] + d * rng.unit()).collect();
            Vector::new(v).unwrap()
        })
        .collect()
}

/// Fills `conn` with a table of the user's own: `spec`'s table with an id column alone, the vector column
/// added by the migration generated from `spec`, and `vectors` as the rows with ids 1, 2, ...
#[cfg(feature = "sqlite")]
pub fn vector_table(
    conn: &mut diesel::SqliteConnection,
    spec: &diesel_vector::index::IndexSpec,
    vectors: impl IntoIterator<Item = Vector>,
) {
    use diesel::connection::{Connection, SimpleConnection};
    use diesel::RunQueryDsl;
    use diesel_vector::index::generate;
    conn.batch_execute(&format!("CREATE TABLE {} (id INTEGER PRIMARY KEY)", spec.table())).unwrap();
    conn.batch_execute(&generate::render(spec, &generate::Options::default().add_column(true)).sqlite_up).unwrap();
    let insert = format!("INSERT INTO {} (id, {}) VALUES (?, ?)", spec.table(), spec.column());
    conn.transaction(|conn| {
        for (id, v) in (1i64..).zip(vectors) {
            diesel::sql_query(&insert)
                .bind::<diesel::sql_types::BigInt, _>(id)
                .bind::<diesel_vector::sql_types::Vector, _>(&v)
                .execute(conn)?;
        }
        diesel::QueryResult::Ok(())
    })
    .unwrap();
}
