//! Workload 5 of issue 6, migrations: the crate's runner against the SQL it runs, on a fresh database per
//! call, and its no-op re-run against the cheapest check that gives the same answer on any database.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use diesel_vector::migrations::{self, PG_MIGRATIONS, SQLITE_MIGRATIONS};
use diesel_vector::sqlite;

use crate::db_harness::{run_timed, Bar, BoxError, Comparison, Group, TimedContender};
use crate::pgdb::FreshDb;

/// Contender names.
pub mod names {
    pub const SQL: &str = "SQL itself: batch_execute of each up.sql";
    pub const RUNNER: &str = "migrations::run_pending_migrations";
    pub const DIESEL: &str = "diesel's MigrationHarness::run_pending_migrations (reference)";
    pub const CHECK: &str = "cheapest equivalent check: table exists? then SELECT version";
    pub const SELECT_ONLY: &str = "SELECT version alone (table known to exist; reference)";
    pub const RUNNER_NOOP: &str = "migrations::run_pending_migrations (nothing pending)";
    pub const DIESEL_PENDING: &str = "diesel's has_pending_migration (reference)";
    pub const APP_SQL: &str = "SQL itself: batch_execute of the pending up.sql";
    pub const APP_RUNNER: &str = "migrations::run_pending_migrations_from (rehearsed)";
    pub const APP_DIESEL: &str = "diesel's MigrationHarness::run_pending_migrations (reference)";
    pub const APP_SET_SQL: &str = "SQL itself: batch_execute of each up.sql of the application's folder";
    pub const APP_SET_RUNNER: &str = "migrations::run_pending_migrations_from (the application's folder)";
    pub const APP_CHECK: &str = "cheapest equivalent check: list the folder's migrations, then SELECT version";
    pub const APP_NOOP: &str = "migrations::run_pending_migrations_from (nothing pending)";
}

/// Applied migrations before the pending one in the application workload.
pub const APP_HISTORY: usize = 30;

/// An application's folder for one backend: `documents`, [`APP_HISTORY`] tables with an index each
/// (applied), then the generated vector index migration for `documents` (pending). Removed on drop.
struct AppFolder {
    root: PathBuf,
    /// The applied migrations alone.
    history: PathBuf,
    /// The applied ones and the pending one.
    full: PathBuf,
    /// The pending migration's up.sql.
    pending_up: String,
}

impl AppFolder {
    fn write(pg: bool) -> Result<Self, BoxError> {
        use diesel_vector::index::{generate, IndexSpec};
        let root = std::env::temp_dir().join(format!("dv-bench-app-{}-{}", std::process::id(), pg));
        let _ = std::fs::remove_dir_all(&root);
        let (history, full) = (root.join("history"), root.join("full"));
        let (id, text, stamp) = if pg {
            ("bigserial PRIMARY KEY", "text", "timestamp")
        } else {
            ("INTEGER PRIMARY KEY", "TEXT", "DATETIME")
        };
        let mut migrations = vec![(
            "2026-01-01-000000_create_documents".to_owned(),
            format!("CREATE TABLE documents (id {id}, lang {text} NOT NULL, body {text} NOT NULL);"),
            "DROP TABLE documents;".to_owned(),
        )];
        for i in 1..=APP_HISTORY {
            migrations.push((
                format!("2026-01-01-{:06}_create_t{i}", i * 10),
                format!(
                    "CREATE TABLE t{i} (id {id}, name {text} NOT NULL, created_at {stamp} NOT NULL DEFAULT CURRENT_TIMESTAMP);\n\
                     CREATE INDEX t{i}_name_idx ON t{i} (name);"
                ),
                format!("DROP TABLE t{i};"),
            ));
        }
        for folder in [&history, &full] {
            for (name, up, down) in &migrations {
                let dir = folder.join(name);
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("up.sql"), up)?;
                std::fs::write(dir.join("down.sql"), down)?;
            }
        }
        let spec = IndexSpec::builder("documents", "embedding", 768).partition_by(["lang"]).build()?;
        let migration = generate::render(&spec, &generate::Options::default().add_column(true));
        let unused = root.join("other");
        let (pg_dir, sqlite_dir) = if pg { (full.clone(), unused) } else { (unused, full.clone()) };
        generate::write(&migration, "20260201000000", &pg_dir, &sqlite_dir)?;
        let pending_up = if pg { migration.pg_up } else { migration.sqlite_up };
        Ok(Self { root, history, full, pending_up })
    }
}

impl Drop for AppFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn app_note(backend: &str) -> String {
    format!(
        "A fresh {backend} database per call with an application's {} migrations applied (documents and {APP_HISTORY} \
         tables with an index each; not timed); timed: its one pending migration, the generated vector index \
         for documents (adding the column). The runner rehearses first: it replays the applied migrations \
         in a scratch space and compares catalogs, so that objects made by hand are adopted.",
        APP_HISTORY + 1
    )
}

/// How long to run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Repetitions of the fresh-database runs (one call per contender each).
    pub fresh_reps: usize,
    /// Repetitions of the no-op runs, and calls per repetition.
    pub noop_reps: usize,
    pub noop_calls: usize,
}

/// Every `up.sql` of a migrations folder, oldest first.
fn up_files(folder: &str) -> Result<Vec<String>, BoxError> {
    folder_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(folder))
}

/// Every `up.sql` of a folder, oldest first.
fn folder_files(root: &Path) -> Result<Vec<String>, BoxError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    dirs.retain(|d| d.join("up.sql").is_file());
    dirs.sort();
    Ok(dirs.iter().map(|d| std::fs::read_to_string(d.join("up.sql"))).collect::<Result<_, _>>()?)
}

const APP_SET_NOTE: &str = "The application's folder (documents, 30 tables with an index each, and the generated \
    vector index migration for documents) applied to a fresh database per call (created and connected outside the \
    timing). A fresh database is not rehearsed.";

const APP_NOOP_NOTE: &str = "One database with the application's folder applied; every call asks whether \
    anything of the folder is pending. The check lists the folder's migrations (`MigrationSource::migrations`, \
    which reads the folder: any runner must) and compares their versions with the bookkeeping's.";

fn embedded_versions<DB: diesel::backend::Backend>(source: &dyn MigrationSource<DB>) -> Result<Vec<String>, BoxError> {
    Ok(source.migrations()?.iter().map(|m| m.name().version().to_string()).collect())
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

fn timed<T>(f: impl FnOnce() -> Result<T, BoxError>) -> Result<(Duration, T), BoxError> {
    let started = Instant::now();
    let value = f()?;
    Ok((started.elapsed(), value))
}

fn runner(contender: &str, baseline: &str) -> Comparison {
    Comparison { contender: contender.to_owned(), baseline: baseline.to_owned(), bar: Bar::Runner }
}

/// PostgreSQL: a fresh database per call (created and dropped outside the timing).
///
/// # Errors
///
/// A failing set-up step or migration.
pub fn pg(server: &str, settings: Settings) -> Result<Vec<Group>, BoxError> {
    let files = up_files("migrations_pg")?;
    let versions = embedded_versions::<diesel::pg::Pg>(&PG_MIGRATIONS)?;
    let fresh = |f: fn(&mut PgConnection, &[String]) -> Result<(), BoxError>| {
        let files = files.clone();
        move || -> Result<Duration, BoxError> {
            let db = FreshDb::create(server, "migr")?;
            let mut conn = db.conn()?;
            let (elapsed, ()) = timed(|| f(&mut conn, &files))?;
            Ok(elapsed)
        }
    };
    let mut contenders = vec![
        TimedContender::new(
            names::SQL,
            fresh(|c, files| {
                for sql in files {
                    c.batch_execute(sql)?;
                }
                Ok(())
            }),
        ),
        TimedContender::new(
            names::RUNNER,
            fresh(|c, _| {
                migrations::run_pending_migrations(c)?;
                Ok(())
            }),
        ),
        TimedContender::new(
            names::DIESEL,
            fresh(|c, _| {
                c.run_pending_migrations(PG_MIGRATIONS)?;
                Ok(())
            }),
        ),
    ];
    let fresh_group = Group {
        title: "PostgreSQL: the full set on a fresh database".to_owned(),
        note: "A fresh database and connection per call (not timed); timed: applying both migrations.".to_owned(),
        results: run_timed(&mut contenders, settings.fresh_reps, 1)?,
        comparisons: vec![runner(names::RUNNER, names::SQL)],
        recall: false,
    };
    drop(contenders);

    let db = FreshDb::create(server, "migr_noop")?;
    let mut conn = db.conn()?;
    migrations::run_pending_migrations(&mut conn)?;
    let conn = std::cell::RefCell::new(conn);
    let mut contenders = vec![
        TimedContender::new(names::CHECK, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, pending) = timed(|| {
                let exists: bool =
                    diesel::select(diesel::dsl::sql::<Bool>("to_regclass('__diesel_schema_migrations') IS NOT NULL"))
                        .get_result(c)?;
                let applied: Vec<Version> = if exists {
                    diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations").load(c)?
                } else {
                    Vec::new()
                };
                Ok(versions.iter().any(|v| !applied.iter().any(|a| a.version == *v)))
            })?;
            assert!(!pending, "the database is migrated");
            Ok(elapsed)
        }),
        TimedContender::new(names::SELECT_ONLY, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, pending) = timed(|| {
                let applied: Vec<Version> =
                    diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations").load(c)?;
                Ok(versions.iter().any(|v| !applied.iter().any(|a| a.version == *v)))
            })?;
            assert!(!pending, "the database is migrated");
            Ok(elapsed)
        }),
        TimedContender::new(names::RUNNER_NOOP, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, done) = timed(|| Ok(migrations::run_pending_migrations(c)?))?;
            assert!(done.is_empty(), "nothing was pending");
            Ok(elapsed)
        }),
        TimedContender::new(names::DIESEL_PENDING, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, pending) = timed(|| c.has_pending_migration(PG_MIGRATIONS))?;
            assert!(!pending, "the database is migrated");
            Ok(elapsed)
        }),
    ];
    let noop_group = Group {
        title: "PostgreSQL: re-run with nothing pending".to_owned(),
        note: "One migrated database and connection; every call asks whether anything is pending.".to_owned(),
        results: run_timed(&mut contenders, settings.noop_reps, settings.noop_calls)?,
        comparisons: vec![runner(names::RUNNER_NOOP, names::CHECK)],
        recall: false,
    };
    drop(contenders);

    let app = AppFolder::write(true)?;
    let backend = AppBackend {
        name: "PostgreSQL",
        run_from: migrations::run_pending_migrations_from,
        fresh: &|| {
            let db = FreshDb::create(server, "migr_app")?;
            let conn = db.conn()?;
            Ok((conn, Box::new(db) as Box<dyn std::any::Any>))
        },
        prepare: "CREATE EXTENSION IF NOT EXISTS vector",
        exists_sql: "SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS present",
        versions_sql: "SELECT version::text AS version FROM __diesel_schema_migrations",
    };
    let mut groups = vec![fresh_group, noop_group];
    groups.extend(app_groups(&backend, &app, settings)?);
    Ok(groups)
}

fn info(contender: &str, baseline: &str) -> Comparison {
    Comparison { contender: contender.to_owned(), baseline: baseline.to_owned(), bar: Bar::Info }
}

/// A fresh database file per call, removed afterwards.
fn temp_sqlite() -> (String, impl Drop) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = self.0.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let path = std::env::temp_dir().join(format!(
        "dv-bench-migr-{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    (path.to_string_lossy().into_owned(), Remove(path))
}

/// SQLite: a fresh database file per call, opened with `sqlite::establish` (sqlite-vec, WAL) outside the
/// timing.
///
/// # Errors
///
/// A failing set-up step or migration.
pub fn sqlite(settings: Settings) -> Result<Vec<Group>, BoxError> {
    let files = up_files("migrations_sqlite")?;
    let versions = embedded_versions::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS)?;
    let fresh = |f: fn(&mut SqliteConnection, &[String]) -> Result<(), BoxError>| {
        let files = files.clone();
        move || -> Result<Duration, BoxError> {
            let (url, _remove) = temp_sqlite();
            let mut conn = sqlite::establish(&url)?;
            let (elapsed, ()) = timed(|| f(&mut conn, &files))?;
            Ok(elapsed)
        }
    };
    let mut contenders = vec![
        TimedContender::new(
            names::SQL,
            fresh(|c, files| {
                for sql in files {
                    c.batch_execute(sql)?;
                }
                Ok(())
            }),
        ),
        TimedContender::new(
            names::RUNNER,
            fresh(|c, _| {
                migrations::run_pending_migrations(c)?;
                Ok(())
            }),
        ),
        TimedContender::new(
            names::DIESEL,
            fresh(|c, _| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)?;
                Ok(())
            }),
        ),
    ];
    let fresh_group = Group {
        title: "SQLite: the full set on a fresh database".to_owned(),
        note: "A fresh database file and connection (`sqlite::establish`: sqlite-vec, WAL, foreign keys) per \
               call, not timed; timed: applying both migrations."
            .to_owned(),
        results: run_timed(&mut contenders, settings.fresh_reps, 1)?,
        comparisons: vec![runner(names::RUNNER, names::SQL)],
        recall: false,
    };
    drop(contenders);

    let (url, _remove) = temp_sqlite();
    let mut conn = sqlite::establish(&url)?;
    migrations::run_pending_migrations(&mut conn)?;
    let conn = std::cell::RefCell::new(conn);
    let mut contenders = vec![
        TimedContender::new(names::CHECK, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, pending) = timed(|| {
                let exists: bool = diesel::select(diesel::dsl::sql::<Bool>(
                    "EXISTS (SELECT 1 FROM sqlite_master WHERE name = '__diesel_schema_migrations')",
                ))
                .get_result(c)?;
                let applied: Vec<Version> = if exists {
                    diesel::sql_query("SELECT version FROM __diesel_schema_migrations").load(c)?
                } else {
                    Vec::new()
                };
                Ok(versions.iter().any(|v| !applied.iter().any(|a| a.version == *v)))
            })?;
            assert!(!pending, "the database is migrated");
            Ok(elapsed)
        }),
        TimedContender::new(names::SELECT_ONLY, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, pending) = timed(|| {
                let applied: Vec<Version> =
                    diesel::sql_query("SELECT version FROM __diesel_schema_migrations").load(c)?;
                Ok(versions.iter().any(|v| !applied.iter().any(|a| a.version == *v)))
            })?;
            assert!(!pending, "the database is migrated");
            Ok(elapsed)
        }),
        TimedContender::new(names::RUNNER_NOOP, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, done) = timed(|| Ok(migrations::run_pending_migrations(c)?))?;
            assert!(done.is_empty(), "nothing was pending");
            Ok(elapsed)
        }),
        TimedContender::new(names::DIESEL_PENDING, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, pending) = timed(|| c.has_pending_migration(SQLITE_MIGRATIONS))?;
            assert!(!pending, "the database is migrated");
            Ok(elapsed)
        }),
    ];
    let noop_group = Group {
        title: "SQLite: re-run with nothing pending".to_owned(),
        note: "One migrated database file and connection; every call asks whether anything is pending.".to_owned(),
        results: run_timed(&mut contenders, settings.noop_reps, settings.noop_calls)?,
        comparisons: vec![runner(names::RUNNER_NOOP, names::CHECK)],
        recall: false,
    };
    drop(contenders);

    let app = AppFolder::write(false)?;
    let backend = AppBackend {
        name: "SQLite",
        run_from: migrations::run_pending_migrations_from,
        fresh: &|| {
            let (url, remove) = temp_sqlite();
            let conn = sqlite::establish(&url)?;
            Ok((conn, Box::new(remove) as Box<dyn std::any::Any>))
        },
        prepare: "",
        exists_sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '__diesel_schema_migrations') AS present",
        versions_sql: "SELECT version FROM __diesel_schema_migrations",
    };
    let mut groups = vec![fresh_group, noop_group];
    groups.extend(app_groups(&backend, &app, settings)?);
    Ok(groups)
}

/// What the application-folder groups need of a backend.
struct AppBackend<'a, C, DB: diesel::backend::Backend> {
    /// "PostgreSQL" or "SQLite", in the groups' titles.
    name: &'static str,
    /// `migrations::run_pending_migrations_from` for the connection type.
    run_from: RunFrom<C, DB>,
    /// A fresh empty database, and what removes it when dropped.
    fresh: &'a dyn Fn() -> Result<(C, Box<dyn std::any::Any>), BoxError>,
    /// Run on a fresh database before the application's history is applied (not timed).
    prepare: &'static str,
    /// The cheapest check: whether Diesel's bookkeeping exists (a `present` column), then its versions.
    exists_sql: &'static str,
    versions_sql: &'static str,
}

type RunFrom<C, DB> =
    fn(&mut C, &dyn MigrationSource<DB>) -> Result<Vec<migrations::AppliedMigration>, migrations::MigrationError>;

/// A timed step on a database with the application's history applied.
type Step<'s, C> = Box<dyn Fn(&mut C, &AppFolder) -> Result<(), BoxError> + 's>;

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Bool)]
    present: bool,
}

/// The application's folder on `backend`: its one pending migration (the generated index) after its history, the
/// whole folder on a fresh database, and nothing pending.
fn app_groups<'b, C, DB>(
    backend: &'b AppBackend<'b, C, DB>,
    app: &'b AppFolder,
    settings: Settings,
) -> Result<Vec<Group>, BoxError>
where
    DB: diesel::backend::Backend,
    C: Connection<Backend = DB> + MigrationHarness<DB>,
    FileBasedMigrations: MigrationSource<DB>,
    for<'q> diesel::query_builder::SqlQuery:
        diesel::query_dsl::LoadQuery<'q, C, Version> + diesel::query_dsl::LoadQuery<'q, C, Present>,
{
    let name = backend.name;
    let source = || FileBasedMigrations::from_path(&app.full);
    let prepared = |f: Step<'b, C>| {
        move || -> Result<Duration, BoxError> {
            let (mut conn, _remove) = (backend.fresh)()?;
            conn.batch_execute(backend.prepare)?;
            conn.run_pending_migrations(FileBasedMigrations::from_path(&app.history)?)?;
            let (elapsed, ()) = timed(|| f(&mut conn, app))?;
            Ok(elapsed)
        }
    };
    let mut contenders = vec![
        TimedContender::new(names::APP_SQL, prepared(Box::new(|c, app| Ok(c.batch_execute(&app.pending_up)?)))),
        TimedContender::new(
            names::APP_RUNNER,
            prepared(Box::new(|c, app| {
                let done = (backend.run_from)(c, &FileBasedMigrations::from_path(&app.full)?)?;
                assert_eq!(done.len(), 1);
                Ok(())
            })),
        ),
        TimedContender::new(
            names::APP_DIESEL,
            prepared(Box::new(|c, app| {
                c.run_pending_migrations(FileBasedMigrations::from_path(&app.full)?)?;
                Ok(())
            })),
        ),
    ];
    let app_group = Group {
        title: format!("{name}: one pending application migration"),
        note: app_note(name),
        results: run_timed(&mut contenders, settings.fresh_reps, 1)?,
        comparisons: vec![info(names::APP_RUNNER, names::APP_SQL), info(names::APP_DIESEL, names::APP_SQL)],
        recall: false,
    };
    drop(contenders);

    // The application's whole folder, the generated index included, on a fresh database; then nothing pending.
    let app_files = folder_files(&app.full)?;
    let on_fresh = |f: &dyn Fn(&mut C) -> Result<(), BoxError>| -> Result<Duration, BoxError> {
        let (mut conn, _remove) = (backend.fresh)()?;
        let (elapsed, ()) = timed(|| f(&mut conn))?;
        Ok(elapsed)
    };
    let mut contenders = vec![
        TimedContender::new(names::APP_SET_SQL, || {
            on_fresh(&|c| {
                for sql in &app_files {
                    c.batch_execute(sql)?;
                }
                Ok(())
            })
        }),
        TimedContender::new(names::APP_SET_RUNNER, || {
            on_fresh(&|c| {
                let done = (backend.run_from)(c, &source()?)?;
                assert_eq!(done.len(), APP_HISTORY + 2);
                Ok(())
            })
        }),
        TimedContender::new(names::APP_DIESEL, || {
            on_fresh(&|c| {
                c.run_pending_migrations(source()?)?;
                Ok(())
            })
        }),
    ];
    let app_set_group = Group {
        title: format!("{name}: an application's folder with its generated index, on a fresh database"),
        note: APP_SET_NOTE.to_owned(),
        results: run_timed(&mut contenders, settings.fresh_reps, 1)?,
        comparisons: vec![runner(names::APP_SET_RUNNER, names::APP_SET_SQL)],
        recall: false,
    };
    drop(contenders);

    let (mut conn, _remove) = (backend.fresh)()?;
    (backend.run_from)(&mut conn, &source()?)?;
    let conn = std::cell::RefCell::new(conn);
    let source = source()?;
    let mut contenders = vec![
        TimedContender::new(names::APP_CHECK, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, pending) = timed(|| {
                let exists = diesel::sql_query(backend.exists_sql).get_result::<Present>(c)?.present;
                let applied: Vec<Version> =
                    if exists { diesel::sql_query(backend.versions_sql).load(c)? } else { Vec::new() };
                let listed = MigrationSource::<DB>::migrations(&source)?;
                Ok(listed.iter().any(|m| !applied.iter().any(|a| a.version == m.name().version().to_string())))
            })?;
            assert!(!pending, "the database is migrated");
            Ok(elapsed)
        }),
        TimedContender::new(names::APP_NOOP, || {
            let c = &mut *conn.borrow_mut();
            let (elapsed, done) = timed(|| Ok((backend.run_from)(c, &source)?))?;
            assert!(done.is_empty(), "nothing was pending");
            Ok(elapsed)
        }),
    ];
    let app_noop_group = Group {
        title: format!("{name}: an application's folder with its generated index, nothing pending"),
        note: APP_NOOP_NOTE.to_owned(),
        results: run_timed(&mut contenders, settings.noop_reps, settings.noop_calls)?,
        comparisons: vec![runner(names::APP_NOOP, names::APP_CHECK)],
        recall: false,
    };
    drop(contenders);
    Ok(vec![app_group, app_set_group, app_noop_group])
}
