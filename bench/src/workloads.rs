//! The codec workloads and their contenders, as closures that the criterion bench and the `codec-report`
//! binary both run.
//!
//! Every contender goes through the same entry point a real application does wherever that can be built
//! without a server: `ToSql` through Diesel's own bind collector (`push_bound_value`, which starts from an
//! empty `Vec<u8>` exactly as it does for a query), `FromSql` from a `PgValue` holding the bytes the server
//! sends. SQLite's `FromSql` needs a live statement, so SQLite decoding is measured on `codec::decode_sqlite`,
//! which is all that impl does after checking the storage class.

use std::hint::black_box;

use diesel::backend::Backend;
use diesel::deserialize::FromSql;
use diesel::pg::{Pg, PgMetadataLookup, PgTypeMetadata, PgValue};
use diesel::query_builder::bind_collector::RawBytesBindCollector;
use diesel::query_builder::BindCollector;
use diesel::serialize::ToSql;
use diesel::sql_types::{Binary, HasSqlType};
use diesel::sqlite::Sqlite;
use diesel_vector::codec;

/// Dimensions of every benchmarked vector (OpenAI's `text-embedding-3-small`, ada-002).
pub const DIMS: usize = 1536;

/// Seed of the uniform random vectors, so that every run measures the same bytes.
pub const SEED: u64 = 0x5eed_0fd1_e5e1;

/// An OID for `vector`; any constant does, no server is asked.
const VECTOR_OID: u32 = 16_385;

/// The inputs every workload reads: one random vector in each crate's type and in both wire formats.
#[derive(Debug)]
pub struct Inputs {
    pub vector: diesel_vector::Vector,
    pub pgvector: pgvector::Vector,
    /// pgvector's binary format, as the server sends it (`4 + 4 * dims` bytes).
    pub pg_bytes: Vec<u8>,
    /// The sqlite-vec BLOB (`4 * dims` bytes).
    pub blob: Vec<u8>,
}

impl Inputs {
    /// `dims` values drawn uniformly from `[-1, 1)` with [`SEED`].
    pub fn new(dims: usize) -> Self {
        let values = uniform_values(dims, SEED);
        let vector = diesel_vector::Vector::from_slice(&values).expect("random values are finite");
        let pg_bytes = codec::encode_pg(&vector);
        let blob = codec::encode_sqlite(&vector).into_owned();
        Self { pgvector: pgvector::Vector::from(values), vector, pg_bytes, blob }
    }
}

/// splitmix64, mapped to `[-1, 1)` with 24 random bits per value: reproducible without a dependency.
pub fn uniform_values(dims: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            unit * 2.0 - 1.0
        })
        .collect()
}

/// One way of doing a workload's job.
pub struct Contender<'a> {
    pub name: &'static str,
    /// Runs the job once; its result goes through `black_box` and is dropped inside, so allocation and
    /// deallocation are part of the measurement, as they are in an application.
    pub run: Box<dyn FnMut() + 'a>,
}

/// One job (encode, decode, convert) and the contenders that do it.
pub struct Workload<'a> {
    /// Short name, also the criterion group name.
    pub name: &'static str,
    /// What exactly is measured, for the report.
    pub description: &'static str,
    /// Bytes of wire format produced or consumed per vector, for GB/s.
    pub bytes: usize,
    /// Names of the contenders that the others are compared with, in the same run.
    pub baselines: &'static [&'static str],
    pub contenders: Vec<Contender<'a>>,
}

fn contender<'a>(name: &'static str, run: impl FnMut() + 'a) -> Contender<'a> {
    Contender { name, run: Box::new(run) }
}

/// Contender names, shared by the report's bar checks.
pub mod names {
    pub const DIESEL_VECTOR_TO_SQL: &str = "diesel-vector ToSql";
    pub const PGVECTOR_TO_SQL: &str = "pgvector ToSql";
    pub const MEMCPY_TO_SQL: &str = "memcpy: ToSql<Binary> of the encoded bytes";
    pub const WRITE_PG: &str = "codec::write_pg into Vec::new()";
    pub const MEMCPY_VEC: &str = "memcpy: extend_from_slice into Vec::new()";
    pub const DIESEL_VECTOR_FROM_SQL: &str = "diesel-vector FromSql";
    pub const PGVECTOR_FROM_SQL: &str = "pgvector FromSql";
    pub const DECODE_PG: &str = "codec::decode_pg";
    pub const MEMCPY_FROM_SQL: &str = "memcpy: FromSql<Binary> (to_vec)";
    pub const SQLITE_TO_SQL: &str = "diesel-vector ToSql (SQLite)";
    pub const BLOB_TO_SQL: &str = "&[u8] ToSql<Binary> (borrowed)";
    pub const ENCODE_SQLITE: &str = "codec::encode_sqlite";
    pub const MEMCPY_TO_VEC: &str = "memcpy: to_vec";
    pub const DECODE_SQLITE: &str = "codec::decode_sqlite";
    pub const COLLECT_F32: &str = "unvalidated collect into Vec<f32>";
    pub const PG_TO_SQLITE: &str = "codec::pg_payload_to_sqlite";
    pub const SQLITE_TO_PG: &str = "codec::sqlite_to_pg_payload";
    pub const MEMCPY_REUSED: &str = "memcpy: extend_from_slice into a reused Vec";
}

use names::*;

/// Answers Diesel's type lookup with a constant, as its per-connection cache does after the first query.
#[derive(Debug)]
struct FixedOids;

impl PgMetadataLookup for FixedOids {
    fn lookup_type(&mut self, _type_name: &str, _schema: Option<&str>) -> PgTypeMetadata {
        PgTypeMetadata::new(VECTOR_OID, VECTOR_OID + 1)
    }
}

/// Binds one value the way Diesel binds a query parameter and returns the collector holding its bytes.
pub fn pg_bind<T, U>(value: &U) -> RawBytesBindCollector<Pg>
where
    Pg: HasSqlType<T>,
    U: ToSql<T, Pg> + ?Sized,
{
    let mut collector = RawBytesBindCollector::<Pg>::new();
    collector.push_bound_value::<T, U>(value, &mut FixedOids).expect("binding a valid value succeeds");
    collector
}

/// The bytes Diesel would send for the one value in `collector`.
pub fn bound_bytes(collector: &RawBytesBindCollector<Pg>) -> &[u8] {
    collector.binds[0].as_deref().expect("the value is not NULL")
}

/// A `PgValue` over `bytes`, as Diesel hands it to `FromSql` for a row.
pub fn pg_value(bytes: &[u8]) -> PgValue<'_> {
    static OID: std::num::NonZeroU32 = std::num::NonZeroU32::new(VECTOR_OID).expect("non-zero");
    PgValue::new(bytes, &OID)
}

/// Binds one value with Diesel's SQLite bind collector (which the statement then hands to `sqlite3_bind_blob`).
pub fn sqlite_bind<'a, T, U>(value: &'a U) -> <Sqlite as Backend>::BindCollector<'a>
where
    Sqlite: HasSqlType<T>,
    U: ToSql<T, Sqlite> + ?Sized,
{
    let mut collector = <Sqlite as Backend>::BindCollector::<'a>::default();
    collector.push_bound_value::<T, U>(value, &mut ()).expect("binding a valid value succeeds");
    collector
}

/// Every codec workload, in report order.
pub fn workloads(inputs: &Inputs) -> Vec<Workload<'_>> {
    let Inputs { vector, pgvector, pg_bytes, blob } = inputs;
    let pg_payload = &pg_bytes[codec::PG_HEADER_LEN..];
    vec![
        Workload {
            name: "pg_encode",
            description: "PostgreSQL encode: `ToSql` through Diesel's bind collector (`push_bound_value`, fresh \
                          `Vec<u8>` per value, as for every query)",
            bytes: pg_bytes.len(),
            baselines: &[PGVECTOR_TO_SQL, MEMCPY_TO_SQL],
            contenders: vec![
                contender(DIESEL_VECTOR_TO_SQL, move || {
                    black_box(pg_bind::<diesel_vector::sql_types::Vector, _>(black_box(vector)));
                }),
                contender(PGVECTOR_TO_SQL, move || {
                    black_box(pg_bind::<pgvector::sql_types::Vector, _>(black_box(pgvector)));
                }),
                contender(MEMCPY_TO_SQL, move || {
                    black_box(pg_bind::<Binary, [u8]>(black_box(pg_bytes.as_slice())));
                }),
            ],
        },
        Workload {
            name: "pg_encode_codec",
            description: "PostgreSQL encode, codec alone: `codec::write_pg` into an empty `Vec<u8>`, the buffer \
                          Diesel's collector hands to `ToSql`",
            bytes: pg_bytes.len(),
            baselines: &[MEMCPY_VEC],
            contenders: vec![
                contender(WRITE_PG, move || {
                    let mut out = Vec::new();
                    codec::write_pg(black_box(vector), &mut out).expect("a Vec accepts every write");
                    black_box(out);
                }),
                contender(MEMCPY_VEC, move || {
                    let mut out = Vec::new();
                    out.extend_from_slice(black_box(pg_bytes));
                    black_box(out);
                }),
            ],
        },
        Workload {
            name: "pg_decode",
            description: "PostgreSQL decode: `FromSql` from a `PgValue` over the server's bytes, into a fresh \
                          vector",
            bytes: pg_bytes.len(),
            baselines: &[PGVECTOR_FROM_SQL, MEMCPY_FROM_SQL],
            contenders: vec![
                contender(DIESEL_VECTOR_FROM_SQL, move || {
                    let value = pg_value(black_box(pg_bytes));
                    black_box(
                        <diesel_vector::Vector as FromSql<diesel_vector::sql_types::Vector, Pg>>::from_sql(value)
                            .expect("valid"),
                    );
                }),
                contender(PGVECTOR_FROM_SQL, move || {
                    let value = pg_value(black_box(pg_bytes));
                    black_box(
                        <pgvector::Vector as FromSql<pgvector::sql_types::Vector, Pg>>::from_sql(value).expect("valid"),
                    );
                }),
                contender(DECODE_PG, move || {
                    black_box(codec::decode_pg(black_box(pg_bytes)).expect("valid"));
                }),
                contender(MEMCPY_FROM_SQL, move || {
                    let value = pg_value(black_box(pg_bytes));
                    black_box(<Vec<u8> as FromSql<Binary, Pg>>::from_sql(value).expect("valid"));
                }),
            ],
        },
        Workload {
            name: "sqlite_encode",
            description: "SQLite encode: `ToSql` through Diesel's SQLite bind collector, and the codec alone",
            bytes: blob.len(),
            baselines: &[MEMCPY_TO_VEC],
            contenders: vec![
                contender(SQLITE_TO_SQL, move || {
                    black_box(sqlite_bind::<diesel_vector::sql_types::Vector, _>(black_box(vector)));
                }),
                contender(BLOB_TO_SQL, move || {
                    black_box(sqlite_bind::<Binary, [u8]>(black_box(blob.as_slice())));
                }),
                contender(ENCODE_SQLITE, move || {
                    black_box(codec::encode_sqlite(black_box(vector)));
                }),
                contender(MEMCPY_TO_VEC, move || {
                    black_box(black_box(blob.as_slice()).to_vec());
                }),
            ],
        },
        Workload {
            name: "sqlite_decode",
            description: "SQLite decode: BLOB into a fresh vector (what `FromSql` does after the storage-class \
                          check)",
            bytes: blob.len(),
            baselines: &[MEMCPY_TO_VEC],
            contenders: vec![
                contender(DECODE_SQLITE, move || {
                    black_box(codec::decode_sqlite(black_box(blob)).expect("valid"));
                }),
                contender(COLLECT_F32, move || {
                    let values: Vec<f32> = black_box(blob.as_slice())
                        .chunks_exact(4)
                        .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                        .collect();
                    black_box(values);
                }),
                contender(MEMCPY_TO_VEC, move || {
                    black_box(black_box(blob.as_slice()).to_vec());
                }),
            ],
        },
        Workload {
            name: "pg_to_sqlite",
            description: "pgvector binary to sqlite-vec BLOB (byte swap + validation) into a reused buffer",
            bytes: pg_payload.len(),
            baselines: &[MEMCPY_REUSED],
            contenders: vec![
                contender(PG_TO_SQLITE, {
                    let mut out = Vec::new();
                    move || {
                        codec::pg_payload_to_sqlite(black_box(pg_bytes), &mut out).expect("valid");
                        black_box(&mut out);
                    }
                }),
                contender(MEMCPY_REUSED, {
                    let mut out = Vec::new();
                    move || {
                        out.clear();
                        out.extend_from_slice(black_box(pg_payload));
                        black_box(&mut out);
                    }
                }),
            ],
        },
        Workload {
            name: "sqlite_to_pg",
            description: "sqlite-vec BLOB to pgvector binary (byte swap + validation) into a reused buffer",
            bytes: blob.len(),
            baselines: &[MEMCPY_REUSED],
            contenders: vec![
                contender(SQLITE_TO_PG, {
                    let mut out = Vec::new();
                    move || {
                        codec::sqlite_to_pg_payload(black_box(blob), &mut out).expect("valid");
                        black_box(&mut out);
                    }
                }),
                contender(MEMCPY_REUSED, {
                    let mut out = Vec::new();
                    move || {
                        out.clear();
                        out.extend_from_slice(black_box(blob));
                        black_box(&mut out);
                    }
                }),
            ],
        },
    ]
}

/// Checks that the contenders of each workload compute the same thing before any of them is timed.
pub fn check_outputs(inputs: &Inputs) -> Result<(), String> {
    let ours = pg_bind::<diesel_vector::sql_types::Vector, _>(&inputs.vector);
    let theirs = pg_bind::<pgvector::sql_types::Vector, _>(&inputs.pgvector);
    ensure(bound_bytes(&ours) == bound_bytes(&theirs), "both crates bind the same pgvector bytes")?;
    ensure(bound_bytes(&ours) == inputs.pg_bytes, "ToSql writes what codec::encode_pg returns")?;

    let ours =
        <diesel_vector::Vector as FromSql<diesel_vector::sql_types::Vector, Pg>>::from_sql(pg_value(&inputs.pg_bytes))
            .map_err(|e| e.to_string())?;
    let theirs = <pgvector::Vector as FromSql<pgvector::sql_types::Vector, Pg>>::from_sql(pg_value(&inputs.pg_bytes))
        .map_err(|e| e.to_string())?;
    ensure(ours.as_slice() == theirs.as_slice(), "both crates decode the same floats")?;
    ensure(ours == inputs.vector, "decoding gives the vector back")?;

    let blob = codec::encode_sqlite(&inputs.vector);
    ensure(
        matches!(&blob, std::borrow::Cow::Borrowed(b) if b.as_ptr() == inputs.vector.as_slice().as_ptr().cast()),
        "encode_sqlite borrows the vector's own memory (no copy)",
    )?;
    ensure(codec::decode_sqlite(&inputs.blob).map_err(|e| e.to_string())? == inputs.vector, "SQLite round trip")?;

    let mut out = Vec::new();
    codec::pg_payload_to_sqlite(&inputs.pg_bytes, &mut out).map_err(|e| e.to_string())?;
    ensure(out == inputs.blob, "pg_payload_to_sqlite gives the BLOB")?;
    codec::sqlite_to_pg_payload(&inputs.blob, &mut out).map_err(|e| e.to_string())?;
    ensure(out == inputs.pg_bytes, "sqlite_to_pg_payload gives the pgvector bytes")?;
    Ok(())
}

fn ensure(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}
