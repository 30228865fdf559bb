//! Registering sqlite-vec with SQLite: the crate's only `unsafe` code.

/// Whether this build compiled sqlite-vec in (the `sqlite-vec` feature).
pub const SQLITE_VEC_COMPILED_IN: bool = cfg!(feature = "sqlite-vec");

/// Registers sqlite-vec as an SQLite auto-extension, so that every connection opened afterwards in this
/// process has its functions (`vec_distance_cosine`, ...) and its `vec0` virtual table.
///
/// Idempotent and cheap: SQLite ignores a second registration of the same entry point. Connections that
/// are already open are not affected. Without the `sqlite-vec` feature this does nothing and returns
/// `Ok(())`. [`establish`](crate::sqlite::establish) calls it for you.
///
/// # Errors
///
/// The SQLite result code if SQLite could not register the extension (out of memory).
pub fn register_sqlite_vec() -> Result<(), i32> {
    #[cfg(feature = "sqlite-vec")]
    {
        let rc = imp::auto_extension(true);
        if rc != libsqlite3_sys::SQLITE_OK {
            return Err(rc);
        }
    }
    Ok(())
}

/// Undoes [`register_sqlite_vec`]: connections opened afterwards do not have sqlite-vec (until it is
/// registered again). Useful to check an application's behaviour when the extension is missing. Returns
/// whether a registration was removed.
///
/// ```
/// use diesel_vector::sqlite::{deregister_sqlite_vec, register_sqlite_vec, SQLITE_VEC_COMPILED_IN};
///
/// // Nothing to remove yet (and SQLite not even initialised: this is the first SQLite call).
/// assert!(!deregister_sqlite_vec());
/// register_sqlite_vec().expect("SQLite could not register sqlite-vec");
/// assert_eq!(deregister_sqlite_vec(), SQLITE_VEC_COMPILED_IN);
/// ```
pub fn deregister_sqlite_vec() -> bool {
    #[cfg(feature = "sqlite-vec")]
    {
        imp::auto_extension(false) == 1
    }
    #[cfg(not(feature = "sqlite-vec"))]
    {
        false
    }
}

#[cfg(feature = "sqlite-vec")]
#[allow(unsafe_code)]
mod imp {
    use std::ffi::{c_char, c_int};

    use libsqlite3_sys::{
        sqlite3, sqlite3_api_routines, sqlite3_auto_extension, sqlite3_cancel_auto_extension, sqlite3_initialize,
        SQLITE_OK,
    };

    type EntryPoint = unsafe extern "C" fn(*mut sqlite3, *mut *mut c_char, *const sqlite3_api_routines) -> c_int;

    /// Adds (`register = true`) or removes sqlite-vec's entry point from SQLite's auto-extension list and
    /// returns SQLite's result.
    pub(super) fn auto_extension(register: bool) -> c_int {
        // SAFETY:
        // - `sqlite3_vec_init` is a C function with exactly the signature of SQLite's extension entry point,
        //   `int sqlite3_vec_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)`
        //   (sqlite-vec.c); the `sqlite-vec` crate merely declares it without arguments. Casting a function
        //   pointer to its true signature is sound.
        // - sqlite-vec is compiled with SQLITE_CORE, so its calls resolve to the same SQLite that
        //   libsqlite3-sys links (and Diesel uses); it never dereferences `pApi`.
        // - `sqlite3_auto_extension` and `sqlite3_cancel_auto_extension` are thread-safe (they take SQLite's
        //   static mutex) and only store or remove the pointer, which is valid for the program's lifetime.
        // - Unlike `sqlite3_auto_extension`, `sqlite3_cancel_auto_extension` does not initialise SQLite: it
        //   allocates the mutex through SQLite's mutex methods, which are a null pointer until
        //   `sqlite3_initialize` has run (a segfault if nothing opened a connection yet). Initialising first
        //   is always allowed and a no-op once done.
        unsafe {
            let entry: EntryPoint =
                std::mem::transmute::<*const (), EntryPoint>(sqlite_vec::sqlite3_vec_init as *const ());
            if register {
                sqlite3_auto_extension(Some(entry))
            } else {
                match sqlite3_initialize() {
                    SQLITE_OK => sqlite3_cancel_auto_extension(Some(entry)),
                    _ => 0,
                }
            }
        }
    }
}
