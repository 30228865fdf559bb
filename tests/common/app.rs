//! An application's own migrations, as a user of the crate writes them: a `documents` table of its own,
//! then the migration `index::generate` renders for a 768-dimension cosine index on it, filtered by
//! `lang` (adding the `embedding` column), written into `migrations_pg/` and `migrations_sqlite/` with
//! `generate::write`.

use std::path::{Path, PathBuf};

use diesel_vector::index::{generate, IndexSpec};

/// The first migration's folder name.
pub const CREATE_DOCUMENTS: &str = "2026-01-01-000000_create_documents";
/// The generated migration's folder name.
pub const CREATE_INDEX: &str = "2026-01-01-000001_create_vector_index_documents_embedding";

/// `documents` on PostgreSQL, as the application's first migration creates it.
pub const DOCUMENTS_PG: &str = "CREATE TABLE documents (
    id bigserial PRIMARY KEY,
    lang text NOT NULL,
    title text NOT NULL,
    body text NOT NULL
);
";

/// `documents` on SQLite, as the application's first migration creates it.
pub const DOCUMENTS_SQLITE: &str = "CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    lang TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
";

/// The index the generated migration creates and registers.
pub fn spec() -> IndexSpec {
    IndexSpec::builder("documents", "embedding", 768).partition_by(["lang"]).build().unwrap()
}

/// The application's folders, in a temporary directory that lives as long as this.
pub struct AppDirs {
    pub root: PathBuf,
    pub pg: PathBuf,
    pub sqlite: PathBuf,
    _dir: tempfile::TempDir,
}

impl AppDirs {
    /// `migrations_pg` or `migrations_sqlite`.
    pub fn for_backend(&self, backend: &str) -> &Path {
        if backend == "postgresql" {
            &self.pg
        } else {
            &self.sqlite
        }
    }
}

/// Writes both migrations into fresh `migrations_pg/` and `migrations_sqlite/` folders.
pub fn write() -> AppDirs {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (pg, sqlite) = (root.join("migrations_pg"), root.join("migrations_sqlite"));
    for (folder, up) in [(&pg, DOCUMENTS_PG), (&sqlite, DOCUMENTS_SQLITE)] {
        let migration = folder.join(CREATE_DOCUMENTS);
        std::fs::create_dir_all(&migration).unwrap();
        std::fs::write(migration.join("up.sql"), up).unwrap();
        std::fs::write(migration.join("down.sql"), "DROP TABLE documents;\n").unwrap();
    }
    let migration = generate::render(&spec(), &generate::Options::default().add_column(true));
    generate::write(&migration, "20260101000001", &pg, &sqlite).unwrap();
    AppDirs { root, pg, sqlite, _dir: dir }
}

/// Adds a migration `name` with `up` and `down` SQL to `folder`.
pub fn add(folder: &Path, name: &str, up: &str, down: &str) {
    let migration = folder.join(name);
    std::fs::create_dir_all(&migration).unwrap();
    std::fs::write(migration.join("up.sql"), up).unwrap();
    std::fs::write(migration.join("down.sql"), down).unwrap();
}

/// The generated migration's `up.sql` for a backend's folder.
pub fn index_up(folder: &Path) -> String {
    std::fs::read_to_string(folder.join(CREATE_INDEX).join("up.sql")).unwrap()
}
