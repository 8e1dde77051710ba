// BullMQ producers and the click buffer. The redirect never waits on Redis: clicks go into an in-process buffer
// that is flushed every interval as jobs of up to MAX_CLICKS_PER_JOB clicks (one Redis round trip and one job for
// many clicks: per-click jobs cost a queue script each, which capped redirects at a third of the throughput). A click
// counts as acknowledged when its job is added; if Redis is unavailable the batch is dropped, counted and logged, and
// redirects go on.
import fp from 'fastify-plugin'
import { Queue } from 'bullmq'
import { BullMQOtel } from 'bullmq-otel'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { metrics, observeGauge } from '../../common/metrics.ts'
import { throttledWarn } from '../../common/queue-factory.ts'
import {
  CLICK_JOBS,
  MAX_CLICKS_PER_JOB,
  QUEUES,
  defaultJobOptions,
  parseClickBatchJob,
  type ClickBatchJob,
  type ClickJob,
  type ExportJob,
} from '../../common/queues.ts'

declare module 'fastify' {
  interface FastifyInstance {
    queues: { clicks: Queue<ClickBatchJob>; exports: Queue<ExportJob> }
    clickBuffer: ClickBuffer
  }
}

export interface ClickBuffer {
  push(click: ClickJob): void
  flush(): Promise<void>
  close(): Promise<void>
  readonly size: number
}

export function createClickBuffer(
  queue: Queue<ClickBatchJob>,
  opts: { max: number; intervalMs: number; ready: () => boolean },
  log: FastifyBaseLogger,
): ClickBuffer {
  let buf: ClickJob[] = []
  let flushing: Promise<void> | null = null
  let lastWarn = 0
  observeGauge(metrics.clickBufferSize, (g) => g.set(buf.length))

  async function flushOnce(): Promise<void> {
    const batch = buf.splice(0, MAX_CLICKS_PER_JOB)
    if (batch.length === 0) return
    try {
      if (!opts.ready()) throw new Error('the redis producer connection is not ready')
      // The first click's id names the job: a flush retried by BullMQ's producer cannot add it twice.
      await queue.add(CLICK_JOBS.batch, parseClickBatchJob({ clicks: batch }), { jobId: `b-${batch[0]!.clickId}` })
      metrics.clicksEnqueued.inc(batch.length)
      metrics.jobsAdded.inc({ queue: QUEUES.clicks })
    } catch (err) {
      metrics.clicksDropped.inc({ reason: 'redis_unavailable' }, batch.length)
      // At most one log line per second during an outage; the counter has every drop.
      if (Date.now() - lastWarn > 1000) {
        lastWarn = Date.now()
        log.warn({ err, clicks: { dropped: batch.length } }, 'click enqueue failed; clicks dropped')
      }
    }
  }

  function flush(): Promise<void> {
    if (flushing) return flushing
    flushing = (async () => {
      while (buf.length > 0) await flushOnce()
    })().finally(() => {
      flushing = null
    })
    return flushing
  }

  const timer = setInterval(() => void flush(), opts.intervalMs)
  timer.unref()

  return {
    push(click) {
      if (buf.length >= opts.max) {
        metrics.clicksDropped.inc({ reason: 'buffer_full' })
        return
      }
      buf.push(click)
      if (buf.length >= MAX_CLICKS_PER_JOB) void flush()
    },
    flush,
    async close() {
      clearInterval(timer)
      await flush()
      buf = []
    },
    get size() {
      return buf.length
    },
  }
}

// Producers fail fast while Redis is not ready instead of waiting for it: callers check this before add/addBulk.
// BullMQ's own skipWaitingForReady is not used: with it, a Queue built before its connection is up fails its
// one-time initialisation and every later add rejects for the life of the process, even once Redis is back.
export const producerReady = (connection: Redis): boolean => connection.status === 'ready'

export default fp(
  async (app) => {
    const c = app.config
    const common = {
      connection: app.redisProducer,
      prefix: c.REDIS_PREFIX,
      telemetry: new BullMQOtel({ tracerName: 'opsdrill', meterName: 'opsdrill' }),
      defaultJobOptions: defaultJobOptions(c.JOB_ATTEMPTS, c.JOB_BACKOFF_MS),
    }
    const clicks = new Queue<ClickBatchJob>(QUEUES.clicks, common)
    const exports = new Queue<ExportJob>(QUEUES.exports, common)
    for (const q of [clicks, exports]) q.on('error', throttledWarn(app.log, { queue: { name: q.name } }, 'queue error'))
    const buffer = createClickBuffer(
      clicks,
      { max: c.CLICK_BUFFER_MAX, intervalMs: c.CLICK_FLUSH_INTERVAL_MS, ready: () => producerReady(app.redisProducer) },
      app.log,
    )
    app.decorate('queues', { clicks, exports })
    app.decorate('clickBuffer', buffer)
    app.addHook('onClose', async () => {
      await buffer.close()
      await Promise.allSettled([clicks.close(), exports.close()])
    })
  },
  { name: 'queues', dependencies: ['redis'] },
)
