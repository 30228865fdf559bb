//! PostgreSQL helpers: a database per test.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// A connection to the shared test database (`PG_DATABASE_URL`) where pgvector exists. The extension is
/// created once per test process: `CREATE EXTENSION IF NOT EXISTS` run by parallel tests can race and
/// fail with a duplicate key in `pg_extension`.
pub fn shared_conn_with_pgvector() -> PgConnection {
    static EXTENSION: std::sync::Once = std::sync::Once::new();
    let url = super::pg_url();
    EXTENSION.call_once(|| {
        let mut conn = PgConnection::establish(&url).unwrap();
        conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").unwrap();
    });
    PgConnection::establish(&url).unwrap()
}

/// A database of its own for tests that migrate (outside any test transaction); dropped at the end.
pub struct FreshDb {
    pub url: String,
    name: String,
}

impl FreshDb {
    pub fn create() -> Self {
        Self::owned_by(None)
    }

    /// A database owned by `owner` (a role name), or by the connecting superuser.
    pub fn owned_by(owner: Option<&str>) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("dv_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::establish(&super::pg_url()).unwrap();
        let owner = owner.map(|o| format!(" OWNER {o}")).unwrap_or_default();
        admin.batch_execute(&format!("CREATE DATABASE {name}{owner}")).unwrap();
        Self { url: with_database(&super::pg_url(), &name), name }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&super::pg_url()) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    match query {
        Some(q) => format!("{scheme}://{host}/{database}?{q}"),
        None => format!("{scheme}://{host}/{database}"),
    }
}

/// `url` connecting as `user` with `password`.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

/// `vectors` stored as embeddings of ("p", "m") for fragments 1..=n (fresh table), bulk-inserted.
pub fn load(conn: &mut PgConnection, vectors: &[diesel_vector::Vector]) {
    use diesel_vector::models::{insert_embeddings, NewFragment, NewFragmentEmbedding};
    use diesel_vector::schema::fragments;
    conn.transaction(|conn| {
        for chunk in vectors.chunks(1000) {
            let contents: Vec<String> = (0..chunk.len()).map(|i| format!("fragment {i}")).collect();
            let new: Vec<NewFragment> = contents.iter().map(|c| NewFragment { content: c }).collect();
            let ids: Vec<i64> =
                diesel::insert_into(fragments::table).values(&new).returning(fragments::id).get_results(conn)?;
            let rows: Vec<NewFragmentEmbedding> =
                ids.iter().zip(chunk).map(|(id, v)| NewFragmentEmbedding::new(*id, "p", "m", v, "h")).collect();
            insert_embeddings(conn, &rows)?;
        }
        QueryResult::Ok(())
    })
    .unwrap();
}

/// Recall of pgvector's approximate indexes over a test's searches. Their graphs are built with random
/// levels (PostgreSQL's generator, which cannot be seeded), so a single search now and then misses several
/// of its k nearest (the inner product, not a metric, most) while the index as a whole recalls well: the
/// bar is on the whole, and every search must still return its k rows.
#[derive(Default)]
pub struct Recall {
    found: usize,
    wanted: usize,
    misses: Vec<String>,
}

impl Recall {
    /// Adds one search: `found` returned by the index, `exact` the exact answer.
    pub fn add(&mut self, label: impl std::fmt::Display, found: &[i64], exact: &[i64]) {
        assert_eq!(found.len(), exact.len(), "{label}: {found:?} vs {exact:?}");
        let recalled = found.iter().filter(|id| exact.contains(id)).count();
        if recalled < exact.len() {
            self.misses.push(format!("{label}: {recalled} of {}", exact.len()));
        }
        self.found += recalled;
        self.wanted += exact.len();
    }

    /// The share of the exact answers the searches recalled, together.
    pub fn value(&self) -> f64 {
        self.found as f64 / self.wanted.max(1) as f64
    }

    /// Asserts that the searches recalled at least `bar` of their exact answers, together.
    pub fn assert_at_least(&self, bar: f64) {
        let recall = self.value();
        assert!(recall >= bar, "recall {recall:.3} < {bar} over {} rows; misses: {:?}", self.wanted, self.misses);
    }
}
