import type { Job } from 'bullmq'
import { parseClickJob, type ClickJob } from '../../common/queues.ts'
import { parsePayload } from '../lib/payload.ts'
import type { ClickBatcher } from './click-batcher.ts'
import type { ClickOutcome } from './store-clicks.ts'

export interface ClickResult {
  outcome: ClickOutcome
}

export function createClickProcessor(batcher: ClickBatcher<ClickOutcome>) {
  return async (job: Job<ClickJob, ClickResult>): Promise<ClickResult> => ({
    outcome: await batcher.add(parsePayload(parseClickJob, job.data)),
  })
}
