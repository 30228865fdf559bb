CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    lang TEXT NOT NULL,
    title TEXT NOT NULL
);
