import { UnrecoverableError, type Job } from 'bullmq'
import type { Db } from '../../common/db.ts'
import { parseMaintenanceJob, type MaintenanceJob } from '../../common/queues.ts'
import { parsePayload } from '../lib/payload.ts'
import { enforceRetention, type RetentionResult } from './maintenance.ts'

/** Job names on the maintenance queue. */
export const MAINTENANCE_JOBS = { retention: 'retention' } as const

export function createMaintenanceProcessor(db: Db, defaultRetentionDays: number) {
  return async (job: Job<MaintenanceJob>): Promise<RetentionResult> => {
    const payload = parsePayload(parseMaintenanceJob, job.data)
    switch (job.name) {
      case MAINTENANCE_JOBS.retention:
        return enforceRetention(db, payload.retentionDays ?? defaultRetentionDays)
      default:
        throw new UnrecoverableError(`unknown maintenance job ${JSON.stringify(job.name)}`)
    }
  }
}
