//! The same `images` on PostgreSQL and SQLite give the same neighbours, in the same order, on `bit`,
//! `halfvec` and `sparsevec` columns: every metric of each type, with and without an album filter, through
//! the index (PostgreSQL's HNSW) and exactly.

use diesel::connection::SimpleConnection;
use diesel_vector::index::{generate, IndexSpec, Metric, PgIndex, SqliteIndex};
use diesel_vector::search::{self, Hit, SearchTarget, SearchVector, Strategy};

use crate::common::images::{self as fixture, PG_TABLE, SQLITE_TABLE};
use crate::insert_images;

fn run<C: SearchTarget>(
    conn: &mut C,
    spec: &IndexSpec,
    q: SearchVector<'_>,
    album: Option<&str>,
    s: Strategy,
) -> Vec<Hit> {
    let mut search = spec.search(q).k(10).strategy(s);
    if let Some(album) = album {
        search = search.filter_eq("album", album);
    }
    search.run(conn).unwrap()
}

/// Each searchable column with the metrics of its type.
const CASES: [(&str, Metric); 10] = [
    ("phash", Metric::Hamming),
    ("phash", Metric::Jaccard),
    ("clip", Metric::Cosine),
    ("clip", Metric::L2),
    ("clip", Metric::L1),
    ("clip", Metric::InnerProduct),
    ("tags", Metric::Cosine),
    ("tags", Metric::L2),
    ("tags", Metric::L1),
    ("tags", Metric::InnerProduct),
];

#[test]
fn bit_halfvec_and_sparsevec_columns_give_the_same_neighbours_on_both_backends() {
    let photos = fixture::images(400, 51);
    let queries = fixture::queries(51, 400, 3);
    let db = crate::common::pg::FreshDb::create();
    let mut pg = db.conn();
    let mut compared = 0;
    for (column, metric) in CASES {
        let spec = fixture::spec(column, metric, PgIndex::Hnsw);
        pg.batch_execute("DROP TABLE IF EXISTS images; DROP TABLE IF EXISTS __diesel_vector_indexes").unwrap();
        pg.batch_execute(PG_TABLE).unwrap();
        let migration = generate::render(&spec, &generate::Options::default());
        pg.batch_execute(&migration.pg_up).unwrap();
        let mut lite = diesel_vector::sqlite::establish(":memory:").unwrap();
        lite.batch_execute(SQLITE_TABLE).unwrap();
        lite.batch_execute(&migration.sqlite_up).unwrap();
        insert_images!(&mut pg, &photos);
        insert_images!(&mut lite, &photos);
        // Hamming on `bit` also through sqlite-vec's bit[N] vec0, where it is compiled in.
        let mut with_vec0 = (metric == Metric::Hamming && diesel_vector::sqlite::SQLITE_VEC_COMPILED_IN).then(|| {
            let spec = IndexSpec::builder("images", column, spec.dims().into())
                .element(spec.element())
                .partition_by(["album"])
                .sqlite_index(SqliteIndex::VEC0)
                .build()
                .unwrap();
            let mut conn = diesel_vector::sqlite::establish(":memory:").unwrap();
            conn.batch_execute(SQLITE_TABLE).unwrap();
            conn.batch_execute(&generate::render(&spec, &generate::Options::default()).sqlite_up).unwrap();
            insert_images!(&mut conn, &photos);
            (spec, conn)
        });
        pg.batch_execute("ANALYZE images").unwrap();
        for (bits, half, sparse) in &queries {
            let q = match column {
                "phash" => SearchVector::from(bits),
                "clip" => SearchVector::from(half),
                _ => SearchVector::from(sparse),
            };
            for album in [None, Some("travel")] {
                let expected = run(&mut pg, &spec, q, album, Strategy::Exact);
                assert_eq!(expected.len(), 10, "{column} {metric} {album:?}");
                let mut got = vec![
                    ("pg index", run(&mut pg, &spec, q, album, Strategy::Auto)),
                    ("sqlite", run(&mut lite, &spec, q, album, Strategy::Auto)),
                    ("sqlite exact", run(&mut lite, &spec, q, album, Strategy::Exact)),
                ];
                if let Some((vec0_spec, vec0_db)) = &mut with_vec0 {
                    got.push(("sqlite vec0", run(vec0_db, vec0_spec, q, album, Strategy::Auto)));
                }
                for (path, got) in &got {
                    assert_eq!(search::ids(got), search::ids(&expected), "{column} {metric} {album:?} {path}");
                    for (a, b) in got.iter().zip(&expected) {
                        let tolerance = 1e-5 * b.distance.abs().max(1.0);
                        assert!(
                            (a.distance - b.distance).abs() <= tolerance,
                            "{column} {metric} {path}: {a:?} vs {b:?}"
                        );
                    }
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, CASES.len() * 3 * 2);
}
