//! How `copy` pages, orders and writes tables by their primary keys: keys of several columns and of
//! text, a row referencing a later row of its own table, rows the target's constraints refuse.

use diesel::connection::SimpleConnection;

use crate::{count, fails, ok, sqlite_file, FreshDb};

fn lite(dir: &tempfile::TempDir, name: &str, sql: &str) -> String {
    let path = sqlite_file(dir.path(), name);
    diesel_vector::sqlite::establish(&path).unwrap().batch_execute(sql).unwrap();
    path
}

const TAGS: &str = "CREATE TABLE tags (name TEXT PRIMARY KEY, color TEXT);
CREATE TABLE post_tags (post_id INTEGER NOT NULL, tag TEXT NOT NULL REFERENCES tags (name), weight REAL,
                        PRIMARY KEY (post_id, tag));";

#[test]
fn keys_of_text_and_of_several_columns_page_the_same_way_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    // Byte order is not any language's order: 'B' < 'a' < 'b' < 'é' < '😀', and '' first.
    let source = lite(
        &dir,
        "source.db",
        &format!(
            "{TAGS}
             INSERT INTO tags VALUES ('a', 'red'), ('B', NULL), ('b', 'blue'), ('é', 'green'), ('😀', 'gold'),
                                     ('', 'none'), ('it''s', 'quote'), ('Z z', NULL);
             INSERT INTO post_tags SELECT p.value, t.name, p.value * 0.5 FROM tags t,
                 (SELECT 1 AS value UNION ALL SELECT 2 UNION ALL SELECT -3) p;"
        ),
    );
    let pg = FreshDb::create();
    pg.conn()
        .batch_execute(
            "CREATE TABLE tags (name TEXT PRIMARY KEY, color TEXT);
             CREATE TABLE post_tags (post_id BIGINT NOT NULL, tag TEXT NOT NULL REFERENCES tags (name),
                                     weight DOUBLE PRECISION, PRIMARY KEY (post_id, tag));",
        )
        .unwrap();
    let report = ok(&["copy", "--from", &source, "--to", &pg.url, "--batch-size", "3"]);
    assert!(report.lines().filter(|l| l.contains(" verified ")).count() == 2, "{report}");
    assert!(report.starts_with("tags "), "parents first: {report}");
    assert_eq!(count(&pg.url, "post_tags"), 24);
    let again = ok(&["copy", "--from", &source, "--to", &pg.url, "--batch-size", "3"]);
    assert!(again.contains("(inserted 0, resumed after name '😀')"), "{again}");
    assert!(again.contains("(inserted 0, resumed after (post_id, tag) (2, '😀'))"), "{again}");

    let back = lite(&dir, "back.db", TAGS);
    let report = ok(&["copy", "--from", &pg.url, "--to", &back, "--batch-size", "2"]);
    assert!(report.lines().filter(|l| l.contains(" verified ")).count() == 2, "{report}");
    for table in ["tags", "post_tags"] {
        let sorted = |path: &str| {
            let mut rows = stored_by(path, table);
            rows.sort();
            rows
        };
        assert_eq!(sorted(&back), sorted(&source), "{table}");
    }
}

/// Every row of `tags` or `post_tags` as SQLite stores it (`quote()` of each value, floats with 17
/// significant digits), in no particular order.
fn stored_by(path: &str, table: &str) -> Vec<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let [a, b, c] = if table == "tags" { ["name", "name", "color"] } else { ["post_id", "tag", "weight"] };
    let sql = format!(
        "SELECT quote(t.\"{a}\") || ' | ' || quote(t.\"{b}\") || ' | ' || typeof(t.\"{c}\") || ':' || \
         coalesce(printf('%!.17g', t.\"{c}\"), '') AS row FROM \"{table}\" t"
    );
    let mut conn = diesel_vector::sqlite::establish(path).unwrap();
    diesel::sql_query(sql).load::<Row>(&mut conn).unwrap().into_iter().map(|r| r.row).collect()
}

#[test]
fn a_row_may_reference_a_later_row_of_its_own_table_in_the_same_batch() {
    let dir = tempfile::tempdir().unwrap();
    let schema =
        "CREATE TABLE employees (id INTEGER PRIMARY KEY, boss_id INTEGER REFERENCES employees (id), name TEXT)";
    let source = lite(
        &dir,
        "source.db",
        &format!("{schema}; INSERT INTO employees VALUES (3, NULL, 'boss'), (1, 3, 'hired first'), (2, 1, 'second');"),
    );
    let pg = FreshDb::create();
    pg.conn()
        .batch_execute(
            "CREATE TABLE employees (id BIGINT PRIMARY KEY, boss_id BIGINT REFERENCES employees (id), name TEXT)",
        )
        .unwrap();
    let target = lite(&dir, "target.db", schema);
    for to in [&pg.url, &target] {
        let report = ok(&["copy", "--from", &source, "--to", to]);
        assert!(report.contains(" verified "), "{report}");
        assert_eq!(count(to, "employees"), 3);
    }
    // One row per batch: id 1 references a row of a later batch, which the target refuses.
    let pg = FreshDb::create();
    pg.conn()
        .batch_execute(
            "CREATE TABLE employees (id BIGINT PRIMARY KEY, boss_id BIGINT REFERENCES employees (id), name TEXT)",
        )
        .unwrap();
    let (_, stderr) = fails(&["copy", "--from", &source, "--to", &pg.url, "--batch-size", "1"]);
    assert!(stderr.contains("employees id 1: the target refused it: insert or update on table \"employees\" violates foreign key constraint"), "{stderr}");
    assert_eq!(count(&pg.url, "employees"), 0);
}

#[test]
fn rows_the_targets_constraints_refuse_are_named_and_nothing_of_their_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = lite(
        &dir,
        "source.db",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
         INSERT INTO users VALUES (1, 'a@example.org'), (2, 'b@example.org'), (3, 'taken@example.org'),
                                  (4, 'd@example.org'), (5, 'e@example.org');",
    );
    let pg = FreshDb::create();
    pg.conn()
        .batch_execute(
            "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE CHECK (email LIKE '%@%'));
             INSERT INTO users VALUES (100, 'taken@example.org');",
        )
        .unwrap();
    let (_, stderr) = fails(&["copy", "--from", &source, "--to", &pg.url]);
    assert!(
        stderr.contains(
            "users id 3: the target refused it: duplicate key value violates unique constraint \"users_email_key\""
        ),
        "{stderr}"
    );
    assert_eq!(count(&pg.url, "users"), 1, "nothing of the batch was written");
    for _ in 0..2 {
        let report = ok(&["copy", "--from", &source, "--to", &pg.url, "--skip-invalid", "--batch-size", "2"]);
        assert!(report.contains("skipped 1 invalid row(s):\n  users id 3: the target refused it"), "{report}");
        assert!(report.contains(" verified "), "{report}");
    }
    assert_eq!(count(&pg.url, "users"), 5);
}

#[test]
fn halfvec_sparsevec_and_bit_columns_go_to_sqlite_and_back_bit_exact() {
    let source = FreshDb::create();
    source
        .conn()
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS vector;
             CREATE TABLE items (id BIGINT PRIMARY KEY, half halfvec(3), sparse sparsevec(6), flags bit(16));
             INSERT INTO items VALUES
                 (1, '[1.5,-0,65504]', '{1:1.5,4:-2}/6', B'1010000011111111'),
                 (2, '[0.0001,2,3]', '{}/6', B'0000000000000001'),
                 (3, NULL, NULL, NULL);",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let items =
        lite(&dir, "items.db", "CREATE TABLE items (id INTEGER PRIMARY KEY, half BLOB, sparse BLOB, flags BLOB)");
    let report = ok(&["copy", "--from", &source.url, "--to", &items]);
    assert!(report.contains(" verified "), "{report}");
    // The SQLite forms: f16 little-endian; dims, indices, values little-endian; whole bytes.
    let stored = crate::app::stored(&items, "items");
    assert!(stored[0].contains("blob:003E0080FF7B"), "{}", stored[0]);
    assert!(stored[0].contains("blob:0600000000000000030000000000C03F000000C0"), "{}", stored[0]);
    assert!(stored[0].ends_with("blob:A0FF"), "{}", stored[0]);

    let back = FreshDb::create();
    back.conn()
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS vector;
             CREATE TABLE items (id BIGINT PRIMARY KEY, half halfvec(3), sparse sparsevec(6), flags bit(16));",
        )
        .unwrap();
    let report = ok(&["copy", "--from", &items, "--to", &back.url]);
    assert!(report.contains(" verified "), "{report}");
    let text = |db: &FreshDb| {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName, PartialEq, Debug)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            row: String,
        }
        diesel::sql_query(
            "SELECT concat_ws(' | ', id, half::text, sparse::text, flags::text) AS row FROM items ORDER BY id",
        )
        .load::<Row>(&mut db.conn())
        .unwrap()
    };
    assert_eq!(text(&back), text(&source));

    // JSON lines carry them too: numbers for halfvec, pgvector's text for sparsevec, bits for bit.
    let exported = ok(&["--database-url", &source.url, "export"]);
    assert!(
        exported.contains(r#""half":[1.5,-0,65504],"sparse":"{1:1.5,4:-2}/6","flags":"1010000011111111""#),
        "{exported}"
    );

    // A bit string of another length than whole bytes has no SQLite form: named before anything is written.
    source.conn().batch_execute("CREATE TABLE odd (id BIGINT PRIMARY KEY, b bit(12))").unwrap();
    let odd = lite(&dir, "odd.db", "CREATE TABLE odd (id INTEGER PRIMARY KEY, b BLOB)");
    let (_, stderr) = fails(&["copy", "--from", &source.url, "--to", &odd, "--table", "odd"]);
    assert!(stderr.contains("odd.b: bit(12) -> BLOB: a bit(12) column cannot be stored on SQLite"), "{stderr}");
}
