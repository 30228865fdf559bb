//! A scan of every row of a database file on several connections at once: what the exact path costs is
//! SQLite assembling each row's vector from its pages (about 1.1 µs a row at 1536 dimensions, BENCHMARKS.md),
//! and that work divides. The table's rowids are cut into ranges, eight per connection, and each connection
//! takes the next range when done with one: a connection slowed down (its memory map still faulting in, its
//! core busy with other work) reads fewer, and the scan ends about when the work does.
//!
//! The connections must read one snapshot, or a row updated during the search could be read twice or not
//! at all. Each extra connection starts its read transaction after the caller's connection has read
//! `PRAGMA data_version`; the caller's connection then starts its own and reads it again. SQLite changes
//! that number whenever another connection commits, so when both readings agree no commit came between
//! them and every connection's snapshot is the same one. When they differ the search reads on the
//! caller's connection alone.
//!
//! The extra connections are kept open between searches, a few per database file: a new connection maps
//! the file anew, and the page faults of its first scan cost as much as the scan. One whose file is no
//! longer the file at that path (replaced, or moved) is closed rather than used, and each part's
//! connection must see the same page count, schema version and free-list size as the caller's inside
//! the shared snapshot. [`close_scan_connections`] closes them all.
//!
//! Only outside a transaction: inside one, the other connections could not see what it wrote. Diesel's
//! transaction manager says whether one is open, and a `BEGIN` SQLite refuses says it for a transaction
//! opened by hand. A part another connection cannot read (a function registered on the caller's
//! connection only, a table of its `temp` schema) is read again on the caller's connection, inside the
//! same snapshot; so the results never depend on how the rows were divided.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::thread;

use diesel::backend::Backend;
use diesel::connection::{AnsiTransactionManager, DefaultLoadingMode, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, CollectedQuery, MoveableBindCollector, Query, QueryFragment, QueryId};
use diesel::query_dsl::methods::LoadQuery;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::sqlite::{Sqlite, SqliteQueryBuilder};
use diesel::SqliteConnection;

use super::exact::{top_k, Exact, ExactError, ScanQuery, Scored};
use crate::ann::{Metric, Neighbour};

/// The most connections a scan uses by default.
const DEFAULT_MAX_THREADS: usize = 4;

/// Ranges of rowids per connection: each connection takes the next range when it is done with one, so a
/// connection that is slower (its memory map not yet faulted in, its core busy) reads fewer.
const PIECES_PER_CONNECTION: usize = 8;

/// Below this many rowids, the default scan reads on one connection (opening another costs more than a
/// few thousand rows take to read).
pub(crate) const DEFAULT_MIN_ROWS: i64 = 16_384;

/// The idle connections kept for `file`.
#[cfg(test)]
pub(crate) fn idle_connections(file: &str) -> usize {
    POOL.lock().unwrap_or_else(PoisonError::into_inner).get(file).map_or(0, Vec::len)
}

/// The most idle connections kept for all database files together.
const POOL_MAX: usize = 16;

/// Idle connections by database file, each with the file's identity when it was opened.
static POOL: LazyLock<Mutex<HashMap<String, Vec<Helper>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Closes the connections this process keeps open for divided scans
/// ([`IndexSearch::threads`](crate::search::IndexSearch::threads)): for a long-running process that is
/// done with a database, or one about to leave WAL mode, which SQLite allows only to the database's last
/// connection. The next divided scan opens them again.
///
/// Call it before the process exits, after closing its own connections: the connections kept here are
/// process-wide and never dropped otherwise, and a process that exits with a connection open leaves the
/// database's `-wal` and `-shm` files beside it (nothing is lost, the next connection replays them, but the
/// database is then the three files together).
pub fn close_scan_connections() {
    POOL.lock().unwrap_or_else(PoisonError::into_inner).clear();
}

/// A file's identity: device and inode where the platform has them, else its creation time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

fn file_id(path: &str) -> Option<FileId> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileId(meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let created = meta.created().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(FileId(created.as_secs(), u64::from(created.subsec_nanos())))
    }
}

/// One connection's part of a scan: `table.<rowid> BETWEEN first AND last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    /// The name that reaches the rowid: `rowid`, `_rowid_` or `oid`, whichever no column of the table
    /// takes.
    pub(crate) rowid: &'static str,
    pub(crate) first: i64,
    pub(crate) last: i64,
}

impl Part {
    /// ` AND t.rowid BETWEEN ? AND ?`.
    pub(crate) fn walk_ast<'b>(&'b self, table: &'b str, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(" AND ");
        crate::search::query::push_column(out, table, self.rowid)?;
        out.push_sql(" BETWEEN ");
        out.push_bind_param::<BigInt, i64>(&self.first)?;
        out.push_sql(" AND ");
        out.push_bind_param::<BigInt, i64>(&self.last)
    }
}

/// The connections a scan would use by default on this machine.
pub(crate) fn default_threads() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get().min(DEFAULT_MAX_THREADS))
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Span {
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
}

#[derive(QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = BigInt)]
    data_version: i64,
}

#[derive(QueryableByName)]
struct MmapSize {
    #[diesel(sql_type = BigInt)]
    mmap_size: i64,
}

#[derive(QueryableByName)]
struct LockingMode {
    #[diesel(sql_type = Text)]
    locking_mode: String,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    found: i64,
}

fn data_version(conn: &mut SqliteConnection) -> QueryResult<i64> {
    diesel::sql_query("PRAGMA data_version").get_result::<DataVersion>(conn).map(|v| v.data_version)
}

/// How a scan of `table` would divide (see [`Divided`]); `None` when it reads on one connection. Without
/// `threads` asked for, a table of fewer than `min_rows` rowids is read on one connection.
pub(crate) fn divide(
    conn: &mut SqliteConnection,
    table: &str,
    threads: Option<usize>,
    min_rows: i64,
) -> QueryResult<Option<Divided>> {
    let wanted = threads.unwrap_or_else(default_threads);
    if wanted < 2 {
        return Ok(None);
    }
    // A transaction manager in a broken state counts as a transaction: this connection alone.
    let in_transaction =
        <AnsiTransactionManager as TransactionManager<SqliteConnection>>::transaction_manager_status_mut(conn)
            .transaction_depth()
            .map_or(true, |depth| depth.is_some());
    if in_transaction {
        return Ok(None);
    }
    let file = super::codes::database_file(conn)?;
    if file.is_empty() {
        return Ok(None);
    }
    // A connection in exclusive locking mode keeps every other connection out.
    let locking = diesel::sql_query("PRAGMA locking_mode").get_result::<LockingMode>(conn)?.locking_mode;
    if !locking.eq_ignore_ascii_case("normal") {
        return Ok(None);
    }
    // A table of this name in `temp` is the one the caller's connection reads; the others would read
    // main's.
    let shadowed = diesel::sql_query("SELECT count(*) AS found FROM temp.sqlite_master WHERE name = ? COLLATE NOCASE")
        .bind::<Text, _>(table)
        .get_result::<Found>(conn)?
        .found
        > 0;
    if shadowed {
        return Ok(None);
    }
    let columns = diesel::sql_query("SELECT name FROM pragma_table_info(?, 'main')")
        .bind::<Text, _>(table)
        .load::<Column>(conn)?;
    let Some(rowid) =
        ["rowid", "_rowid_", "oid"].into_iter().find(|name| !columns.iter().any(|c| c.name.eq_ignore_ascii_case(name)))
    else {
        return Ok(None);
    };
    // A table without rowids has none to divide by: read on one connection.
    let mut span_sql = String::new();
    {
        let mut out = SqliteQueryBuilder::new();
        use diesel::query_builder::QueryBuilder;
        // Two subqueries: SQLite reads a lone min() or max() of the rowid from one end of the table, but
        // scans the whole table for both in one SELECT.
        out.push_sql("SELECT (SELECT min(");
        out.push_identifier(rowid)?;
        out.push_sql(") FROM main.");
        out.push_identifier(table)?;
        out.push_sql(") AS first, (SELECT max(");
        out.push_identifier(rowid)?;
        out.push_sql(") FROM main.");
        out.push_identifier(table)?;
        out.push_sql(") AS last");
        span_sql.push_str(&out.finish());
    }
    let Ok(span) = diesel::sql_query(span_sql).get_result::<Span>(conn) else {
        return Ok(None);
    };
    let (Some(first), Some(last)) = (span.first, span.last) else { return Ok(None) };
    let rows = i128::from(last) - i128::from(first) + 1;
    if threads.is_none() && rows < i128::from(min_rows) {
        return Ok(None);
    }
    let connections = wanted.min(usize::try_from(rows).unwrap_or(usize::MAX));
    if connections < 2 {
        return Ok(None);
    }
    let pieces = i128::try_from(connections * PIECES_PER_CONNECTION).unwrap_or(i128::MAX).min(rows);
    // Piece i starts at first + rows * i / pieces (in i128, which cannot overflow); the last ends at `last`.
    let start = |i: i128| i64::try_from(i128::from(first) + rows * i / pieces).unwrap_or(last);
    let pieces = (0..pieces)
        .map(|i| Part { rowid, first: start(i), last: if i + 1 == pieces { last } else { start(i + 1) - 1 } })
        .collect();
    Ok(Some(Divided { file, connections, pieces }))
}

/// How a scan is divided: the file, the connections that read it, the ranges of rowids they take in turn.
pub(crate) struct Divided {
    file: String,
    connections: usize,
    pieces: Vec<Part>,
}

impl Divided {
    /// Piece `i`'s range of rowids.
    pub(crate) fn piece(&self, i: usize) -> Part {
        self.pieces[i]
    }
}

/// A connection that reads parts of scans, opened on the file `id` names.
struct Helper {
    conn: SqliteConnection,
    id: FileId,
}

/// What must be equal on every connection of a divided scan, read inside its snapshot.
#[derive(QueryableByName, PartialEq, Eq)]
struct Fingerprint {
    #[diesel(sql_type = BigInt)]
    pages: i64,
    #[diesel(sql_type = BigInt)]
    schema: i64,
    #[diesel(sql_type = BigInt)]
    free: i64,
}

/// Starts `conn`'s read transaction (at its first read, this one) and says what it sees.
fn fingerprint(conn: &mut SqliteConnection) -> QueryResult<Fingerprint> {
    diesel::sql_query(
        "SELECT (SELECT page_count FROM pragma_page_count) AS pages, \
         (SELECT schema_version FROM pragma_schema_version) AS schema, \
         (SELECT freelist_count FROM pragma_freelist_count) AS free",
    )
    .get_result(conn)
}

/// An idle connection to `file` from the pool, or a new one (read only, with the crate's functions); its
/// memory map set as the caller's, its read transaction begun. It never waits for a lock: a part it cannot
/// read at once is read on the caller's connection, which waits as that connection is set to.
fn helper(file: &str, id: FileId, mmap_size: i64) -> Option<(Helper, Fingerprint)> {
    let pooled = {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = pool.get_mut(file);
        let found = idle.and_then(|idle| {
            // Connections to a file that was at this path before are closed.
            idle.retain(|h| h.id == id);
            idle.pop()
        });
        if pool.get(file).is_some_and(Vec::is_empty) {
            pool.remove(file);
        }
        found
    };
    let mut helper = match pooled {
        Some(h) => h,
        None => {
            let mut conn = SqliteConnection::establish(file).ok()?;
            conn.batch_execute("PRAGMA query_only = 1; PRAGMA busy_timeout = 0;").ok()?;
            super::functions::register(&mut conn).ok()?;
            Helper { conn, id }
        }
    };
    helper.conn.batch_execute(&format!("PRAGMA mmap_size = {}; BEGIN;", mmap_size.max(0))).ok()?;
    match fingerprint(&mut helper.conn) {
        Ok(seen) => Some((helper, seen)),
        Err(_) => {
            let _ = helper.conn.batch_execute("ROLLBACK");
            None
        }
    }
}

/// Ends `helper`'s read transaction and keeps it for the next scan, or closes it.
fn give_back(file: &str, mut helper: Helper) {
    if helper.conn.batch_execute("COMMIT").is_err() && helper.conn.batch_execute("ROLLBACK").is_err() {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.values().map(Vec::len).sum::<usize>() < POOL_MAX {
        pool.entry(file.to_owned()).or_default().push(helper);
    }
}

#[derive(QueryableByName)]
struct PlanStep {
    #[diesel(sql_type = Text)]
    detail: String,
}

/// `EXPLAIN QUERY PLAN` of a query.
struct Explain<'a, Q>(&'a Q);

impl<Q: QueryFragment<Sqlite>> QueryFragment<Sqlite> for Explain<'_, Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("EXPLAIN QUERY PLAN ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for Explain<'_, Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for Explain<'_, Q> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<Q> RunQueryDsl<SqliteConnection> for Explain<'_, Q> {}

/// Whether SQLite reads the whole table for `query` (a `SCAN` with no index anywhere in its plan): only then
/// do ranges of rowids divide the work. When a filter goes through an index (a partition column's, say),
/// SQLite may keep that index as each range's plan and walk it again for every range; one connection
/// reading what the index selects is the plan to keep.
fn scans_the_table<Q: QueryFragment<Sqlite>>(conn: &mut SqliteConnection, query: &Q) -> QueryResult<bool> {
    let steps = Explain(query).load::<PlanStep>(conn)?;
    let scan = |d: &str| d.starts_with("SCAN") && !d.contains(" USING ");
    Ok(steps.iter().any(|s| scan(&s.detail)) && !steps.iter().any(|s| s.detail.contains(" USING ")))
}

/// SQLite's bind values, owned, so that a query can be moved to another thread.
pub(super) type Binds = <<Sqlite as Backend>::BindCollector<'static> as MoveableBindCollector<Sqlite>>::BindData;

/// `query` as SQL text and owned binds, to run on another thread or later.
pub(super) fn collect<Q: QueryFragment<Sqlite>>(query: &Q) -> QueryResult<CollectedQuery<Binds>> {
    use diesel::query_builder::QueryBuilder;
    let backend = Sqlite;
    let mut sql = SqliteQueryBuilder::new();
    query.to_sql(&mut sql, &backend)?;
    let mut binds = <<Sqlite as Backend>::BindCollector<'_> as Default>::default();
    query.collect_binds(&mut binds, &mut (), &backend)?;
    let cacheable = query.is_safe_to_cache_prepared(&backend)?;
    Ok(CollectedQuery::new(sql.finish(), cacheable, binds.moveable()))
}

/// A query rendered on the caller's thread and run on another.
struct Owned(CollectedQuery<Binds>);

impl QueryFragment<Sqlite> for Owned {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }
}

impl QueryId for Owned {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Owned {
    type SqlType = diesel::sql_types::Untyped;
}

impl RunQueryDsl<SqliteConnection> for Owned {}

/// A query whose rows the exact scan reads (column 0 the id, column 1 the vector), which can also be
/// rendered for another connection.
pub(crate) trait RowsQuery<'q>:
    QueryFragment<Sqlite> + RunQueryDsl<SqliteConnection> + LoadQuery<'q, SqliteConnection, Scored, DefaultLoadingMode> + 'q
{
}

impl<'q, T> RowsQuery<'q> for T where
    T: QueryFragment<Sqlite>
        + RunQueryDsl<SqliteConnection>
        + LoadQuery<'q, SqliteConnection, Scored, DefaultLoadingMode>
        + 'q
{
}

/// The `k` rows nearest to `query` among those `rows(part)` selects, read on several connections when
/// [`divide`] says so; `None` when the scan is to be read on `conn` alone as usual.
pub(crate) fn top_k_divided<'q, Q>(
    conn: &mut SqliteConnection,
    table: &str,
    threads: Option<usize>,
    rows: impl Fn(Option<Part>) -> Q,
    query: &ScanQuery<'_>,
    metric: Metric,
    k: usize,
) -> Result<Option<Exact>, ExactError>
where
    Q: RowsQuery<'q>,
{
    let Some(plan) = divide(conn, table, threads, DEFAULT_MIN_ROWS)? else { return Ok(None) };
    if !scans_the_table(conn, &rows(None))? {
        return Ok(None);
    }
    // The helpers' queries, rendered here (a query need not be `Send`); each piece's is taken once.
    let queued = plan
        .pieces
        .iter()
        .map(|piece| collect(&rows(Some(*piece))).map(|q| Mutex::new(Some(Owned(q)))))
        .collect::<QueryResult<Vec<_>>>()?;
    let theirs = |conn: &mut SqliteConnection, (): &(), i: usize| {
        let owned = queued.get(i)?.lock().unwrap_or_else(PoisonError::into_inner).take()?;
        top_k(conn, owned, query, metric, k).ok()
    };
    let mine =
        |conn: &mut SqliteConnection, (): &(), i: usize| top_k(conn, rows(Some(plan.pieces[i])), query, metric, k);
    in_pieces(conn, &plan, |_| Ok(()), &theirs, mine, |_, parts| Ok(Some(merge(parts, k))))
}

/// Reads the pieces of `plan` on `conn` and on the extra connections at once, all in one snapshot. In it,
/// on `conn`: `prepare` first, for what every piece needs (read before any piece is); then the pieces,
/// `theirs(connection, &prepared, piece)` on other threads (`None`: the piece is read again by `mine`),
/// `mine(conn, &prepared, piece)` on this one; then `finish(conn, parts)` (in any order), for what the
/// result needs beside them. `None` (nothing read, or nothing kept) when a commit came between the
/// snapshots, when a transaction was already open, or when `finish` says so.
pub(crate) fn in_pieces<P, T, R, E>(
    conn: &mut SqliteConnection,
    plan: &Divided,
    prepare: impl FnOnce(&mut SqliteConnection) -> Result<P, E>,
    theirs: &(impl Fn(&mut SqliteConnection, &P, usize) -> Option<T> + Sync),
    mut mine: impl FnMut(&mut SqliteConnection, &P, usize) -> Result<T, E>,
    finish: impl FnOnce(&mut SqliteConnection, Vec<T>) -> Result<Option<R>, E>,
) -> Result<Option<R>, E>
where
    P: Sync,
    T: Send,
    E: From<diesel::result::Error>,
{
    let before = data_version(conn)?;
    let mmap_size = diesel::sql_query("PRAGMA mmap_size").get_result::<MmapSize>(conn)?.mmap_size;
    // SQLite refuses a BEGIN inside a transaction opened by hand (`batch_execute("BEGIN")`): read on this
    // connection alone, which sees what that transaction wrote.
    if conn.batch_execute("BEGIN").is_err() {
        return Ok(None);
    }
    let result = match read_pieces(conn, plan, before, mmap_size, prepare, theirs, &mut mine) {
        Ok(Some(parts)) => finish(conn, parts),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let ended = conn.batch_execute("COMMIT");
    let found = result?;
    ended?;
    Ok(found)
}

fn read_pieces<P, T, E>(
    conn: &mut SqliteConnection,
    plan: &Divided,
    before: i64,
    mmap_size: i64,
    prepare: impl FnOnce(&mut SqliteConnection) -> Result<P, E>,
    theirs: &(impl Fn(&mut SqliteConnection, &P, usize) -> Option<T> + Sync),
    mine: &mut impl FnMut(&mut SqliteConnection, &P, usize) -> Result<T, E>,
) -> Result<Option<Vec<T>>, E>
where
    P: Sync,
    T: Send,
    E: From<diesel::result::Error>,
{
    let file = plan.file.as_str();
    let id = file_id(file);
    let mut helpers = Vec::with_capacity(plan.connections - 1);
    for _ in 1..plan.connections {
        if let Some(h) = id.and_then(|id| helper(file, id, mmap_size)) {
            helpers.push(h);
        }
    }
    // This connection's snapshot starts here; a commit since `before` means another snapshot. Every
    // other connection must see what this one sees.
    let seen = fingerprint(conn)?;
    let same = data_version(conn)? == before;
    let mut ready = Vec::with_capacity(helpers.len());
    for (helper, theirs) in helpers {
        if same && theirs == seen {
            ready.push(helper);
        } else {
            give_back(file, helper);
        }
    }
    if !same {
        return Ok(None);
    }
    // Run before the helpers start: on error they are given back unused.
    let prepared = match prepare(conn) {
        Ok(p) => p,
        Err(e) => {
            ready.into_iter().for_each(|h| give_back(file, h));
            return Err(e);
        }
    };
    let prepared = &prepared;
    // Every connection takes the next piece in turn.
    let next = AtomicUsize::new(0);
    let take = || {
        let i = next.fetch_add(1, Ordering::Relaxed);
        (i < plan.pieces.len()).then_some(i)
    };
    let (mine_found, joined) = thread::scope(|scope| {
        // A thread the system refuses to start takes no range: the others, this one included, read them.
        let running: Vec<_> = ready
            .into_iter()
            .filter_map(|mut h| {
                let take = &take;
                thread::Builder::new()
                    .name("diesel-vector-scan".into())
                    .spawn_scoped(scope, move || {
                        let (mut found, mut failed) = (Vec::new(), Vec::new());
                        while let Some(i) = take() {
                            match theirs(&mut h.conn, prepared, i) {
                                Some(part) => found.push(part),
                                // Read again on the caller's connection below.
                                None => failed.push(i),
                            }
                        }
                        (h, found, failed)
                    })
                    .ok()
            })
            .collect();
        tracing::Span::current().record("connections", 1 + running.len());
        let mut found = Vec::new();
        let mut error = None;
        while let Some(i) = take() {
            match mine(conn, prepared, i) {
                Ok(part) => found.push(part),
                Err(e) => {
                    // Stop taking pieces; the helpers finish theirs.
                    error = Some(e);
                    next.store(plan.pieces.len(), Ordering::Relaxed);
                }
            }
        }
        // A thread that panicked took its connection with it: its pieces are unknown, so all are read again.
        let joined: Vec<_> = running.into_iter().map(thread::ScopedJoinHandle::join).collect();
        (error.map_or(Ok(found), Err), joined)
    });
    let mut found = Vec::new();
    let mut again = Vec::new();
    let mut lost = false;
    for outcome in joined {
        match outcome {
            Ok((h, parts, failed)) => {
                found.extend(parts);
                again.extend(failed);
                give_back(file, h);
            }
            Err(_) => lost = true,
        }
    }
    let mine_found = mine_found?;
    if lost {
        // Which pieces the lost thread had read is not known: read every piece here, in the same snapshot.
        return (0..plan.pieces.len()).map(|i| mine(conn, prepared, i)).collect::<Result<Vec<_>, E>>().map(Some);
    }
    found.extend(mine_found);
    // What another connection could not read is read here, in the same snapshot.
    for i in again {
        found.push(mine(conn, prepared, i)?);
    }
    Ok(Some(found))
}

/// The `k` nearest of the parts' results, ordered as one scan orders them.
fn merge(parts: Vec<Exact>, k: usize) -> Exact {
    let mut neighbours: Vec<Neighbour> = Vec::with_capacity(parts.iter().map(|p| p.neighbours.len()).sum());
    let (mut rows, mut skipped) = (0, 0);
    for part in parts {
        rows += part.rows;
        skipped += part.skipped;
        neighbours.extend(part.neighbours);
    }
    neighbours.sort_by(Neighbour::order);
    neighbours.truncate(k);
    Exact { neighbours, rows, skipped }
}
