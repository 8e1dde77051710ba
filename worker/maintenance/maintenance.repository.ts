import type { Db } from '../../common/db.ts'

/** Deletes up to limit clicks older than cutoff, oldest first; returns how many. */
export async function deleteClicksBefore(db: Db, cutoff: Date, limit: number): Promise<number> {
  const res = await db.query(
    'clicks_retention_delete',
    `DELETE FROM clicks WHERE id IN (SELECT id FROM clicks WHERE at < $1 ORDER BY at LIMIT $2)`,
    [cutoff, limit],
  )
  return res.rowCount ?? 0
}

/** Deletes up to limit exports finished (done or failed) before cutoff, with their chunks; returns how many. */
export async function deleteExportsFinishedBefore(db: Db, cutoff: Date, limit: number): Promise<number> {
  const res = await db.query(
    'exports_expire',
    'DELETE FROM exports WHERE id IN (SELECT id FROM exports WHERE finished_at < $1 ORDER BY finished_at LIMIT $2)',
    [cutoff, limit],
  )
  return res.rowCount ?? 0
}

/** Exports still queued since before cutoff, oldest first. */
export async function queuedExportsBefore(db: Db, cutoff: Date, limit: number): Promise<{ id: string; link_id: string }[]> {
  const res = await db.query<{ id: string; link_id: string }>(
    'exports_stale_queued',
    "SELECT id, link_id FROM exports WHERE status = 'queued' AND created_at < $1 ORDER BY created_at LIMIT $2",
    [cutoff, limit],
  )
  return res.rows
}
