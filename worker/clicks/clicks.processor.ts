import type { Job } from 'bullmq'
import { parseClicksQueueJob, type ClickBatchJob, type ClickJob } from '../../common/queues.ts'
import { parsePayload } from '../lib/payload.ts'
import type { ClickBatcher } from './click-batcher.ts'
import type { ClickOutcome } from './store-clicks.ts'

export type ClickResult = { outcome: ClickOutcome } | { outcomes: Partial<Record<ClickOutcome, number>> }

/**
 * Two job shapes share the queue: `clicks` (a batch, what the API enqueues) and `click` (one click; what an API of
 * the previous release may still enqueue during a rolling deploy). Both feed the same batched, idempotent writer, so
 * a batch retried after a crash stores nothing twice.
 */
export function createClickProcessor(batcher: ClickBatcher<ClickOutcome>) {
  return async (job: Job<ClickJob | ClickBatchJob, ClickResult>): Promise<ClickResult> => {
    const payload = parsePayload((data) => parseClicksQueueJob(job.name, data), job.data)
    if (!('clicks' in payload)) return { outcome: await batcher.add(payload) }
    const { clicks } = payload
    const outcomes: Partial<Record<ClickOutcome, number>> = {}
    for (const o of await Promise.all(clicks.map((c) => batcher.add(c)))) outcomes[o] = (outcomes[o] ?? 0) + 1
    return { outcomes }
  }
}
