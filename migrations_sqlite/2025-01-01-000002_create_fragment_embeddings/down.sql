-- The vec0 table fragment_embeddings_idx cannot be dropped here (no connection of the diesel CLI has
-- sqlite-vec); diesel-vector drops it after reverting, and the up migration marks any leftover for rebuild.
DROP TRIGGER fragment_embeddings_idx_delete;
DROP TRIGGER fragment_embeddings_idx_update;
DROP TRIGGER fragment_embeddings_idx_insert;
DROP TABLE fragment_embeddings_idx_state;
DROP TABLE fragment_embeddings_idx_queue;
DROP TABLE fragment_embeddings;
