//! A photo library of the application's own for searches on pgvector's other types: `images` with a
//! 256-bit perceptual hash (`bit(256)`), a 384-dim image embedding stored as `halfvec(384)` and the
//! photo's tags as a SPLADE-like `sparsevec(30000)`, each searchable, filtered by `album`.

use diesel_vector::index::{Element, IndexSpec, Metric, PgIndex, SqliteIndex};
use diesel_vector::{Bit, HalfVector, SparseVector};

use super::Rng;

/// Bits of the perceptual hash.
pub const HASH_BITS: usize = 256;
/// Dimensions of the image embedding.
pub const CLIP_DIMS: usize = 384;
/// Size of the tag vocabulary.
pub const TAG_DIMS: usize = 30_000;

diesel::table! {
    use diesel::sql_types::*;
    use diesel_vector::sql_types::{Bit, HalfVector, SparseVector};

    images (id) {
        id -> BigInt,
        album -> Text,
        taken -> Integer,
        phash -> Nullable<Bit>,
        clip -> Nullable<HalfVector>,
        tags -> Nullable<SparseVector>,
    }
}

diesel_vector::vector_index! {
    /// Near-duplicate photos by perceptual hash (Hamming distance).
    pub static PHASH: images { column: phash, dims: 256, partition_by: [album] }
}

diesel_vector::vector_index! {
    /// Similar-looking photos by image embedding.
    pub static CLIP: images { column: clip, dims: 384, partition_by: [album] }
}

diesel_vector::vector_index! {
    /// Photos with the same tags.
    pub static TAGS: images { column: tags, dims: 30000, metric: InnerProduct, partition_by: [album] }
}

/// The application's table, its vector columns created with it; the generated migrations add the indexes.
pub const SQLITE_TABLE: &str = "CREATE TABLE images (id INTEGER PRIMARY KEY, album TEXT NOT NULL, \
     taken INTEGER NOT NULL, phash BLOB, clip BLOB, tags BLOB)";
/// The same on PostgreSQL (with pgvector, which its types need).
pub const PG_TABLE: &str = "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE images (id bigint PRIMARY KEY, album text NOT NULL, taken integer NOT NULL, \
     phash bit(256), clip halfvec(384), tags sparsevec(30000))";

/// One photo.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: i64,
    pub album: &'static str,
    pub taken: i32,
    pub phash: Option<Bit>,
    pub clip: Option<HalfVector>,
    pub tags: Option<SparseVector>,
}

/// The index of `column` (`phash`, `clip` or `tags`) with `metric`, partitioned by album.
pub fn spec(column: &str, metric: Metric, pg: PgIndex) -> IndexSpec {
    let (element, dims) = match column {
        "phash" => (Element::Bit, HASH_BITS),
        "clip" => (Element::HalfVector, CLIP_DIMS),
        _ => (Element::SparseVector, TAG_DIMS),
    };
    IndexSpec::builder("images", column, dims as u64)
        .element(element)
        .metric(metric)
        .partition_by(["album"])
        .pg_index(pg)
        .sqlite_index(SqliteIndex::NONE)
        .build()
        .unwrap()
}

/// `total` photos' values from `seed`, in clusters (series of shots of one scene) sized for a library of
/// `library` photos: the first `library` are the library, the rest queries.
fn values(seed: u64, library: usize, total: usize) -> Vec<(Bit, HalfVector, SparseVector)> {
    let clusters = (library / 25).max(4);
    let embeddings = super::clustered(seed, total, CLIP_DIMS, clusters);
    let mut rng = Rng::new(seed ^ 0x5eed);
    // Each scene has its own 30 tags; a photo carries about 20 of them and a few random ones.
    let scene_tags: Vec<Vec<u32>> =
        (0..clusters).map(|_| (0..30).map(|_| (rng.next_u64() % TAG_DIMS as u64) as u32).collect()).collect();
    embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // The hash: the signs of the embedding's first 256 values, centred, with a few flips.
            let mean = e.as_slice()[..HASH_BITS].iter().sum::<f32>() / HASH_BITS as f32;
            let bits: Vec<bool> =
                e.as_slice()[..HASH_BITS].iter().map(|x| (*x > mean) ^ (rng.next_u64() % 16 == 0)).collect();
            let mut tags: Vec<(u32, f32)> = Vec::new();
            for t in &scene_tags[i % clusters] {
                if rng.next_u64() % 3 != 0 {
                    tags.push((*t, 0.5 + rng.unit().abs() * 2.0));
                }
            }
            for _ in 0..5 {
                tags.push(((rng.next_u64() % TAG_DIMS as u64) as u32, 0.1 + rng.unit().abs()));
            }
            tags.sort_by_key(|t| t.0);
            tags.dedup_by_key(|t| t.0);
            let (indices, weights): (Vec<i32>, Vec<f32>) = tags.into_iter().map(|(t, w)| (t as i32, w)).unzip();
            (
                Bit::new(&bits),
                HalfVector::from_vector(e).unwrap(),
                SparseVector::new(TAG_DIMS as i32, indices, weights).unwrap(),
            )
        })
        .collect()
}

/// `n` photos with ids 1..=n: album `travel` when `id % 4 == 0` (25 %), `family` otherwise; every 31st
/// has no embedding, every 37th no hash, every 41st no tags (NULL), and photo 7 an all-zero embedding
/// (no direction: nobody's cosine neighbour).
pub fn images(n: usize, seed: u64) -> Vec<Image> {
    values(seed, n, n)
        .into_iter()
        .enumerate()
        .map(|(i, (phash, clip, tags))| {
            let id = i as i64 + 1;
            let clip = if id == 7 { HalfVector::from_f32_slice(&[0.0; CLIP_DIMS]).unwrap() } else { clip };
            Image {
                id,
                album: if id % 4 == 0 { "travel" } else { "family" },
                taken: 2015 + (id % 10) as i32,
                phash: (id % 37 != 0).then_some(phash),
                clip: (id % 31 != 0).then_some(clip),
                tags: (id % 41 != 0).then_some(tags),
            }
        })
        .collect()
}

/// Query photos from the same scenes as [`images`] with `seed`.
pub fn queries(seed: u64, n_images: usize, n: usize) -> Vec<(Bit, HalfVector, SparseVector)> {
    // The generator draws its scenes first, so the same seed gives the same clusters; the queries are
    // the next photos of the series.
    values(seed, n_images, n_images + n).split_off(n_images)
}

/// Inserts `images` in one transaction, 100 rows per statement (a macro: the two connections share no
/// trait for batch inserts).
#[macro_export]
macro_rules! insert_images {
    ($conn:expr, $images:expr) => {{
        use diesel::prelude::*;
        use $crate::common::images::images;
        let conn = $conn;
        let photos: &[$crate::common::images::Image] = $images;
        conn.transaction(|conn| {
            for chunk in photos.chunks(100) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|p| {
                        (
                            images::id.eq(p.id),
                            images::album.eq(p.album),
                            images::taken.eq(p.taken),
                            images::phash.eq(p.phash.as_ref()),
                            images::clip.eq(p.clip.as_ref()),
                            images::tags.eq(p.tags.as_ref()),
                        )
                    })
                    .collect();
                diesel::insert_into(images::table).values(rows).execute(conn)?;
            }
            diesel::QueryResult::Ok(())
        })
        .unwrap();
    }};
}
