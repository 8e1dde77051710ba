// Parameterized SQL for links. Every query is timed under its operation name (opsdrill_pg_query_duration_seconds).
import type { Db, Queryable } from '../../common/db.ts'

export interface LinkRow {
  id: string
  code: string
  owner_id: string
  url: string
  is_alias: boolean
  created_at: Date
  updated_at: Date
  expires_at: Date | null
  deleted_at: Date | null
}

/** What the redirect needs, as cached: times in epoch ms; version orders cache writes (migrations/*_link-version.sql). */
export interface LinkTarget {
  id: string
  url: string
  expiresAt: number | null
  deleted: boolean
  version: number
}

const COLUMNS = 'id, code, owner_id, url, is_alias, created_at, updated_at, expires_at, deleted_at'

export async function findTargetByCode(db: Db, code: string): Promise<LinkTarget | null> {
  const { rows } = await db.query<{ id: string; url: string; expires_at: Date | null; deleted_at: Date | null; version: string }>(
    'link_by_code',
    'SELECT id, url, expires_at, deleted_at, version FROM links WHERE code = $1',
    [code],
  )
  const r = rows[0]
  return r
    ? { id: r.id, url: r.url, expiresAt: r.expires_at?.getTime() ?? null, deleted: r.deleted_at !== null, version: Number(r.version) }
    : null
}

export async function insertLink(
  db: Db,
  l: { code: string; ownerId: string; url: string; isAlias: boolean; expiresAt: Date | null },
): Promise<LinkRow | null> {
  const { rows } = await db.query<LinkRow>(
    'link_insert',
    `INSERT INTO links (code, owner_id, url, is_alias, expires_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (code) DO NOTHING RETURNING ${COLUMNS}`,
    [l.code, l.ownerId, l.url, l.isAlias, l.expiresAt],
  )
  return rows[0] ?? null
}

/** A live (not deleted) link, scoped to its owner unless ownerId is null (admin). */
export async function findLink(db: Db, id: string, ownerId: string | null): Promise<LinkRow | null> {
  const { rows } = await db.query<LinkRow>(
    'link_by_id',
    `SELECT ${COLUMNS} FROM links WHERE id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR owner_id = $2)`,
    [id, ownerId],
  )
  return rows[0] ?? null
}

/** created_at as text with its microseconds: a JS Date keeps only milliseconds, too coarse for a keyset cursor. */
export interface PagedLinkRow extends LinkRow {
  cursor_at: string
}

export async function listLinks(
  db: Db,
  ownerId: string | null,
  limit: number,
  after: { createdAt: string; id: string } | null,
): Promise<PagedLinkRow[]> {
  const { rows } = await db.query<PagedLinkRow>(
    ownerId ? 'link_list_owner' : 'link_list_all',
    `SELECT ${COLUMNS}, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at FROM links
      WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR owner_id = $1)
        AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
      ORDER BY created_at DESC, id DESC LIMIT $4`,
    [ownerId, after?.createdAt ?? null, after?.id ?? null, limit],
  )
  return rows
}

/** A changed row and the version the change gave it (the row stays locked until the caller's transaction ends). */
export type ChangedLinkRow = LinkRow & { version: number }

export async function updateLink(
  db: Db,
  client: Queryable,
  id: string,
  ownerId: string | null,
  patch: { url?: string; expiresAt?: Date | null },
): Promise<ChangedLinkRow | null> {
  const { rows } = await db.query<LinkRow & { version: string }>(
    'link_update',
    `UPDATE links SET url = COALESCE($3, url),
            expires_at = CASE WHEN $4::boolean THEN $5::timestamptz ELSE expires_at END,
            updated_at = now(), version = version + 1
      WHERE id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR owner_id = $2)
      RETURNING ${COLUMNS}, version`,
    [id, ownerId, patch.url ?? null, patch.expiresAt !== undefined, patch.expiresAt ?? null],
    client,
  )
  const r = rows[0]
  return r ? { ...r, version: Number(r.version) } : null
}

export async function softDeleteLink(
  db: Db,
  client: Queryable,
  id: string,
  ownerId: string | null,
): Promise<{ code: string; version: number } | null> {
  const { rows } = await db.query<{ code: string; version: string }>(
    'link_delete',
    `UPDATE links SET deleted_at = now(), updated_at = now(), version = version + 1
      WHERE id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR owner_id = $2) RETURNING code, version`,
    [id, ownerId],
    client,
  )
  const r = rows[0]
  return r ? { code: r.code, version: Number(r.version) } : null
}
