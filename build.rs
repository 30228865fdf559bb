//! `embed_migrations!` does not notice edits to the migration folders: rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=migrations_pg");
    println!("cargo:rerun-if-changed=migrations_sqlite");
}
