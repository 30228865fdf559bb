-- pgvector must be available on the server. Creating it needs a superuser (it is not a trusted
-- extension); once created, this statement is a no-op for any role.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE fragments (
    id bigserial PRIMARY KEY,
    content text NOT NULL,
    created_at timestamp DEFAULT now(),
    updated_at timestamp DEFAULT now()
);
