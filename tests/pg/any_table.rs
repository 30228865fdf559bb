//! A vector index on a table of the application's own: generated migrations, the registry and pgvector's
//! index helpers, on a database of its own per test.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_vector::index::{generate, registry, Element, IndexSpec, Metric, PgIndex};
use diesel_vector::pg::{self, Rebuild};

use crate::FreshDb;

const DOCUMENTS: &str = "CREATE TABLE documents (id bigserial PRIMARY KEY, lang text NOT NULL, body text NOT NULL)";

fn spec() -> IndexSpec {
    IndexSpec::builder("documents", "embedding", 768).partition_by(["lang"]).build().unwrap()
}

/// Columns, constraints and indexes of the public schema, leaving out the crate's registry.
fn catalog(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }
    diesel::sql_query(
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) AS line \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
           AND c.relname <> '__diesel_vector_indexes' \
         UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '__diesel_vector_indexes' \
         ORDER BY 1",
    )
    .load::<Line>(conn)
    .unwrap()
    .into_iter()
    .map(|l| l.line)
    .collect()
}

#[test]
fn the_generated_migration_makes_the_column_index_and_registry_row_and_down_undoes_it() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS).unwrap();
    let before = catalog(&mut conn);
    let m = generate::render(&spec(), &generate::Options::default().add_column(true));
    conn.transaction(|c| c.batch_execute(&m.pg_up)).unwrap();
    assert_eq!(registry::load(&mut conn).unwrap(), [spec()]);
    let after = catalog(&mut conn);
    assert!(after.contains(&"documents.embedding vector(768)".to_owned()), "{after:#?}");
    assert!(
        after.iter().any(|l| l
            .contains("documents_embedding_cosine_idx ON public.documents USING hnsw (embedding vector_cosine_ops)")),
        "{after:#?}"
    );
    let status = pg::status(&mut conn, &spec()).unwrap();
    assert_eq!((status.method.as_deref(), status.lists, status.valid, status.rows), (Some("hnsw"), None, true, 0));

    conn.transaction(|c| c.batch_execute(&m.pg_down)).unwrap();
    assert_eq!(catalog(&mut conn), before);
    assert!(registry::load(&mut conn).unwrap().is_empty());
    let extension: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM pg_extension WHERE extname = 'vector')",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(extension, 1, "down never drops pgvector");
}

#[test]
fn an_index_rebuilds_as_ivfflat_sized_for_its_rows_and_back_as_hnsw() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS).unwrap();
    let spec = IndexSpec::builder("documents", "embedding", 3).metric(Metric::L2).build().unwrap();
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).pg_up).unwrap();
    conn.batch_execute(
        "INSERT INTO documents (lang, body, embedding) SELECT 'en', 'b', ARRAY[i, i * 2, 1]::real[]::vector \
         FROM generate_series(1, 3000) i",
    )
    .unwrap();
    let status = pg::rebuild(&mut conn, &spec, Rebuild::Ivfflat { lists: None }).unwrap();
    assert_eq!((status.method.as_deref(), status.lists, status.rows), (Some("ivfflat"), Some(3), 3000));
    assert!(!status.needs_rebuild());
    let status = pg::rebuild(&mut conn, &spec, Rebuild::Ivfflat { lists: Some(100) }).unwrap();
    assert!(status.needs_rebuild(), "100 lists for 3000 rows recall poorly");
    let status = pg::rebuild(&mut conn, &spec, Rebuild::Hnsw).unwrap();
    assert_eq!((status.method.as_deref(), status.lists), (Some("hnsw"), None));
    let indexdef: Vec<String> = catalog(&mut conn).into_iter().filter(|l| l.contains("USING hnsw")).collect();
    assert_eq!(
        indexdef,
        ["CREATE INDEX documents_embedding_l2_idx ON public.documents USING hnsw (embedding vector_l2_ops)"]
    );
}

#[test]
fn a_vector_above_2000_dimensions_is_indexed_as_halfvec() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS).unwrap();
    let spec = IndexSpec::builder("documents", "embedding", 3072).build().unwrap();
    assert_eq!(spec.pg_cast(), Some(Element::HalfVector));
    conn.batch_execute(&generate::render(&spec, &generate::Options::default().add_column(true)).pg_up).unwrap();
    let indexes: Vec<String> = catalog(&mut conn).into_iter().filter(|l| l.contains("USING hnsw")).collect();
    assert_eq!(
        indexes,
        ["CREATE INDEX documents_embedding_cosine_idx ON public.documents USING hnsw (((embedding)::halfvec(3072)) \
          halfvec_cosine_ops)"]
    );
    assert_eq!(pg::rebuild(&mut conn, &spec, Rebuild::Hnsw).unwrap().method.as_deref(), Some("hnsw"));
}

#[test]
fn a_migration_for_columns_that_are_not_there_fails_naming_them_and_changes_nothing() {
    let cases = [
        (
            "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE documents (id bigserial PRIMARY KEY, embedding vector(768))",
            "documents.lang does not exist",
        ),
        ("CREATE TABLE documents (id text PRIMARY KEY, lang text)", "documents.id is text, expected an integer type"),
        ("CREATE TABLE documents (id bigserial PRIMARY KEY, lang text)", "documents.embedding does not exist"),
        (
            "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE documents (id bigserial PRIMARY KEY, lang text, embedding vector(1536))",
            "documents.embedding is vector(1536), expected vector(768)",
        ),
        // The first column of a composite key identifies no row: searches would return ids twice.
        (
            "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE documents (id bigint, chunk int, lang text, \
             embedding vector(768), PRIMARY KEY (id, chunk))",
            "documents.id must be unique by itself (the primary key, or a unique index of that column alone)",
        ),
        (
            "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE documents (id bigint NOT NULL, lang text, \
             embedding vector(768)); CREATE UNIQUE INDEX one ON documents (id) WHERE id > 0",
            "documents.id must be unique by itself",
        ),
        ("CREATE TABLE elsewhere (id bigint PRIMARY KEY)", "table documents does not exist (or its schema is not on"),
    ];
    for (table, message) in cases {
        let db = FreshDb::create();
        let mut conn = db.conn();
        conn.batch_execute(table).unwrap();
        let before = catalog(&mut conn);
        let m = generate::render(&spec(), &generate::Options::default());
        let err = conn.transaction(|c| c.batch_execute(&m.pg_up)).unwrap_err().to_string();
        assert!(err.contains(message), "{table}: {err}");
        assert_eq!(catalog(&mut conn), before, "{table}");
    }
    // A schema-qualified name is one identifier; the error says how to reach another schema's table.
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute("CREATE EXTENSION IF NOT EXISTS vector; CREATE SCHEMA app; CREATE TABLE app.docs (id bigint PRIMARY KEY, embedding vector(4))")
        .unwrap();
    let qualified = IndexSpec::builder("app.docs", "embedding", 4).build().unwrap();
    let m = generate::render(&qualified, &generate::Options::default());
    let err = conn.transaction(|c| c.batch_execute(&m.pg_up)).unwrap_err().to_string();
    assert!(
        err.contains(
            "table \"app.docs\" does not exist (the name is one identifier, dot included: for a table in another schema, \
             name the table alone and put its schema on the connection's search_path)"
        ),
        "{err}"
    );
}

#[test]
fn a_second_index_of_one_name_is_refused_and_a_renamed_partition_column_is_named_by_doctor() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(DOCUMENTS).unwrap();
    let l2 = IndexSpec::builder("documents", "embedding", 4).metric(Metric::L2).partition_by(["lang"]).build().unwrap();
    let m = generate::render(&l2, &generate::Options::default().add_column(true));
    conn.batch_execute(&m.pg_up).unwrap();
    let before = catalog(&mut conn);
    let cosine = IndexSpec::builder("documents", "embedding", 4).build().unwrap();
    let m = generate::render(&cosine, &generate::Options::default());
    let err = conn.transaction(|c| c.batch_execute(&m.pg_up)).unwrap_err().to_string();
    assert!(
        err.contains(
            "an index named __dv_documents_embedding is registered already: give this index of documents.embedding a \
             name of its own"
        ),
        "{err}"
    );
    assert_eq!(catalog(&mut conn), before, "nothing created");

    conn.batch_execute("ALTER TABLE documents RENAME COLUMN lang TO language").unwrap();
    let mut db = diesel_vector::database::DatabaseConnection::Pg(conn);
    let report = diesel_vector::doctor::diagnose(&mut db).unwrap();
    let index = report.indexes.iter().find(|i| i.spec.name() == "__dv_documents_embedding").unwrap();
    assert_eq!(index.missing_columns, ["lang"]);
    let finding = report.findings.iter().find(|f| f.message.contains("which it does not have"));
    assert!(finding.is_some_and(|f| f.message.contains("reads lang of table documents")), "{:?}", report.findings);
    assert!(report.needs_action());
}

#[test]
fn names_that_need_quoting_work_everywhere() {
    let db = FreshDb::create();
    let mut conn = db.conn();
    conn.batch_execute(r#"CREATE TABLE "my ""docs""" ("row id" bigint PRIMARY KEY, "select" text, "100%" int)"#)
        .unwrap();
    let spec = IndexSpec::builder(r#"my "docs""#, "em'bed ding", 4)
        .id_column("row id")
        .partition_by(["select", "100%"])
        .metric(Metric::InnerProduct)
        .pg_index(PgIndex::Ivfflat)
        .build()
        .unwrap();
    let m = generate::render(&spec, &generate::Options::default().add_column(true));
    conn.transaction(|c| c.batch_execute(&m.pg_up)).unwrap();
    assert_eq!(registry::load(&mut conn).unwrap(), std::slice::from_ref(&spec));
    conn.batch_execute(r#"INSERT INTO "my ""docs""" ("row id", "select", "em'bed ding") VALUES (1, 'a', '[1,2,3,4]')"#)
        .unwrap();
    let status = pg::rebuild(&mut conn, &spec, Rebuild::Ivfflat { lists: None }).unwrap();
    assert_eq!((status.method.as_deref(), status.lists, status.rows), (Some("ivfflat"), Some(1), 1));
    conn.transaction(|c| c.batch_execute(&m.pg_down)).unwrap();
    assert!(registry::load(&mut conn).unwrap().is_empty());
}
