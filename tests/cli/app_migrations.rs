//! `migration run|revert|redo|status --migration-dir DIR`: an application's own migration folder (a
//! `documents` table of its own and a generated vector index migration) on both backends, next to the
//! stock diesel CLI running the same folders.

use std::process::Command;

use diesel::connection::SimpleConnection;

use crate::common::app;
use crate::{count, fails, ok, sqlite_file, FreshDb};

/// Both backends, fresh: (name, URL, what keeps it alive).
fn databases() -> Vec<(&'static str, String, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "app.db");
    let pg = FreshDb::create();
    vec![("postgresql", pg.url.clone(), Box::new(pg)), ("sqlite", path, Box::new(dir))]
}

fn has_table(url: &str, backend: &str, table: &str) -> bool {
    let catalog = if backend == "postgresql" {
        format!("pg_class WHERE relname = '{table}'")
    } else {
        format!("sqlite_master WHERE name = '{table}'")
    };
    count(url, &catalog) > 0
}

#[test]
fn migration_run_status_redo_revert_with_the_application_s_folder_on_both_backends() {
    let dirs = app::write();
    for (backend, url, _keep) in databases() {
        let url = url.as_str();
        let dir = dirs.for_backend(backend).to_str().unwrap();
        if backend == "sqlite" {
            std::fs::File::create(url).unwrap(); // listing never creates a database
        }
        let status = ok(&["--database-url", url, "migration", "--migration-dir", dir, "status"]);
        assert_eq!(
            status,
            format!("Migrations:\n  [ ] {}\n  [ ] {}\n", app::CREATE_DOCUMENTS, app::CREATE_INDEX),
            "{backend}"
        );
        let out = ok(&["--database-url", url, "migration", "run", "--migration-dir", dir]);
        assert_eq!(
            out,
            format!("Ran migration {}\nRan migration {}\n", app::CREATE_DOCUMENTS, app::CREATE_INDEX),
            "{backend}"
        );
        assert!(!has_table(url, backend, "fragments"), "{backend}: the crate's own set was not run");
        assert_eq!(count(url, "__diesel_vector_indexes"), 1, "{backend}");
        assert_eq!(ok(&["--database-url", url, "migrate", "--migration-dir", dir, "run"]), "No pending migrations\n");
        let status = ok(&["--database-url", url, "migration", "list", "--migration-dir", dir]);
        assert!(status.contains(&format!("[X] {}", app::CREATE_INDEX)), "{backend}: {status}");
        // Without the flag, the crate's own set: not applied here.
        let own = ok(&["--database-url", url, "migration", "status"]);
        assert!(own.contains("[ ] 2025-01-01-000001_create_fragments"), "{backend}: {own}");

        let out = ok(&["--database-url", url, "migration", "redo", "--migration-dir", dir]);
        assert_eq!(out, format!("Rolled back and ran again migration {}\n", app::CREATE_INDEX), "{backend}");
        let out = ok(&["--database-url", url, "migration", "revert", "--migration-dir", dir]);
        assert_eq!(out, format!("Rolled back migration {}\n", app::CREATE_INDEX), "{backend}");
        assert_eq!(count(url, "__diesel_vector_indexes"), 0, "{backend}");
        let status = ok(&["--database-url", url, "migration", "status", "--migration-dir", dir]);
        assert_eq!(
            status,
            format!("Migrations:\n  [X] {}\n  [ ] {}\n", app::CREATE_DOCUMENTS, app::CREATE_INDEX),
            "{backend}"
        );
    }
}

#[test]
fn objects_made_by_hand_are_adopted_and_a_mistyped_folder_writes_nothing() {
    let dirs = app::write();
    for (backend, url, _keep) in databases() {
        let url = url.as_str();
        let dir = dirs.for_backend(backend).to_str().unwrap();
        let by_hand = if backend == "postgresql" {
            format!("{}{}", app::DOCUMENTS_PG, app::index_up(&dirs.pg))
        } else {
            format!("{}{}", app::DOCUMENTS_SQLITE, app::index_up(&dirs.sqlite))
        };
        match &mut diesel_vector::database::DatabaseConnection::establish(url).unwrap() {
            diesel_vector::database::DatabaseConnection::Pg(c) => c.batch_execute(&by_hand).unwrap(),
            diesel_vector::database::DatabaseConnection::Sqlite(c) => c.batch_execute(&by_hand).unwrap(),
            _ => unreachable!(),
        }
        let out = ok(&["--database-url", url, "migration", "run", "--migration-dir", dir]);
        assert_eq!(
            out,
            format!(
                "Adopted (its objects already existed) migration {}\nAdopted (its objects already existed) migration {}\n",
                app::CREATE_DOCUMENTS,
                app::CREATE_INDEX
            ),
            "{backend}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_file(dir.path(), "never.db");
    let missing = dir.path().join("migrations_sqlite");
    let (_, stderr) =
        fails(&["--database-url", &path, "migration", "run", "--migration-dir", missing.to_str().unwrap()]);
    assert!(stderr.contains("no such directory"), "{stderr}");
    assert!(!std::path::Path::new(&path).exists(), "no database file was created");
}

#[test]
fn a_run_that_creates_an_sqlite_file_and_applies_nothing_does_not_keep_it() {
    // Trial 6: PostgreSQL's folder run on a new SQLite path failed clearly but left a database holding only
    // Diesel's bookkeeping, which later commands took for the application's.
    let dir = tempfile::tempdir().unwrap();
    let pg = dir.path().join("migrations_pg");
    for (version, sql) in [
        ("2026-01-01-000000_tables", "CREATE TABLE notes (id BIGINT PRIMARY KEY);"),
        ("2026-01-02-000000_vector", "CREATE EXTENSION IF NOT EXISTS vector;"),
    ] {
        std::fs::create_dir_all(pg.join(version)).unwrap();
        std::fs::write(pg.join(version).join("up.sql"), sql).unwrap();
        std::fs::write(pg.join(version).join("down.sql"), "SELECT 1;").unwrap();
    }
    let path = sqlite_file(dir.path(), "new.db");
    let (_, stderr) = fails(&["--database-url", &path, "migration", "run", "--migration-dir", pg.to_str().unwrap()]);
    assert!(stderr.contains("is this the PostgreSQL migration folder"), "{stderr}");
    // The first migration is plain SQL SQLite runs: applied, so the database is kept.
    assert!(std::path::Path::new(&path).exists());
    assert_eq!(count(&path, "notes"), 0);
    std::fs::remove_dir_all(pg.join("2026-01-01-000000_tables")).unwrap();
    let fresh = sqlite_file(dir.path(), "fresh.db");
    let (_, stderr) = fails(&["--database-url", &fresh, "migration", "run", "--migration-dir", pg.to_str().unwrap()]);
    assert!(stderr.contains("is this the PostgreSQL migration folder"), "{stderr}");
    assert!(stderr.contains("was not kept: this run created it and applied nothing"), "{stderr}");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        assert!(!std::path::Path::new(&format!("{fresh}{suffix}")).exists(), "{suffix}");
    }
    // Nothing to revert or redo in a database that does not exist: no file either.
    for command in ["revert", "redo"] {
        let (_, stderr) = fails(&["--database-url", &fresh, "migration", command]);
        assert!(!stderr.is_empty());
        assert!(!std::path::Path::new(&fresh).exists(), "{command}");
    }
}

#[test]
fn eight_cli_processes_running_the_application_s_folder_at_once_all_succeed() {
    let dirs = app::write();
    for (backend, url, _keep) in databases() {
        let dir = dirs.for_backend(backend).to_str().unwrap();
        let children: Vec<_> = (0..8)
            .map(|_| {
                crate::bin()
                    .args(["--database-url", &url, "migration", "run", "--migration-dir", dir])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut ran = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{backend}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            ran += stdout.matches("Ran migration").count();
        }
        assert_eq!(ran, 2, "{backend}: each migration ran once");
        assert_eq!(count(&url, "__diesel_schema_migrations"), 2, "{backend}");
    }
}

/// The stock diesel CLI, run from the application's directory (no diesel.toml there).
fn diesel(cli: &std::path::Path, cwd: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(cli).args(args).current_dir(cwd).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "diesel {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

#[test]
fn the_diesel_cli_and_diesel_vector_run_the_same_application_folders() {
    let Some(cli) = crate::common::diesel_cli() else { return };
    let dirs = app::write();
    for (backend, url, _keep) in databases() {
        let url = url.as_str();
        let dir = dirs.for_backend(backend).to_str().unwrap();
        let run = |args: &[&str]| {
            diesel(&cli, &dirs.root, &[args, &["--migration-dir", dir, "--database-url", url]].concat())
        };
        run(&["migration", "run"]);
        let status = ok(&["--database-url", url, "migration", "status", "--migration-dir", dir]);
        assert!(!status.contains("[ ]"), "{backend}: diesel-vector agrees with the diesel CLI: {status}");
        run(&["migration", "redo"]);
        run(&["migration", "revert"]);
        assert_eq!(count(url, "__diesel_vector_indexes"), 0, "{backend}");
        let out = ok(&["--database-url", url, "migration", "run", "--migration-dir", dir]);
        assert_eq!(out, format!("Ran migration {}\n", app::CREATE_INDEX), "{backend}");
        assert_eq!(count(url, "__diesel_vector_indexes"), 1, "{backend}");
        // And back: the diesel CLI reverts what diesel-vector ran, and sees nothing pending after a run.
        run(&["migration", "revert"]);
        run(&["migration", "run"]);
        assert!(ok(&["--database-url", url, "migration", "run", "--migration-dir", dir]).contains("No pending"));
    }
}
