// A click backlog on the clicks queue, and the wait for workers to drain it: shared by `npm run load -- scaling` and
// the drills (worker-sigterm, scale-out).
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Queue } from 'bullmq'
import { defaultJobOptions, QUEUES, type ClickBatchJob, type ClickJob } from '../../common/queues.ts'

/** The clicks queue of a stack, straight on its queue Redis; the caller closes it. */
export function clicksQueue(redisUrl: string, prefix: string): Queue<ClickJob | ClickBatchJob> {
  const u = new URL(redisUrl)
  // Connection options, not a client: BullMQ closes the connections it made itself on close().
  const connection = {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    maxRetriesPerRequest: null,
  }
  return new Queue<ClickJob | ClickBatchJob>(QUEUES.clicks, { connection, prefix })
}

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

async function pending(queue: Queue, ...states: ('waiting' | 'active' | 'delayed' | 'prioritized')[]): Promise<number> {
  return Object.values(await queue.getJobCounts(...states)).reduce((a, b) => a + b, 0)
}

/** Waits until the queue has nothing waiting, active, delayed or prioritized; seconds taken, or undefined at timeout. */
export async function drained(queue: Queue, timeoutSec: number, pollMs = 100): Promise<number | undefined> {
  const t0 = performance.now()
  while (performance.now() - t0 < timeoutSec * 1000) {
    if ((await pending(queue, 'waiting', 'active', 'delayed', 'prioritized')) === 0) return (performance.now() - t0) / 1000
    await sleep(pollMs)
  }
  return undefined
}

/**
 * Workers in a drain comparison take 20 clicks at a time (the default is 200), so the comparison measures what a
 * second consumer adds rather than how much of a 2-core box one process can take.
 */
export const DRAIN_WORKER_ENV = { CLICK_CONCURRENCY: '20' }

/**
 * Times `workers` workers draining a backlog of `jobs` single-click jobs: the workers are stopped, the backlog is
 * queued on the paused queue, the workers started, and the clock runs from resume to empty. Workers take seconds to
 * boot (a second one later than the first), which would otherwise blur the time. `scaleWorkers(n)` sets the number
 * of workers (with DRAIN_WORKER_ENV when n > 0). `jobs` in the result counts what was waiting at resume.
 */
export async function timeDrain(
  queue: Queue,
  o: { linkIds: string[]; jobs: number; workers: number; scaleWorkers: (n: number) => Promise<void>; timeoutSec: number },
): Promise<{ jobs: number; seconds: number | undefined }> {
  await o.scaleWorkers(0)
  await queue.pause()
  await enqueueClicks(queue, o.linkIds, o.jobs)
  const jobs = await pending(queue, 'waiting', 'delayed', 'prioritized')
  await o.scaleWorkers(o.workers)
  await queue.resume()
  return { jobs, seconds: await drained(queue, o.timeoutSec, 20) }
}
