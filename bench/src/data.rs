//! Generated data for the database workloads: embedding-like vectors from a fixed seed, and the exact
//! nearest neighbours computed in Rust (the ground truth recall is measured against).
//!
//! The generator is the one the crate's tests use (`tests/common/mod.rs`), copied so that the benchmarks
//! and the tests describe the same kind of data.

use diesel_vector::Vector;

/// Dimensions of the migrated `embedding` column.
pub const DIMS: usize = 1536;

/// Seed of the stored vectors; the queries use `SEED + 1`.
pub const SEED: u64 = 0x6b6e_6e5f_6265_6e63;

/// A small deterministic PRNG (splitmix64), so generated data is the same on every run and backend.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// The shared structure of a data set: a common direction, topics, and subtopics five to a topic.
#[derive(Debug, Clone)]
pub struct Clusters {
    common: Vec<f32>,
    topics: Vec<Vec<f32>>,
    subtopics: Vec<Vec<f32>>,
}

impl Clusters {
    /// `clusters` subtopics of `dims` dimensions drawn from `seed`.
    pub fn new(seed: u64, dims: usize, clusters: usize) -> Self {
        let mut rng = Rng::new(seed);
        let random = |rng: &mut Rng| -> Vec<f32> { (0..dims).map(|_| rng.unit()).collect() };
        let common = random(&mut rng);
        let topics = (0..clusters.div_ceil(5)).map(|_| random(&mut rng)).collect();
        let subtopics = (0..clusters).map(|_| random(&mut rng)).collect();
        Self { common, topics, subtopics }
    }

    /// `n` embedding-like vectors. Like real text embeddings they share a common direction (unrelated
    /// texts still have cosine similarity about 0.5) and cluster hierarchically: about 0.7 within a topic,
    /// 0.85 within a subtopic. Vector `i` belongs to subtopic `i % clusters`; `noise_seed` draws the rest.
    pub fn vectors(&self, noise_seed: u64, n: usize) -> Vec<Vector> {
        let mut rng = Rng::new(noise_seed);
        let clusters = self.subtopics.len();
        let (a, b, c, d) = (0.5f32.sqrt(), 0.2f32.sqrt(), 0.15f32.sqrt(), 0.15f32.sqrt());
        (0..n)
            .map(|i| {
                let (s, t) = (&self.subtopics[i % clusters], &self.topics[(i % clusters) / 5]);
                let v =
                    (0..self.common.len()).map(|j| a * self.common[j] + b * t[j] + c * s[j] + d * rng.unit()).collect();
                Vector::new(v).expect("generated values are finite")
            })
            .collect()
    }
}

/// A second kind of embedding-like data, for the quantized index: a shared direction, a decaying spectrum
/// in a random basis (like the principal components of real text embeddings) and many overlapping topics
/// (each vector mixes three of them). Binary codes behave differently here than on [`Clusters`], where
/// near-ties inside a subtopic dominate.
#[derive(Debug, Clone)]
pub struct Spectrum {
    common: Vec<f32>,
    topics: Vec<Vec<f32>>,
    basis: Vec<Vec<f32>>,
}

/// Directions of the decaying spectrum, and its decay exponent.
const SPECTRUM_DIRECTIONS: usize = 128;
const SPECTRUM_DECAY: f32 = 0.7;

impl Spectrum {
    /// `topics` topics of `dims` dimensions drawn from `seed`.
    pub fn new(seed: u64, dims: usize, topics: usize) -> Self {
        let mut rng = Rng::new(seed);
        let random = |rng: &mut Rng| -> Vec<f32> { (0..dims).map(|_| rng.unit()).collect() };
        let common = random(&mut rng);
        let topics = (0..topics).map(|_| random(&mut rng)).collect();
        let basis = (0..SPECTRUM_DIRECTIONS).map(|_| random(&mut rng)).collect();
        Self { common, topics, basis }
    }

    /// `n` vectors, flat (`n * dims` values): `0.5 * common + three topics weighted 0.15-0.45 + the spectrum
    /// (direction m weighted (m + 1)^-0.7) + 0.1 isotropic noise`, the random choices drawn from `noise_seed`.
    pub fn vectors(&self, noise_seed: u64, n: usize) -> Vec<f32> {
        let dims = self.common.len();
        let mut rng = Rng::new(noise_seed);
        let mut out = Vec::with_capacity(n * dims);
        let mut v = vec![0f32; dims];
        for _ in 0..n {
            for (x, c) in v.iter_mut().zip(&self.common) {
                *x = 0.5 * c + 0.1 * rng.unit();
            }
            for _ in 0..3 {
                let t = &self.topics[(rng.next_u64() % self.topics.len() as u64) as usize];
                let w = 0.3 + 0.15 * rng.unit();
                v.iter_mut().zip(t).for_each(|(x, t)| *x += w * t);
            }
            for (m, b) in self.basis.iter().enumerate() {
                let w = rng.unit() * 1.2 * ((m + 1) as f32).powf(-SPECTRUM_DECAY);
                v.iter_mut().zip(b).for_each(|(x, b)| *x += w * b);
            }
            out.extend_from_slice(&v);
        }
        out
    }
}

/// The subtopics of a data set of `n` vectors: one per 200 vectors, at least 10 (50 at 10k, 500 at 100k).
pub fn clusters_for(n: usize) -> usize {
    (n / 200).max(10)
}

/// Cosine distance in `f64`, the reference the databases' `f32` arithmetic is checked against.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    1.0 - dot / (na.sqrt() * nb.sqrt())
}

/// The exact `k` nearest stored vectors to `query` by cosine distance, as 0-based positions in `stored`
/// (the row with id `i + 1`), nearest first, ties by position.
pub fn exact_knn(stored: &[Vector], query: &Vector, k: usize) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> =
        stored.iter().enumerate().map(|(i, v)| (cosine_distance(v.as_slice(), query.as_slice()), i)).collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored.truncate(k);
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// The share of `truth` found in `found` (recall@k with k = `truth.len()`).
pub fn recall(found: &[i64], truth: &[i64]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    truth.iter().filter(|t| found.contains(t)).count() as f64 / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_knn_finds_the_query_itself_first() {
        let clusters = Clusters::new(1, 16, 10);
        let stored = clusters.vectors(2, 100);
        let hits = exact_knn(&stored, &stored[37], 5);
        assert_eq!(hits[0], 37);
        assert_eq!(hits.len(), 5);
    }

    #[test]
    fn recall_counts_shared_ids() {
        assert_eq!(recall(&[1, 2, 3, 4], &[4, 3, 9, 8]), 0.5);
    }
}
