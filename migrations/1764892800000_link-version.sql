-- Up Migration
-- A per-link version, bumped by every change (edit, delete). The redirect cache carries it in each entry, and a write
-- that would replace a newer version or a tombstone is refused (service/plugins/link-cache.ts), so a lookup that read
-- the old row just before a change commits cannot put the old target back in the cache.
ALTER TABLE links ADD COLUMN version bigint NOT NULL DEFAULT 1;

-- Down Migration
ALTER TABLE links DROP COLUMN version;
