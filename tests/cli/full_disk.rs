//! A real full disk: SQLite files on a tiny tmpfs. When a write fails with ENOSPC while SQLite spills
//! its page cache or commits, SQLite rolls the whole transaction back by itself; Diesel's ROLLBACK then
//! failed and its error ("cannot rollback - no transaction is active", "Cannot perform this operation
//! outside of a transaction") was all the user saw. Every writing command must report SQLite's own error.
//!
//! Mounting needs root (the tests' machines run them as root). Elsewhere these tests say they are
//! skipped, unless `DIESEL_VECTOR_REQUIRE_MOUNT=1` (set by `scripts/test.sh` as root) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{count, fails, ok, seed_smooth, smooth, sqlite_file};

const DISK_FULL: &str = "database or disk is full";

/// A tmpfs of a given size, unmounted on drop.
pub struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    /// Mounts a tmpfs of `kib` KiB, or says why it cannot (`None`).
    pub fn mount(kib: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if mounted {
            return Some(Self { dir });
        }
        let required = std::env::var_os("DIESEL_VECTOR_REQUIRE_MOUNT").is_some_and(|v| v == "1");
        assert!(!required, "cannot mount a tmpfs, and DIESEL_VECTOR_REQUIRE_MOUNT=1");
        eprintln!("SKIPPED: cannot mount a tmpfs for a full-disk test (needs root)");
        None
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Leaves `kib` KiB free, with a file of zeros taking the rest.
    pub fn leave_free(&self, kib: u64) {
        let filler = self.path().join("filler");
        let _ = std::fs::remove_file(&filler);
        let free = free_kib(self.path());
        assert!(free >= kib, "only {free} KiB free");
        std::fs::write(&filler, vec![0u8; ((free - kib) * 1024) as usize]).unwrap();
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn free_kib(path: &Path) -> u64 {
    let out = Command::new("df").args(["-k", "--output=avail"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

/// JSON lines of `n` fragments, one 1536-dim embedding each (about 20 KB a line).
fn jsonl(dir: &Path, n: usize) -> PathBuf {
    let source = sqlite_file(dir, "lines.db");
    seed_smooth(&source, n, 1);
    let file = dir.join("lines.jsonl");
    ok(&["--database-url", &source, "export", "-o", file.to_str().unwrap()]);
    file
}

/// SQLite's "database or disk is full", or sqlite-vec's error for a write of its index that failed (it
/// hides SQLite's), which the command line completes with "usually the disk is full".
#[track_caller]
fn assert_disk_full(stderr: &str) {
    assert!(stderr.contains(DISK_FULL) || stderr.contains("usually the disk is full"), "SQLite's own error: {stderr}");
    assert!(!stderr.contains("rollback") && !stderr.contains("outside of a transaction"), "{stderr}");
}

#[test]
fn import_onto_a_full_disk_reports_the_full_disk() {
    // Sizes (here and below) found to reproduce the defect with the binary before the fix.
    let Some(disk) = TinyDisk::mount(512) else { return };
    let work = tempfile::tempdir().unwrap();
    let lines = jsonl(work.path(), 300);
    let db = sqlite_file(disk.path(), "app.db");
    ok(&["--database-url", &db, "migration", "run"]);
    // One transaction larger than SQLite's page cache: the cache spills into the log mid-transaction.
    let (_, stderr) = fails(&["--database-url", &db, "import", "-i", lines.to_str().unwrap(), "--batch-size", "1000"]);
    assert_disk_full(&stderr);
    // Tables are imported in their dependency order, one transaction per batch: the fragments' batch was
    // whole or absent, and nothing of the failed batch of embeddings is kept.
    let fragments = count(&db, "fragments");
    assert!(fragments == 0 || fragments == count(&work.path().join("lines.db").to_string_lossy(), "fragments"));
    assert_eq!(count(&db, "fragment_embeddings"), 0, "nothing of the failed batch is kept");
}

#[test]
fn copy_onto_a_full_disk_reports_the_full_disk() {
    let Some(disk) = TinyDisk::mount(512) else { return };
    let work = tempfile::tempdir().unwrap();
    let source = sqlite_file(work.path(), "source.db");
    seed_smooth(&source, 300, 1);
    let target = sqlite_file(disk.path(), "target.db");
    let (_, stderr) = fails(&["copy", "--from", &source, "--to", &target, "--batch-size", "1000"]);
    assert_disk_full(&stderr);
}

#[test]
fn a_search_on_a_full_disk_answers_and_reindex_reports_the_full_disk() {
    let Some(disk) = TinyDisk::mount(8192) else { return };
    let db = sqlite_file(disk.path(), "app.db");
    // Rows written without their index: the next search would build it, which the disk cannot hold. A
    // search is a read: it answers from the table (an exact scan) and leaves the index to be built later.
    seed_smooth(&db, 300, 1);
    disk.leave_free(100);
    let query = smooth(3).to_string();
    let search = ["--database-url", &db, "search", "--provider", "provider", "--model", "model-0", "--vector", &query];
    let on_a_full_disk = ok(&search);
    assert!(on_a_full_disk.lines().count() > 1, "{on_a_full_disk}");
    let (_, stderr) = fails(&["--database-url", &db, "reindex"]);
    assert_disk_full(&stderr);
    let (stdout, _) = fails(&["--database-url", &db, "doctor"]);
    assert!(stdout.contains("codes: marked for rebuild"), "nothing half-built: {stdout}");

    std::fs::remove_file(disk.path().join("filler")).unwrap();
    assert_eq!(ok(&search), on_a_full_disk, "the same answer once there is room, from the index built then");
}

#[test]
fn migrations_on_a_full_disk_report_the_full_disk() {
    let Some(disk) = TinyDisk::mount(1024) else { return };
    let db = sqlite_file(disk.path(), "app.db");
    disk.leave_free(48);
    let (_, stderr) = fails(&["--database-url", &db, "migration", "run"]);
    assert_disk_full(&stderr);

    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let out = ok(&["--database-url", &db, "migration", "run"]);
    assert!(out.contains("create_fragment_embeddings"), "{out}");
}
