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
//! transaction as the state's generation, so it matches the codes in memory; a group whose length does not
//! match the codes, or a missing group, makes the scan decline (the table is scanned instead).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::*;
use crate::ann::{ExactScan, Neighbour, CHUNK_ROWS};

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
    allow: Option<HashSet<i64>>,
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

/// The exact top `k` by the index's metric from the copy of the vectors, filtered in the scan by
/// `filter`; `None` when the copy cannot answer (the index keeps none, the codes are not current, the copy
/// does not match them). Hash collisions of partition keys may let rows of other partitions in: the
/// caller checks the rows it returns against the table.
pub(crate) fn exact(
    conn: &mut SqliteConnection,
    spec: &IndexSpec,
    query: &[f32],
    k: usize,
    filter: &Filter<'_>,
) -> Result<Option<Vec<Neighbour>>, IndexError> {
    if !spec.sqlite_index().vectors || !spec.sqlite_keeps_codes() || query.len() != spec.dims() as usize {
        return Ok(None);
    }
    let shared = entry(conn, spec)?;
    let scan = ExactScan::owned(spec.metric(), query.to_vec(), k).map_err(IndexError::Codes)?;
    let allow = filter.allow.map(|ids| ids.iter().copied().collect::<HashSet<i64>>());
    let partition = filter.partition;
    let table = quote(&spec.vectors_table());
    let outcome = {
        super::super::transaction::deferred::<_, IndexError>(conn, |conn| {
            let Some(now) = generations_if_stored(conn, spec)? else { return Ok(None) };
            if now.needs_rebuild != 0 {
                return Ok(None);
            }
            let index = {
                let mut guard = write(&shared);
                match ensure_loaded(conn, spec, &mut guard, &now) {
                    Ok(()) => {}
                    Err(Unusable::Rebuild(_)) => return Ok(None),
                    Err(Unusable::Query(e)) => return Err(e.into()),
                }
                match guard.cached.as_ref().and_then(|c| c.index.clone()) {
                    Some(index) => index,
                    None => return Ok(Some(Vec::new())),
                }
            };
            if !conn.exists(&spec.vectors_table())? {
                return Ok(None);
            }
            let expected: usize =
                (0..index.chunk_count()).map(|c| index.chunk_rows(c).0.len().div_ceil(GROUP_ROWS)).sum();
            let state = Scanning {
                index,
                scan,
                dims: spec.dims() as usize,
                partition,
                allow,
                scratch: Vec::new(),
                groups: 0,
                mismatch: false,
            };
            let outer = SCAN.with(|s| s.borrow_mut().replace(state));
            let read = (|| -> QueryResult<()> {
                for group in diesel::sql_query(format!("SELECT chunk, data FROM {table} ORDER BY chunk"))
                    .load_iter::<Group, diesel::connection::DefaultLoadingMode>(conn)?
                {
                    group?;
                }
                Ok(())
            })();
            let state = SCAN.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
            read?;
            let Some(state) = state else { return Ok(None) };
            if state.mismatch || state.groups != expected {
                tracing::warn!(
                    target: "diesel_vector::index",
                    index = spec.name(),
                    groups = state.groups,
                    expected,
                    "the copy of the vectors does not match the codes; the table is scanned instead"
                );
                return Ok(None);
            }
            Ok(Some(state.scan.finish()))
        })
    }?;
    Ok(outcome)
}
