//! diesel-vector's main job on embedded SQLite: migrate, store fragments with embeddings, and find the
//! fragments nearest to a query. No server, no network.
//!
//! ```text
//! cargo run --example quickstart                          # SQLite file quickstart.db
//! cargo run --example quickstart -- "how do I store vectors"
//! PG_DATABASE_URL=postgres://... cargo run --example quickstart --features pg   # the same on PostgreSQL
//! ```
//!
//! Embeddings come from a toy, deterministic embedder (hashed word and word-pair features in 1536
//! dimensions), so texts that share words really are near each other.

use diesel::prelude::*;
use diesel_vector::database::DatabaseConnection;
use diesel_vector::models::{NewFragment, NewFragmentEmbedding};
use diesel_vector::schema::fragments;
use diesel_vector::search::Search;
use diesel_vector::Vector;

const DIMS: usize = 1536;
const PROVIDER: &str = "example";
const MODEL: &str = "hashed-words-1536";

const FRAGMENTS: &[&str] = &[
    "PostgreSQL stores vectors with the pgvector extension",
    "pgvector adds a vector type and ivfflat and hnsw indexes to PostgreSQL",
    "SQLite keeps the whole database in a single file",
    "sqlite-vec adds vector search to SQLite with the vec0 virtual table",
    "Diesel is a safe extensible ORM and query builder for Rust",
    "Diesel migrations keep the database schema in step with the code",
    "Rust has no garbage collector and guarantees memory safety",
    "Cargo builds Rust crates and downloads their dependencies",
    "An embedding maps a text to a point in a high-dimensional space",
    "Cosine distance compares the directions of two vectors",
    "Nearest neighbour search finds the stored vectors closest to a query",
    "An index trades a little recall for much faster vector search",
    "Bread rises because yeast produces carbon dioxide",
    "Sourdough starter is a culture of wild yeast and bacteria",
    "Knead the dough until it is smooth and elastic",
    "Bake the loaf in a hot oven until the crust is brown",
    "The cat sat on the warm windowsill all afternoon",
    "Dogs are loyal companions and love long walks",
    "A parrot can learn to repeat many words",
    "Goldfish need clean water and a large tank",
    "The Tour de France is a cycling race across France",
    "A marathon is a running race of about forty-two kilometres",
    "Chess players plan many moves ahead",
    "Football is played by two teams of eleven players",
    "Mount Everest is the highest mountain on Earth",
    "The Amazon river carries more water than any other river",
    "The Sahara is the largest hot desert in the world",
    "Glaciers carve deep valleys into mountains",
    "Photosynthesis turns sunlight water and carbon dioxide into sugar",
    "The heart pumps blood through the body",
    "Vaccines train the immune system to recognise a virus",
    "Sleep helps the brain store new memories",
];

/// Hashes each word and each pair of neighbouring words into a few signed dimensions, then normalises.
fn embed(text: &str) -> Result<Vector, diesel_vector::VectorError> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).map(str::to_lowercase).collect();
    let mut values = vec![0f32; DIMS];
    let mut add = |feature: &str, weight: f32| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in feature.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        for k in 0..3 {
            let slot = ((h >> (k * 20)) % DIMS as u64) as usize;
            values[slot] += if (h >> (60 + k)) & 1 == 0 { weight } else { -weight };
        }
    };
    for w in &words {
        add(w, 1.0);
    }
    for pair in words.windows(2) {
        add(&format!("{} {}", pair[0], pair[1]), 0.5);
    }
    let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|x| *x /= norm);
    } else {
        values[0] = 1.0; // a text with no words still gets a valid, non-zero vector
    }
    Vector::new(values)
}

fn content_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

macro_rules! store_and_search {
    ($conn:expr, $query:expr) => {{
        let conn = $conn;
        for text in FRAGMENTS {
            let existing: Option<i64> =
                fragments::table.filter(fragments::content.eq(text)).select(fragments::id).first(conn).optional()?;
            let id = match existing {
                Some(id) => id,
                None => diesel::insert_into(fragments::table)
                    .values(NewFragment { content: text })
                    .returning(fragments::id)
                    .get_result(conn)?,
            };
            let (vector, hash) = (embed(text)?, content_hash(text));
            NewFragmentEmbedding::new(id, PROVIDER, MODEL, &vector, &hash).upsert(conn)?;
        }
        let query = embed($query)?;
        let hits = Search::new(PROVIDER, MODEL, &query).k(5).run(conn)?;
        let ids: Vec<i64> = hits.iter().map(|h| h.fragment_id).collect();
        let texts: Vec<(i64, String)> = fragments::table
            .filter(fragments::id.eq_any(&ids))
            .select((fragments::id, fragments::content))
            .load(conn)?;
        println!("nearest to {:?}:", $query);
        for hit in &hits {
            let text = texts.iter().find(|(id, _)| *id == hit.fragment_id).map_or("", |(_, t)| t.as_str());
            println!("  {:.3}  {text}", hit.cosine_similarity());
        }
    }};
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let query = std::env::args().nth(1).unwrap_or_else(|| "vector search in SQLite".to_owned());
    let url = std::env::var("PG_DATABASE_URL").unwrap_or_else(|_| "quickstart.db".to_owned());
    let mut conn = DatabaseConnection::establish(&url)?;
    let applied = conn.run_pending_migrations()?;
    println!("{url}: {} migration(s) applied, {} fragments", applied.len(), FRAGMENTS.len());
    match &mut conn {
        #[cfg(feature = "pg")]
        DatabaseConnection::Pg(pg) => store_and_search!(pg, &query),
        DatabaseConnection::Sqlite(lite) => store_and_search!(lite, &query),
        #[allow(unreachable_patterns)]
        _ => return Err("this build does not support that database".into()),
    }
    Ok(())
}
