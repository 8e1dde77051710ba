-- Up Migration
-- A CSV export is stored as numbered chunks, written by the worker as it reads the clicks and streamed to the client
-- one at a time on download, so neither process holds a whole export in memory (it was one bytea value).
CREATE TABLE export_chunks (
  export_id uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
  seq       integer NOT NULL CHECK (seq >= 0),
  data      bytea NOT NULL,
  PRIMARY KEY (export_id, seq)
);
ALTER TABLE exports ADD COLUMN bytes bigint;
-- Exports finished before this migration keep their CSV, as a single chunk.
INSERT INTO export_chunks (export_id, seq, data) SELECT id, 0, content FROM exports WHERE content IS NOT NULL;
UPDATE exports SET bytes = length(content) WHERE content IS NOT NULL;
ALTER TABLE exports DROP COLUMN content;
-- The maintenance sweep's two scans: finished exports past retention, and queued rows whose job never arrived.
CREATE INDEX exports_finished_idx ON exports (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX exports_queued_idx ON exports (created_at) WHERE status = 'queued';

-- Down Migration
DROP INDEX exports_queued_idx;
DROP INDEX exports_finished_idx;
ALTER TABLE exports ADD COLUMN content bytea;
UPDATE exports e SET content = (SELECT string_agg(data, ''::bytea ORDER BY seq) FROM export_chunks c WHERE c.export_id = e.id)
WHERE status = 'done';
ALTER TABLE exports DROP COLUMN bytes;
DROP TABLE export_chunks;
