//! The contiguous copy of the vectors (`<index>_vectors`), kept when the index's structures include
//! `vectors`: the exact path's way to memory speed.
//!
//! Row `n` holds, as little-endian `f32` one after the other, the vectors of the codes' row slots
//! `16 n .. 16 n + 16` (slot `s` of chunk `c` is `c * 256 + s`; a chunk's last group may hold fewer): the
//! ids and partition keys are the codes' own, in memory, so the copy holds vectors only. Groups of 16
//! rows keep each BLOB under 100 KB at 1536 dimensions: small enough that a change rewrites little and
//! that SQLite hands each one over without a large allocation, large enough that a scan reads few of them.
//!
//! It is written with the codes, in the same transaction: by a rebuild in slot order, and by a sync for
//! the groups whose slots changed (their vectors read back from the table, which holds exactly what the
//! codes were made of for every row not in the queue). An exact scan reads it in the same read
//! transaction as the state's generation, so it matches the codes in memory, and declines when the table
//! has changes the copy does not hold yet in that snapshot (queued or appended rows), or when a group's
//! length does not match the codes or a group is missing (the table is scanned instead). The search reads
//! its filter's rows and the rows it returns in the same snapshot. A large copy is read in ranges of
//! groups on several connections at once (`sqlite::parallel`), each connection's snapshot the same.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::*;
use crate::ann::{ExactScan, Neighbour, CHUNK_ROWS};
use crate::sqlite::parallel::Part;

/// Rows per stored group.
pub(super) const GROUP_ROWS: usize = 16;
const GROUPS_PER_CHUNK: usize = CHUNK_ROWS / GROUP_ROWS;
/// Groups rewritten per query for their vectors.
const GROUPS_PER_READ: usize = 64;

fn create_sql(spec: &IndexSpec) -> String {
    let table = quote(&spec.vectors_table());
    format!(
        "DROP TABLE IF EXISTS {table}; \
         CREATE TABLE {table} (chunk INTEGER PRIMARY KEY, generation INTEGER NOT NULL, data BLOB NOT NULL);"
    )
}

fn write_group(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    group: usize,
    generation: i64,
    data: &[u8],
) -> QueryResult<()> {
    diesel::sql_query(format!(
        "INSERT OR REPLACE INTO {} (chunk, generation, data) VALUES (?, ?, ?)",
        quote(&spec.vectors_table())
    ))
    .bind::<BigInt, _>(i64::try_from(group).unwrap_or(i64::MAX))
    .bind::<BigInt, _>(generation)
    .bind::<Binary, _>(data)
    .execute(conn)?;
    Ok(())
}

fn extend_le(out: &mut Vec<u8>, v: &[f32]) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(v));
    } else {
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
}

/// Writes the copy during a rebuild, group by group as rows arrive in slot order.
#[derive(Debug)]
pub(super) struct Writer {
    generation: i64,
    group: Option<usize>,
    buffer: Vec<u8>,
}

impl Writer {
    /// Makes the table afresh when the index keeps a copy (and drops any copy it does not keep).
    pub(super) fn create(
        conn: &mut SqliteConnection,
        spec: &IndexSpec,
        generation: i64,
    ) -> QueryResult<Option<Writer>> {
        if !spec.sqlite_index().vectors {
            conn.batch_execute(&format!("DROP TABLE IF EXISTS {}", quote(&spec.vectors_table())))?;
            return Ok(None);
        }
        conn.batch_execute(&create_sql(spec))?;
        Ok(Some(Writer { generation, group: None, buffer: Vec::new() }))
    }

    /// The vector of slot `slot` (slots come in order).
    pub(super) fn push(
        &mut self,
        conn: &mut SqliteConnection,
        spec: &IndexSpec,
        slot: usize,
        v: &[f32],
    ) -> QueryResult<()> {
        let group = slot / GROUP_ROWS;
        if self.group != Some(group) {
            self.flush(conn, spec)?;
            self.group = Some(group);
        }
        extend_le(&mut self.buffer, v);
        Ok(())
    }

    fn flush(&mut self, conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<()> {
        if let (Some(group), false) = (self.group, self.buffer.is_empty()) {
            write_group(conn, spec, group, self.generation, &self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes the last group.
    pub(super) fn finish(mut self, conn: &mut SqliteConnection, spec: &IndexSpec) -> QueryResult<()> {
        self.flush(conn, spec)
    }
}

/// The ids of group `group` in `index`, in slot order.
fn group_ids(index: &QuantizedIndex, group: usize) -> &[i64] {
    let (ids, _) = index.chunk_rows(group / GROUPS_PER_CHUNK);
    let low = (group % GROUPS_PER_CHUNK) * GROUP_ROWS;
    ids.get(low..ids.len().min(low + GROUP_ROWS)).unwrap_or(&[])
}

/// Rewrites the groups holding `slots` (changed by a sync) from the table. `Ok(Err(reason))` when the
/// copy cannot be patched (missing, or a row of the codes has no valid vector in the table): rebuild.
pub(super) fn rewrite(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    index: &QuantizedIndex,
    slots: &[u32],
    generation: i64,
) -> Result<Result<(), String>, IndexError> {
    if !conn.exists(&spec.vectors_table())? {
        return Ok(Err("the copy of the vectors is missing".into()));
    }
    let groups: Vec<usize> =
        slots.iter().map(|s| *s as usize / GROUP_ROWS).collect::<BTreeSet<_>>().into_iter().collect();
    let table = quote(spec.table());
    let id = format!("t.{}", quote(spec.id_column()));
    for batch in groups.chunks(GROUPS_PER_READ) {
        let wanted: Vec<i64> = batch.iter().flat_map(|g| group_ids(index, *g).iter().copied()).collect();
        // The batch's vectors one after another, and where each row's starts.
        let mut read: Vec<f32> = Vec::new();
        let mut vectors: HashMap<i64, usize> = HashMap::with_capacity(wanted.len());
        if !wanted.is_empty() {
            for_each_row(
                conn,
                spec,
                diesel::sql_query(select_rows(
                    spec,
                    &id,
                    &format!("FROM {table} t WHERE {id} IN (SELECT value FROM json_each(?))"),
                ))
                .bind::<Text, _>(super::super::json_ids(&wanted)),
                |row, v| {
                    if let Some(v) = v {
                        vectors.insert(row.id, read.len());
                        read.extend_from_slice(v);
                    }
                    Ok(())
                },
            )?;
        }
        let dims = spec.dims() as usize;
        let mut data = Vec::new();
        for group in batch {
            let ids = group_ids(index, *group);
            if ids.is_empty() {
                diesel::sql_query(format!("DELETE FROM {} WHERE chunk = ?", quote(&spec.vectors_table())))
                    .bind::<BigInt, _>(i64::try_from(*group).unwrap_or(i64::MAX))
                    .execute(conn)?;
                continue;
            }
            data.clear();
            for id in ids {
                let Some(v) = vectors.get(id).and_then(|start| read.get(*start..start + dims)) else {
                    return Ok(Err(format!("row {id} of the codes has no valid vector in the table")));
                };
                extend_le(&mut data, v);
            }
            write_group(conn, spec, *group, generation, &data)?;
        }
    }
    Ok(Ok(()))
}

thread_local! {
    /// The scan of the copy in progress on this thread.
    static SCAN: std::cell::RefCell<Option<Scanning>> = const { std::cell::RefCell::new(None) };
}

#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Scanning {
    index: Arc<QuantizedIndex>,
    scan: ExactScan<'static>,
    dims: usize,
    partition: Option<Partition>,
    allow: Option<Arc<HashSet<i64>>>,
    scratch: Vec<f32>,
    /// Groups read, and whether any did not match the codes.
    groups: usize,
    mismatch: bool,
}

/// A group of the copy as the scan reads it: column 0 its number, column 1 its vectors.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
struct Group;

impl QueryableByName<Sqlite> for Group {
    fn build<'a>(row: &impl NamedRow<'a, Sqlite>) -> deserialize::Result<Self> {
        let number = Row::get_value::<BigInt, i64, usize>(row, 0)?;
        let field = Row::get(row, 1usize).ok_or_else(|| Box::new(diesel::result::UnexpectedEndOfRow))?;
        let mut value = field.value();
        let bytes = value.as_mut().map_or(&[][..], |v| v.read_blob());
        SCAN.with(|s| {
            let mut guard = s.borrow_mut();
            let Some(s) = guard.as_mut() else {
                return Err("no scan of the vectors in progress on this thread".into());
            };
            s.groups += 1;
            let Ok(group) = usize::try_from(number) else {
                s.mismatch = true;
                return Ok(Group);
            };
            let (ids, partitions) = s.index.chunk_rows(group / GROUPS_PER_CHUNK);
            let low = (group % GROUPS_PER_CHUNK) * GROUP_ROWS;
            let high = ids.len().min(low + GROUP_ROWS);
            if low >= high || bytes.len() != (high - low) * s.dims * 4 {
                s.mismatch = true;
                return Ok(Group);
            }
            let vectors: &[f32] = match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                Ok(v) if cfg!(target_endian = "little") => v,
                _ => {
                    s.scratch.clear();
                    s.scratch.extend(bytes.chunks_exact(4).map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])));
                    &s.scratch
                }
            };
            for (r, slot) in (low..high).enumerate() {
                let passes = s.partition.is_none_or(|p| p.matches(partitions[slot]))
                    && s.allow.as_ref().is_none_or(|a| a.contains(&ids[slot]));
                if passes {
                    let v = &vectors[r * s.dims..(r + 1) * s.dims];
                    s.scan
                        .push(&ids[slot..=slot], v)
                        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
                }
            }
            Ok(Group)
        })
    }
}

/// What one scan of the copy (or one part of it) found.
#[derive(Debug)]
struct Scanned {
    /// The `k` nearest among the groups read, nearest first.
    neighbours: Vec<Neighbour>,
    groups: usize,
    /// Whether a group did not match the codes.
    mismatch: bool,
}

/// The rows a scan of the copy considers, read in the scan's snapshot: those of a partition (by the codes'
/// keys), and of a set of ids.
#[derive(Debug, Default)]
pub(crate) struct ScanFilter {
    pub(crate) partition: Option<Partition>,
    pub(crate) allow: Option<Arc<HashSet<i64>>>,
}

/// A scan of the copy: what each of its parts needs, shared by the connections that read them.
#[derive(Debug)]
struct Job<'a> {
    /// The copy's table, quoted.
    table: String,
    index: Arc<QuantizedIndex>,
    metric: crate::ann::Metric,
    query: &'a [f32],
    k: usize,
}

impl Job<'_> {
    /// The groups of `part` (every group for `None`) that pass `filter`, on `conn`, in the read
    /// transaction it is in.
    fn scan(
        &self,
        conn: &mut SqliteConnection,
        filter: &ScanFilter,
        part: Option<Part>,
    ) -> Result<Scanned, IndexError> {
        let scan = ExactScan::owned(self.metric, self.query.to_vec(), self.k).map_err(IndexError::Codes)?;
        let state = Scanning {
            index: Arc::clone(&self.index),
            scan,
            dims: self.query.len(),
            partition: filter.partition,
            allow: filter.allow.clone(),
            scratch: Vec::new(),
            groups: 0,
            mismatch: false,
        };
        let (first, last) = part.map_or((i64::MIN, i64::MAX), |p| (p.first, p.last));
        let outer = SCAN.with(|s| s.borrow_mut().replace(state));
        let read = (|| -> QueryResult<()> {
            let sql = format!("SELECT chunk, data FROM {} WHERE chunk BETWEEN ? AND ? ORDER BY chunk", self.table);
            for group in diesel::sql_query(sql)
                .bind::<BigInt, _>(first)
                .bind::<BigInt, _>(last)
                .load_iter::<Group, diesel::connection::DefaultLoadingMode>(conn)?
            {
                group?;
            }
            Ok(())
        })();
        let state = SCAN.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
        read?;
        let state = state.ok_or(IndexError::Query(diesel::result::Error::NotFound))?;
        Ok(Scanned { neighbours: state.scan.finish(), groups: state.groups, mismatch: state.mismatch })
    }

    /// The scan's answer from what it read: `None`, with a warning, when the copy did not match the codes.
    fn answer(&self, spec: &IndexSpec, scanned: Scanned) -> Option<Vec<Neighbour>> {
        let expected: usize =
            (0..self.index.chunk_count()).map(|c| self.index.chunk_rows(c).0.len().div_ceil(GROUP_ROWS)).sum();
        if scanned.mismatch || scanned.groups != expected {
            tracing::warn!(
                target: "diesel_vector::index",
                index = spec.name(),
                groups = scanned.groups,
                expected,
                "the copy of the vectors does not match the codes; the table is scanned instead"
            );
            return None;
        }
        Some(scanned.neighbours)
    }
}

/// What the scan learned in a read transaction before reading the copy.
enum Loaded {
    /// The codes of `generation`, loaded, and the copy's table there.
    Index(Arc<QuantizedIndex>, i64),
    /// Nothing trained: no rows to find.
    Empty,
    /// The copy cannot answer.
    Unusable,
}

/// Whether, in `conn`'s snapshot, the table has changes that the codes and the copy do not hold yet
/// (queued or appended rows, a rebuild due): then the copy is not the table and cannot answer for it.
fn behind(conn: &mut SqliteConnection, spec: &IndexSpec) -> Result<bool, IndexError> {
    match super::super::index::state(conn, spec) {
        Ok(state) => Ok(state.behind()),
        Err(IndexError::NotMigrated { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// The codes of the stored generation in memory, loaded in `conn`'s read transaction, if the copy holds
/// what the table holds in it.
fn load_index(conn: &mut SqliteConnection, spec: &IndexSpec, shared: &Shared) -> Result<Loaded, IndexError> {
    let Some(now) = generations_if_stored(conn, spec)? else { return Ok(Loaded::Unusable) };
    if now.needs_rebuild != 0 || behind(conn, spec)? {
        return Ok(Loaded::Unusable);
    }
    let index = {
        let mut guard = write(shared);
        match ensure_loaded(conn, spec, &mut guard, &now) {
            Ok(()) => {}
            Err(Unusable::Rebuild(_)) => return Ok(Loaded::Unusable),
            Err(Unusable::Query(e)) => return Err(e.into()),
        }
        match guard.cached.as_ref().and_then(|c| c.index.clone()) {
            Some(index) => index,
            None => return Ok(Loaded::Empty),
        }
    };
    if !conn.exists(&spec.vectors_table())? {
        return Ok(Loaded::Unusable);
    }
    Ok(Loaded::Index(index, now.generation))
}

/// The exact top `k` by the index's metric from the copy of the vectors, among the rows `filter` lets in,
/// handed to `rows` (nearest first): what `rows` makes of them, or `None` when the copy cannot answer (the
/// index keeps none, the codes are not current, the copy does not match them) or `rows` says so. `filter`
/// and `rows` run in the same read transaction as the scan, so that what they read of the table is what
/// the copy holds: hash collisions of partition keys may let rows of other partitions in, and `rows`
/// checks them against the table.
///
/// A copy of more than [`DEFAULT_MIN_ROWS`](super::super::parallel::DEFAULT_MIN_ROWS) rows, or any copy when
/// `threads` is given, is read in ranges of groups on several connections at once, as the table's rows are
/// (`sqlite::parallel`): the codes are loaded first, and the generation they are of is checked again in the
/// snapshot every connection read; if it moved, the copy is read on this connection alone.
#[allow(clippy::too_many_arguments)]
pub(crate) fn exact<R, E>(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    query: &[f32],
    k: usize,
    threads: Option<usize>,
    filter: impl Fn(&mut SqliteConnection) -> Result<ScanFilter, E>,
    rows: impl Fn(&mut SqliteConnection, Vec<Neighbour>) -> Result<Option<R>, E>,
) -> Result<Option<R>, E>
where
    E: From<IndexError> + From<diesel::result::Error>,
{
    use super::super::parallel::{divide, in_pieces, DEFAULT_MIN_ROWS};
    if !spec.sqlite_index().vectors || !spec.sqlite_keeps_codes() || query.len() != spec.dims() as usize {
        return Ok(None);
    }
    // Fails early, before any read, for a query the metric cannot take.
    ExactScan::owned(spec.metric(), query.to_vec(), k).map_err(IndexError::Codes)?;
    let shared = entry(conn, spec)?;
    let job = |index| Job { table: quote(&spec.vectors_table()), index, metric: spec.metric(), query, k };
    let min_groups = DEFAULT_MIN_ROWS / i64::try_from(GROUP_ROWS).unwrap_or(1);
    if let Some(plan) = divide(conn, &spec.vectors_table(), threads, min_groups)? {
        let loaded = super::super::transaction::deferred(conn, |conn| load_index(conn, spec, &shared))?;
        let (index, generation) = match loaded {
            Loaded::Index(index, generation) => (index, generation),
            Loaded::Empty => return rows(conn, Vec::new()),
            Loaded::Unusable => return Ok(None),
        };
        let job = job(index);
        let theirs =
            |conn: &mut SqliteConnection, f: &ScanFilter, i: usize| job.scan(conn, f, Some(plan.piece(i))).ok();
        let mine =
            |conn: &mut SqliteConnection, f: &ScanFilter, i: usize| Ok(job.scan(conn, f, Some(plan.piece(i)))?);
        // The copy read is that of the codes in memory only if the snapshot is still at their generation,
        // and it answers for the table only if the table has no change it does not hold.
        let finish = |conn: &mut SqliteConnection, parts: Vec<Scanned>| -> Result<Option<Option<R>>, E> {
            let now = generations_if_stored(conn, spec)?;
            if !now.is_some_and(|now| {
                now.generation == generation && now.codes_generation == Some(generation) && now.needs_rebuild == 0
            }) {
                return Ok(None);
            }
            if behind(conn, spec)? {
                return Ok(Some(None));
            }
            let mut all = Scanned {
                neighbours: Vec::with_capacity(parts.iter().map(|p| p.neighbours.len()).sum()),
                groups: 0,
                mismatch: false,
            };
            for part in parts {
                all.neighbours.extend(part.neighbours);
                all.groups += part.groups;
                all.mismatch |= part.mismatch;
            }
            all.neighbours.sort_by(Neighbour::order);
            all.neighbours.truncate(k);
            match job.answer(spec, all) {
                Some(found) => rows(conn, found).map(Some),
                None => Ok(Some(None)),
            }
        };
        if let Some(answer) = in_pieces(conn, &plan, &filter, &theirs, mine, finish)? {
            return Ok(answer);
        }
    }
    super::super::transaction::deferred::<_, E>(conn, |conn| match load_index(conn, spec, &shared)? {
        Loaded::Index(index, _) => {
            let job = job(index);
            let rows_in = filter(conn)?;
            let scanned = job.scan(conn, &rows_in, None)?;
            match job.answer(spec, scanned) {
                Some(found) => rows(conn, found),
                None => Ok(None),
            }
        }
        Loaded::Empty => rows(conn, Vec::new()),
        Loaded::Unusable => Ok(None),
    })
}
