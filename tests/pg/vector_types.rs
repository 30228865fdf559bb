//! `halfvec`, `sparsevec` and `bit` on a real PostgreSQL with pgvector, as an application uses them: an
//! `items` table with one column of each, values written by Diesel read by pgvector and the reverse, the
//! distance DSL against pgvector's own functions, and every mix-up a typed error.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{Bool, Double, Integer, Nullable, Text};
use diesel_vector::{
    sql_types, Bit, HalfVector, SparseVector, Vector, VectorError, VectorExpressionMethods, VectorKind,
};

use crate::common::types::{assert_half_bit_exact, assert_sparse_bit_exact, bit_sample, half_sample, sparse_sample};

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::{Bit, HalfVector, SparseVector};

    items (id) {
        id -> Integer,
        embedding -> Nullable<HalfVector>,
        sparse -> Nullable<SparseVector>,
        bits -> Nullable<Bit>,
    }
}

/// A connection (in a test transaction) with an empty `items` table of fixed dimensions.
fn conn_with_items() -> PgConnection {
    let mut conn = crate::conn();
    conn.batch_execute(
        "CREATE TEMPORARY TABLE items (id integer PRIMARY KEY, embedding halfvec(3), sparse sparsevec(5), bits bit(16))",
    )
    .unwrap();
    conn
}

/// One row of `items`.
type Row = (i32, Option<HalfVector>, Option<SparseVector>, Option<Bit>);

fn h(values: &[f32]) -> HalfVector {
    HalfVector::from_f32_slice(values).unwrap()
}

fn s(text: &str) -> SparseVector {
    text.parse().unwrap()
}

fn b(text: &str) -> Bit {
    text.parse().unwrap()
}

/// The error behind a failed query, which must be a `VectorError`.
#[track_caller]
fn vector_error(err: diesel::result::Error) -> VectorError {
    VectorError::find(&err).unwrap_or_else(|| panic!("not a VectorError: {err}")).clone()
}

#[test]
fn each_type_round_trips_bit_exact_through_a_bind() {
    let mut conn = crate::conn();
    for dims in [1, 3, 11, 1536, 3072, HalfVector::MAX_DIMS] {
        let v = half_sample(dims);
        let back: HalfVector =
            diesel::select(v.clone().into_sql::<sql_types::HalfVector>()).get_result(&mut conn).unwrap();
        assert_half_bit_exact(&back, &v);
    }
    for (dims, nnz) in [(1, 0), (1, 1), (5, 2), (30_522, 200), (1_000_000_000, 8), (20_000, SparseVector::MAX_NNZ)] {
        let v = sparse_sample(dims, nnz);
        let back: SparseVector =
            diesel::select(v.clone().into_sql::<sql_types::SparseVector>()).get_result(&mut conn).unwrap();
        assert_sparse_bit_exact(&back, &v);
    }
    for len in [0, 1, 7, 8, 9, 16, 1536, 64_000] {
        let v = bit_sample(len, len as u64);
        let back: Bit = diesel::select(v.clone().into_sql::<sql_types::Bit>()).get_result(&mut conn).unwrap();
        assert_eq!(back, v);
    }
}

#[test]
fn a_row_of_each_type_round_trips_through_a_table_nulls_included() {
    let mut conn = conn_with_items();
    let row = (h(&[65504.0, -0.0, 5.9604645e-8]), s("{1:3.4028235e38,5:-1e-45}/5"), b("1000000000000001"));
    diesel::insert_into(items::table)
        .values(&vec![
            (
                items::id.eq(1),
                items::embedding.eq(Some(&row.0)),
                items::sparse.eq(Some(&row.1)),
                items::bits.eq(Some(&row.2)),
            ),
            (items::id.eq(2), items::embedding.eq(None), items::sparse.eq(None), items::bits.eq(None)),
        ])
        .execute(&mut conn)
        .unwrap();
    let back: Vec<Row> = items::table.order(items::id).load(&mut conn).unwrap();
    assert_half_bit_exact(back[0].1.as_ref().unwrap(), &row.0);
    assert_sparse_bit_exact(back[0].2.as_ref().unwrap(), &row.1);
    assert_eq!(back[0].3.as_ref(), Some(&row.2));
    assert_eq!((&back[1].1, &back[1].2, &back[1].3), (&None, &None, &None));
}

#[test]
fn diesels_values_equal_pgvectors_own_literals() {
    let mut conn = crate::conn();
    let read_half = |conn: &mut PgConnection, literal: &str| -> HalfVector {
        diesel::select(sql::<sql_types::HalfVector>(&format!("'{literal}'::halfvec"))).get_result(conn).unwrap()
    };
    assert_eq!(read_half(&mut conn, "[1,2,3]"), h(&[1.0, 2.0, 3.0]));
    // pgvector rounds to the nearest f16, as HalfVector::from_f32_slice does (65519 rounds down to 65504).
    for literal in ["[0.1,-0.2,1e-7,65519,-0]", "[3.14159,2.71828,1.41421]", "[6e-8,6.1e-5,1000.5]"] {
        assert_half_bit_exact(&read_half(&mut conn, literal), &literal.parse().unwrap());
    }
    let sparse: SparseVector =
        diesel::select(sql::<sql_types::SparseVector>("'{1:1,3:2}/5'::sparsevec")).get_result(&mut conn).unwrap();
    assert_eq!(sparse, SparseVector::new(5, vec![0, 2], vec![1.0, 2.0]).unwrap());
    assert_eq!(sparse, SparseVector::from_dense(&[1.0, 0.0, 2.0, 0.0, 0.0]).unwrap());
    let unordered: SparseVector = diesel::select(sql::<sql_types::SparseVector>("'{ 3:2 , 1:1, 2:0 }/5'::sparsevec"))
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(unordered, sparse);
    let bits: Bit = diesel::select(sql::<sql_types::Bit>("B'0101'")).get_result(&mut conn).unwrap();
    assert_eq!(bits, Bit::new(&[false, true, false, true]));
    let varbit: Bit = diesel::select(sql::<sql_types::Bit>("B'110'::varbit")).get_result(&mut conn).unwrap();
    assert_eq!(varbit, b("110"));
}

#[test]
fn pgvector_reads_what_diesel_writes() {
    let mut conn = conn_with_items();
    let row = (h(&[0.1, -2.5, 65504.0]), s("{2:1.5,5:-3}/5"), b("0101000000000001"));
    diesel::insert_into(items::table)
        .values((items::id.eq(1), items::embedding.eq(&row.0), items::sparse.eq(&row.1), items::bits.eq(&row.2)))
        .execute(&mut conn)
        .unwrap();
    let texts: (String, String, String) = items::table
        .select((sql::<Text>("embedding::text"), sql::<Text>("sparse::text"), sql::<Text>("bits::text")))
        .first(&mut conn)
        .unwrap();
    // pgvector prints each half as the shortest f32 digits, as Display does.
    assert_eq!(texts, (row.0.to_string(), row.1.to_string(), row.2.to_string()));
    assert_eq!(texts.0, "[0.099975586,-2.5,65504]");
    let equal: (bool, bool, bool) = items::table
        .select((
            sql::<Bool>(&format!("embedding = '{}'::halfvec", row.0)),
            sql::<Bool>(&format!("sparse = '{}'::sparsevec", row.1)),
            sql::<Bool>(&format!("bits = B'{}'", row.2)),
        ))
        .first(&mut conn)
        .unwrap();
    assert_eq!(equal, (true, true, true));
    let dims: (i32, i32, i32) = items::table
        .select((
            sql::<Integer>("vector_dims(embedding)"),
            sql::<Integer>("length(bits)"),
            sql::<Integer>("l2_norm(sparse)::int"),
        ))
        .first(&mut conn)
        .unwrap();
    assert_eq!(dims, (3, 16, 3));
}

#[test]
fn binary_quantize_output_loads_as_bit() {
    let mut conn = crate::conn();
    let v = Vector::new(vec![1.0, -2.0, 3.0, 0.0, 0.5, -0.1, 7.0, 8.0, -9.0]).unwrap();
    let quantized: Bit =
        diesel::select(sql::<sql_types::Bit>("binary_quantize(").bind::<sql_types::Vector, _>(&v).sql(")"))
            .get_result(&mut conn)
            .unwrap();
    assert_eq!(quantized, Bit::new(&v.as_slice().iter().map(|x| *x > 0.0).collect::<Vec<_>>()));
    assert_eq!(quantized.to_string(), "101010110");
    let from_half: Bit = diesel::select(
        sql::<sql_types::Bit>("binary_quantize(").bind::<sql_types::HalfVector, _>(h(&[-1.0, 2.0])).sql(")"),
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(from_half, b("01"));
}

#[test]
fn the_column_types_refuse_other_dimensions_and_nothing_is_written() {
    let mut conn = conn_with_items();
    type Insert = Box<dyn Fn(&mut PgConnection) -> QueryResult<usize>>;
    let cases: [(&str, Insert); 3] = [
        (
            "expected 3 dimensions, not 4",
            Box::new(|c| {
                diesel::insert_into(items::table)
                    .values((items::id.eq(1), items::embedding.eq(h(&[1.0; 4]))))
                    .execute(c)
            }),
        ),
        (
            "expected 5 dimensions, not 6",
            Box::new(|c| {
                diesel::insert_into(items::table).values((items::id.eq(1), items::sparse.eq(s("{}/6")))).execute(c)
            }),
        ),
        (
            "bit string length 9 does not match type bit(16)",
            Box::new(|c| {
                diesel::insert_into(items::table).values((items::id.eq(1), items::bits.eq(b("101010101")))).execute(c)
            }),
        ),
    ];
    for (message, insert) in cases {
        let err = conn.transaction(|c| insert(c)).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
    assert_eq!(items::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
}

#[test]
fn a_bit_string_longer_than_postgresql_takes_is_refused_before_it_is_sent() {
    let mut conn = crate::conn();
    let huge = Bit::from_bytes(&vec![0; Bit::MAX_LEN / 8 + 1]);
    let err = diesel::select(huge.into_sql::<sql_types::Bit>()).get_result::<Bit>(&mut conn).unwrap_err();
    assert!(matches!(err, diesel::result::Error::SerializationError(_)), "{err:?}");
    assert!(matches!(vector_error(err), VectorError::LimitExceeded { kind: VectorKind::Bit, found: 83_886_088, .. }));
}

/// Every way of reading one type's column as another is a typed error naming the cause.
mod mix_ups {
    use super::*;

    fn read<T, ST>(conn: &mut PgConnection, expr: &str) -> VectorError
    where
        ST: diesel::sql_types::SingleValue + diesel::sql_types::SqlType + 'static,
        Pg: diesel::sql_types::HasSqlType<ST>,
        T: diesel::deserialize::FromSqlRow<ST, Pg> + 'static,
    {
        vector_error(diesel::select(sql::<ST>(expr)).get_result::<T>(conn).map(|_| ()).unwrap_err())
    }

    #[test]
    fn a_vector_read_as_a_halfvec_says_the_column_is_a_vector() {
        let mut conn = crate::conn();
        let err = read::<HalfVector, sql_types::HalfVector>(&mut conn, "'[1,2,3]'::vector");
        assert_eq!(
            err,
            VectorError::ValueLengthMismatch {
                kind: VectorKind::HalfVector,
                declared: 3,
                expected_len: 10,
                actual_len: 16
            }
        );
        assert!(err.to_string().contains("is the column a `vector`"), "{err}");
    }

    #[test]
    fn a_bit_read_as_any_vector_type_is_named() {
        let mut conn = crate::conn();
        let found = || "a `bit`".to_owned();
        assert_eq!(
            read::<Vector, sql_types::Vector>(&mut conn, "B'0101'"),
            VectorError::WrongType { expected: VectorKind::Vector, found: found() }
        );
        assert_eq!(
            read::<HalfVector, sql_types::HalfVector>(&mut conn, "B'0101'::varbit"),
            VectorError::WrongType { expected: VectorKind::HalfVector, found: found() }
        );
        assert_eq!(
            read::<SparseVector, sql_types::SparseVector>(&mut conn, "B'0101'"),
            VectorError::WrongType { expected: VectorKind::SparseVector, found: found() }
        );
    }

    #[test]
    fn a_vector_type_read_as_bit_is_named() {
        let mut conn = crate::conn();
        for literal in ["'[1,2]'::vector", "'[1,2]'::halfvec", "'{1:1}/2'::sparsevec", "'\\x00000001'::bytea"] {
            let err = read::<Bit, sql_types::Bit>(&mut conn, literal);
            assert!(matches!(&err, VectorError::WrongType { expected: VectorKind::Bit, .. }), "{literal}: {err:?}");
            assert!(err.to_string().contains("neither `bit` nor `varbit`"), "{err}");
        }
    }

    #[test]
    fn sparse_and_dense_types_read_as_each_other_are_errors() {
        let mut conn = crate::conn();
        // A sparsevec's i32 dims start with two zero bytes: read as a vector, its reserved field is non-zero.
        assert_eq!(
            read::<Vector, sql_types::Vector>(&mut conn, "'{1:1}/2'::sparsevec"),
            VectorError::ReservedNotZero { value: 2 }
        );
        assert!(matches!(
            read::<HalfVector, sql_types::HalfVector>(&mut conn, "'{1:1}/2'::sparsevec"),
            VectorError::ReservedFieldNotZero { kind: VectorKind::HalfVector, value: 2 }
        ));
        for literal in ["'[1,2]'::vector", "'[1,2,3,4,5,6]'::halfvec"] {
            let err = read::<SparseVector, sql_types::SparseVector>(&mut conn, literal);
            assert!(
                matches!(
                    err,
                    VectorError::TruncatedValue { .. }
                        | VectorError::ValueLengthMismatch { .. }
                        | VectorError::LimitExceeded { .. }
                        | VectorError::ReservedFieldNotZero { .. }
                        | VectorError::Empty
                ),
                "{literal}: {err:?}"
            );
        }
    }

    #[test]
    fn malformed_bytes_are_typed_errors() {
        let mut conn = crate::conn();
        // 2 halves: 1.0 then +inf.
        assert_eq!(
            read::<HalfVector, sql_types::HalfVector>(&mut conn, "'\\x000200003c007c00'::bytea"),
            VectorError::NotFinite { index: 1, value: f32::INFINITY }
        );
        // dims 5, nnz 2, reserved 0, indices 3 then 1, values 2.0 and 2.0.
        assert_eq!(
            read::<SparseVector, sql_types::SparseVector>(
                &mut conn,
                "'\\x00000005000000020000000000000003000000014000000040000000'::bytea"
            ),
            VectorError::SparseIndicesNotAscending { position: 1, index: 1, previous: 3 }
        );
        // The same with a zero value, which pgvector's binary format never holds.
        assert_eq!(
            read::<SparseVector, sql_types::SparseVector>(
                &mut conn,
                "'\\x00000005000000020000000000000001000000034000000000000000'::bytea"
            ),
            VectorError::SparseZeroValue { position: 1 }
        );
    }
}

/// The distance DSL on each type: pgvector's operators, with pgvector's results.
mod dsl {
    use super::*;

    /// The SQL of a query, without its binds.
    fn sql_of(query: impl QueryFragment<Pg>) -> String {
        diesel::debug_query::<Pg, _>(&query).to_string().split(" -- binds:").next().unwrap().to_owned()
    }

    #[test]
    fn each_metric_renders_pgvectors_operator_on_each_type() {
        let (q, sq, bq) = (h(&[1.0, 2.0, 3.0]), s("{1:1}/5"), b("0101"));
        let select = |expr: &str| format!("SELECT {expr} FROM \"items\"");
        let col = |c: &str| format!("\"items\".\"{c}\"");
        let (e, sp, bits) = (col("embedding"), col("sparse"), col("bits"));
        assert_eq!(sql_of(items::table.select(items::embedding.l2_distance(&q))), select(&format!("({e} <-> $1)")));
        assert_eq!(sql_of(items::table.select(items::embedding.cosine_distance(&q))), select(&format!("({e} <=> $1)")));
        assert_eq!(sql_of(items::table.select(items::sparse.l1_distance(&sq))), select(&format!("({sp} <+> $1)")));
        assert_eq!(
            sql_of(items::table.select(items::sparse.max_inner_product(&sq))),
            select(&format!("({sp} <#> $1)"))
        );
        assert_eq!(sql_of(items::table.select(items::bits.hamming_distance(&bq))), select(&format!("({bits} <~> $1)")));
        assert_eq!(
            sql_of(items::table.select(items::bits.jaccard_distance(items::bits))),
            select(&format!("({bits} <%> {bits})"))
        );
    }

    /// Each type's six (or two) distances from the DSL and from pgvector's functions, for one row.
    #[test]
    fn distances_are_pgvectors_own() {
        let mut conn = crate::conn();
        conn.batch_execute(
            "CREATE TEMPORARY TABLE items (id integer PRIMARY KEY, embedding halfvec, sparse sparsevec, bits bit(128))",
        )
        .unwrap();
        let (hv, sv, bv) = (half_sample(384), sparse_sample(30_522, 150), bit_sample(128, 1));
        let (hq, sq, bq) = (
            HalfVector::from_f32_slice(&(0..384).map(|i| ((i as f32) * 0.3).cos()).collect::<Vec<_>>()).unwrap(),
            SparseVector::from_map(
                &(0..30_522)
                    .step_by(97)
                    .map(|i| (i, 1.0 + (i % 7) as f32))
                    .collect::<std::collections::BTreeMap<_, _>>(),
                30_522,
            )
            .unwrap(),
            bit_sample(128, 2),
        );
        diesel::insert_into(items::table)
            .values((items::id.eq(1), items::embedding.eq(&hv), items::sparse.eq(&sv), items::bits.eq(&bv)))
            .execute(&mut conn)
            .unwrap();
        let ours: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = items::table
            .select((
                items::embedding.l2_distance(&hq),
                items::embedding.cosine_distance(&hq),
                items::embedding.l1_distance(&hq),
                items::embedding.max_inner_product(&hq),
            ))
            .first(&mut conn)
            .unwrap();
        let theirs: (f64, f64, f64, f64) = items::table
            .select((
                sql::<Double>(&format!("l2_distance(embedding, '{hq}')")),
                sql::<Double>(&format!("cosine_distance(embedding, '{hq}')")),
                sql::<Double>(&format!("l1_distance(embedding, '{hq}')")),
                sql::<Double>(&format!("-inner_product(embedding, '{hq}')")),
            ))
            .first(&mut conn)
            .unwrap();
        assert_eq!(ours, (Some(theirs.0), Some(theirs.1), Some(theirs.2), Some(theirs.3)));
        let ours: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = items::table
            .select((
                items::sparse.l2_distance(&sq),
                items::sparse.cosine_distance(&sq),
                items::sparse.l1_distance(&sq),
                items::sparse.max_inner_product(&sq),
            ))
            .first(&mut conn)
            .unwrap();
        let theirs: (f64, f64, f64, f64) = items::table
            .select((
                sql::<Double>(&format!("l2_distance(sparse, '{sq}')")),
                sql::<Double>(&format!("cosine_distance(sparse, '{sq}')")),
                sql::<Double>(&format!("l1_distance(sparse, '{sq}')")),
                sql::<Double>(&format!("-inner_product(sparse, '{sq}')")),
            ))
            .first(&mut conn)
            .unwrap();
        assert_eq!(ours, (Some(theirs.0), Some(theirs.1), Some(theirs.2), Some(theirs.3)));
        let ours: (Option<f64>, Option<f64>) = items::table
            .select((items::bits.hamming_distance(&bq), items::bits.jaccard_distance(&bq)))
            .first(&mut conn)
            .unwrap();
        let theirs: (f64, f64) = items::table
            .select((
                sql::<Double>(&format!("hamming_distance(bits, B'{bq}')")),
                sql::<Double>(&format!("jaccard_distance(bits, B'{bq}')")),
            ))
            .first(&mut conn)
            .unwrap();
        assert_eq!(ours, (Some(theirs.0), Some(theirs.1)));
        let expected_hamming = bv.iter().zip(bq.iter()).filter(|(x, y)| x != y).count() as f64;
        assert_eq!(theirs.0, expected_hamming);
    }

    #[test]
    fn a_nearest_neighbour_search_over_bit_codes() {
        let mut conn = conn_with_items();
        for (id, code) in
            [(1, Some("1111000011110000")), (2, Some("1111000011110001")), (3, Some("0000111100001111")), (4, None)]
        {
            diesel::insert_into(items::table)
                .values((items::id.eq(id), items::bits.eq(code.map(b))))
                .execute(&mut conn)
                .unwrap();
        }
        let q = b("1111000011110011");
        let nearest: Vec<(i32, Option<f64>)> = items::table
            .select((items::id, items::bits.hamming_distance(&q)))
            .order(items::bits.hamming_distance(&q))
            .load(&mut conn)
            .unwrap();
        assert_eq!(nearest, [(2, Some(1.0)), (1, Some(2.0)), (3, Some(14.0)), (4, None)], "NULL sorts last here");
        let none: Option<f64> = items::table
            .filter(items::id.eq(1))
            .select(items::bits.jaccard_distance(None::<Bit>.into_sql::<Nullable<sql_types::Bit>>()))
            .first(&mut conn)
            .unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn pgvector_refuses_bit_strings_of_different_lengths() {
        let mut conn = crate::conn();
        let err = diesel::select(b("0101").into_sql::<sql_types::Bit>().hamming_distance(b("01010")))
            .get_result::<f64>(&mut conn)
            .unwrap_err();
        assert!(err.to_string().contains("different bit lengths 4 and 5"), "{err}");
    }
}
