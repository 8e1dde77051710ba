import type { Db } from '../../common/db.ts'

export async function dailyClicks(db: Db, linkId: string, days: number): Promise<{ day: string; clicks: number }[]> {
  const { rows } = await db.query<{ day: string; clicks: string }>(
    'stats_daily',
    `SELECT to_char(day, 'YYYY-MM-DD') AS day, clicks FROM click_rollups_daily
      WHERE link_id = $1 AND day > (now() AT TIME ZONE 'UTC')::date - $2::int
      ORDER BY day`,
    [linkId, days],
  )
  return rows.map((r) => ({ day: r.day, clicks: Number(r.clicks) }))
}

export async function totalClicks(db: Db, linkId: string): Promise<number> {
  const { rows } = await db.query<{ total: string }>(
    'stats_total',
    'SELECT COALESCE(sum(clicks), 0) AS total FROM click_rollups_daily WHERE link_id = $1',
    [linkId],
  )
  return Number(rows[0]?.total ?? 0)
}
