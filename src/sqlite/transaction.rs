//! The crate's SQLite transactions: Diesel's, made to keep the error that failed them.
//!
//! On some errors SQLite rolls the whole transaction back by itself: `SQLITE_FULL` ("database or disk is
//! full"), `SQLITE_IOERR`, `SQLITE_NOMEM`, and `SQLITE_BUSY` or `SQLITE_INTERRUPT` in some statements.
//! Diesel's transaction manager does not know: when the closure fails it sends `ROLLBACK` (or `ROLLBACK TO
//! SAVEPOINT`), which then fails with "cannot rollback - no transaction is active" (or "no such
//! savepoint"), and *that* error replaces the one that mattered; when the failing statement went through
//! `batch_execute`, Diesel notices the ended transaction and the rollback fails instead with "Cannot
//! perform this operation outside of a transaction". A failing `COMMIT` whose rollback also fails leaves
//! the manager marked broken, refusing every later transaction on the connection.
//!
//! [`immediate`], [`deferred`] and [`savepoint`] begin and end transactions through Diesel's manager, so
//! that Diesel's own nested `transaction` calls (the migration harness's) still become savepoints, but
//! when the closure fails they return the closure's error, whatever the rollback says; and they leave the
//! manager in step with SQLite (see [`resync`]), so the connection stays usable. Every SQLite transaction
//! of the crate goes through them.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::result::Error as DieselError;
use diesel::SqliteConnection;
use tracing::warn;

type Manager = AnsiTransactionManager;

/// Runs `f` in a `BEGIN IMMEDIATE` transaction (the write lock taken up front), committing when it
/// succeeds and rolling back when it fails. Must not be called inside another transaction (Diesel's
/// `AlreadyInTransaction`).
///
/// # Errors
///
/// `f`'s error, as it was (also when SQLite already rolled the transaction back), or the failure of
/// `BEGIN` or `COMMIT`.
pub(crate) fn immediate<R, E: From<DieselError>>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<R, E>,
) -> Result<R, E> {
    begin(conn, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    finish(conn, result, true)
}

/// Runs `f` in a transaction (`BEGIN`), or in a savepoint when one is already open, as Diesel's
/// `Connection::transaction` does.
///
/// # Errors
///
/// As [`immediate`].
pub(crate) fn deferred<R, E: From<DieselError>>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<R, E>,
) -> Result<R, E> {
    // `begin_transaction_sql` refuses, before running anything, when a transaction is open: then a
    // savepoint, as Diesel's `transaction` makes.
    let top_level = match begin(conn, "BEGIN") {
        Ok(()) => true,
        Err(DieselError::AlreadyInTransaction) => {
            Manager::begin_transaction(conn)?;
            false
        }
        Err(e) if opened_by_hand(&e) => return in_savepoint_by_hand(conn, f),
        Err(e) => return Err(e.into()),
    };
    let result = f(conn);
    finish(conn, result, top_level)
}

/// Whether SQLite refused a `BEGIN` because a transaction is open that Diesel's manager does not know of
/// (opened by hand, `batch_execute("BEGIN")`).
pub(crate) fn opened_by_hand(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(_, info)
        if info.message().contains("cannot start a transaction within a transaction"))
}

/// Runs `f` in a savepoint of a transaction opened by hand, in SQL alone (Diesel's manager, which does not
/// know of that transaction, is left as it is): released after success, rolled back to after failure.
fn in_savepoint_by_hand<R, E: From<DieselError>>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<R, E>,
) -> Result<R, E> {
    conn.batch_execute("SAVEPOINT diesel_vector_by_hand")?;
    match f(conn) {
        Ok(value) => {
            conn.batch_execute("RELEASE diesel_vector_by_hand")?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) =
                conn.batch_execute("ROLLBACK TO diesel_vector_by_hand; RELEASE diesel_vector_by_hand")
            {
                if !ended_by_sqlite(&rollback) {
                    warn!(target: "diesel_vector::sqlite", error = %rollback, "rolling back a savepoint failed");
                }
            }
            Err(e)
        }
    }
}

/// Begins a top-level transaction with `sql` ([`end_top`] ends it), for callers that cannot hand over a
/// closure (the migration runner's lock, taken and released across awaits).
pub(crate) fn begin_top(conn: &mut SqliteConnection, sql: &str) -> Result<(), DieselError> {
    begin(conn, sql)
}

/// Ends what [`begin_top`] began, as [`immediate`] does: commits after `Ok`, rolls back after `Err`, and
/// returns `result`'s error as it was.
pub(crate) fn end_top<R, E: From<DieselError>>(conn: &mut SqliteConnection, result: Result<R, E>) -> Result<R, E> {
    finish(conn, result, true)
}

/// Begins a top-level transaction with `sql`; a manager left broken by an earlier failure is brought back
/// in step with SQLite first ([`resync`]).
fn begin(conn: &mut SqliteConnection, sql: &str) -> Result<(), DieselError> {
    match Manager::begin_transaction_sql(conn, sql) {
        Err(DieselError::BrokenTransactionManager) => {
            resync(conn);
            Manager::begin_transaction_sql(conn, sql)
        }
        result => result,
    }
}

/// How a [`savepoint`] failed.
#[derive(Debug)]
pub(crate) enum SavepointError<E> {
    /// Rolled back to the savepoint: the enclosing transaction goes on.
    RolledBack(E),
    /// SQLite ended the whole enclosing transaction (a full disk...): nothing of it is left, and no
    /// statement of it may follow.
    TransactionEnded(E),
}

impl<E> SavepointError<E> {
    /// The error, whichever way the savepoint ended.
    pub(crate) fn into_inner(self) -> E {
        match self {
            Self::RolledBack(e) | Self::TransactionEnded(e) => e,
        }
    }
}

/// Runs `f` in a savepoint inside the current transaction, and says how it ended when it failed.
///
/// # Errors
///
/// [`SavepointError::RolledBack`] with `f`'s error when the savepoint was rolled back and the transaction
/// is still open; [`SavepointError::TransactionEnded`] when SQLite had ended the whole transaction
/// (also for a failing `SAVEPOINT` or `RELEASE`).
pub(crate) fn savepoint<R, E: From<DieselError>>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&mut SqliteConnection) -> Result<R, E>,
) -> Result<R, SavepointError<E>> {
    Manager::begin_transaction(conn).map_err(|e| SavepointError::TransactionEnded(e.into()))?;
    match f(conn) {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => Err(SavepointError::TransactionEnded(e.into())),
        },
        Err(e) => match Manager::rollback_transaction(conn) {
            Ok(()) => Err(SavepointError::RolledBack(e)),
            Err(rollback) => {
                if !ended_by_sqlite(&rollback) {
                    warn!(target: "diesel_vector::sqlite", error = %rollback, "rolling back a savepoint failed");
                }
                Err(SavepointError::TransactionEnded(e))
            }
        },
    }
}

/// Ends a transaction that `f` ran in: commit on success, rollback on failure, keeping `f`'s error.
fn finish<R, E: From<DieselError>>(conn: &mut SqliteConnection, result: Result<R, E>, top_level: bool) -> Result<R, E> {
    match result {
        Ok(value) => match Manager::commit_transaction(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                if top_level {
                    resync(conn);
                }
                Err(commit_error(e).into())
            }
        },
        Err(e) => {
            if let Err(rollback) = Manager::rollback_transaction(conn) {
                // Expected when SQLite ended the transaction itself; anything else is worth a line.
                if !ended_by_sqlite(&rollback) {
                    warn!(target: "diesel_vector::sqlite", error = %rollback, "rolling back failed");
                }
                if top_level {
                    resync(conn);
                }
            }
            Err(e)
        }
    }
}

/// The error of a failed `COMMIT`: Diesel pairs it with the failure of its rollback attempt, which is
/// only noise when SQLite had already ended the transaction.
fn commit_error(e: DieselError) -> DieselError {
    match e {
        DieselError::RollbackErrorOnCommit { commit_error, .. } => *commit_error,
        e => e,
    }
}

/// Brings Diesel's transaction manager in step with SQLite after a top-level transaction failed to end:
/// `ROLLBACK` until SQLite answers that no transaction is active. Diesel's `batch_execute` checks SQLite's
/// autocommit flag after a failing statement and, when no transaction is open, resets the manager to "no
/// transaction" (also from "broken"): the connection is then usable again. If SQLite still had the
/// transaction open, the first `ROLLBACK` ends it.
fn resync(conn: &mut SqliteConnection) {
    for _ in 0..2 {
        if conn.batch_execute("ROLLBACK").is_err() {
            return;
        }
    }
}

/// Whether a failed rollback only says that SQLite had already ended the transaction.
fn ended_by_sqlite(e: &DieselError) -> bool {
    if matches!(e, DieselError::NotInTransaction) {
        return true;
    }
    let text = e.to_string();
    text.contains("no transaction is active") || text.contains("no such savepoint")
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, QueryResult, RunQueryDsl};

    use super::*;

    /// A database whose next page cannot be allocated. One-row INSERTs into a table without indexes use
    /// no statement journal, so SQLite answers SQLITE_FULL by rolling the whole transaction back, as it
    /// does for a write that fails with ENOSPC while spilling its cache.
    fn full_database() -> SqliteConnection {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("CREATE TABLE t (b BLOB); PRAGMA max_page_count = 8;").unwrap();
        conn
    }

    fn fill(conn: &mut SqliteConnection) -> QueryResult<usize> {
        diesel::sql_query("INSERT INTO t VALUES (zeroblob(100000))").execute(conn)
    }

    fn small_row(conn: &mut SqliteConnection) -> QueryResult<usize> {
        diesel::sql_query("INSERT INTO t VALUES (x'01')").execute(conn)
    }

    fn rows(conn: &mut SqliteConnection) -> usize {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let n = diesel::sql_query("SELECT count(*) AS n FROM t").get_result::<N>(conn).unwrap().n;
        usize::try_from(n).unwrap()
    }

    #[test]
    fn diesels_own_transaction_loses_the_error_that_ended_it() {
        // What the helpers exist for: Diesel's ROLLBACK fails and its error replaces SQLITE_FULL.
        let mut conn = full_database();
        let err = conn.immediate_transaction(fill).unwrap_err().to_string();
        assert!(err.contains("no transaction is active"), "{err}");
    }

    #[test]
    fn inside_a_transaction_opened_by_hand_deferred_work_is_a_savepoint_of_it() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("CREATE TABLE t (b BLOB)").unwrap();
        conn.batch_execute("BEGIN").unwrap();
        small_row(&mut conn).unwrap();
        // Kept in the outer transaction when it succeeds, undone alone when it fails.
        assert_eq!(deferred(&mut conn, small_row).unwrap(), 1);
        let failed = deferred(&mut conn, |c| {
            small_row(c)?;
            diesel::sql_query("SELECT * FROM missing").execute(c)
        });
        assert!(failed.unwrap_err().to_string().contains("no such table"));
        assert_eq!(rows(&mut conn), 2);
        // The transaction is still the caller's to end, and Diesel's manager was left as it was.
        conn.batch_execute("ROLLBACK").unwrap();
        assert_eq!(rows(&mut conn), 0);
        assert_eq!(deferred(&mut conn, small_row).unwrap(), 1);
        assert_eq!(rows(&mut conn), 1);
        // An immediate transaction is refused there, with SQLite's words.
        conn.batch_execute("BEGIN").unwrap();
        let refused = immediate(&mut conn, small_row).unwrap_err();
        assert!(opened_by_hand(&refused), "{refused}");
        conn.batch_execute("ROLLBACK").unwrap();
    }

    #[test]
    fn an_error_that_ended_the_transaction_is_kept_and_the_connection_stays_usable() {
        for immediately in [true, false] {
            let mut conn = full_database();
            let work = |c: &mut SqliteConnection| {
                small_row(c)?;
                fill(c)
            };
            let result = if immediately { immediate(&mut conn, work) } else { deferred(&mut conn, work) };
            let err = result.unwrap_err();
            assert_eq!(err.to_string(), "database or disk is full");
            assert_eq!(rows(&mut conn), 0, "the whole transaction is gone");
            assert_eq!(immediate(&mut conn, small_row).unwrap(), 1, "the next transaction works");
            assert_eq!(rows(&mut conn), 1);
        }
    }

    #[test]
    fn a_savepoint_says_whether_its_transaction_survived() {
        let mut conn = full_database();
        let outcome: QueryResult<usize> = immediate(&mut conn, |c: &mut SqliteConnection| {
            small_row(c)?;
            // A failure SQLite recovers from: back to the savepoint, the transaction goes on.
            let failed = savepoint(c, |c: &mut SqliteConnection| {
                small_row(c)?;
                diesel::sql_query("INSERT INTO nowhere VALUES (1)").execute(c)
            });
            assert!(matches!(failed, Err(SavepointError::RolledBack(_))), "{failed:?}");
            small_row(c)?;
            // A failure that ends the transaction.
            match savepoint(c, fill) {
                Err(SavepointError::TransactionEnded(e)) => Err(e),
                other => panic!("{other:?}"),
            }
        });
        assert_eq!(outcome.unwrap_err().to_string(), "database or disk is full");
        assert_eq!(rows(&mut conn), 0);

        let kept = immediate(&mut conn, |c: &mut SqliteConnection| {
            small_row(c)?;
            let _ =
                savepoint(c, |c: &mut SqliteConnection| diesel::sql_query("INSERT INTO nowhere VALUES (1)").execute(c));
            small_row(c)
        });
        assert_eq!(kept.unwrap(), 1);
        assert_eq!(rows(&mut conn), 2, "what came before and after a rolled-back savepoint commits");
    }

    #[test]
    fn deferred_nests_as_a_savepoint_inside_an_open_transaction() {
        let mut conn = full_database();
        immediate(&mut conn, |c: &mut SqliteConnection| {
            small_row(c)?;
            let inner: QueryResult<usize> = deferred(c, |c: &mut SqliteConnection| {
                small_row(c)?;
                diesel::sql_query("INSERT INTO nowhere VALUES (1)").execute(c)
            });
            assert!(inner.is_err());
            small_row(c)
        })
        .unwrap();
        assert_eq!(rows(&mut conn), 2, "the inner rows were rolled back to their savepoint");
    }
}
