//! SQLite through its C API, for the raw baselines of the database reports: a prepared statement bound,
//! stepped and reset in a loop, with nothing of Diesel in between. It links the same SQLite library as
//! Diesel (the one `libsqlite3-sys` the workspace resolves), so both sides run the same engine with the
//! same compile options.
//!
//! This is the bench crate's only `unsafe` code (the library has none outside its audited extension
//! registration). Each block's safety argument is the same: the handles are owned by the wrappers below,
//! created non-null by SQLite, finalised or closed exactly once in `Drop`, and never shared between
//! threads; a statement borrows its connection, so it cannot outlive it; bound pointers stay valid
//! until the statement is reset (every method that binds borrowed data steps and resets before it
//! returns), which is what `SQLITE_STATIC` requires.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::ptr;

use libsqlite3_sys as ffi;

/// The version of the SQLite library linked in (`sqlite3_libversion`).
pub fn library_version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::sqlite3_libversion()) }.to_string_lossy().into_owned()
}

/// An open SQLite connection.
pub struct RawDb {
    db: *mut ffi::sqlite3,
}

/// A prepared statement of a [`RawDb`].
pub struct RawStmt<'db> {
    stmt: *mut ffi::sqlite3_stmt,
    db: *mut ffi::sqlite3,
    _conn: PhantomData<&'db mut RawDb>,
}

/// One value to bind.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    Null,
}

fn error_message(db: *mut ffi::sqlite3, rc: c_int) -> String {
    // SAFETY: `db` is a live connection handle (or null, which sqlite3_errmsg accepts); the message is
    // copied before any other call on the connection.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) };
    format!("SQLite error {rc}: {}", message.to_string_lossy())
}

impl RawDb {
    /// Opens (or creates) the database at `path`, read-write.
    pub fn open(path: &str) -> Result<Self, String> {
        let c_path = CString::new(path).map_err(|e| e.to_string())?;
        let mut db = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
        // SAFETY: `c_path` is a NUL-terminated string that outlives the call; `db` receives the handle.
        let rc = unsafe { ffi::sqlite3_open_v2(c_path.as_ptr(), &mut db, flags, ptr::null()) };
        if rc != ffi::SQLITE_OK {
            let message = error_message(db, rc);
            // SAFETY: SQLite allocates a handle even on failure; closing null is a no-op.
            unsafe { ffi::sqlite3_close(db) };
            return Err(message);
        }
        Ok(Self { db })
    }

    /// Runs one or more statements that return no rows.
    pub fn exec(&mut self, sql: &str) -> Result<(), String> {
        let c_sql = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: a live handle and a NUL-terminated string; no callback, no error buffer.
        let rc = unsafe { ffi::sqlite3_exec(self.db, c_sql.as_ptr(), None, ptr::null_mut(), ptr::null_mut()) };
        if rc != ffi::SQLITE_OK {
            return Err(error_message(self.db, rc));
        }
        Ok(())
    }

    /// Prepares one statement, as Diesel does (`sqlite3_prepare_v3` with `SQLITE_PREPARE_PERSISTENT`,
    /// the hint for a statement that is reused many times).
    pub fn prepare(&mut self, sql: &str) -> Result<RawStmt<'_>, String> {
        let mut stmt = ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|e| e.to_string())?;
        // SAFETY: `sql` is valid for `len` bytes during the call (SQLite copies what it keeps).
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return Err(error_message(self.db, rc));
        }
        Ok(RawStmt { stmt, db: self.db, _conn: PhantomData })
    }
}

impl Drop for RawDb {
    fn drop(&mut self) {
        // SAFETY: every statement borrows the connection, so all are finalised by now.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

impl RawStmt<'_> {
    /// Binds `values` to parameters 1.., steps once (a statement that returns no row), and resets the
    /// statement and clears its bindings, so nothing borrowed is kept.
    pub fn execute(&mut self, values: &[Value<'_>]) -> Result<(), String> {
        let result = self.bind(values).and_then(|()| match self.step()? {
            true => Err("the statement returned a row".to_owned()),
            false => Ok(()),
        });
        self.reset();
        result
    }

    fn bind(&mut self, values: &[Value<'_>]) -> Result<(), String> {
        for (i, value) in values.iter().enumerate() {
            let idx = c_int::try_from(i + 1).map_err(|e| e.to_string())?;
            // SAFETY: a live statement; borrowed data is bound with SQLITE_STATIC and stays valid until
            // `reset` below, which every caller reaches before `values` goes out of scope.
            let rc = unsafe {
                match *value {
                    Value::Int(v) => ffi::sqlite3_bind_int64(self.stmt, idx, v),
                    Value::Null => ffi::sqlite3_bind_null(self.stmt, idx),
                    Value::Text(s) => ffi::sqlite3_bind_text(
                        self.stmt,
                        idx,
                        s.as_ptr().cast::<c_char>(),
                        c_int::try_from(s.len()).map_err(|e| e.to_string())?,
                        ffi::SQLITE_STATIC(),
                    ),
                    Value::Blob(b) => ffi::sqlite3_bind_blob(
                        self.stmt,
                        idx,
                        b.as_ptr().cast(),
                        c_int::try_from(b.len()).map_err(|e| e.to_string())?,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(error_message(self.db, rc));
            }
        }
        Ok(())
    }

    /// Steps once: `true` when a row is ready, `false` when done.
    pub fn step(&mut self) -> Result<bool, String> {
        // SAFETY: a live statement.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(error_message(self.db, rc)),
        }
    }

    /// Resets the statement and clears its bindings.
    pub fn reset(&mut self) {
        // SAFETY: a live statement. The return code repeats the last step's error, already reported.
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
    }

    /// Column `i` of the current row as an integer.
    pub fn column_int(&self, i: c_int) -> i64 {
        // SAFETY: a live statement positioned on a row (after `step` returned `true`).
        unsafe { ffi::sqlite3_column_int64(self.stmt, i) }
    }

    /// Column `i` of the current row as bytes (a BLOB's, or a TEXT's UTF-8), valid until the next step.
    pub fn column_bytes(&self, i: c_int) -> &[u8] {
        // SAFETY: a live statement on a row. `sqlite3_column_blob` first, then `sqlite3_column_bytes`,
        // as SQLite documents; the pointer stays valid until the statement steps or resets, which needs
        // `&mut self` while this borrow of `self` lives.
        unsafe {
            let data = ffi::sqlite3_column_blob(self.stmt, i);
            let len = usize::try_from(ffi::sqlite3_column_bytes(self.stmt, i)).unwrap_or(0);
            if data.is_null() || len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), len)
            }
        }
    }
}

impl Drop for RawStmt<'_> {
    fn drop(&mut self) {
        // SAFETY: a live statement, finalised once.
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
}
