// Maintenance use-cases, run by the scheduler every MAINTENANCE_EVERY_MS.
import type { Db } from '../../common/db.ts'
import { deleteClicksBefore } from './maintenance.repository.ts'

const DAY_MS = 86_400_000

export interface RetentionResult {
  cutoff: string
  deleted: number
  /** False when the chunk budget ran out first; the next run continues. */
  complete: boolean
}

/**
 * Deletes clicks older than retentionDays in chunks, so no statement holds locks or runs long. The cutoff is a UTC
 * midnight; click_rollups_daily keeps the counts of the deleted clicks.
 */
export async function enforceRetention(
  db: Db,
  retentionDays: number,
  { now = new Date(), chunk = 5000, maxChunks = 200 }: { now?: Date; chunk?: number; maxChunks?: number } = {},
): Promise<RetentionResult> {
  const cutoff = new Date((Math.floor(now.getTime() / DAY_MS) - retentionDays) * DAY_MS)
  let deleted = 0
  for (let i = 0; i < maxChunks; i++) {
    const n = await deleteClicksBefore(db, cutoff, chunk)
    deleted += n
    if (n < chunk) return { cutoff: cutoff.toISOString(), deleted, complete: true }
  }
  return { cutoff: cutoff.toISOString(), deleted, complete: false }
}
