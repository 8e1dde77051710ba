// Maintenance use-cases, run by the scheduler every MAINTENANCE_EVERY_MS.
import type { Queue } from 'bullmq'
import type { Db } from '../../common/db.ts'
import { parseExportJob, type ExportJob } from '../../common/queues.ts'
import { deleteClicksBefore, deleteExportsFinishedBefore, queuedExportsBefore } from './maintenance.repository.ts'

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

export interface ExportSweepResult {
  expired: number
  requeued: string[]
}

/**
 * Deletes exports finished more than retentionHours ago (their chunks go with them), and enqueues again the exports
 * still queued after requeueAfterMs: the API inserts the row and then enqueues its job, and a crash in between
 * leaves a row no job will ever run. The job id is the export id, as the API gives it, so an export whose job does
 * exist (a long backlog) is not added twice (https://docs.bullmq.io/guide/jobs/job-ids).
 */
export async function sweepExports(
  db: Db,
  queue: Queue<ExportJob>,
  {
    retentionHours,
    requeueAfterMs,
    now = new Date(),
    batch = 500,
  }: { retentionHours: number; requeueAfterMs: number; now?: Date; batch?: number },
): Promise<ExportSweepResult> {
  const expiredBefore = new Date(now.getTime() - retentionHours * 3_600_000)
  let expired = 0
  for (let n = batch; n === batch; expired += n) n = await deleteExportsFinishedBefore(db, expiredBefore, batch)
  const stale = await queuedExportsBefore(db, new Date(now.getTime() - requeueAfterMs), batch)
  for (const row of stale) await queue.add('export', parseExportJob({ exportId: row.id, linkId: row.link_id }), { jobId: row.id })
  return { expired, requeued: stale.map((r) => r.id) }
}
