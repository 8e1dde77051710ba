// BullMQ producers and the click buffer. The redirect never waits on Redis: clicks go into an in-process buffer
// that is flushed every interval as jobs of up to MAX_CLICKS_PER_JOB clicks (one Redis round trip and one job for
// many clicks: per-click jobs cost a queue script each, which capped redirects at a third of the throughput). A
// failed enqueue is tried again a few times with backoff; a batch Redis still cannot take (or any batch while the
// producer connection is down) goes to the click spool on disk and is replayed once Redis is back. So a click is lost
// only if the process dies while it is still in the buffer, or if the spool is full (counted and logged).
import fp from 'fastify-plugin'
import { Queue } from 'bullmq'
import { BullMQOtel } from 'bullmq-otel'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import { openClickSpool, type ClickSpool, type SpooledBatch } from './click-spool.ts'
import { metrics, observeGauge } from '../../common/metrics.ts'
import { throttledWarn } from '../../common/queue-factory.ts'
import {
  CLICK_JOBS,
  MAX_CLICKS_PER_JOB,
  QUEUES,
  defaultJobOptions,
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

export interface ClickBufferOptions {
  max: number
  intervalMs: number
  ready: () => boolean
  attempts: number
  backoffMs: number
}

export function createClickBuffer(
  queue: Queue<ClickBatchJob>,
  spool: ClickSpool,
  opts: ClickBufferOptions,
  log: FastifyBaseLogger,
): ClickBuffer {
  let buf: ClickJob[] = []
  let flushing: Promise<void> | null = null
  let lastWarn = 0
  observeGauge(metrics.clickBufferSize, (g) => g.set(buf.length))
  // Every reason exists from the start, at 0: a drop is rare now that clicks are spooled, and a series that appears
  // only at the first drop leaves the dashboard's panel and the ClicksDropped alert with no data until then.
  for (const reason of ['buffer_full', 'spool_full', 'spool_unwritable', 'spool_unreadable']) metrics.clicksDropped.inc({ reason }, 0)

  // At most one log line per second while Redis is unavailable; the counters have every click.
  function warn(err: unknown, msg: string, extra: Record<string, unknown> = {}): void {
    if (Date.now() - lastWarn < 1000) return
    lastWarn = Date.now()
    log.warn({ err, ...extra }, msg)
  }

  async function add(b: SpooledBatch): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (!opts.ready()) throw new Error('the redis producer connection is not ready')
        await queue.add(CLICK_JOBS.batch, b.data, { jobId: b.jobId })
        metrics.clicksEnqueued.inc(b.data.clicks.length)
        metrics.jobsAdded.inc({ queue: QUEUES.clicks })
        return
      } catch (err) {
        // A connection that is down will not be back within the backoff: spool now rather than hold the buffer.
        if (attempt >= opts.attempts || !opts.ready()) throw err
        metrics.clickEnqueueRetries.inc()
        await sleep(opts.backoffMs * 2 ** (attempt - 1))
      }
    }
  }

  async function flushOnce(): Promise<void> {
    const clicks = buf.splice(0, MAX_CLICKS_PER_JOB)
    if (clicks.length === 0) return
    // No schema check here: the redirect builds every click to the schema (usecases/redirect.ts, checked against
    // parseClickBatchJob in test/service/redirect.test.ts) and the worker checks each job. Checking again cost the
    // redirect 6% of its CPU in a profile (formats and patterns on 3 strings a click), for a click that could only
    // fail it through a bug, and then was dropped.
    // The first click's id names the job: a retried or replayed add cannot add the batch twice while it is queued.
    const batch: SpooledBatch = { jobId: `b-${clicks[0]!.clickId}`, data: { clicks } }
    try {
      await add(batch)
    } catch (err) {
      const spooled = await spool.append([batch])
      if (spooled === 'spooled') {
        metrics.clicksSpooled.inc(clicks.length)
        warn(err, 'click enqueue failed; clicks spooled until Redis is back', { click: { spooled: clicks.length } })
      } else {
        metrics.clicksDropped.inc({ reason: spooled }, clicks.length)
        warn(err, 'click enqueue failed and the spool cannot take them; clicks dropped', { click: { dropped: clicks.length } })
      }
    }
  }

  async function replay(): Promise<void> {
    try {
      const n = await spool.replay(add)
      if (n > 0) log.info({ click: { replayed: n } }, 'click spool replayed into the queue')
    } catch (err) {
      warn(err, 'click spool replay failed; trying again at the next flush')
    }
  }

  function flush(): Promise<void> {
    if (flushing) return flushing
    flushing = (async () => {
      while (buf.length > 0) await flushOnce()
      if (spool.bytes > 0 && opts.ready()) await replay()
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
      await spool.close()
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
    const spool = await openClickSpool(c.CLICK_SPOOL_DIR, c.CLICK_SPOOL_MAX_BYTES, app.log)
    const buffer = createClickBuffer(
      clicks,
      spool,
      {
        max: c.CLICK_BUFFER_MAX,
        intervalMs: c.CLICK_FLUSH_INTERVAL_MS,
        ready: () => producerReady(app.redisProducer),
        attempts: c.CLICK_ENQUEUE_ATTEMPTS,
        backoffMs: c.CLICK_ENQUEUE_BACKOFF_MS,
      },
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
