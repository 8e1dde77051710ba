import type { Db } from '../../common/db.ts'
import { QUEUES } from '../../common/queues.ts'
import { buildWorker, type WorkerContext } from '../lib/build-worker.ts'
import { ClickBatcher } from './click-batcher.ts'
import { createClickProcessor } from './clicks.processor.ts'
import { storeClicks } from './store-clicks.ts'

/** The clicks Worker: many jobs run at once and their clicks share batched Postgres writes. */
export function createClicksWorker(ctx: WorkerContext, db: Db) {
  const batcher = new ClickBatcher((clicks) => storeClicks(db, ctx.log, clicks), {
    maxSize: ctx.config.CLICK_BATCH_SIZE,
    maxWaitMs: ctx.config.CLICK_BATCH_MAX_WAIT_MS,
  })
  const worker = buildWorker(QUEUES.clicks, createClickProcessor(batcher), ctx, {
    concurrency: ctx.config.CLICK_CONCURRENCY,
    // Storing clicks is idempotent (the click id is the key), so a job whose worker was killed may run again as often
    // as it takes: with the default of 1, a batch killed twice in flight went to the dead letters unstored (found by
    // the worker-ledger drill).
    worker: { maxStalledCount: 10 },
  })
  return {
    worker,
    /** Stops fetching, lets the active jobs finish (their batch is flushed on its timer), then flushes what is left. */
    async close(): Promise<void> {
      await worker.close()
      await batcher.close()
    },
  }
}
