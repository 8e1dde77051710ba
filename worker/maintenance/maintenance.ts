// Maintenance use-cases, run by the scheduler every ROLLUP_EVERY_MS.
import type { Db } from '../../common/db.ts'
import { dayNumberToDate, utcDayNumber } from '../lib/rollup-locks.ts'
import { deleteClicksBefore, recountRollupDay } from './maintenance.repository.ts'

/** Days the reconcile recounts: today and yesterday (UTC), the only days clicks still arrive for in the normal course. */
export const RECONCILE_DAYS = 2

export interface ReconcileResult {
  days: string[]
  corrected: number
  removed: number
}

/** Recomputes the rollups of the last RECONCILE_DAYS UTC days from the clicks themselves. */
export async function reconcileRollups(db: Db, now = new Date()): Promise<ReconcileResult> {
  const today = utcDayNumber(now)
  const out: ReconcileResult = { days: [], corrected: 0, removed: 0 }
  for (let day = today - RECONCILE_DAYS + 1; day <= today; day++) {
    const r = await recountRollupDay(db, day)
    out.days.push(dayNumberToDate(day))
    out.corrected += r.corrected
    out.removed += r.removed
  }
  return out
}

export interface RetentionResult {
  cutoff: string
  deleted: number
  /** False when the chunk budget ran out first; the next run continues. */
  complete: boolean
}

/**
 * Deletes clicks older than retentionDays in chunks, so no statement holds locks or runs long. The cutoff is a UTC
 * midnight, so the days the reconcile recounts are never partly deleted (rollups keep the history of deleted clicks).
 */
export async function enforceRetention(
  db: Db,
  retentionDays: number,
  { now = new Date(), chunk = 5000, maxChunks = 200 }: { now?: Date; chunk?: number; maxChunks?: number } = {},
): Promise<RetentionResult> {
  const cutoff = new Date(dayNumberToDate(utcDayNumber(now) - retentionDays) + 'T00:00:00Z')
  let deleted = 0
  for (let i = 0; i < maxChunks; i++) {
    const n = await deleteClicksBefore(db, cutoff, chunk)
    deleted += n
    if (n < chunk) return { cutoff: cutoff.toISOString(), deleted, complete: true }
  }
  return { cutoff: cutoff.toISOString(), deleted, complete: false }
}
