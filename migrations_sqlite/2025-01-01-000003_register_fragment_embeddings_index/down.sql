-- The crate's quantized codes of the index (and its copy of the vectors, if one was kept) go with it (diesel-vector builds them again when the index is
-- registered again); no extension is needed to drop them.
DROP TABLE IF EXISTS fragment_embeddings_idx_codes;
DROP TABLE IF EXISTS fragment_embeddings_idx_vectors;
ALTER TABLE fragment_embeddings_idx_state DROP COLUMN generation;
ALTER TABLE fragment_embeddings_idx_queue RENAME COLUMN id TO embedding_id;
-- The registry table stays: other indexes may be recorded in it (like the vector extension, it is shared).
DELETE FROM "__diesel_vector_indexes" WHERE name = 'fragment_embeddings_idx';
