// BullMQ queues as both processes build them: one Redis key prefix, the OpenTelemetry add-on (so a job carries its
// producer's trace context to the consumer, https://docs.bullmq.io/guide/telemetry), and an error listener.
import { Queue, type DefaultJobOptions } from 'bullmq'
import { BullMQOtel } from 'bullmq-otel'
import type { Redis } from 'ioredis'
import type { Log } from './logger.ts'

/** One telemetry instance for every Queue and Worker; spans go to whatever tracer provider the process registered. */
export const queueTelemetry = new BullMQOtel({ tracerName: 'opsdrill', version: process.env.OPSDRILL_VERSION ?? 'dev' })

export interface QueueFactoryOptions {
  connection: Redis
  prefix: string
  log: Log
  defaultJobOptions?: DefaultJobOptions
}

export function createQueue<Data = unknown>(name: string, opts: QueueFactoryOptions): Queue<Data> {
  const queue = new Queue<Data>(name, {
    connection: opts.connection,
    prefix: opts.prefix,
    telemetry: queueTelemetry,
    ...(opts.defaultJobOptions ? { defaultJobOptions: opts.defaultJobOptions } : {}),
  })
  queue.on('error', throttledWarn(opts.log, { queue: { name } }, 'queue error'))
  return queue
}

/**
 * A listener that logs an error at most once per interval. BullMQ re-emits every Redis connection error on every
 * Queue and Worker that shares the connection; during an outage that would be a log line per reconnect attempt.
 */
export function throttledWarn(log: Log, fields: Record<string, unknown>, msg: string, intervalMs = 10_000): (err: Error) => void {
  let last = 0
  return (err) => {
    const now = Date.now()
    if (now - last < intervalMs) return
    last = now
    log.warn({ ...fields, err }, msg)
  }
}
