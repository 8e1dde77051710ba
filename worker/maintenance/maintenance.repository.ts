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
