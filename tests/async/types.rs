//! The four vector types and their distances through both async connections: binds, results, and the
//! types' OIDs looked up by name on `AsyncPgConnection` as on `PgConnection`.

use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use diesel_vector::{sql_types, Bit, HalfVector, SparseVector, Vector, VectorExpressionMethods};

fn values() -> (Vector, HalfVector, SparseVector, Bit) {
    (
        crate::common::sample(1536),
        HalfVector::from_f32_slice(&[1.5, -2.0, 0.25, 65504.0]).unwrap(),
        "{1:1.5,7:-2,30522:0.25}/30522".parse().unwrap(),
        "1011001110000001".parse().unwrap(),
    )
}

/// Selects each value back through a bind, and a distance of each type, on `$conn`.
macro_rules! round_trip {
    ($conn:expr) => {{
        let (v, h, s, b) = values();
        let back: (Vector, HalfVector, SparseVector, Bit) = diesel::select((
            v.clone().into_sql::<sql_types::Vector>(),
            h.clone().into_sql::<sql_types::HalfVector>(),
            s.clone().into_sql::<sql_types::SparseVector>(),
            b.clone().into_sql::<sql_types::Bit>(),
        ))
        .get_result($conn)
        .await
        .unwrap();
        crate::common::assert_bit_exact(&back.0, &v);
        assert_eq!((&back.1, &back.2, &back.3), (&h, &s, &b));
        let other: Bit = "0011001100000001".parse().unwrap();
        let distances: (f64, f64, f64) = diesel::select((
            v.clone().into_sql::<sql_types::Vector>().l2_distance(&v),
            h.clone().into_sql::<sql_types::HalfVector>().cosine_distance(&h),
            b.clone().into_sql::<sql_types::Bit>().hamming_distance(&other),
        ))
        .get_result($conn)
        .await
        .unwrap();
        assert_eq!(distances.0, 0.0);
        assert!(distances.1.abs() < 1e-6, "{distances:?}");
        assert_eq!(distances.2, 2.0);
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_through_async_pg_connection() {
    let db = crate::pg::FreshDb::create().await;
    let mut conn = db.conn().await;
    conn.batch_execute("CREATE EXTENSION vector").await.unwrap();
    round_trip!(&mut conn);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_through_the_sqlite_wrapper() {
    let mut conn = diesel_vector::sqlite::establish_async(":memory:").await.unwrap();
    round_trip!(&mut conn);
}
