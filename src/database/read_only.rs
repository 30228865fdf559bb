//! Reading an SQLite database in WAL mode where SQLite cannot create its shared-memory file.
//!
//! A reader of a WAL database needs `PATH-shm` (the WAL index). When it is missing and cannot be
//! created (a read-only directory or mount), SQLite fails with `unable to open database file`, even
//! read-only (`mode=ro`). If the write-ahead log `PATH-wal` is absent or empty, every committed page is in
//! the database file itself, and `immutable=1` reads it correctly without the WAL index. If the log holds
//! frames (a writer stopped before checkpointing), `immutable=1` would ignore them and show stale data:
//! that is refused with an error saying what to do. When `PATH-shm` exists SQLite reads it, writable or
//! not; its errors are then reported as they are.
//!
//! `immutable=1` also turns locking off: a process that could write the database at the same time would
//! go unnoticed. None can while `PATH-shm` is missing and nobody can create it; the check and the open are
//! not atomic, which the error path accepts.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What to do when a read-only open of a file database failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// The failure is not a missing WAL index: report SQLite's error.
    None,
    /// A WAL database without its index and with an empty log: open it again with `immutable=1`.
    Immutable,
    /// A WAL database without its index whose log holds frames: reading it immutable would be stale.
    WalUnreadable,
}

/// What the files beside a database say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalFacts {
    /// The database header says WAL (bytes 18 and 19 are 2).
    pub(crate) wal_mode: bool,
    /// `PATH-shm` exists.
    pub(crate) shm_exists: bool,
    /// Bytes in `PATH-wal` (0 when it does not exist).
    pub(crate) wal_bytes: u64,
}

impl WalFacts {
    /// Reads the facts of the database at `path` (a database that cannot be read is not in WAL mode).
    pub(crate) fn of(path: &Path) -> Self {
        let mut header = [0u8; 20];
        let wal_mode = File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok()
            && header.starts_with(b"SQLite format 3\0")
            && header[18] == 2
            && header[19] == 2;
        Self {
            wal_mode,
            shm_exists: beside(path, "-shm").exists(),
            wal_bytes: std::fs::metadata(beside(path, "-wal")).map_or(0, |m| m.len()),
        }
    }
}

/// The decision, from the facts alone.
pub(crate) fn fallback(facts: WalFacts) -> Fallback {
    match facts {
        WalFacts { wal_mode: false, .. } | WalFacts { shm_exists: true, .. } => Fallback::None,
        WalFacts { wal_bytes: 0, .. } => Fallback::Immutable,
        WalFacts { .. } => Fallback::WalUnreadable,
    }
}

/// `PATH` + `suffix` (`-wal`, `-shm`), as SQLite names its files.
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// True when a connection error is SQLite's `SQLITE_CANTOPEN`.
pub(crate) fn is_cant_open(error: &diesel::ConnectionError) -> bool {
    error.to_string().contains("unable to open database file")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(wal_mode: bool, shm_exists: bool, wal_bytes: u64) -> WalFacts {
        WalFacts { wal_mode, shm_exists, wal_bytes }
    }

    #[test]
    fn only_a_wal_database_missing_its_index_is_retried() {
        assert_eq!(fallback(facts(false, false, 0)), Fallback::None, "rollback journal: SQLite's error");
        assert_eq!(fallback(facts(false, false, 4096)), Fallback::None);
        assert_eq!(fallback(facts(true, true, 0)), Fallback::None, "the index exists: SQLite's error");
        assert_eq!(fallback(facts(true, true, 4096)), Fallback::None);
        assert_eq!(fallback(facts(true, false, 0)), Fallback::Immutable, "nothing in the log: immutable is exact");
        assert_eq!(fallback(facts(true, false, 4152)), Fallback::WalUnreadable, "frames in the log: refuse");
    }

    #[test]
    fn facts_come_from_the_header_and_the_files_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        assert_eq!(WalFacts::of(&path), facts(false, false, 0), "no file");
        let mut header = b"SQLite format 3\0".to_vec();
        header.extend_from_slice(&[0x10, 0x00, 2, 2]);
        std::fs::write(&path, &header).unwrap();
        assert_eq!(WalFacts::of(&path), facts(true, false, 0));
        std::fs::write(beside(&path, "-wal"), [0u8; 32]).unwrap();
        std::fs::write(beside(&path, "-shm"), []).unwrap();
        assert_eq!(WalFacts::of(&path), facts(true, true, 32));
        header[18] = 1;
        std::fs::write(&path, &header).unwrap();
        assert!(!WalFacts::of(&path).wal_mode, "legacy journal");
    }
}
