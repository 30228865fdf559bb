//! `jsonl::import` on arbitrary bytes into a real in-memory SQLite database: never a panic, never a
//! partial batch. When an import succeeds, exporting gives lines that import again with nothing new, and
//! the rows stay valid vectors.
#![no_main]

use std::cell::RefCell;
use std::io::Cursor;

use diesel::connection::SimpleConnection;
use diesel_vector::copy::CopyOptions;
use diesel_vector::database::DatabaseConnection;
use diesel_vector::jsonl;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static CONN: RefCell<DatabaseConnection> = RefCell::new({
        let mut conn = DatabaseConnection::establish(":memory:").expect("in-memory SQLite");
        conn.run_pending_migrations().expect("migrations");
        conn
    });
}

fn clear(conn: &mut DatabaseConnection) {
    let DatabaseConnection::Sqlite(c) = conn else { unreachable!("SQLite only in this build") };
    c.batch_execute("DELETE FROM fragment_embeddings; DELETE FROM fragments; DELETE FROM sqlite_sequence;")
        .expect("clearing the tables");
}

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    let options = CopyOptions::default().batch_size(usize::from(selector % 4) + 1).skip_invalid(selector & 4 != 0);
    CONN.with(|c| {
        let conn = &mut *c.borrow_mut();
        clear(conn);
        let imported = jsonl::import(conn, &mut Cursor::new(rest), &options, &mut |_| {});
        if let Ok(report) = imported {
            let mut exported = Vec::new();
            let out = jsonl::export(conn, &mut exported, &CopyOptions::default(), &mut |_| {})
                .unwrap_or_else(|e| panic!("export after a successful import failed: {e}"));
            assert!(out.fragments.rows <= report.fragments.rows, "more fragments exported than imported");
            let again = jsonl::import(conn, &mut Cursor::new(&exported), &CopyOptions::default(), &mut |_| {})
                .unwrap_or_else(|e| panic!("re-importing the export failed: {e}"));
            assert_eq!(again.inserted, 0, "the export's rows are all there already");
            assert_eq!((again.fragments, again.embeddings), (out.fragments, out.embeddings), "checksums differ");
        }
    });
});
