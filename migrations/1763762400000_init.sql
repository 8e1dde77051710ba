-- Up Migration
CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text NOT NULL,
  password_hash text NOT NULL,
  role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  created_at    timestamptz NOT NULL DEFAULT now()
);
-- Login looks users up by lower(email).
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE links (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code        text NOT NULL,
  owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  url         text NOT NULL,
  is_alias    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  deleted_at  timestamptz
);
-- The redirect hot path: one row by code. Codes are never reused, so a deleted link answers 410, not someone else's URL.
CREATE UNIQUE INDEX links_code_key ON links (code);
-- "My links", newest first, keyset-paginated on (created_at, id).
CREATE INDEX links_owner_page_idx ON links (owner_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX links_page_idx ON links (created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- One row per click. The primary key is the click id minted by the API, so a replayed job stores nothing twice.
CREATE TABLE clicks (
  id        uuid PRIMARY KEY,
  link_id   uuid NOT NULL REFERENCES links (id) ON DELETE CASCADE,
  at        timestamptz NOT NULL,
  referrer  text,
  ua_family text NOT NULL,
  country   text CHECK (country ~ '^[A-Z]{2}$')
);
CREATE INDEX clicks_link_at_idx ON clicks (link_id, at);
CREATE INDEX clicks_at_idx ON clicks (at);

CREATE TABLE click_rollups_daily (
  link_id uuid NOT NULL REFERENCES links (id) ON DELETE CASCADE,
  day     date NOT NULL,
  clicks  bigint NOT NULL CHECK (clicks >= 0),
  PRIMARY KEY (link_id, day)
);

CREATE TABLE exports (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  link_id     uuid NOT NULL REFERENCES links (id) ON DELETE CASCADE,
  owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  progress    integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  row_count   integer,
  content     bytea,
  error       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX exports_link_idx ON exports (link_id, created_at DESC);

-- Down Migration
DROP TABLE exports;
DROP TABLE click_rollups_daily;
DROP TABLE clicks;
DROP TABLE links;
DROP TABLE users;
