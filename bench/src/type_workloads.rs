//! The codec workloads of the other vector types (`halfvec`, `sparsevec`, `bit`), each against the
//! `pgvector` crate's `ToSql`/`FromSql` where it has one and against a plain copy of the same bytes,
//! measured the way [`crate::workloads`] measures `vector`'s: `ToSql` through Diesel's bind collector,
//! `FromSql` from a `PgValue` over the server's bytes, SQLite through the codec functions that the SQLite
//! impls call after checking the storage class.
//!
//! Inputs: a 1536-dimension half vector (uniform in [-1, 1)), a sparse vector of 200 non-zero elements
//! over 30522 dimensions (a SPLADE vocabulary), and a 1536-bit code (the binary quantization of the same
//! 1536 values).

use std::hint::black_box;
use std::num::NonZeroU32;

use diesel::deserialize::FromSql;
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Binary;
use diesel_vector::codec;

use crate::workloads::{pg_bind, sqlite_bind, uniform_values, Contender, Workload, SEED};

/// What the inputs are, for the report.
pub const DESCRIPTION: &str = "Inputs: a `halfvec` of the same dimensions as the vectors above (uniform in [-1, 1), \
     rounded to f16), a `sparsevec` of 200 non-zero elements over 30522 dimensions (a SPLADE vocabulary), and a \
     `bit` string of one bit per dimension (the binary quantization of the same values). Baselines as above.";

/// Dimensions of the sparse vectors: BERT's vocabulary, as SPLADE uses it.
pub const SPARSE_DIMS: i32 = 30_522;

/// Non-zero elements of the sparse vectors.
pub const SPARSE_NNZ: usize = 200;

/// The OIDs `FromSql` sees: any constant for the extension's types, PostgreSQL's own for `bit`.
static EXTENSION_OID: NonZeroU32 = NonZeroU32::new(16_390).expect("non-zero");
static BIT_OID: NonZeroU32 = NonZeroU32::new(1560).expect("non-zero");

/// One value of each type in both crates and in both wire formats.
#[derive(Debug)]
pub struct TypeInputs {
    pub half: diesel_vector::HalfVector,
    pub pgvector_half: pgvector::HalfVector,
    pub half_pg: Vec<u8>,
    pub half_blob: Vec<u8>,
    pub sparse: diesel_vector::SparseVector,
    pub pgvector_sparse: pgvector::SparseVector,
    pub sparse_pg: Vec<u8>,
    pub sparse_blob: Vec<u8>,
    pub bit: diesel_vector::Bit,
    pub pgvector_bit: pgvector::Bit,
    pub bit_pg: Vec<u8>,
}

impl TypeInputs {
    /// `dims` values for the half vector and the bits; the sparse vector's shape is fixed.
    pub fn new(dims: usize) -> Self {
        let values = uniform_values(dims, SEED);
        let half = diesel_vector::HalfVector::from_f32_slice(&values).expect("values in [-1, 1) fit f16");
        let pgvector_half = pgvector::HalfVector::from_f32_slice(&values);
        let step = SPARSE_DIMS / SPARSE_NNZ as i32;
        let map: std::collections::BTreeMap<i32, f32> =
            (0..SPARSE_NNZ).map(|k| (k as i32 * step + (k as i32 % 7), values[k % dims] + 2.0)).collect();
        let sparse = diesel_vector::SparseVector::from_map(&map, SPARSE_DIMS).expect("valid");
        let pgvector_sparse = pgvector::SparseVector::from_map(&map, SPARSE_DIMS);
        let bits: Vec<bool> = values.iter().map(|x| *x > 0.0).collect();
        let bit = diesel_vector::Bit::new(&bits);
        let pgvector_bit = pgvector::Bit::new(&bits);
        Self {
            half_pg: codec::halfvec::encode_pg(&half),
            half_blob: codec::halfvec::encode_sqlite(&half).into_owned(),
            sparse_pg: codec::sparsevec::encode_pg(&sparse),
            sparse_blob: codec::sparsevec::encode_sqlite(&sparse),
            bit_pg: codec::bit::encode_pg(&bit).expect("short enough"),
            half,
            pgvector_half,
            sparse,
            pgvector_sparse,
            bit,
            pgvector_bit,
        }
    }
}

fn contender<'a>(name: &'static str, run: impl FnMut() + 'a) -> Contender<'a> {
    Contender { name, run: Box::new(run) }
}

/// Contender names.
pub mod names {
    pub const OURS_TO_SQL: &str = "diesel-vector ToSql";
    pub const PGVECTOR_TO_SQL: &str = "pgvector ToSql";
    pub const MEMCPY_TO_SQL: &str = "memcpy: ToSql<Binary> of the encoded bytes";
    pub const OURS_FROM_SQL: &str = "diesel-vector FromSql";
    pub const PGVECTOR_FROM_SQL: &str = "pgvector FromSql";
    pub const MEMCPY_FROM_SQL: &str = "memcpy: FromSql<Binary> (to_vec)";
    pub const OURS_SQLITE_ENCODE: &str = "diesel-vector ToSql (SQLite)";
    pub const OURS_SQLITE_DECODE: &str = "codec decode_sqlite";
    pub const MEMCPY_TO_VEC: &str = "memcpy: to_vec";
}

use names::*;

/// A `PgValue` over `bytes` with type `oid`, as Diesel hands it to `FromSql`.
fn pg_value<'a>(bytes: &'a [u8], oid: &'static NonZeroU32) -> PgValue<'a> {
    PgValue::new(bytes, oid)
}

/// The PostgreSQL encode and decode workloads of one type against the `pgvector` crate.
macro_rules! pg_workloads {
    ($name:literal, $what:literal, $sql:ty, $theirs_sql:ty, $ours:expr, $theirs:expr, $bytes:expr, $oid:expr, $ours_ty:ty, $theirs_ty:ty) => {{
        let (ours, theirs, bytes) = ($ours, $theirs, $bytes);
        [
            Workload {
                name: concat!($name, "_pg_encode"),
                description: concat!("PostgreSQL encode of ", $what, ": `ToSql` through Diesel's bind collector"),
                bytes: bytes.len(),
                baselines: &[PGVECTOR_TO_SQL, MEMCPY_TO_SQL],
                contenders: vec![
                    contender(OURS_TO_SQL, move || {
                        black_box(pg_bind::<$sql, _>(black_box(ours)));
                    }),
                    contender(PGVECTOR_TO_SQL, move || {
                        black_box(pg_bind::<$theirs_sql, _>(black_box(theirs)));
                    }),
                    contender(MEMCPY_TO_SQL, move || {
                        black_box(pg_bind::<Binary, [u8]>(black_box(bytes.as_slice())));
                    }),
                ],
            },
            Workload {
                name: concat!($name, "_pg_decode"),
                description: concat!(
                    "PostgreSQL decode of ",
                    $what,
                    ": `FromSql` from a `PgValue` over the server's bytes"
                ),
                bytes: bytes.len(),
                baselines: &[PGVECTOR_FROM_SQL, MEMCPY_FROM_SQL],
                contenders: vec![
                    contender(OURS_FROM_SQL, move || {
                        let value = pg_value(black_box(bytes), $oid);
                        black_box(<$ours_ty as FromSql<$sql, Pg>>::from_sql(value).expect("valid"));
                    }),
                    contender(PGVECTOR_FROM_SQL, move || {
                        let value = pg_value(black_box(bytes), $oid);
                        black_box(<$theirs_ty as FromSql<$theirs_sql, Pg>>::from_sql(value).expect("valid"));
                    }),
                    contender(MEMCPY_FROM_SQL, move || {
                        let value = pg_value(black_box(bytes), $oid);
                        black_box(<Vec<u8> as FromSql<Binary, Pg>>::from_sql(value).expect("valid"));
                    }),
                ],
            },
        ]
    }};
}

/// Every workload of the other types, in report order.
pub fn workloads(inputs: &TypeInputs) -> Vec<Workload<'_>> {
    let i = inputs;
    let mut all = Vec::new();
    all.extend(pg_workloads!(
        "halfvec",
        "a 1536-dimension `halfvec`",
        diesel_vector::sql_types::HalfVector,
        pgvector::sql_types::HalfVector,
        &i.half,
        &i.pgvector_half,
        &i.half_pg,
        &EXTENSION_OID,
        diesel_vector::HalfVector,
        pgvector::HalfVector
    ));
    all.extend(pg_workloads!(
        "sparsevec",
        "a `sparsevec` of 200 non-zero elements in 30522 dimensions",
        diesel_vector::sql_types::SparseVector,
        pgvector::sql_types::SparseVector,
        &i.sparse,
        &i.pgvector_sparse,
        &i.sparse_pg,
        &EXTENSION_OID,
        diesel_vector::SparseVector,
        pgvector::SparseVector
    ));
    all.extend(pg_workloads!(
        "bit",
        "a 1536-bit `bit`",
        diesel_vector::sql_types::Bit,
        pgvector::sql_types::Bit,
        &i.bit,
        &i.pgvector_bit,
        &i.bit_pg,
        &BIT_OID,
        diesel_vector::Bit,
        pgvector::Bit
    ));
    let (half, half_blob, sparse, sparse_blob, bit) = (&i.half, &i.half_blob, &i.sparse, &i.sparse_blob, &i.bit);
    all.push(Workload {
        name: "halfvec_sqlite",
        description: "SQLite half vector: `ToSql` through Diesel's SQLite bind collector (borrows), and decoding \
                      a BLOB into a fresh vector (what `FromSql` does after the storage-class check)",
        bytes: half_blob.len(),
        baselines: &[MEMCPY_TO_VEC],
        contenders: vec![
            contender(OURS_SQLITE_ENCODE, move || {
                black_box(sqlite_bind::<diesel_vector::sql_types::HalfVector, _>(black_box(half)));
            }),
            contender(OURS_SQLITE_DECODE, move || {
                black_box(codec::halfvec::decode_sqlite(black_box(half_blob)).expect("valid"));
            }),
            contender(MEMCPY_TO_VEC, move || {
                black_box(black_box(half_blob.as_slice()).to_vec());
            }),
        ],
    });
    all.push(Workload {
        name: "sparsevec_sqlite",
        description: "SQLite sparse vector: `ToSql` (builds the BLOB), and decoding a BLOB with every check",
        bytes: sparse_blob.len(),
        baselines: &[MEMCPY_TO_VEC],
        contenders: vec![
            contender(OURS_SQLITE_ENCODE, move || {
                black_box(sqlite_bind::<diesel_vector::sql_types::SparseVector, _>(black_box(sparse)));
            }),
            contender(OURS_SQLITE_DECODE, move || {
                black_box(codec::sparsevec::decode_sqlite(black_box(sparse_blob)).expect("valid"));
            }),
            contender(MEMCPY_TO_VEC, move || {
                black_box(black_box(sparse_blob.as_slice()).to_vec());
            }),
        ],
    });
    all.push(Workload {
        name: "bit_sqlite",
        description: "SQLite bit string: `ToSql` (borrows), and decoding a BLOB",
        bytes: bit.as_bytes().len(),
        baselines: &[MEMCPY_TO_VEC],
        contenders: vec![
            contender(OURS_SQLITE_ENCODE, move || {
                black_box(sqlite_bind::<diesel_vector::sql_types::Bit, _>(black_box(bit)));
            }),
            contender(OURS_SQLITE_DECODE, move || {
                black_box(codec::bit::decode_sqlite(black_box(bit.as_bytes())).expect("valid"));
            }),
            contender(MEMCPY_TO_VEC, move || {
                black_box(black_box(bit.as_bytes()).to_vec());
            }),
        ],
    });
    all
}

/// Checks that both crates write the same bytes and read the same values before anything is timed.
pub fn check_outputs(i: &TypeInputs) -> Result<(), String> {
    use crate::workloads::bound_bytes;
    let same = |what: &str, ok: bool| if ok { Ok(()) } else { Err(format!("check failed: {what}")) };
    let err = |e: Box<dyn std::error::Error + Send + Sync>| e.to_string();

    let ours = pg_bind::<diesel_vector::sql_types::HalfVector, _>(&i.half);
    let theirs = pg_bind::<pgvector::sql_types::HalfVector, _>(&i.pgvector_half);
    same("both crates bind the same halfvec bytes", bound_bytes(&ours) == bound_bytes(&theirs))?;
    same("halfvec ToSql writes encode_pg", bound_bytes(&ours) == i.half_pg)?;
    let back = <diesel_vector::HalfVector as FromSql<diesel_vector::sql_types::HalfVector, Pg>>::from_sql(pg_value(
        &i.half_pg,
        &EXTENSION_OID,
    ))
    .map_err(err)?;
    let theirs = <pgvector::HalfVector as FromSql<pgvector::sql_types::HalfVector, Pg>>::from_sql(pg_value(
        &i.half_pg,
        &EXTENSION_OID,
    ))
    .map_err(err)?;
    same("both crates decode the same halves", back.as_slice() == theirs.as_slice() && back == i.half)?;

    let ours = pg_bind::<diesel_vector::sql_types::SparseVector, _>(&i.sparse);
    let theirs = pg_bind::<pgvector::sql_types::SparseVector, _>(&i.pgvector_sparse);
    same("both crates bind the same sparsevec bytes", bound_bytes(&ours) == bound_bytes(&theirs))?;
    let back = <diesel_vector::SparseVector as FromSql<diesel_vector::sql_types::SparseVector, Pg>>::from_sql(
        pg_value(&i.sparse_pg, &EXTENSION_OID),
    )
    .map_err(err)?;
    let theirs = <pgvector::SparseVector as FromSql<pgvector::sql_types::SparseVector, Pg>>::from_sql(pg_value(
        &i.sparse_pg,
        &EXTENSION_OID,
    ))
    .map_err(err)?;
    same(
        "both crates decode the same sparse vector",
        back.indices() == theirs.indices() && back.values() == theirs.values() && back == i.sparse,
    )?;

    let ours = pg_bind::<diesel_vector::sql_types::Bit, _>(&i.bit);
    let theirs = pg_bind::<pgvector::sql_types::Bit, _>(&i.pgvector_bit);
    same("both crates bind the same bit bytes", bound_bytes(&ours) == bound_bytes(&theirs))?;
    let back =
        <diesel_vector::Bit as FromSql<diesel_vector::sql_types::Bit, Pg>>::from_sql(pg_value(&i.bit_pg, &BIT_OID))
            .map_err(err)?;
    same("bit decodes back", back == i.bit && back.as_bytes() == i.pgvector_bit.as_bytes())?;

    same(
        "SQLite round trips",
        codec::halfvec::decode_sqlite(&i.half_blob).map_err(|e| e.to_string())? == i.half
            && codec::sparsevec::decode_sqlite(&i.sparse_blob).map_err(|e| e.to_string())? == i.sparse
            && codec::bit::decode_sqlite(i.bit.as_bytes()).map_err(|e| e.to_string())? == i.bit,
    )
}
