-- Records fragment_embeddings' vector index in diesel-vector's registry, and gives its change queue and
-- state the generic shape every index has: the queue's column is `id`, and the state carries a
-- generation that changes with every update of the index (a process keeping it in memory can tell when
-- it is stale). Rows are not touched; the triggers follow the renamed column. The index keeps the crate's
-- quantized codes (fragment_embeddings_idx_codes, built by diesel-vector at its first sync, on any
-- connection); a vec0 table fragment_embeddings_idx left by an earlier version is dropped by diesel-vector
-- where sqlite-vec is loaded.
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

ALTER TABLE fragment_embeddings_idx_queue RENAME COLUMN embedding_id TO id;
ALTER TABLE fragment_embeddings_idx_state ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
UPDATE fragment_embeddings_idx_state SET generation = random() & 9223372036854775807;
