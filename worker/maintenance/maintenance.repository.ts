import type { Db } from '../../common/db.ts'
import { dayNumberToDate, lockRollupDay } from '../lib/rollup-locks.ts'

const DAY_RANGE = `at >= ($1::date)::timestamp AT TIME ZONE 'UTC' AND at < ($1::date + 1)::timestamp AT TIME ZONE 'UTC'`

/**
 * Sets one UTC day of click_rollups_daily to the counts in clicks (set, not add), under the day's exclusive lock so
 * no ingestion batch commits an increment in between. Returns rows corrected and rows removed (no clicks left).
 */
export async function recountRollupDay(db: Db, day: number): Promise<{ corrected: number; removed: number }> {
  const date = dayNumberToDate(day)
  return db.tx(async (client) => {
    await lockRollupDay(db, client, day)
    const up = await db.query(
      'rollup_recount',
      `INSERT INTO click_rollups_daily (link_id, day, clicks)
       SELECT link_id, $1::date, count(*) FROM clicks WHERE ${DAY_RANGE} GROUP BY link_id
       ON CONFLICT (link_id, day) DO UPDATE SET clicks = EXCLUDED.clicks
       WHERE click_rollups_daily.clicks <> EXCLUDED.clicks`,
      [date],
      client,
    )
    const del = await db.query(
      'rollup_prune',
      `DELETE FROM click_rollups_daily r
       WHERE r.day = $1::date AND NOT EXISTS (SELECT 1 FROM clicks WHERE link_id = r.link_id AND ${DAY_RANGE})`,
      [date],
      client,
    )
    return { corrected: up.rowCount ?? 0, removed: del.rowCount ?? 0 }
  })
}

/** Deletes up to limit clicks older than cutoff, oldest first; returns how many. */
export async function deleteClicksBefore(db: Db, cutoff: Date, limit: number): Promise<number> {
  const res = await db.query(
    'clicks_retention_delete',
    `DELETE FROM clicks WHERE id IN (SELECT id FROM clicks WHERE at < $1 ORDER BY at LIMIT $2)`,
    [cutoff, limit],
  )
  return res.rowCount ?? 0
}
