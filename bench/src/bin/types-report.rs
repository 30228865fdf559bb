//! `halfvec` and `bit` on SQLite: the default search (the crate's codes) and the exact scan of a
//! `halfvec(768)` column, against the same column searched through the crate's SQL distance function (what
//! the exact path ran before `halfvec` columns were read by the SIMD kernel) and against the same values
//! stored as `vector(768)`; and the exact Hamming scan of a `bit(768)` column (the values' signs) against
//! its SQL function, and the same for a `sparsevec(768)` column (the 64 largest values). All in one SQLite file, calls interleaved query by query in a rotating order.
//!
//!   cargo run --release -p diesel-vector-bench --bin types-report [-- --rows N --queries N --reps N]
//!
//! Data: the embedding-like generator (`data::Spectrum`: a shared direction, a decaying spectrum,
//! overlapping topics). Recall@10 is measured against the exact scan of the `halfvec` column, whose ids
//! are checked against the SQL function's. Prints Markdown on stdout; about 2 minutes at the defaults.

use std::path::PathBuf;
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::SqliteConnection;
use diesel_vector::index::generate;
use diesel_vector::search::{self, Strategy};
use diesel_vector::{Bit, HalfVector, SparseVector, Vector, VectorExpressionMethods};
use diesel_vector_bench::data::{self, Spectrum};
use diesel_vector_bench::db_harness::{run_queries, BoxError, QueryContender};
use diesel_vector_bench::harness::percentile;

const DIMS: usize = 768;
const K: i64 = 10;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::HalfVector;
    docs_half (id) {
        id -> BigInt,
        embedding -> Nullable<HalfVector>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;
    docs_f32 (id) {
        id -> BigInt,
        embedding -> Nullable<Vector>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Bit;
    docs_bit (id) {
        id -> BigInt,
        embedding -> Nullable<Bit>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::SparseVector;
    docs_sparse (id) {
        id -> BigInt,
        embedding -> Nullable<SparseVector>,
    }
}

diesel_vector::vector_index! {
    /// The 64 largest values of each as a `sparsevec` column (no structure: exact scans).
    static SPARSE: docs_sparse { column: embedding, dims: 768 }
}

diesel_vector::vector_index! {
    /// The values' signs as a `bit` column (no structure: exact scans).
    static BITS: docs_bit { column: embedding, dims: 768 }
}

diesel_vector::vector_index! {
    /// The `halfvec` column (codes, the default).
    static HALF: docs_half { column: embedding, dims: 768 }
}

diesel_vector::vector_index! {
    /// The same values as `vector`.
    static F32: docs_f32 { column: embedding, dims: 768 }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn half(v: &Vector) -> HalfVector {
    HalfVector::from_f32_slice(v.as_slice()).expect("the generator's values fit f16")
}

fn signs(v: &[f32]) -> Bit {
    Bit::new(&v.iter().map(|x| *x > 0.0).collect::<Vec<_>>())
}

/// The 64 elements of largest magnitude, as a sparse vector of the same dimensions.
fn sparse(v: &[f32]) -> SparseVector {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|a, b| v[*b].abs().total_cmp(&v[*a].abs()).then(a.cmp(b)));
    let mut kept: Vec<usize> = order.into_iter().take(64).collect();
    kept.sort_unstable();
    let indices: Vec<i32> = kept.iter().map(|i| *i as i32).collect();
    let values: Vec<f32> = kept.iter().map(|i| v[*i]).collect();
    SparseVector::new(v.len() as i32, indices, values).expect("a valid sparse vector")
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let (rows, n_queries, reps) = (arg(&args, "--rows", 100_000), arg(&args, "--queries", 30), arg(&args, "--reps", 3));
    let spectrum = Spectrum::new(data::SEED, DIMS, data::clusters_for(rows));
    let queries: Vec<Vector> = spectrum
        .vectors(data::SEED + 1, n_queries)
        .chunks(DIMS)
        .map(|q| Vector::new(HalfVector::from_f32_slice(q).expect("fits f16").to_f32_vec()).expect("finite"))
        .collect();

    let dir = TempDir(std::env::temp_dir().join(format!("dv-types-report-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let path = dir.0.join("docs.db").to_string_lossy().into_owned();
    let mut conn = diesel_vector::sqlite::establish(&path)?;
    conn.batch_execute(
        "CREATE TABLE docs_half (id INTEGER PRIMARY KEY, embedding BLOB); \
         CREATE TABLE docs_f32 (id INTEGER PRIMARY KEY, embedding BLOB); \
         CREATE TABLE docs_bit (id INTEGER PRIMARY KEY, embedding BLOB); \
         CREATE TABLE docs_sparse (id INTEGER PRIMARY KEY, embedding BLOB);",
    )?;
    for spec in [&*HALF, &*F32, &*BITS, &*SPARSE] {
        conn.batch_execute(&generate::render(spec, &generate::Options::default()).sqlite_up)?;
    }
    let started = Instant::now();
    let stored = spectrum.vectors(data::SEED ^ 1, rows);
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for (i, v) in stored.chunks(DIMS).enumerate() {
            let h = HalfVector::from_f32_slice(v).expect("fits f16");
            let id = i as i64 + 1;
            let exact_f32 = Vector::new(h.to_f32_vec()).expect("finite");
            diesel::insert_into(docs_half::table)
                .values((docs_half::id.eq(id), docs_half::embedding.eq(&h)))
                .execute(conn)?;
            diesel::insert_into(docs_f32::table)
                .values((docs_f32::id.eq(id), docs_f32::embedding.eq(&exact_f32)))
                .execute(conn)?;
            diesel::insert_into(docs_bit::table)
                .values((docs_bit::id.eq(id), docs_bit::embedding.eq(signs(v))))
                .execute(conn)?;
            diesel::insert_into(docs_sparse::table)
                .values((docs_sparse::id.eq(id), docs_sparse::embedding.eq(sparse(v))))
                .execute(conn)?;
        }
        Ok(())
    })?;
    let loaded = started.elapsed();
    let mut synced = Vec::new();
    for spec in [&*HALF, &*F32] {
        let t = Instant::now();
        diesel_vector::sqlite::sync(&mut conn, spec)?;
        synced.push(t.elapsed());
    }
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")?;

    let ids = |hits: Vec<search::Hit>| search::ids(&hits);
    let mut contenders: Vec<QueryContender<'_, SqliteConnection>> = vec![
        QueryContender::new("halfvec, SQL function (ORDER BY ... LIMIT)", |conn, q| {
            Ok(docs_half::table
                .select(docs_half::id)
                .filter(docs_half::embedding.is_not_null())
                .order((docs_half::embedding.cosine_distance(half(q)), docs_half::id))
                .limit(K)
                .load(conn)?)
        }),
        QueryContender::new("halfvec, Strategy::Exact", move |conn, q| {
            Ok(ids(HALF.search(&half(q)).k(K as usize).strategy(Strategy::Exact).run(conn)?))
        }),
        QueryContender::new("halfvec, default (codes)", move |conn, q| {
            Ok(ids(HALF.search(&half(q)).k(K as usize).run(conn)?))
        }),
        QueryContender::new("vector, Strategy::Exact", move |conn, q| {
            Ok(ids(F32.search(q).k(K as usize).strategy(Strategy::Exact).run(conn)?))
        }),
        QueryContender::new("vector, default (codes)", move |conn, q| {
            Ok(ids(F32.search(q).k(K as usize).run(conn)?))
        }),
        QueryContender::new("bit, Hamming, SQL function (ORDER BY ... LIMIT)", |conn, q| {
            let code = signs(q.as_slice());
            Ok(docs_bit::table
                .select(docs_bit::id)
                .filter(docs_bit::embedding.is_not_null())
                .order((docs_bit::embedding.hamming_distance(&code), docs_bit::id))
                .limit(K)
                .load(conn)?)
        }),
        QueryContender::new("bit, Hamming, default (exact scan)", move |conn, q| {
            Ok(ids(BITS.search(&signs(q.as_slice())).k(K as usize).run(conn)?))
        }),
        QueryContender::new("sparsevec, cosine, SQL function (ORDER BY ... LIMIT)", |conn, q| {
            let s = sparse(q.as_slice());
            Ok(docs_sparse::table
                .select(docs_sparse::id)
                .filter(docs_sparse::embedding.is_not_null())
                .order((docs_sparse::embedding.cosine_distance(&s), docs_sparse::id))
                .limit(K)
                .load(conn)?)
        }),
        QueryContender::new("sparsevec, cosine, default (exact scan)", move |conn, q| {
            Ok(ids(SPARSE.search(&sparse(q.as_slice())).k(K as usize).run(conn)?))
        }),
    ];
    let measured = run_queries(&mut conn, &mut contenders, &queries, reps)?;

    println!("## `halfvec` and `bit` on SQLite: the codes and the exact scans\n");
    println!(
        "{rows} rows of `halfvec({DIMS})` (embedding-like, cosine), the same values as `vector({DIMS})` and their \
         signs as `bit({DIMS})` (Hamming) and their 64 largest as `sparsevec({DIMS})` (cosine), in one file; \
         loaded in {:.1} s, codes built in {:.2} s (halfvec) / {:.2} s (vector). {n_queries} queries x {reps} \
         repetitions, top {K}, interleaved.\n\n{}\n",
        loaded.as_secs_f64(),
        synced[0].as_secs_f64(),
        synced[1].as_secs_f64(),
        diesel_vector_bench::environment::describe()
    );
    let truth = &measured[1].ids;
    assert_eq!(&measured[0].ids, truth, "the SQL function and the SIMD exact scan return the same ids");
    let base: Vec<f64> = measured[0].rep_ms.clone();
    println!("| contender | p50 ms | mean ms per repetition, over its type's SQL function | recall@10 | same ids as exact |\n|---|---:|---:|---:|---:|");
    // The `bit` and `sparsevec` rows against their column's SQL function (their own truth and baseline).
    for (n, m) in measured.iter().enumerate() {
        let (truth, base) = match n {
            0..=4 => (truth, &base),
            5 | 6 => (&measured[5].ids, &measured[5].rep_ms),
            _ => (&measured[7].ids, &measured[7].rep_ms),
        };
        let ratios: Vec<String> = m.rep_ms.iter().zip(base).map(|(a, b)| format!("{:.3}", a / b)).collect();
        let recall = m.ids.iter().zip(truth).map(|(f, t)| data::recall(f, t)).sum::<f64>() / truth.len() as f64;
        let same = m.ids.iter().zip(truth).filter(|(f, t)| f == t).count();
        println!(
            "| {} | {:.2} | {} | {recall:.3} | {same}/{} |",
            m.name,
            percentile(&m.calls_ms, 0.5),
            ratios.join(", "),
            truth.len()
        );
    }
    Ok(())
}
