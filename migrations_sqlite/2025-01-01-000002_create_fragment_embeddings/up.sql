-- The PostgreSQL data model in SQLite's types. Embeddings are BLOBs of little-endian f32 (sqlite-vec's
-- format); the CHECKs need no extension: a BLOB of 4 bytes per dimension, and 1536 dimensions as
-- PostgreSQL's vector(1536) enforces. The length CHECKs mirror varchar(255).
CREATE TABLE fragment_embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fragment_id INTEGER NOT NULL REFERENCES fragments(id) ON DELETE CASCADE,
    provider TEXT NOT NULL CHECK (length(provider) <= 255),
    model TEXT NOT NULL CHECK (length(model) <= 255),
    dims INTEGER NOT NULL,
    embedding BLOB CHECK (embedding IS NULL OR (typeof(embedding) = 'blob' AND length(embedding) = 4 * dims AND dims = 1536)),
    content_hash TEXT NOT NULL CHECK (length(content_hash) <= 255),
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE UNIQUE INDEX fragment_embeddings_unique ON fragment_embeddings (fragment_id, provider, model, content_hash);

-- The vector index (sqlite-vec's vec0 table fragment_embeddings_idx) is created and kept up to date by
-- diesel-vector on connections that have sqlite-vec: no migration may name vec0, because the diesel CLI
-- and other tools cannot load the extension. Plain triggers record every change in a queue instead, so
-- any writer (diesel-vector, the diesel CLI, the sqlite3 shell, an app without the extension) leaves
-- the index repairable; diesel-vector applies the queue before it searches.
CREATE TABLE fragment_embeddings_idx_queue (
    embedding_id INTEGER PRIMARY KEY
);

-- One row. needs_rebuild = 1 tells diesel-vector to rebuild the vec0 table from fragment_embeddings:
-- set here because a vec0 table left over from an earlier installation (which a down migration cannot
-- drop) must not be trusted.
CREATE TABLE fragment_embeddings_idx_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    needs_rebuild INTEGER NOT NULL
);
INSERT INTO fragment_embeddings_idx_state (id, needs_rebuild) VALUES (1, 1);

-- No OR IGNORE / ON CONFLICT in the triggers: an outer statement's conflict policy (an upsert's, say)
-- overrides the one written in a trigger.
CREATE TRIGGER fragment_embeddings_idx_insert AFTER INSERT ON fragment_embeddings
BEGIN
    INSERT INTO fragment_embeddings_idx_queue (embedding_id)
        SELECT NEW.id WHERE NOT EXISTS (SELECT 1 FROM fragment_embeddings_idx_queue WHERE embedding_id = NEW.id);
END;

CREATE TRIGGER fragment_embeddings_idx_update AFTER UPDATE ON fragment_embeddings
BEGIN
    INSERT INTO fragment_embeddings_idx_queue (embedding_id)
        SELECT OLD.id WHERE NOT EXISTS (SELECT 1 FROM fragment_embeddings_idx_queue WHERE embedding_id = OLD.id);
    INSERT INTO fragment_embeddings_idx_queue (embedding_id)
        SELECT NEW.id WHERE NOT EXISTS (SELECT 1 FROM fragment_embeddings_idx_queue WHERE embedding_id = NEW.id);
END;

-- Also fires for rows removed by ON DELETE CASCADE from fragments.
CREATE TRIGGER fragment_embeddings_idx_delete AFTER DELETE ON fragment_embeddings
BEGIN
    INSERT INTO fragment_embeddings_idx_queue (embedding_id)
        SELECT OLD.id WHERE NOT EXISTS (SELECT 1 FROM fragment_embeddings_idx_queue WHERE embedding_id = OLD.id);
END;
