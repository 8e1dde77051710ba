// One advisory lock per UTC day of click_rollups_daily. Ingestion batches take the days they write in shared mode;
// the reconcile takes a day exclusively while it recounts it. Without it, a batch committing between the
// reconcile's count and its write would have its increment overwritten (a lost update) until the next reconcile.
import type { Queryable, Db } from '../../common/db.ts'

/** First key of the two-key advisory lock form: this project's rollup locks, apart from any other advisory use. */
const ROLLUP_LOCK_CLASS = 0x6f70

const DAY_MS = 86_400_000

/** Days since 1970-01-01 (UTC) of an ISO timestamp; Postgres's (at AT TIME ZONE 'UTC')::date names the same day. */
export function utcDayNumber(at: string | Date): number {
  return Math.floor(new Date(at).getTime() / DAY_MS)
}

export function dayNumberToDate(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10)
}

export async function lockRollupDaysShared(db: Db, client: Queryable, ats: string[]): Promise<void> {
  // Ascending, so two batches never wait on each other in opposite orders.
  const days = [...new Set(ats.map(utcDayNumber))].sort((a, b) => a - b)
  await db.query(
    'rollup_lock_shared',
    'SELECT pg_advisory_xact_lock_shared($1, d) FROM unnest($2::int[]) AS d',
    [ROLLUP_LOCK_CLASS, days],
    client,
  )
}

export async function lockRollupDay(db: Db, client: Queryable, day: number): Promise<void> {
  await db.query('rollup_lock', 'SELECT pg_advisory_xact_lock($1, $2)', [ROLLUP_LOCK_CLASS, day], client)
}
