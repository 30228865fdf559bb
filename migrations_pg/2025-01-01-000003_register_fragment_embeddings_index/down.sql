-- The registry table stays: other indexes may be recorded in it (like the vector extension, it is shared).
DELETE FROM "__diesel_vector_indexes" WHERE name = 'fragment_embeddings_idx';
