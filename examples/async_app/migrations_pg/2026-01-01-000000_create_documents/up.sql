CREATE TABLE documents (
    id bigserial PRIMARY KEY,
    lang text NOT NULL,
    title text NOT NULL
);
