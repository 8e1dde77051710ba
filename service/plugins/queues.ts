// BullMQ producers and the click buffer. The redirect never waits on Redis: clicks go into an in-process buffer
// that is flushed with one addBulk per interval (one round trip for many clicks). A click counts as acknowledged
// when addBulk resolves; if Redis is unavailable the batch is dropped, counted and logged, and redirects go on.
import fp from 'fastify-plugin'
import { Queue } from 'bullmq'
import { BullMQOtel } from 'bullmq-otel'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { metrics, observeGauge } from '../../common/metrics.ts'
import { QUEUES, defaultJobOptions, type ClickJob, type ExportJob } from '../../common/queues.ts'

declare module 'fastify' {
  interface FastifyInstance {
    queues: { clicks: Queue<ClickJob>; exports: Queue<ExportJob> }
    clickBuffer: ClickBuffer
  }
}

const FLUSH_CHUNK = 1000

export interface ClickBuffer {
  push(click: ClickJob): void
  flush(): Promise<void>
  close(): Promise<void>
  readonly size: number
}

export function createClickBuffer(queue: Queue<ClickJob>, opts: { max: number; intervalMs: number; ready: () => boolean }, log: FastifyBaseLogger): ClickBuffer {
  let buf: ClickJob[] = []
  let flushing: Promise<void> | null = null
  let lastWarn = 0
  observeGauge(metrics.clickBufferSize, (g) => g.set(buf.length))

  async function flushOnce(): Promise<void> {
    const batch = buf.splice(0, FLUSH_CHUNK)
    if (batch.length === 0) return
    try {
      if (!opts.ready()) throw new Error('the redis producer connection is not ready')
      await queue.addBulk(batch.map((data) => ({ name: 'click', data, opts: { jobId: data.clickId } })))
      metrics.clicksEnqueued.inc(batch.length)
      metrics.jobsAdded.inc({ queue: QUEUES.clicks }, batch.length)
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
      if (buf.length >= FLUSH_CHUNK) void flush()
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
    const clicks = new Queue<ClickJob>(QUEUES.clicks, common)
    const exports = new Queue<ExportJob>(QUEUES.exports, common)
    for (const q of [clicks, exports]) q.on('error', (err) => app.log.debug({ err, queue: q.name }, 'queue error'))
    const buffer = createClickBuffer(clicks, { max: c.CLICK_BUFFER_MAX, intervalMs: c.CLICK_FLUSH_INTERVAL_MS, ready: () => producerReady(app.redisProducer) }, app.log)
    app.decorate('queues', { clicks, exports })
    app.decorate('clickBuffer', buffer)
    app.addHook('onClose', async () => {
      await buffer.close()
      await Promise.allSettled([clicks.close(), exports.close()])
    })
  },
  { name: 'queues', dependencies: ['redis'] },
)

