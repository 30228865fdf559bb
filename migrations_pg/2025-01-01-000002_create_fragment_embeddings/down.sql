DROP TABLE fragment_embeddings;
