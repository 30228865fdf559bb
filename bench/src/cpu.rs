//! CPU time, from `/proc`: of this process, of this thread, and of a PostgreSQL backend on the same
//! machine (by its pid, from `pg_backend_pid()` or `pg_stat_activity`). The copy report uses them to
//! show how much processor time each side of a pipeline needs, next to the wall time it took.

use diesel::prelude::*;
use diesel::PgConnection;

/// Clock ticks per second of `/proc/*/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds in a `/proc/.../stat` file, `None` when it cannot be read.
fn stat_cpu(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields 14 and 15 (utime, stime); the command name (field 2) may hold spaces, so count after ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU seconds this process has used, all threads.
pub fn process() -> f64 {
    stat_cpu("/proc/self/stat").unwrap_or(0.0)
}

/// CPU seconds the calling thread has used.
pub fn thread() -> f64 {
    stat_cpu("/proc/thread-self/stat").unwrap_or(0.0)
}

/// CPU seconds process `pid` has used (a PostgreSQL backend on this machine), 0 when unknown.
pub fn of_pid(pid: i32) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat")).unwrap_or(0.0)
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// The server process behind `conn`.
pub fn backend_pid(conn: &mut PgConnection) -> Option<i32> {
    diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<Pid>(conn).ok().map(|p| p.pid)
}

/// CPU seconds used by every other backend connected to `conn`'s database (the connections of the copy
/// that `conn` watches).
pub fn other_backends(conn: &mut PgConnection) -> f64 {
    diesel::sql_query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        .load::<Pid>(conn)
        .map(|pids| pids.iter().map(|p| of_pid(p.pid)).sum())
        .unwrap_or(0.0)
}
