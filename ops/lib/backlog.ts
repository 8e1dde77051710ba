// A click backlog on the clicks queue, and the wait for workers to drain it: shared by `npm run load -- scaling` and
// the drills (worker-sigterm, scale-out).
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Queue } from 'bullmq'
import { CLICK_JOBS, defaultJobOptions, QUEUES, type ClickBatchJob, type ClickJob } from '../../common/queues.ts'

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

const click = (linkId: string): ClickJob => ({
  clickId: randomUUID(),
  linkId,
  at: new Date().toISOString(),
  referrer: null,
  uaFamily: 'Other',
  country: null,
})

/**
 * Queues n jobs over the given links, 1,000 per round trip: single-click jobs (the job id is the click id), or with
 * perJob > 1 batch jobs of that many clicks, the shape the API enqueues (one job per flush of its click buffer).
 */
export async function enqueueClicks(queue: Queue, linkIds: string[], n: number, perJob = 1): Promise<void> {
  const opts = defaultJobOptions(5, 1000)
  for (let i = 0; i < n; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, n - i) }, (_, j) => {
      const linkId = linkIds[(i + j) % linkIds.length]!
      if (perJob === 1) {
        const data = click(linkId)
        return { name: CLICK_JOBS.single, data, opts: { ...opts, jobId: data.clickId } }
      }
      const data: ClickBatchJob = { clicks: Array.from({ length: perJob }, () => click(linkId)) }
      return { name: CLICK_JOBS.batch, data, opts }
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
 * Times `workers` workers draining a backlog of `jobs` click jobs: the workers are stopped, the backlog is
 * queued on the paused queue, the workers started, and the clock runs from resume to empty. Workers take seconds to
 * boot (a second one later than the first), which would otherwise blur the time. `scaleWorkers(n)` sets the number
 * of workers. `jobs` in the result counts what was waiting at resume.
 */
export async function timeDrain(
  queue: Queue,
  o: {
    linkIds: string[]
    jobs: number
    /** Clicks per job (1: single-click jobs). */
    perJob?: number
    workers: number
    scaleWorkers: (n: number) => Promise<void>
    timeoutSec: number
  },
): Promise<{ jobs: number; seconds: number | undefined }> {
  await o.scaleWorkers(0)
  await queue.pause()
  await enqueueClicks(queue, o.linkIds, o.jobs, o.perJob)
  const jobs = await pending(queue, 'waiting', 'delayed', 'prioritized')
  await o.scaleWorkers(o.workers)
  await queue.resume()
  return { jobs, seconds: await drained(queue, o.timeoutSec, 20) }
}
