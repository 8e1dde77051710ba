-- Up Migration
-- A CSV export is stored as numbered chunks, written by the worker as it reads the clicks and streamed to the client
-- one at a time on download, so neither process holds a whole export in memory (it was one bytea value).
CREATE TABLE export_chunks (
  export_id uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
  seq       integer NOT NULL CHECK (seq >= 0),
  data      bytea NOT NULL,
  PRIMARY KEY (export_id, seq)
);
ALTER TABLE exports DROP COLUMN content;
ALTER TABLE exports ADD COLUMN bytes bigint;
-- The maintenance sweep's two scans: finished exports past retention, and queued rows whose job never arrived.
CREATE INDEX exports_finished_idx ON exports (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX exports_queued_idx ON exports (created_at) WHERE status = 'queued';

-- Down Migration
DROP INDEX exports_queued_idx;
DROP INDEX exports_finished_idx;
ALTER TABLE exports DROP COLUMN bytes;
ALTER TABLE exports ADD COLUMN content bytea;
DROP TABLE export_chunks;
