-- Never drops the vector extension: DROP EXTENSION vector CASCADE would silently drop every vector
-- column in the database, including other applications'.
DROP TABLE fragments;
