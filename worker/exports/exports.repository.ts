import type { Db } from '../../common/db.ts'

export interface ExportRow {
  id: string
  /** ISO 8601 in UTC with milliseconds, formatted by Postgres. */
  at: string
  /** Exact timestamp text for the keyset cursor (a JS Date would drop microseconds). */
  at_key: string
  referrer: string | null
  ua_family: string
  country: string | null
}

export interface Cursor {
  atKey: string
  id: string
}

/** Marks the export running; false when it no longer exists or is already done (a replayed job has nothing to do). */
export async function startExport(db: Db, exportId: string, linkId: string): Promise<boolean> {
  const res = await db.query(
    'export_start',
    `UPDATE exports SET status = 'running', progress = 0, error = NULL, updated_at = now()
     WHERE id = $1 AND link_id = $2 AND status <> 'done'`,
    [exportId, linkId],
  )
  return res.rowCount === 1
}

export async function countLinkClicks(db: Db, linkId: string): Promise<number> {
  const res = await db.query<{ n: string }>('export_count', 'SELECT count(*) AS n FROM clicks WHERE link_id = $1', [linkId])
  return Number(res.rows[0]?.n ?? 0)
}

/** One keyset page of a link's clicks ordered by (at, id), after the cursor. */
export async function linkClicksPage(db: Db, linkId: string, after: Cursor | null, limit: number): Promise<ExportRow[]> {
  // Two statements rather than one with `$2 IS NULL OR ...`, so each plans as a range scan of (link_id, at).
  // ORDER BY names clicks.at: the bare name would mean the formatted text column of the same name.
  const select = `SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at, at::text AS at_key,
                         referrer, ua_family, country
                  FROM clicks`
  const res = after
    ? await db.query<ExportRow>(
        'export_page',
        `${select} WHERE link_id = $1 AND (at, id) > ($2::timestamptz, $3::uuid) ORDER BY clicks.at, clicks.id LIMIT $4`,
        [linkId, after.atKey, after.id, limit],
      )
    : await db.query<ExportRow>('export_page', `${select} WHERE link_id = $1 ORDER BY clicks.at, clicks.id LIMIT $2`, [linkId, limit])
  return res.rows
}

export async function setExportProgress(db: Db, exportId: string, progress: number): Promise<void> {
  await db.query('export_progress', 'UPDATE exports SET progress = $2, updated_at = now() WHERE id = $1', [exportId, progress])
}

export async function clearExportChunks(db: Db, exportId: string): Promise<void> {
  await db.query('export_chunks_clear', 'DELETE FROM export_chunks WHERE export_id = $1', [exportId])
}

export async function writeExportChunk(db: Db, exportId: string, seq: number, data: Buffer): Promise<void> {
  await db.query('export_chunk_write', 'INSERT INTO export_chunks (export_id, seq, data) VALUES ($1, $2, $3)', [exportId, seq, data])
}

export async function finishExport(db: Db, exportId: string, rowCount: number, bytes: number): Promise<void> {
  await db.query(
    'export_finish',
    `UPDATE exports SET status = 'done', progress = 100, row_count = $2, bytes = $3, error = NULL,
            finished_at = now(), updated_at = now()
     WHERE id = $1`,
    [exportId, rowCount, bytes],
  )
}

export async function failExport(db: Db, exportId: string, error: string): Promise<void> {
  await db.query(
    'export_fail',
    `UPDATE exports SET status = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE id = $1 AND status <> 'done'`,
    [exportId, error],
  )
}
