ALTER TABLE fragment_embeddings_idx_state DROP COLUMN generation;
ALTER TABLE fragment_embeddings_idx_queue RENAME COLUMN id TO embedding_id;
-- The registry table stays: other indexes may be recorded in it (like the vector extension, it is shared).
DELETE FROM "__diesel_vector_indexes" WHERE name = 'fragment_embeddings_idx';
