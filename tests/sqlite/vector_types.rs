//! `HalfVector`, `SparseVector` and `Bit` on real SQLite databases, with sqlite-vec and without: an
//! `items` table with one column of each, the documented BLOB layouts, bad input as typed errors (and
//! nothing written), sqlite-vec reading the crate's bit BLOBs, and the distance DSL.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{Binary, Double, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel_vector::codec::SqliteBlobShape;
use diesel_vector::{
    sql_types, sqlite, Bit, HalfVector, SparseVector, VectorError, VectorExpressionMethods, VectorKind,
};

use crate::common::types::{assert_half_bit_exact, assert_sparse_bit_exact, bit_sample, half_sample, sparse_sample};
use crate::dsl::conn_without_sqlite_vec;

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

const CREATE_ITEMS: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, embedding BLOB, sparse BLOB, bits BLOB)";

fn conn_with_items() -> SqliteConnection {
    let mut conn = crate::conn();
    conn.batch_execute(CREATE_ITEMS).unwrap();
    conn
}

/// Every SQLite set-up the DSL must run on, each with an `items` table: without sqlite-vec, and with it
/// when it is compiled in.
fn flavours() -> Vec<(&'static str, SqliteConnection)> {
    let mut flavours = vec![("no extension", conn_without_sqlite_vec())];
    if sqlite::SQLITE_VEC_COMPILED_IN {
        flavours.push(("sqlite-vec", crate::conn()));
    }
    for (_, conn) in &mut flavours {
        conn.batch_execute(CREATE_ITEMS).unwrap();
    }
    flavours
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
    for len in [8, 16, 1536, 64_000] {
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
fn stored_blobs_have_the_documented_layouts_and_shapes() {
    let mut conn = conn_with_items();
    let row = (h(&[1.0, -2.0, 0.5]), s("{1:1.5,3:2}/5"), b("0101000010000001"));
    diesel::insert_into(items::table)
        .values((items::id.eq(1), items::embedding.eq(&row.0), items::sparse.eq(&row.1), items::bits.eq(&row.2)))
        .execute(&mut conn)
        .unwrap();
    let hex: (String, String, String) = items::table
        .select((sql::<Text>("hex(embedding)"), sql::<Text>("hex(sparse)"), sql::<Text>("hex(bits)")))
        .first(&mut conn)
        .unwrap();
    // Little-endian f16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800.
    assert_eq!(hex.0, "003C00C00038");
    // dims 5, indices 0 and 2, values 1.5 and 2.0, all little-endian.
    assert_eq!(hex.1, "05000000".to_owned() + "0000000002000000" + "0000C03F00000040");
    // The packed bits, most significant first, as PostgreSQL sends them.
    assert_eq!(hex.2, "5081");
    let blobs: (Vec<u8>, Vec<u8>, Vec<u8>) = items::table
        .select((sql::<Binary>("embedding"), sql::<Binary>("sparse"), sql::<Binary>("bits")))
        .first(&mut conn)
        .unwrap();
    assert!(VectorKind::HalfVector.sqlite_blob_shape(3).unwrap().matches(&blobs.0));
    assert!(VectorKind::SparseVector.sqlite_blob_shape(5).unwrap().matches(&blobs.1));
    assert!(VectorKind::Bit.sqlite_blob_shape(16).unwrap().matches(&blobs.2));
    assert!(!VectorKind::HalfVector.sqlite_blob_shape(4).unwrap().matches(&blobs.0));
}

#[test]
fn a_check_written_from_the_blob_shape_keeps_other_dimensions_out() {
    let mut conn = crate::conn();
    let SqliteBlobShape::Prefixed { prefix, stride, max_count } =
        VectorKind::SparseVector.sqlite_blob_shape(5).unwrap()
    else {
        panic!("a sparsevec BLOB has a prefix");
    };
    let prefix_hex: String = prefix.iter().map(|b| format!("{b:02X}")).collect();
    let half = VectorKind::HalfVector.sqlite_blob_shape(3).unwrap().len_range().0;
    conn.batch_execute(&format!(
        "CREATE TABLE items (id INTEGER PRIMARY KEY,
             embedding BLOB CHECK (typeof(embedding) = 'blob' AND length(embedding) = {half}),
             sparse BLOB CHECK (substr(sparse, 1, {p}) = x'{prefix_hex}' AND (length(sparse) - {p}) % {stride} = 0
                                AND length(sparse) <= {max}),
             bits BLOB)",
        p = prefix.len(),
        max = prefix.len() + stride * max_count,
    ))
    .unwrap();
    diesel::insert_into(items::table)
        .values((items::id.eq(1), items::embedding.eq(h(&[1.0, 2.0, 3.0])), items::sparse.eq(s("{5:1}/5"))))
        .execute(&mut conn)
        .unwrap();
    for bad in [
        diesel::insert_into(items::table)
            .values((items::id.eq(2), items::embedding.eq(h(&[1.0; 4]))))
            .execute(&mut conn),
        diesel::insert_into(items::table).values((items::id.eq(2), items::sparse.eq(s("{}/6")))).execute(&mut conn),
    ] {
        assert!(bad.unwrap_err().to_string().contains("CHECK constraint failed"));
    }
}

/// Bad input is a typed error naming the cause, and nothing is written.
mod bad_input {
    use super::*;

    fn read<T, ST>(expr: &str) -> VectorError
    where
        ST: diesel::sql_types::SingleValue + diesel::sql_types::SqlType + 'static,
        Sqlite: diesel::sql_types::HasSqlType<ST>,
        T: diesel::deserialize::FromSqlRow<ST, Sqlite> + 'static,
    {
        let mut conn = crate::conn();
        vector_error(diesel::select(sql::<ST>(expr)).get_result::<T>(&mut conn).map(|_| ()).unwrap_err())
    }

    #[test]
    fn values_not_stored_as_blobs_are_refused() {
        for (expr, class) in [("'[1,2]'", "TEXT"), ("1.5", "REAL"), ("7", "INTEGER")] {
            assert_eq!(
                read::<HalfVector, sql_types::HalfVector>(expr),
                VectorError::NotStoredAsBlob { kind: VectorKind::HalfVector, storage_class: class }
            );
            assert_eq!(
                read::<SparseVector, sql_types::SparseVector>(expr),
                VectorError::NotStoredAsBlob { kind: VectorKind::SparseVector, storage_class: class }
            );
            assert_eq!(
                read::<Bit, sql_types::Bit>(expr),
                VectorError::NotStoredAsBlob { kind: VectorKind::Bit, storage_class: class }
            );
        }
        assert_eq!(
            read::<HalfVector, sql_types::HalfVector>("'{1:1}/2'").to_string(),
            "expected a halfvec BLOB but SQLite holds a TEXT value: vectors are stored as BLOBs"
        );
    }

    #[test]
    fn blobs_of_the_wrong_length_or_contents_are_refused() {
        let half = |e| read::<HalfVector, sql_types::HalfVector>(e);
        let sparse = |e| read::<SparseVector, sql_types::SparseVector>(e);
        assert_eq!(half("x'003c00'"), VectorError::InvalidBlob { kind: VectorKind::HalfVector, blob_size: 3 });
        assert_eq!(half("x''"), VectorError::Empty);
        assert_eq!(half("x'003c007c'"), VectorError::NotFinite { index: 1, value: f32::INFINITY });
        assert_eq!(
            sparse("x'050000000000'"),
            VectorError::InvalidBlob { kind: VectorKind::SparseVector, blob_size: 6 }
        );
        // SQLite's `||` makes TEXT, which is refused as such...
        assert_eq!(
            sparse("x'050000000300000001000000' || x'0000803f0000803f'"),
            VectorError::NotStoredAsBlob { kind: VectorKind::SparseVector, storage_class: "TEXT" }
        );
        // ...and the same bytes as one BLOB are checked.
        assert_eq!(
            sparse("x'0500000003000000010000000000803f0000803f'"),
            VectorError::SparseIndicesNotAscending { position: 1, index: 1, previous: 3 }
        );
        assert_eq!(
            sparse("x'05000000050000000000803f'"),
            VectorError::SparseIndexOutOfRange { position: 0, index: 5, dims: 5 }
        );
        assert_eq!(read::<Bit, sql_types::Bit>("x''"), VectorError::Empty);
    }

    #[test]
    fn a_bit_string_that_is_not_whole_bytes_is_refused_and_nothing_is_written() {
        let mut conn = conn_with_items();
        let err = diesel::insert_into(items::table)
            .values(&vec![
                (items::id.eq(1), items::bits.eq(b("11111111"))),
                (items::id.eq(2), items::bits.eq(b("101010101"))),
            ])
            .execute(&mut conn)
            .unwrap_err();
        assert_eq!(vector_error(err), VectorError::BitLengthNotWholeBytes { bits: 9 });
        assert_eq!(items::table.count().get_result::<i64>(&mut conn).unwrap(), 0, "the batch wrote nothing");
    }
}

/// sqlite-vec reads the crate's bit BLOBs.
#[cfg(feature = "sqlite-vec")]
mod sqlite_vec_interop {
    use super::*;
    use diesel::sql_types::Integer;

    #[test]
    fn vec_distance_hamming_reads_the_crates_bit_blobs() {
        let mut conn = conn_with_items();
        let (stored, q) = (bit_sample(1536, 7), bit_sample(1536, 8));
        diesel::insert_into(items::table)
            .values((items::id.eq(1), items::bits.eq(&stored)))
            .execute(&mut conn)
            .unwrap();
        let (distance, len): (f64, i32) = items::table
            .select((
                sql::<Double>("vec_distance_hamming(vec_bit(bits), vec_bit(").bind::<sql_types::Bit, _>(&q).sql("))"),
                sql::<Integer>("vec_length(vec_bit(bits))"),
            ))
            .first(&mut conn)
            .unwrap();
        let differing = stored.iter().zip(q.iter()).filter(|(x, y)| x != y).count();
        assert_eq!((distance, len), (differing as f64, 1536));
    }

    #[test]
    fn vec_quantize_binary_output_loads_as_bit_with_sqlite_vecs_bit_order() {
        let mut conn = crate::conn();
        let values = [1.0, -2.0, 3.0, 0.0, 0.5, -0.1, 7.0, 8.0];
        let literal = diesel_vector::Vector::new(values.to_vec()).unwrap().to_string();
        let quantized: Bit =
            diesel::select(sql::<sql_types::Bit>(&format!("vec_quantize_binary(vec_f32('{literal}'))")))
                .get_result(&mut conn)
                .unwrap();
        // sqlite-vec numbers bits from the least significant; pgvector's `binary_quantize` (and
        // `Bit::new`) from the most: each byte reversed, the Hamming distances the same.
        let ours = Bit::new(&values.map(|x| x > 0.0));
        assert_eq!(quantized.as_bytes(), [ours.as_bytes()[0].reverse_bits()]);
    }
}

/// The distance DSL on each type, with sqlite-vec and without.
mod dsl {
    use super::*;

    fn sql_of(query: impl QueryFragment<Sqlite>) -> String {
        diesel::debug_query::<Sqlite, _>(&query).to_string().split(" -- binds:").next().unwrap().to_owned()
    }

    #[test]
    fn each_metric_renders_its_function() {
        let (q, sq, bq) = (h(&[1.0, 2.0, 3.0]), s("{1:1}/5"), b("01010101"));
        let select = |expr: &str| format!("SELECT {expr} FROM `items`");
        let guard = |col: &str, call: &str| format!("CASE WHEN `items`.`{col}` IS NOT NULL THEN {call} END");
        assert_eq!(
            sql_of(items::table.select(items::embedding.l2_distance(&q))),
            select(&guard("embedding", "diesel_vector_halfvec_l2_distance(`items`.`embedding`, ?)"))
        );
        assert_eq!(
            sql_of(items::table.select(items::sparse.max_inner_product(&sq))),
            select(&guard("sparse", "diesel_vector_sparsevec_neg_inner_product(`items`.`sparse`, ?)"))
        );
        assert_eq!(
            sql_of(items::table.select(items::bits.hamming_distance(&bq))),
            select(&guard("bits", "vec_distance_hamming(vec_bit(`items`.`bits`), vec_bit(?))"))
        );
        assert_eq!(
            sql_of(items::table.select(items::bits.assume_not_null().jaccard_distance(&bq))),
            select("diesel_vector_bit_jaccard_distance(`items`.`bits`, ?)")
        );
    }

    /// The six float distances and two bit distances, on every flavour, against an `f64` computation
    /// from the values (bit-exact where the arithmetic is exact).
    #[test]
    fn every_metric_on_every_type_matches_a_reference() {
        let rows = [
            (1, h(&[1.0, 2.0, 3.0]), s("{1:1,3:2}/5"), b("1111000011110000")),
            (2, h(&[-1.0, 0.5, 0.0]), s("{2:-1.5,5:4}/5"), b("0000111100001111")),
            (3, h(&[0.0, 0.0, 0.0]), s("{}/5"), b("1111000011110001")),
        ];
        let (hq, sq, bq) = (h(&[2.0, 0.0, 1.0]), s("{1:3,5:1}/5"), b("1111000011110011"));
        for (flavour, mut conn) in flavours() {
            for (id, e, sp, bits) in &rows {
                diesel::insert_into(items::table)
                    .values((items::id.eq(id), items::embedding.eq(e), items::sparse.eq(sp), items::bits.eq(bits)))
                    .execute(&mut conn)
                    .unwrap();
            }
            type Six = (Option<f64>, Option<f64>, Option<f64>, Option<f64>);
            let halves: Vec<Six> = items::table
                .order(items::id)
                .select((
                    items::embedding.l2_distance(&hq),
                    items::embedding.cosine_distance(&hq),
                    items::embedding.l1_distance(&hq),
                    items::embedding.max_inner_product(&hq),
                ))
                .load(&mut conn)
                .unwrap_or_else(|e| panic!("{flavour}: {e}"));
            let sparse: Vec<Six> = items::table
                .order(items::id)
                .select((
                    items::sparse.l2_distance(&sq),
                    items::sparse.cosine_distance(&sq),
                    items::sparse.l1_distance(&sq),
                    items::sparse.max_inner_product(&sq),
                ))
                .load(&mut conn)
                .unwrap_or_else(|e| panic!("{flavour}: {e}"));
            let bits: Vec<(Option<f64>, Option<f64>)> = items::table
                .order(items::id)
                .select((items::bits.hamming_distance(&bq), items::bits.jaccard_distance(&bq)))
                .load(&mut conn)
                .unwrap_or_else(|e| panic!("{flavour}: {e}"));
            for (i, (_, e, sp, code)) in rows.iter().enumerate() {
                let expected = reference(&e.to_f32_vec(), &hq.to_f32_vec());
                assert_eq!(halves[i], expected, "{flavour}: halfvec row {i}");
                let expected = reference(&sp.to_vec(), &sq.to_vec());
                assert_eq!(sparse[i], expected, "{flavour}: sparsevec row {i}");
                let differ = code.iter().zip(bq.iter()).filter(|(x, y)| x != y).count() as f64;
                let both = code.iter().zip(bq.iter()).filter(|(x, y)| *x && *y).count() as f64;
                let either = code.iter().zip(bq.iter()).filter(|(x, y)| *x || *y).count() as f64;
                assert_eq!(bits[i], (Some(differ), Some(1.0 - both / either)), "{flavour}: bit row {i}");
            }
        }
    }

    /// The metrics of small integral vectors, which every backend computes exactly; `None` for the cosine
    /// distance to a zero vector.
    fn reference(a: &[f32], b: &[f32]) -> (Option<f64>, Option<f64>, Option<f64>, Option<f64>) {
        let pairs = || a.iter().zip(b).map(|(x, y)| (f64::from(*x), f64::from(*y)));
        let dot: f64 = pairs().map(|(x, y)| x * y).sum();
        let norms = pairs().map(|(x, _)| x * x).sum::<f64>() * pairs().map(|(_, y)| y * y).sum::<f64>();
        let cosine = (norms > 0.0).then(|| 1.0 - (dot / norms.sqrt()).clamp(-1.0, 1.0));
        (
            Some(pairs().map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()),
            cosine,
            Some(pairs().map(|(x, y)| (x - y).abs()).sum()),
            Some(-dot),
        )
    }

    #[test]
    fn a_nearest_neighbour_search_over_bit_codes_with_nulls_filtered_out() {
        for (flavour, mut conn) in flavours() {
            for (id, code) in [(1, Some("11110000")), (2, Some("11110001")), (3, Some("00001111")), (4, None)] {
                diesel::insert_into(items::table)
                    .values((items::id.eq(id), items::bits.eq(code.map(b))))
                    .execute(&mut conn)
                    .unwrap();
            }
            let q = b("11110011");
            let nearest: Vec<(i32, Option<f64>)> = items::table
                .select((items::id, items::bits.hamming_distance(&q)))
                .filter(items::bits.is_not_null())
                .order(items::bits.hamming_distance(&q))
                .load(&mut conn)
                .unwrap_or_else(|e| panic!("{flavour}: {e}"));
            assert_eq!(nearest, [(2, Some(1.0)), (1, Some(2.0)), (3, Some(6.0))], "{flavour}");
            let null: Option<f64> =
                items::table.filter(items::id.eq(4)).select(items::bits.jaccard_distance(&q)).first(&mut conn).unwrap();
            assert_eq!(null, None, "{flavour}");
        }
    }

    #[test]
    fn different_dimensions_are_an_error_naming_the_function_and_argument() {
        for (flavour, mut conn) in flavours() {
            let half =
                diesel::select(h(&[1.0, 2.0]).into_sql::<sql_types::HalfVector>().l2_distance(h(&[1.0, 2.0, 3.0])))
                    .get_result::<f64>(&mut conn)
                    .unwrap_err()
                    .to_string();
            assert!(
                half.contains("diesel_vector_halfvec_l2_distance(): argument 2 has 3 dimensions but argument 1 has 2"),
                "{flavour}: {half}"
            );
            let sparse = diesel::select(s("{}/5").into_sql::<sql_types::SparseVector>().cosine_distance(s("{}/6")))
                .get_result::<f64>(&mut conn)
                .unwrap_err()
                .to_string();
            assert!(
                sparse.contains("diesel_vector_sparsevec_cosine_distance(): argument 2 has 6 dimensions"),
                "{flavour}: {sparse}"
            );
            let bits =
                diesel::select(b("11110000").into_sql::<sql_types::Bit>().hamming_distance(b("1111000011110000")))
                    .get_result::<f64>(&mut conn)
                    .unwrap_err()
                    .to_string();
            let expected = match flavour {
                "sqlite-vec" => "Vector dimension mistmatch. First vector has 8 dimensions, while the second has 16",
                _ => "vec_distance_hamming(): argument 2 has 16 dimensions but argument 1 has 8",
            };
            assert!(bits.contains(expected), "{flavour}: {bits}");
        }
    }

    #[test]
    fn the_crates_functions_reject_what_is_not_a_blob_of_their_type() {
        let mut conn = conn_without_sqlite_vec();
        let call = |conn: &mut SqliteConnection, function: &str, args: &str| {
            diesel::select(sql::<Nullable<Double>>(&format!("{function}({args})")))
                .get_result::<Option<f64>>(conn)
                .unwrap_err()
                .to_string()
        };
        let err = call(&mut conn, "diesel_vector_halfvec_l1_distance", "x'003c', '[1]'");
        assert!(err.starts_with("diesel_vector_halfvec_l1_distance(): argument 2: expected a halfvec BLOB"), "{err}");
        let err = call(&mut conn, "diesel_vector_halfvec_l1_distance", "x'003c00', x'003c'");
        assert!(err.contains("argument 1: BLOB of 3 bytes is not a valid halfvec BLOB"), "{err}");
        let err = call(&mut conn, "diesel_vector_sparsevec_l2_distance", "x'0500000001000000', x'05000000'");
        assert!(err.contains("argument 1: BLOB of 8 bytes is not a valid sparsevec BLOB"), "{err}");
        let err = call(&mut conn, "diesel_vector_sparsevec_l2_distance", "x'05000000090000000000803f', x'05000000'");
        assert!(err.contains("argument 1: sparsevec index 9 (non-zero element 0) is out of range"), "{err}");
        let err = call(&mut conn, "diesel_vector_bit_jaccard_distance", "NULL, x'ff'");
        assert!(err.contains("argument 1: expected a bit BLOB but SQLite holds a NULL value"), "{err}");
        let err = call(&mut conn, "vec_distance_hamming", "vec_bit(x''), x'ff'");
        assert!(err.contains("vec_bit(): argument 1: vector is empty"), "{err}");
    }
}

#[test]
fn rows_of_an_integer_key_are_loaded_by_the_ids_a_search_returns() {
    // Trial 7: `items::id.eq_any(search::ids(&hits))` does not compile for an `Integer` key.
    use diesel_vector::index::{Element, IndexSpec, Metric};
    use diesel_vector::search;
    let mut conn = conn_with_items();
    for (id, values) in [(1, [0.0, 1.0]), (2, [1.0, 0.0]), (3, [0.9, 0.1])] {
        diesel::insert_into(items::table)
            .values((items::id.eq(id), items::embedding.eq(Some(h(&values)))))
            .execute(&mut conn)
            .unwrap();
    }
    let spec =
        IndexSpec::builder("items", "embedding", 2).element(Element::HalfVector).metric(Metric::L2).build().unwrap();
    let hits = spec.search(&h(&[1.0, 0.0])).k(2).run(&mut conn).unwrap();
    let rows: Vec<(i32, Option<HalfVector>)> = items::table
        .filter(items::id.eq_any(search::ids_as::<i32>(&hits)))
        .select((items::id, items::embedding))
        .load(&mut conn)
        .unwrap();
    let ranked: Vec<i32> = search::rank(rows, |r| r.0, &hits).into_iter().map(|(r, _)| r.0).collect();
    assert_eq!(ranked, [2, 3]);
}
