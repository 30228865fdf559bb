//! An async application on diesel-async: its own `documents` table with a 384-dimension vector index
//! (the migrations in `examples/async_app/`, written by `diesel-vector generate vector-index`), migrated
//! at start-up, written by concurrent tasks and searched with the crate's search (`run_async` on the
//! index its registry records), on PostgreSQL through a deadpool of `AsyncPgConnection`s
//! (tokio-postgres: no libpq) or on SQLite through `SyncConnectionWrapper`.
//!
//! ```text
//! DATABASE_URL=postgres://localhost/app cargo run --example async_app --no-default-features --features async,bundled
//! DATABASE_URL=app.db cargo run --example async_app --no-default-features --features async,bundled
//! ```
//!
//! Built that way, the binary links no libpq (`ldd target/debug/examples/async_app`).

use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_vector::database::BackendKind;
use diesel_vector::index::{registry, IndexSpec};
use diesel_vector::migrations::{self, AsyncMigrationTarget};
use diesel_vector::{search, sqlite, Vector};

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("examples/async_app/migrations_pg");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("examples/async_app/migrations_sqlite");

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::Vector;

    documents (id) {
        id -> BigInt,
        lang -> Text,
        title -> Text,
        embedding -> Nullable<Vector>,
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A stand-in for an embedding model: the same text always gives the same unit vector.
fn embed(text: &str) -> Vector {
    let mut state =
        text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let values: Vec<f32> = (0..384)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
    Vector::new(values.into_iter().map(|x| x / norm).collect()).expect("finite")
}

const TITLES: [(&str, &str); 6] = [
    ("en", "How to tune an HNSW index"),
    ("en", "Diesel and async Rust"),
    ("fr", "Les index vectoriels"),
    ("fr", "Rust asynchrone avec tokio"),
    ("de", "Vektorsuche mit pgvector"),
    ("de", "SQLite im Browser"),
];

/// Inserts one document and returns its id (one row per statement: diesel-async's SQLite wrapper has no
/// multi-row insert). A macro, so that the same code runs on both connection types.
macro_rules! add {
    ($conn:expr, $lang:expr, $title:expr) => {
        diesel::insert_into(documents::table)
            .values((documents::lang.eq($lang), documents::title.eq($title), documents::embedding.eq(embed($title))))
            .returning(documents::id)
            .get_result::<i64>($conn)
            .await
    };
}

/// The three documents in `$lang` nearest to `$text` by the index's metric: the crate's search, then the
/// rows by id with Diesel, in rank order with their distances.
macro_rules! nearest {
    ($conn:expr, $spec:expr, $lang:expr, $text:expr) => {{
        let query = embed($text);
        let hits = $spec.search(&query).k(3).filter_eq("lang", $lang).run_async($conn).await?;
        let rows: Vec<(i64, String)> = documents::table
            .filter(documents::id.eq_any(search::ids(&hits)))
            .select((documents::id, documents::title))
            .load($conn)
            .await?;
        search::rank(rows, |r| r.0, &hits)
    }};
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "async_app.db".to_owned());
    match BackendKind::from_url(&url)? {
        BackendKind::Postgres => postgres(&url).await,
        _ => sqlite(&url).await,
    }
}

async fn postgres(url: &str) -> Result<(), Error> {
    let pool: Pool<AsyncPgConnection> =
        Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url)).max_size(8).build()?;
    let spec = {
        let mut conn = pool.get().await?;
        start_up(&mut *conn, &PG_MIGRATIONS).await?;
        registered(&mut *conn).await?
    };

    // Request handlers, as a web server would run them: each takes a pooled connection.
    let handlers: Vec<_> = TITLES
        .iter()
        .map(|&(lang, title)| {
            let (pool, spec) = (pool.clone(), spec.clone());
            tokio::spawn(async move {
                let mut conn = pool.get().await?;
                let id = add!(&mut conn, lang, title)?;
                let hits = nearest!(&mut *conn, spec, lang, title);
                Ok::<_, Error>((id, title, hits))
            })
        })
        .collect();
    for handler in handlers {
        let (id, title, hits) = handler.await??;
        check(id, title, &hits)?;
    }
    let mut conn = pool.get().await?;
    let status = diesel_vector::pg::status_async(&mut conn, &spec).await?;
    println!("postgresql: {} rows under {} ({:?})", status.rows, status.name, status.method);
    Ok(())
}

async fn sqlite(url: &str) -> Result<(), Error> {
    let mut conn = sqlite::establish_async(diesel_vector::database::sqlite_path(url)).await?;
    start_up(&mut conn, &SQLITE_MIGRATIONS).await?;
    let spec = registered(&mut conn).await?;
    for &(lang, title) in &TITLES {
        let id = add!(&mut conn, lang, title)?;
        // The index follows the writes through its change queue, which the search applies first (on
        // tokio's blocking pool, as every query through the wrapper).
        let hits = nearest!(&mut conn, spec, lang, title);
        check(id, title, &hits)?;
    }
    // A search applies the queue when it answers from sqlite-vec's vec0; other structures (and a build
    // without sqlite-vec) are brought up to date here.
    sqlite::sync_async(&mut conn, &spec).await?;
    let status = sqlite::status_async(&mut conn, &spec).await?;
    println!(
        "sqlite: {} rows with a vector, index {} up to date: {}",
        status.embedded_rows,
        status.index,
        status.is_up_to_date()
    );
    Ok(())
}

/// Start-up: the application's migrations, with the runner's lock, checks and adoption.
async fn start_up<C: AsyncMigrationTarget>(conn: &mut C, source: &EmbeddedMigrations) -> Result<(), Error>
where
    EmbeddedMigrations: diesel::migration::MigrationSource<C::Db>,
{
    for migration in migrations::run_pending_migrations_from_async(conn, source).await? {
        println!("migration {} {:?}", migration.name, migration.outcome);
    }
    Ok(())
}

/// The index the generated migration registered.
async fn registered<C: AsyncMigrationTarget>(conn: &mut C) -> Result<IndexSpec, Error> {
    let specs = registry::load_async(conn).await?;
    Ok(registry::find(&specs, "documents", Some("embedding"))?.clone())
}

/// A document's title finds it (or a copy of it, written by an earlier start) first, at distance 0.
fn check(id: i64, title: &str, hits: &[((i64, String), f64)]) -> Result<(), Error> {
    match hits.first() {
        Some(((first, found), distance)) if found == title && distance.abs() < 1e-6 => {
            println!("document {id} ({title}): nearest is document {first}, of {} in its language", hits.len());
            Ok(())
        }
        _ => Err(format!("document {id} ({title}) is not its own nearest neighbour: {hits:?}").into()),
    }
}
