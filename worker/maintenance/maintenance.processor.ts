import { UnrecoverableError, type Job, type Queue } from 'bullmq'
import type { WorkerConfig } from '../../common/config.ts'
import type { Db } from '../../common/db.ts'
import { MAINTENANCE_JOBS, parseMaintenanceJob, type ExportJob, type MaintenanceJob } from '../../common/queues.ts'
import { parsePayload } from '../lib/payload.ts'
import { enforceRetention, sweepExports, type ExportSweepResult, type RetentionResult } from './maintenance.ts'

export function createMaintenanceProcessor(db: Db, config: WorkerConfig, exportsQueue: Queue<ExportJob>) {
  return async (job: Job<MaintenanceJob>): Promise<RetentionResult | ExportSweepResult> => {
    const payload = parsePayload(parseMaintenanceJob, job.data)
    switch (job.name) {
      case MAINTENANCE_JOBS.retention:
        return enforceRetention(db, payload.retentionDays ?? config.CLICK_RETENTION_DAYS)
      case MAINTENANCE_JOBS.exports:
        return sweepExports(db, exportsQueue, {
          retentionHours: config.EXPORT_RETENTION_HOURS,
          requeueAfterMs: config.EXPORT_REQUEUE_AFTER_MS,
        })
      default:
        throw new UnrecoverableError(`unknown maintenance job ${JSON.stringify(job.name)}`)
    }
  }
}
