// Queue depth by state and the age of the oldest waiting job, read from Redis when Prometheus scrapes, for every
// queue this process registered (the dead-letter queue included: its `waiting` count is the dead-letter backlog).
import type { Queue } from 'bullmq'
import { metrics, observeGauge } from '../../common/metrics.ts'

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children'] as const
/** A scrape must not hang on a Redis outage; the gauges keep their last values and the scrape still answers. */
const READ_TIMEOUT_MS = 1000

const observed = new Set<Queue>()
let inflight: Promise<void> | undefined

/** Adds queues to the scrape-time collector; the returned function removes them again. */
export function observeQueues(queues: Queue[]): () => void {
  for (const q of queues) observed.add(q)
  return () => {
    for (const q of queues) {
      observed.delete(q)
      metrics.queueOldestWaitingAge.remove({ queue: q.name })
      for (const state of STATES) metrics.queueJobs.remove({ queue: q.name, state })
    }
  }
}

async function readQueue(q: Queue, now: number): Promise<void> {
  const [counts, oldest] = await Promise.all([q.getJobCounts(...STATES), q.getWaiting(0, 0)])
  for (const state of STATES) metrics.queueJobs.set({ queue: q.name, state }, counts[state] ?? 0)
  const first = oldest[0]
  metrics.queueOldestWaitingAge.set({ queue: q.name }, first ? Math.max(0, now - first.timestamp) / 1000 : 0)
}

/** One Redis round per scrape even though two gauges ask for it. */
function refresh(): Promise<void> {
  inflight ??= (async () => {
    const now = Date.now()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, READ_TIMEOUT_MS)))
    await Promise.race([Promise.allSettled([...observed].map((q) => readQueue(q, now))), timeout])
    clearTimeout(timer)
  })().finally(() => (inflight = undefined))
  return inflight
}

observeGauge(metrics.queueJobs, refresh)
observeGauge(metrics.queueOldestWaitingAge, refresh)
