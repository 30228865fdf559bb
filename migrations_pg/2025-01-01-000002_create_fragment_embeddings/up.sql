-- Exactly the application's original schema.
CREATE TABLE fragment_embeddings (
    id bigserial PRIMARY KEY,
    fragment_id bigint NOT NULL REFERENCES fragments(id) ON DELETE CASCADE,
    provider varchar(255) NOT NULL,
    model varchar(255) NOT NULL,
    dims integer NOT NULL,
    embedding vector(1536),
    content_hash varchar(255) NOT NULL,
    created_at timestamp DEFAULT now(),
    updated_at timestamp DEFAULT now(),
    UNIQUE(fragment_id, provider, model, content_hash)
);

CREATE INDEX fragment_embeddings_cosine_idx ON fragment_embeddings USING ivfflat (embedding vector_cosine_ops);
