import type { Queue } from 'bullmq'
import type { WorkerConfig } from '../../common/config.ts'
import type { Db } from '../../common/db.ts'
import { MAINTENANCE_JOBS, QUEUES, defaultJobOptions, type ExportJob, type MaintenanceJob } from '../../common/queues.ts'
import { buildWorker, type WorkerContext } from '../lib/build-worker.ts'
import { createMaintenanceProcessor } from './maintenance.processor.ts'

export function createMaintenanceWorker(ctx: WorkerContext, db: Db, exportsQueue: Queue<ExportJob>) {
  // One at a time: the jobs are bulk statements.
  const worker = buildWorker(QUEUES.maintenance, createMaintenanceProcessor(db, ctx.config, exportsQueue), ctx, { concurrency: 1 })
  return { worker, close: () => worker.close() }
}

/** Schedulers of jobs this release no longer has: left in Redis by an earlier one, they would dead-letter each run. */
const RETIRED_JOBS = ['rollup']

/**
 * Upserts the schedulers of the maintenance jobs. Every replica does this at boot; an upsert with the same id
 * replaces rather than adds, so N replicas still produce one job per interval
 * (https://docs.bullmq.io/guide/job-schedulers).
 */
export async function scheduleMaintenance(queue: Queue<MaintenanceJob>, config: WorkerConfig): Promise<void> {
  const opts = defaultJobOptions(config.JOB_ATTEMPTS, config.JOB_BACKOFF_MS)
  for (const name of RETIRED_JOBS) await queue.removeJobScheduler(name)
  for (const name of Object.values(MAINTENANCE_JOBS)) {
    await queue.upsertJobScheduler(name, { every: config.MAINTENANCE_EVERY_MS }, { name, data: {}, opts })
  }
}
