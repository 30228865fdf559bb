-- Every insert is queued again; the rows inserted above indexed_through since the index's last update are
-- queued first, so that nothing is left out of it.
INSERT INTO fragment_embeddings_idx_queue (id)
    SELECT e.id FROM fragment_embeddings e
    WHERE e.id > (SELECT s.indexed_through FROM fragment_embeddings_idx_state s)
      AND NOT EXISTS (SELECT 1 FROM fragment_embeddings_idx_queue q WHERE q.id = e.id);

DROP TRIGGER fragment_embeddings_idx_insert;
CREATE TRIGGER fragment_embeddings_idx_insert AFTER INSERT ON fragment_embeddings
BEGIN
    INSERT INTO fragment_embeddings_idx_queue (id)
        SELECT NEW.id WHERE NOT EXISTS (SELECT 1 FROM fragment_embeddings_idx_queue WHERE id = NEW.id);
END;

ALTER TABLE fragment_embeddings_idx_state DROP COLUMN indexed_through;
