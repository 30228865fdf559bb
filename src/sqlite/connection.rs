//! Opening SQLite connections the way the crate expects them.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError, QueryResult};
use diesel::{Connection, RunQueryDsl, SqliteConnection};

use super::extension::register_sqlite_vec;

/// How [`establish`] and [`ConnectionOptions::establish`] set an SQLite connection up.
///
/// Every connection gets `PRAGMA foreign_keys = ON` (without it `ON DELETE CASCADE` silently does
/// nothing, and it cannot be turned on inside a transaction, so it belongs here), a busy timeout so that
/// concurrent writers wait instead of failing with `database is locked`, and, for file databases, WAL
/// journaling with `synchronous = NORMAL` and memory-mapped reads (`PRAGMA mmap_size`, up to SQLite's
/// own limit of 2 GB by default): a search that reads many rows (the exact path, the codes' rerank) then
/// reads pages where the operating system caches them instead of copying each one through a system call
/// (BENCHMARKS.md, "SQLite index", measures it). `mmap_size(0)` turns that off.
///
/// ```
/// use std::time::Duration;
/// use diesel_vector::sqlite::ConnectionOptions;
///
/// let mut conn = ConnectionOptions::default()
///     .busy_timeout(Duration::from_secs(30))
///     .establish(":memory:")?;
/// # let _ = &mut conn;
/// # Ok::<(), diesel::ConnectionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOptions {
    busy_timeout: Duration,
    wal: bool,
    mmap_size: u64,
}

/// SQLite's default upper limit on `mmap_size` on 64-bit targets (`SQLITE_MAX_MMAP_SIZE`); a larger
/// request is capped to it anyway.
const DEFAULT_MMAP_SIZE: u64 = if cfg!(target_pointer_width = "64") { 0x7fff_0000 } else { 256 << 20 };

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self { busy_timeout: Duration::from_secs(5), wal: true, mmap_size: DEFAULT_MMAP_SIZE }
    }
}

impl ConnectionOptions {
    /// How long a statement waits for another connection's lock before failing (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Whether file databases switch to WAL journaling (default `true`). In-memory databases keep their
    /// memory journal either way.
    pub fn wal(mut self, wal: bool) -> Self {
        self.wal = wal;
        self
    }

    /// The most bytes of a file database SQLite reads through a memory map (`PRAGMA mmap_size`; default
    /// about 2 GB, SQLite's own limit on 64-bit targets, 256 MB on others). 0 reads every page with a
    /// system call, as SQLite does unless told otherwise. Pages read through the map count in the process's
    /// resident memory for as long as the connection is open: a connection that streams a whole large file
    /// (the crate's copy, export and import turn the map off) keeps its resident memory flat with 0.
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }

    /// Registers sqlite-vec (when compiled in), opens `database_url` and applies these options.
    ///
    /// # Errors
    ///
    /// [`ConnectionError::InvalidConnectionUrl`] for an empty path (SQLite would open a private temporary
    /// database, gone with the connection: use `:memory:` for that), what [`SqliteConnection::establish`]
    /// returns, or the failure of a set-up statement.
    pub fn establish(&self, database_url: &str) -> Result<SqliteConnection, ConnectionError> {
        if crate::database::is_empty_location(database_url) {
            return Err(ConnectionError::InvalidConnectionUrl(
                "the SQLite path is empty: give a file path, or :memory: for a temporary in-memory database".into(),
            ));
        }
        register_sqlite_vec().map_err(|rc| {
            ConnectionError::BadConnection(format!("could not register sqlite-vec (SQLite error code {rc})"))
        })?;
        let mut conn = SqliteConnection::establish(database_url)?;
        self.apply(&mut conn).map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    }

    /// Applies these options to a connection that is already open: the pragmas and the SQL functions
    /// the crate registers. Must run outside a transaction (`PRAGMA foreign_keys` is ignored inside one).
    ///
    /// # Errors
    ///
    /// The failure of a set-up statement, for example `database is locked` while switching to WAL.
    pub fn apply(&self, conn: &mut SqliteConnection) -> QueryResult<()> {
        let millis = self.busy_timeout.as_millis().min(i32::MAX as u128);
        conn.batch_execute(&format!("PRAGMA busy_timeout = {millis}; PRAGMA foreign_keys = ON;"))?;
        if self.wal {
            switch_to_wal(conn, self.busy_timeout)?;
            conn.batch_execute("PRAGMA synchronous = NORMAL;")?;
        }
        conn.batch_execute(&format!("PRAGMA mmap_size = {}", self.mmap_size.min(i64::MAX as u64)))?;
        super::functions::register(conn)
    }
}

/// `PRAGMA journal_mode = WAL`, tried again until `timeout` has passed while the file is locked.
///
/// Switching a new file to WAL needs an exclusive lock. When several connections open the same new file at
/// once, each takes a shared lock first; SQLite then answers `database is locked` at once, without calling
/// the busy handler (waiting could deadlock), to all but one of them. Once one has switched, the file stays
/// in WAL and the others' retry is a read. Answers "memory" for in-memory databases, which keep their
/// journal: nothing to do there.
fn switch_to_wal(conn: &mut SqliteConnection, timeout: Duration) -> QueryResult<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL") {
            Err(DieselError::DatabaseError(_, info))
                if info.message().contains("database is locked") && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// Opens an SQLite connection with the default [`ConnectionOptions`]: sqlite-vec registered (when
/// compiled in), foreign keys on, a 5 s busy timeout, WAL for file databases.
///
/// `database_url` is what [`SqliteConnection::establish`] takes: a path, `:memory:` or a `file:` URI.
///
/// ```
/// let mut conn = diesel_vector::sqlite::establish(":memory:")?;
/// # let _ = &mut conn;
/// # Ok::<(), diesel::ConnectionError>(())
/// ```
///
/// # Errors
///
/// What [`SqliteConnection::establish`] returns, or the failure of a set-up statement.
pub fn establish(database_url: &str) -> Result<SqliteConnection, ConnectionError> {
    ConnectionOptions::default().establish(database_url)
}

diesel::define_sql_function! {
    /// sqlite-vec's version function.
    fn vec_version() -> Text;
}

/// The version of sqlite-vec on this connection (`"v0.1.9"`), or `None` when the extension is not
/// loaded on it.
///
/// ```
/// let mut conn = diesel_vector::sqlite::establish(":memory:")?;
/// let version = diesel_vector::sqlite::sqlite_vec_version(&mut conn)?;
/// assert_eq!(version.is_some(), diesel_vector::sqlite::SQLITE_VEC_COMPILED_IN);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// Any database error other than the function being absent.
pub fn sqlite_vec_version(conn: &mut SqliteConnection) -> QueryResult<Option<String>> {
    match diesel::select(vec_version()).get_result::<String>(conn) {
        Ok(version) => Ok(Some(version)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info))
            if info.message().starts_with("no such function") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// An r2d2 [`CustomizeConnection`](diesel::r2d2::CustomizeConnection) that sets every pooled SQLite
/// connection up like [`establish`] does.
///
/// ```
/// use diesel::r2d2::{ConnectionManager, Pool};
/// use diesel::SqliteConnection;
/// use diesel_vector::sqlite::{ConnectionOptions, SqliteCustomizer};
///
/// let pool = Pool::builder()
///     .max_size(2)
///     .connection_customizer(Box::new(SqliteCustomizer::new(ConnectionOptions::default())))
///     .build(ConnectionManager::<SqliteConnection>::new(":memory:"))?;
/// let mut conn = pool.get()?;
/// # let _ = &mut conn;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "r2d2")]
#[derive(Debug, Clone)]
pub struct SqliteCustomizer {
    options: ConnectionOptions,
}

#[cfg(feature = "r2d2")]
impl SqliteCustomizer {
    /// A customizer applying `options`. Registers sqlite-vec now (when compiled in), so that the
    /// connections the pool opens from here on have it.
    pub fn new(options: ConnectionOptions) -> Self {
        // Registration fails only when SQLite is out of memory; the pool's connections would then lack
        // the extension, which `sqlite_vec_version` reports and searches tolerate.
        let _ = register_sqlite_vec();
        Self { options }
    }
}

#[cfg(feature = "r2d2")]
impl diesel::r2d2::CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteCustomizer {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        self.options.apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}
