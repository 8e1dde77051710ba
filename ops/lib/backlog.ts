// A click backlog on the clicks queue, and the wait for workers to drain it: shared by `npm run load -- scaling` and
// the drills (worker-sigterm, scale-out).
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Queue } from 'bullmq'
import { defaultJobOptions, type ClickJob } from '../../common/queues.ts'

/** Queues n single-click jobs over the given links, 1,000 per round trip; the click id is the job id. */
export async function enqueueClicks(queue: Queue, linkIds: string[], n: number): Promise<void> {
  const opts = defaultJobOptions(5, 1000)
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, (_, j) => {
      const clickId = randomUUID()
      const data: ClickJob = {
        clickId,
        linkId: linkIds[(i + j) % linkIds.length]!,
        at: new Date().toISOString(),
        referrer: null,
        uaFamily: 'Other',
        country: null,
      }
      return { name: 'click', data, opts: { ...opts, jobId: clickId } }
    })
    await queue.addBulk(batch)
  }
}

/** Waits until the queue has nothing waiting, active, delayed or prioritized; seconds taken, or undefined at timeout. */
export async function drained(queue: Queue, timeoutSec: number, pollMs = 100): Promise<number | undefined> {
  const t0 = performance.now()
  while (performance.now() - t0 < timeoutSec * 1000) {
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')
    if ((c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) === 0) return (performance.now() - t0) / 1000
    await sleep(pollMs)
  }
  return undefined
}
