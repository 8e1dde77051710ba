// Click writes. A batch is one transaction: the clicks not already stored, then the daily rollups for exactly
// those. The click id (minted by the API) is the primary key, so a replayed or redelivered click adds nothing.
import type { Db } from '../../common/db.ts'
import type { ClickJob } from '../../common/queues.ts'

export interface InsertedClick {
  id: string
  link_id: string
  day: string
}

/** Inserts the clicks and counts the new ones into click_rollups_daily; returns the clicks actually inserted. */
export async function insertClicks(db: Db, clicks: ClickJob[]): Promise<InsertedClick[]> {
  // Sorted by id, so concurrent batches that share clicks wait on each other instead of deadlocking.
  const rows = [...clicks].sort((a, b) => (a.clickId < b.clickId ? -1 : a.clickId > b.clickId ? 1 : 0))
  return db.tx(async (client) => {
    const inserted = await db.query<InsertedClick>(
      'clicks_insert_batch',
      `INSERT INTO clicks (id, link_id, at, referrer, ua_family, country)
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])
       ON CONFLICT (id) DO NOTHING
       RETURNING id, link_id, (at AT TIME ZONE 'UTC')::date::text AS day`,
      [
        rows.map((c) => c.clickId),
        rows.map((c) => c.linkId),
        rows.map((c) => c.at),
        rows.map((c) => c.referrer),
        rows.map((c) => c.uaFamily),
        rows.map((c) => c.country),
      ],
      client,
    )
    const perDay = new Map<string, { linkId: string; day: string; n: number }>()
    for (const r of inserted.rows) {
      const key = `${r.link_id}|${r.day}`
      const cur = perDay.get(key)
      if (cur) cur.n++
      else perDay.set(key, { linkId: r.link_id, day: r.day, n: 1 })
    }
    if (perDay.size > 0) {
      // Sorted for the same reason as the clicks: a stable lock order across concurrent transactions.
      const counts = [...perDay.values()].sort((a, b) => (a.linkId + a.day < b.linkId + b.day ? -1 : 1))
      await db.query(
        'click_rollups_add',
        `INSERT INTO click_rollups_daily (link_id, day, clicks)
         SELECT * FROM unnest($1::uuid[], $2::date[], $3::bigint[])
         ON CONFLICT (link_id, day) DO UPDATE SET clicks = click_rollups_daily.clicks + EXCLUDED.clicks`,
        [counts.map((c) => c.linkId), counts.map((c) => c.day), counts.map((c) => c.n)],
        client,
      )
    }
    return inserted.rows
  })
}
