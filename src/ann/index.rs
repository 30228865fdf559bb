//! The in-memory index: codes in chunks of [`CHUNK_ROWS`] rows, a map from row id to place, and the
//! chunks' stored form.

use std::collections::{BTreeSet, HashMap};

use super::bytes::{Reader, Writer};
use super::params::Factors;
use super::{AnnError, Params};
use crate::simd::Simd;

/// Rows per chunk: the unit of storage (one BLOB of about 56 KB at 1536 dimensions) and of change
/// tracking. A change to one row rewrites its chunk only.
pub const CHUNK_ROWS: usize = 256;

const MAGIC: &[u8; 4] = b"DVQC";
const VERSION: u16 = 1;

/// One chunk: up to [`CHUNK_ROWS`] rows, each field contiguous. Each row's code is split in two: its first
/// [`Params::prefix_words`] words in `prefix`, the rest in `rest`, so that the first pass of a search reads
/// the prefixes alone from contiguous memory (a third of the bytes at 1536 dimensions).
#[derive(Debug, Clone, Default)]
pub(super) struct Chunk {
    pub(super) ids: Vec<i64>,
    pub(super) partitions: Vec<u64>,
    pub(super) factors: Vec<Factors>,
    /// `ids.len() * prefix_words` words: each row's first words.
    pub(super) prefix: Vec<u64>,
    /// `ids.len() * (words - prefix_words)` words: each row's remaining words.
    pub(super) rest: Vec<u64>,
}

impl Chunk {
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Row `slot`'s whole code into `code` (its `p` prefix words, then the rest).
    pub(super) fn code_into(&self, slot: usize, p: usize, code: &mut [u64]) {
        let r = code.len() - p;
        code[..p].copy_from_slice(&self.prefix[slot * p..(slot + 1) * p]);
        code[p..].copy_from_slice(&self.rest[slot * r..(slot + 1) * r]);
    }
}

/// A quantized index of one vector column: a binary code per row, with the row's id and partition key,
/// searched by [`QuantizedIndex::search`].
///
/// Rows are added, replaced and removed by id ([`insert`](Self::insert), [`remove`](Self::remove)), which
/// is what a change queue feeds. The codes live in numbered chunks of [`CHUNK_ROWS`] rows: a change marks
/// its chunk dirty, [`take_dirty`](Self::take_dirty) says which chunks to store again, and
/// [`chunk_bytes`](Self::chunk_bytes) gives a chunk's stored form; [`from_chunks`](Self::from_chunks)
/// loads them back, refusing anything damaged.
#[derive(Debug, Clone)]
pub struct QuantizedIndex {
    pub(super) params: Params,
    pub(super) simd: Simd,
    pub(super) chunks: Vec<Chunk>,
    /// Row id to `chunk * CHUNK_ROWS + slot`.
    locations: HashMap<i64, u32, IdHash>,
    /// Chunks with room, lowest first: new rows fill them before a chunk is added.
    open: BTreeSet<u32>,
    dirty: BTreeSet<u32>,
    /// Row slots (`chunk * CHUNK_ROWS + slot`) written or emptied since the last `take_dirty_slots`.
    dirty_slots: BTreeSet<u32>,
}

/// The id map's hasher: a row id mixed with a key drawn once per process (the finaliser of SplitMix64, a
/// bijection whose every output bit depends on every input bit). The standard SipHash took 7 % of what a new
/// process spends loading 100k rows' codes; the drawn key keeps ids a writer chooses from colliding on
/// purpose.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdHash(u64);

impl Default for IdHash {
    fn default() -> Self {
        static KEY: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        });
        IdHash(*KEY)
    }
}

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// The state of one [`IdHash`] hashing: the key until a value is written.
#[derive(Debug)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `i64` ids are hashed (through `write_i64`); any other input is folded in word by word.
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.write_u64(id as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = crate::index::splitmix_finish((self.0 ^ value).wrapping_add(0x9e37_79b9_7f4a_7c15));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn place(chunk: usize, slot: usize) -> u32 {
    u32::try_from(chunk * CHUNK_ROWS + slot).unwrap_or(u32::MAX)
}

fn unplace(location: u32) -> (usize, usize) {
    let location = location as usize;
    (location / CHUNK_ROWS, location % CHUNK_ROWS)
}

impl QuantizedIndex {
    /// An empty index with these parameters, using the fastest SIMD level of this CPU.
    pub fn new(params: Params) -> QuantizedIndex {
        QuantizedIndex {
            params,
            simd: Simd::detect(),
            chunks: Vec::new(),
            locations: HashMap::default(),
            open: BTreeSet::new(),
            dirty: BTreeSet::new(),
            dirty_slots: BTreeSet::new(),
        }
    }

    /// Uses the kernels of `simd` from now on (tests and benchmarks force a level this way).
    pub fn with_simd(mut self, simd: Simd) -> QuantizedIndex {
        self.simd = simd;
        self
    }

    /// The SIMD level in use.
    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// The training parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Takes `params`, which must have the same metric, dimensions and centre as the parameters in use
    /// ([`Params::recalibrated`]): every code stays valid, and every chunk is marked dirty, since a stored
    /// chunk carries the parameters' fingerprint.
    ///
    /// Errors: [`AnnError::Corrupt`] when `params` were made around another centre (nothing changes).
    pub fn recalibrate(&mut self, params: Params) -> Result<(), AnnError> {
        let same = params.metric() == self.params.metric()
            && params.dims() == self.params.dims()
            && params.centre().iter().map(|x| x.to_bits()).eq(self.params.centre().iter().map(|x| x.to_bits()));
        if !same {
            return Err(AnnError::corrupt("recalibrated parameters of another metric, shape or centre"));
        }
        self.params = params;
        self.dirty.extend((0..self.chunks.len()).map(|n| u32::try_from(n).unwrap_or(u32::MAX)));
        Ok(())
    }

    /// Rows in the index.
    pub fn len(&self) -> usize {
        self.locations.len()
    }

    /// Whether the index has no rows.
    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }

    /// Whether row `id` is in the index.
    pub fn contains(&self, id: i64) -> bool {
        self.locations.contains_key(&id)
    }

    /// Adds row `id` with partition key `partition` (use 0 when the table has none), or replaces it if the
    /// index has it. The vector must have the index's dimensions and be finite. (A vector whose arithmetic
    /// overflows `f32`, with elements beyond about 1e19 in magnitude, is coded too, its factors held at the
    /// largest finite values: the search reranks exactly whatever it returns.)
    pub fn insert(&mut self, id: i64, partition: u64, vector: &[f32]) -> Result<(), AnnError> {
        self.params.check(vector)?;
        let (words, prefix) = (self.params.words(), self.params.prefix_words());
        let mut code = vec![0u64; words];
        let factors = self.params.encode_into(self.simd, vector, &mut code).finite();
        let (chunk_no, slot) = match self.locations.get(&id) {
            Some(location) => unplace(*location),
            None => {
                let chunk_no = match self.open.first() {
                    Some(c) => *c as usize,
                    None => {
                        self.chunks.push(Chunk::default());
                        let c = self.chunks.len() - 1;
                        self.open.insert(u32::try_from(c).unwrap_or(u32::MAX));
                        c
                    }
                };
                let chunk = &mut self.chunks[chunk_no];
                chunk.ids.push(id);
                chunk.partitions.push(partition);
                chunk.factors.push(Factors::default());
                chunk.prefix.resize(chunk.prefix.len() + prefix, 0);
                chunk.rest.resize(chunk.rest.len() + (words - prefix), 0);
                let slot = chunk.len() - 1;
                if chunk.len() == CHUNK_ROWS {
                    self.open.remove(&u32::try_from(chunk_no).unwrap_or(u32::MAX));
                }
                self.locations.insert(id, place(chunk_no, slot));
                (chunk_no, slot)
            }
        };
        let chunk = &mut self.chunks[chunk_no];
        chunk.partitions[slot] = partition;
        chunk.factors[slot] = factors;
        chunk.prefix[slot * prefix..(slot + 1) * prefix].copy_from_slice(&code[..prefix]);
        let r = words - prefix;
        chunk.rest[slot * r..(slot + 1) * r].copy_from_slice(&code[prefix..]);
        self.dirty.insert(u32::try_from(chunk_no).unwrap_or(u32::MAX));
        self.dirty_slots.insert(place(chunk_no, slot));
        Ok(())
    }

    /// Removes row `id`; returns whether it was there. The last row of its chunk takes its place.
    pub fn remove(&mut self, id: i64) -> bool {
        let Some(location) = self.locations.remove(&id) else {
            return false;
        };
        let (chunk_no, slot) = unplace(location);
        let p = self.params.prefix_words();
        let r = self.params.words() - p;
        let chunk = &mut self.chunks[chunk_no];
        let last = chunk.len() - 1;
        chunk.ids.swap_remove(slot);
        chunk.partitions.swap_remove(slot);
        chunk.factors.swap_remove(slot);
        if slot != last {
            chunk.prefix.copy_within(last * p..(last + 1) * p, slot * p);
            chunk.rest.copy_within(last * r..(last + 1) * r, slot * r);
            self.locations.insert(chunk.ids[slot], place(chunk_no, slot));
        }
        chunk.prefix.truncate(last * p);
        chunk.rest.truncate(last * r);
        let c = u32::try_from(chunk_no).unwrap_or(u32::MAX);
        self.open.insert(c);
        self.dirty.insert(c);
        self.dirty_slots.insert(place(chunk_no, slot));
        self.dirty_slots.insert(place(chunk_no, last));
        true
    }

    /// Builds an index of `rows` (id, partition key, vector).
    pub fn build<'a>(
        params: Params,
        rows: impl IntoIterator<Item = (i64, u64, &'a [f32])>,
    ) -> Result<QuantizedIndex, AnnError> {
        let mut index = QuantizedIndex::new(params);
        for (id, partition, vector) in rows {
            index.insert(id, partition, vector)?;
        }
        Ok(index)
    }

    /// Numbers of the chunks (`0..chunk_count()`).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The chunks changed since the last call, in order, and forgets them: store each one's
    /// [`chunk_bytes`](Self::chunk_bytes) (a chunk may have become empty: store it empty or delete it).
    pub fn take_dirty(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// The row slots (`chunk * CHUNK_ROWS + slot`) written or emptied since the last call, in order, and
    /// forgets them: a row inserted or replaced, a row removed (its slot, now holding the chunk's last row,
    /// and the last slot, now empty). For a store that keeps something per row in the codes' order.
    pub fn take_dirty_slots(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.dirty_slots).into_iter().collect()
    }

    /// The row ids of chunk `number`, in slot order, with their partition keys (empty past the last
    /// chunk).
    pub fn chunk_rows(&self, number: usize) -> (&[i64], &[u64]) {
        self.chunks.get(number).map_or((&[], &[]), |c| (c.ids.as_slice(), c.partitions.as_slice()))
    }

    /// The stored form of chunk `number`, or `None` past the last chunk: magic `DVQC`, format version, the
    /// parameters' fingerprint, the chunk number, the row count, then the ids, partition keys, factors and
    /// codes, each contiguous and little-endian, and a checksum of all that.
    pub fn chunk_bytes(&self, number: u32) -> Option<Vec<u8>> {
        let chunk = self.chunks.get(number as usize)?;
        let words = self.params.words();
        let mut w = Writer::with_capacity(40 + chunk.len() * (28 + 8 * words));
        w.bytes(MAGIC);
        w.u16(VERSION);
        w.u16(0);
        w.u64(self.params.fingerprint());
        w.u32(number);
        w.u32(u32::try_from(chunk.len()).unwrap_or(0));
        w.u32(u32::try_from(words).unwrap_or(0));
        chunk.ids.iter().for_each(|id| w.i64(*id));
        chunk.partitions.iter().for_each(|p| w.u64(*p));
        chunk.factors.iter().flat_map(|f| f.to_array()).for_each(|x| w.f32(x));
        // Each row's whole code, as format 1 has always stored it.
        let (p, mut code) = (self.params.prefix_words(), vec![0u64; words]);
        for slot in 0..chunk.len() {
            chunk.code_into(slot, p, &mut code);
            code.iter().for_each(|c| w.u64(*c));
        }
        Some(w.finish())
    }

    /// Loads an index from its parameters and every stored chunk (in any order; numbers may have gaps,
    /// which stay as empty chunks). Any damaged, truncated or foreign chunk, a chunk number given twice, or
    /// a row id in two places is an error and nothing is loaded: rebuild the codes from the vectors then.
    pub fn from_chunks<B: AsRef<[u8]>>(
        params: Params,
        chunks: impl IntoIterator<Item = B>,
    ) -> Result<QuantizedIndex, AnnError> {
        let mut index = QuantizedIndex::new(params);
        let mut seen = BTreeSet::new();
        // Every chunk read first, so that the id map is sized once: growing it by rehashing took a tenth of
        // the time a new process spends loading the codes (BENCHMARKS.md, "The CLI as a process").
        let read: Vec<(u32, Chunk)> =
            chunks.into_iter().map(|blob| index.read_chunk(blob.as_ref())).collect::<Result<_, _>>()?;
        index.locations.reserve(read.iter().map(|(_, c)| c.len()).sum());
        for (number, chunk) in read {
            if !seen.insert(number) {
                return Err(AnnError::corrupt(format!("chunk {number} given twice")));
            }
            let n = number as usize;
            if index.chunks.len() <= n {
                index.chunks.resize_with(n + 1, Chunk::default);
            }
            for (slot, id) in chunk.ids.iter().enumerate() {
                if index.locations.insert(*id, place(n, slot)).is_some() {
                    return Err(AnnError::DuplicateRow { id: *id });
                }
            }
            index.chunks[n] = chunk;
        }
        for (n, chunk) in index.chunks.iter().enumerate() {
            if chunk.len() < CHUNK_ROWS {
                index.open.insert(u32::try_from(n).unwrap_or(u32::MAX));
            }
        }
        Ok(index)
    }

    /// Replaces one chunk with its stored form (written by another process, say), keeping every other
    /// chunk: the incremental form of [`from_chunks`](Self::from_chunks). Returns the chunk's number.
    ///
    /// A damaged, truncated or foreign blob is an error and changes nothing. A row may move between chunks
    /// in one change, so a row found in another chunk is not an error here: once every chunk of a change is
    /// in, [`is_consistent`](Self::is_consistent) says whether each row is in one place; if not, load the
    /// index again with `from_chunks`.
    pub fn replace_chunk(&mut self, blob: &[u8]) -> Result<u32, AnnError> {
        let (number, chunk) = self.read_chunk(blob)?;
        let n = number as usize;
        if self.chunks.len() <= n {
            self.chunks.resize_with(n + 1, Chunk::default);
        }
        let old = std::mem::replace(&mut self.chunks[n], chunk);
        for id in &old.ids {
            if self.locations.get(id).is_some_and(|l| unplace(*l).0 == n) {
                self.locations.remove(id);
            }
        }
        for (slot, id) in self.chunks[n].ids.iter().enumerate() {
            self.locations.insert(*id, place(n, slot));
        }
        let c = u32::try_from(n).unwrap_or(u32::MAX);
        if self.chunks[n].len() < CHUNK_ROWS {
            self.open.insert(c);
        } else {
            self.open.remove(&c);
        }
        self.dirty.remove(&c);
        Ok(number)
    }

    /// Whether every row id is in exactly one place (after [`replace_chunk`](Self::replace_chunk)s).
    ///
    /// Only ids the chunks hold are ever located, each where it was last put, and an id is unlocated when
    /// the chunk it was located in drops it: so the located ids number the rows of the chunks exactly when
    /// no id is held twice (or held but unlocated).
    pub fn is_consistent(&self) -> bool {
        self.chunks.iter().map(Chunk::len).sum::<usize>() == self.locations.len()
    }

    fn read_chunk(&self, blob: &[u8]) -> Result<(u32, Chunk), AnnError> {
        let what = "index chunk";
        let mut r = Reader::open(blob, what, MAGIC)?;
        let version = r.u16()?;
        if version != VERSION {
            return Err(AnnError::corrupt(format!("{what}: format version {version}, this build reads {VERSION}")));
        }
        r.u16()?;
        if r.u64()? != self.params.fingerprint() {
            return Err(AnnError::corrupt(format!("{what}: made with other index parameters")));
        }
        let number = r.u32()?;
        // Chunk numbers beyond what 2^32 rows need cannot have been written by `chunk_bytes`.
        if number as usize > u32::MAX as usize / CHUNK_ROWS {
            return Err(AnnError::corrupt(format!("{what}: chunk number {number}")));
        }
        let rows = r.u32()? as usize;
        if rows > CHUNK_ROWS {
            return Err(AnnError::corrupt(format!("{what} {number}: {rows} rows, at most {CHUNK_ROWS}")));
        }
        let words = r.u32()? as usize;
        if words != self.params.words() {
            return Err(AnnError::corrupt(format!("{what} {number}: codes of {words} words")));
        }
        let ids = r.words(rows, i64::from_le_bytes)?;
        let partitions = r.words(rows, u64::from_le_bytes)?;
        let factors =
            r.finite_f32s(rows * 3)?.chunks_exact(3).map(|f| Factors::from_array([f[0], f[1], f[2]])).collect();
        let codes = r.take_words(rows * words)?;
        r.end()?;
        // Each row's code split into its prefix and the rest as it is read, with no copy of the whole codes.
        let p = self.params.prefix_words();
        let mut prefix = Vec::with_capacity(rows * p);
        let mut rest = Vec::with_capacity(rows * (words - p));
        let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or_default());
        for code in codes.chunks_exact((8 * words).max(1)) {
            let (head, tail) = code.split_at(8 * p);
            prefix.extend(head.chunks_exact(8).map(word));
            rest.extend(tail.chunks_exact(8).map(word));
        }
        Ok((number, Chunk { ids, partitions, factors, prefix, rest }))
    }

    /// Bytes of memory the index holds (codes, ids, partition keys, factors and the id map), for reports.
    pub fn memory_bytes(&self) -> usize {
        let chunks: usize = self
            .chunks
            .iter()
            .map(|c| {
                c.ids.capacity() * 8
                    + c.partitions.capacity() * 8
                    + c.factors.capacity() * std::mem::size_of::<Factors>()
                    + (c.prefix.capacity() + c.rest.capacity()) * 8
            })
            .sum();
        // hashbrown: one control byte per bucket plus the entry, buckets a power of two at most 7/8 full.
        let buckets = (self.locations.capacity() * 8 / 7).checked_next_power_of_two().unwrap_or(0);
        chunks + buckets * (1 + std::mem::size_of::<(i64, u32)>()) + std::mem::size_of::<Self>()
    }

    /// The location of row `id`: its chunk and slot.
    pub(super) fn location(&self, id: i64) -> Option<(usize, usize)> {
        self.locations.get(&id).map(|l| unplace(*l))
    }
}
