//! Nearest-neighbour search on PostgreSQL: exact, ivfflat, filters, upsert.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_vector::models::NewFragmentEmbedding;
use diesel_vector::pg::{ivfflat_status, rebuild_ivfflat_index, recommended_probes};
use diesel_vector::schema::fragment_embeddings;
use diesel_vector::search::{Metric, Neighbor, Search, SearchError, Strategy};
use diesel_vector::{migrations, Vector};

use crate::common::pg::load;
use crate::common::{clustered, telemetry};
use crate::FreshDb;

fn ids(hits: &[Neighbor]) -> Vec<i64> {
    hits.iter().map(|h| h.fragment_id).collect()
}

#[test]
fn ivfflat_and_exact_search_find_the_same_neighbours_once_the_index_fits_the_data() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let vectors = clustered(11, 2000, 1536, 10);
    load(&mut conn, &vectors);
    let status = ivfflat_status(&mut conn).unwrap().unwrap();
    assert_eq!((status.lists, status.rows), (100, 2000));
    assert!(status.needs_rebuild(), "built on an empty table with 100 lists");
    assert_eq!(rebuild_ivfflat_index(&mut conn).unwrap(), 2);
    assert!(!ivfflat_status(&mut conn).unwrap().unwrap().needs_rebuild());

    for q in &clustered(12, 5, 1536, 10) {
        let (indexed, events) = telemetry::capture(|| Search::new("p", "m", q).k(10).run(&mut conn).unwrap());
        let exact = Search::new("p", "m", q).k(10).strategy(Strategy::Exact).run(&mut conn).unwrap();
        assert_eq!(ids(&indexed), ids(&exact));
        assert!(events.iter().any(|e| e.contains("backend=postgresql") && e.contains("path=ivfflat")), "{events:#?}");
    }
}

#[test]
fn a_rebuild_raises_maintenance_work_mem_for_itself_when_pgvector_asks_for_more() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    load(&mut conn, &clustered(13, 300, 1536, 3));
    conn.batch_execute("SET maintenance_work_mem = '1MB'").unwrap();
    let direct = conn.batch_execute(
        "CREATE INDEX too_small ON fragment_embeddings USING ivfflat (embedding vector_cosine_ops) WITH (lists = 1)",
    );
    assert!(direct.unwrap_err().to_string().contains("memory required is"), "1 MB is too little for pgvector");

    let (lists, events) = telemetry::capture(|| rebuild_ivfflat_index(&mut conn).unwrap());

    assert_eq!(lists, 1);
    assert_eq!(ivfflat_status(&mut conn).unwrap().unwrap().lists, 1);
    assert!(events.iter().any(|e| e.contains("maintenance_work_mem raised")), "{events:#?}");
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        maintenance_work_mem: String,
    }
    let after: Setting = diesel::sql_query("SHOW maintenance_work_mem").get_result(&mut conn).unwrap();
    assert_eq!(after.maintenance_work_mem, "1MB", "the session's own setting is back after the rebuild");
}

#[test]
fn a_filtered_search_never_loses_rows() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let vectors = clustered(21, 1500, 1536, 15);
    load(&mut conn, &vectors);
    rebuild_ivfflat_index(&mut conn).unwrap();
    // A filter that only a few far-away rows pass: one probed list alone would return none of them.
    let wanted: Vec<i64> = (1..=1500).filter(|i| i % 15 == 7).take(12).collect();
    let hits = Search::new("p", "m", &vectors[0]).k(10).probes(1).fragment_ids(&wanted).run(&mut conn).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| wanted.contains(&h.fragment_id)));
    let exact = Search::new("p", "m", &vectors[0])
        .k(10)
        .fragment_ids(&wanted)
        .strategy(Strategy::Exact)
        .run(&mut conn)
        .unwrap();
    assert_eq!(ids(&hits), ids(&exact));
}

#[test]
fn every_metric_ranks_a_vector_first_against_itself() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let vectors = clustered(5, 50, 1536, 5);
    load(&mut conn, &vectors);
    for metric in [Metric::Cosine, Metric::L2, Metric::L1, Metric::InnerProduct] {
        let hits = Search::new("p", "m", &vectors[7]).k(3).metric(metric).run(&mut conn).unwrap();
        assert_eq!(hits.len(), 3, "{metric:?}");
        if metric != Metric::InnerProduct {
            assert_eq!(hits[0].fragment_id, 8, "{metric:?}");
        }
        assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
    }
}

#[test]
fn upsert_updates_the_existing_row() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let vectors = clustered(9, 3, 1536, 3);
    load(&mut conn, &vectors);
    let id = NewFragmentEmbedding::new(1, "p", "m", &vectors[2], "h").upsert(&mut conn).unwrap();
    assert_eq!(id, 1);
    let count: i64 = fragment_embeddings::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 3);
    let stored: Option<Vector> =
        fragment_embeddings::table.find(1).select(fragment_embeddings::embedding).first(&mut conn).unwrap();
    assert_eq!(stored.as_ref(), Some(&vectors[2]));
    let other = NewFragmentEmbedding::new(1, "p", "m", &vectors[2], "new hash").upsert(&mut conn).unwrap();
    assert_ne!(other, 1, "a new content hash is a new row");
    let count: i64 = fragment_embeddings::table.count().get_result(&mut conn).unwrap();
    assert_eq!(count, 4);
}

#[test]
fn invalid_queries_are_clear_errors() {
    let mut conn = crate::conn();
    let zero = Vector::new(vec![0.0; 1536]).unwrap();
    assert!(matches!(Search::new("p", "m", &zero).run(&mut conn), Err(SearchError::ZeroQuery)));
    let short = Vector::new(vec![1.0; 3]).unwrap();
    assert!(matches!(Search::new("p", "m", &short).run(&mut conn), Err(SearchError::InvalidQuery(_))));
}

#[test]
fn stored_zero_vectors_are_nobodys_cosine_neighbour() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let zero = Vector::new(vec![0.0; 1536]).unwrap();
    let vectors = clustered(4, 3, 1536, 1);
    // The zero vectors first, so that they hold the lowest ids.
    let all: Vec<Vector> = std::iter::repeat_n(zero, 4).chain(vectors.iter().cloned()).collect();
    load(&mut conn, &all);
    for strategy in [Strategy::Auto, Strategy::Exact] {
        let hits = Search::new("p", "m", &vectors[0]).k(10).strategy(strategy).run(&mut conn).unwrap();
        let mut found = ids(&hits);
        assert_eq!(found[0], 5, "{strategy:?}");
        found.sort_unstable();
        assert_eq!(found, [5, 6, 7], "{strategy:?}: only the non-zero vectors");
        assert!(hits.iter().all(|h| !h.distance.is_nan()));
    }
    let l2 = Search::new("p", "m", &vectors[0]).k(10).metric(Metric::L2).run(&mut conn).unwrap();
    assert_eq!(l2.len(), 7, "zero vectors have an L2 distance");
}

#[derive(QueryableByName)]
struct Probes {
    #[diesel(sql_type = Text)]
    probes: String,
}

/// `ivfflat.probes` as a search left it in the surrounding transaction.
fn probes_after(conn: &mut PgConnection, search: Search<'_>) -> String {
    conn.transaction(|conn| {
        search.run(conn).unwrap();
        diesel::sql_query("SELECT current_setting('ivfflat.probes') AS probes").get_result::<Probes>(conn)
    })
    .unwrap()
    .probes
}

#[test]
fn the_default_probes_follow_the_index_lists() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    migrations::run_pending_migrations(&mut conn).unwrap();
    let vectors = clustered(3, 40, 1536, 4);
    load(&mut conn, &vectors);
    // 150 lists: sqrt(lists) = 13 probes is above the floor of 10.
    for lists in [1, 4, 17, 100, 150] {
        conn.batch_execute(&format!(
            "DROP INDEX fragment_embeddings_cosine_idx; CREATE INDEX fragment_embeddings_cosine_idx \
             ON fragment_embeddings USING ivfflat (embedding vector_cosine_ops) WITH (lists = {lists})"
        ))
        .unwrap();
        let q = &vectors[1];
        assert_eq!(probes_after(&mut conn, Search::new("p", "m", q)), recommended_probes(lists).to_string());
        assert_eq!(probes_after(&mut conn, Search::new("p", "m", q).probes(3)), "3", "explicit probes win");
    }
    // Without the index, the session's own setting is left as it is.
    conn.batch_execute("DROP INDEX fragment_embeddings_cosine_idx; SET ivfflat.probes = 7").unwrap();
    assert_eq!(probes_after(&mut conn, Search::new("p", "m", &vectors[1])), "7");
}
