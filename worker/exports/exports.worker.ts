import type { Db } from '../../common/db.ts'
import { QUEUES, parseExportJob } from '../../common/queues.ts'
import { buildWorker, type WorkerContext } from '../lib/build-worker.ts'
import { failExport } from './exports.repository.ts'
import { createExportProcessor } from './exports.processor.ts'

export function createExportsWorker(ctx: WorkerContext, db: Db) {
  const limits = { maxRows: ctx.config.EXPORT_MAX_ROWS, maxBytes: ctx.config.EXPORT_MAX_BYTES }
  const worker = buildWorker(QUEUES.exports, createExportProcessor(db, limits), ctx, {
    concurrency: ctx.config.EXPORT_CONCURRENCY,
    // The owner polls the export row, so its final state must say failed; the details stay in the logs.
    onFinalFailure: async (job, err) => {
      let exportId: string
      try {
        exportId = parseExportJob(job.data).exportId
      } catch {
        return
      }
      await failExport(db, exportId, `export failed: ${err.message}`.slice(0, 200))
    },
  })
  return { worker, close: () => worker.close() }
}
