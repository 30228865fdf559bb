//! Files the commands read and write: the export's output (never the database itself, written to a
//! temporary file that replaces the output only once complete) and a query vector read from a file
//! (bounded).

use std::error::Error;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use diesel_vector::database::sqlite_file;

/// The most a query file may hold: a vector has at most 16000 numbers, and each prints in at most 16
/// characters with its comma (`-1.1754944e-38,`), so 512 KiB leaves room for any spacing.
pub(crate) const QUERY_FILE_LIMIT: u64 = 512 * 1024;

/// Reads a query vector's text from `path`, at most [`QUERY_FILE_LIMIT`] bytes.
pub(crate) fn read_query(path: &Path) -> Result<String, Box<dyn Error>> {
    let file = File::open(path).map_err(|e| format!("cannot read the query vector from {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(QUERY_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the query vector from {}: {e}", path.display()))?;
    if bytes.len() as u64 > QUERY_FILE_LIMIT {
        return Err(format!(
            "{} holds more than {} KiB, more than any query vector (at most 16000 numbers): is it the right file?",
            path.display(),
            QUERY_FILE_LIMIT / 1024
        )
        .into());
    }
    String::from_utf8(bytes)
        .map_err(|_| format!("{} is not UTF-8 text: a query vector is written as [0.1,-2,...]", path.display()).into())
}

/// Refuses `output` when it is the SQLite database of `url` (or its `-wal`, `-shm` or `-journal` file),
/// whatever path names it: same device and inode.
pub(crate) fn refuse_database_as_output(url: &str, output: &Path) -> Result<(), Box<dyn Error>> {
    let Some(database) = sqlite_file(url) else { return Ok(()) };
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        if same_file(Path::new(&name), output) {
            return Err(format!(
                "refusing to export into {}: it is the database being exported ({}{suffix}); choose another file",
                output.display(),
                database.display()
            )
            .into());
        }
    }
    Ok(())
}

/// Removes the SQLite database of `url`, at `path` (and its `-wal`, `-shm` and `-journal` files) when it holds
/// nothing but Diesel's and diesel-vector's bookkeeping, empty: a database a failed `migration run` created.
/// Returns whether it did.
pub(crate) fn remove_if_unused(url: &str, path: &Path) -> bool {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let unused = (|| -> diesel::QueryResult<bool> {
        let mut conn = diesel::SqliteConnection::establish(&diesel_vector::database::sqlite_read_only_uri(url))
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
        let names: Vec<Name> =
            diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table'").load(&mut conn)?;
        for Name { name } in names {
            if !name.starts_with("__diesel") {
                return Ok(false);
            }
            let Ok(table) = diesel_vector::index::Ident::new(&name, "table") else { return Ok(false) };
            let rows: Count =
                diesel::sql_query(format!("SELECT count(*) AS n FROM {}", table.quoted())).get_result(&mut conn)?;
            if rows.n > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    })();
    if !unused.unwrap_or(false) {
        return false;
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = fs::remove_file(&name);
    }
    fs::remove_file(path).is_ok()
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(x), Ok(y)) => {
            use std::os::unix::fs::MetadataExt;
            x.dev() == y.dev() && x.ino() == y.ino()
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => fs::canonicalize(a).ok() == fs::canonicalize(b).ok(),
        _ => false,
    }
}

/// Why writing an output file failed: the cause, and what became of the file.
#[derive(Debug)]
struct NotWritten {
    cause: Box<dyn Error>,
    path: PathBuf,
    existed: bool,
}

impl fmt::Display for NotWritten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.existed {
            write!(f, "{}\n{} was left as it was", self.cause, self.path.display())
        } else {
            write!(f, "{}\nno file was written at {}", self.cause, self.path.display())
        }
    }
}

impl Error for NotWritten {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.cause)
    }
}

/// Runs `write` on a new temporary file beside `path` and, when it succeeds, flushes it to disk and
/// renames it onto `path` (the file a symbolic link points to, when `path` is one). When anything
/// fails the temporary file is removed and `path` is as it was: never a partial output.
pub(crate) fn write_atomically<R>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<R, Box<dyn Error>>,
) -> Result<R, Box<dyn Error>> {
    let existed = path.exists();
    let not_written = |cause: Box<dyn Error>| NotWritten { cause, path: path.to_path_buf(), existed };
    let target = if existed { fs::canonicalize(path).map_err(|e| not_written(e.into()))? } else { path.to_path_buf() };
    if target.is_dir() {
        return Err(not_written(format!("{} is a directory", path.display()).into()).into());
    }
    let (file, temporary) = temporary_beside(&target)
        .map_err(|e| not_written(format!("cannot create a temporary file beside {}: {e}", path.display()).into()))?;
    let result = (|| {
        let mut out = BufWriter::new(file);
        let value = write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if let Ok(old) = fs::metadata(&target) {
            file.set_permissions(old.permissions())?;
        }
        file.sync_all()?;
        fs::rename(&temporary, &target)?;
        Ok(value)
    })();
    match result {
        Ok(value) => {
            // The rename is durable once the directory is synced; not every platform can open one.
            if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(value)
        }
        Err(cause) => {
            let _ = fs::remove_file(&temporary);
            Err(not_written(cause).into())
        }
    }
}

/// A new file `.NAME.PID.N.tmp` in `target`'s directory, created exclusively.
fn temporary_beside(target: &Path) -> io::Result<(File, PathBuf)> {
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    for n in 0u32.. {
        let candidate = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&candidate) {
            Ok(file) => return Ok((file, candidate)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}
