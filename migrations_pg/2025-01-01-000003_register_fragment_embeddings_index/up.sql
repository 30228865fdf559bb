-- Records fragment_embeddings' vector index in diesel-vector's registry, so that the CLI, `doctor` and
-- any tool find it like any other index. Data only: the application's tables are not touched.
CREATE TABLE IF NOT EXISTS "__diesel_vector_indexes" (
    name TEXT PRIMARY KEY NOT NULL,
    table_name TEXT NOT NULL,
    id_column TEXT NOT NULL,
    vector_column TEXT NOT NULL,
    element TEXT NOT NULL,
    dims INTEGER NOT NULL CHECK (dims > 0),
    metric TEXT NOT NULL,
    partition_by TEXT NOT NULL DEFAULT '[]',
    pg_index TEXT NOT NULL,
    pg_index_name TEXT,
    sqlite_index TEXT NOT NULL,
    format INTEGER NOT NULL DEFAULT 1
);
INSERT INTO "__diesel_vector_indexes" (name, table_name, id_column, vector_column, element, dims, metric, partition_by, pg_index, pg_index_name, sqlite_index, format)
    VALUES ('fragment_embeddings_idx', 'fragment_embeddings', 'id', 'embedding', 'vector', 1536, 'cosine', '["provider","model"]', 'ivfflat', 'fragment_embeddings_cosine_idx', 'codes', 1);
