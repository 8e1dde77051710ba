import type { Job } from 'bullmq'
import type { Db } from '../../common/db.ts'
import { parseExportJob, type ExportJob } from '../../common/queues.ts'
import { parsePayload } from '../lib/payload.ts'
import { exportClicks, type ExportLimits, type ExportResult } from './export-clicks.ts'

export function createExportProcessor(db: Db, limits: ExportLimits) {
  return async (job: Job<ExportJob, ExportResult>): Promise<ExportResult> =>
    exportClicks(db, parsePayload(parseExportJob, job.data), limits, (percent) => job.updateProgress(percent))
}
