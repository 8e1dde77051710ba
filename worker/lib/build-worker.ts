// What every opsdrill Worker shares: connection, key prefix, telemetry, stall detection, the error listener, the
// job metrics, and the move to the dead-letter queue when a job fails for the last time.
// Each <queue>.worker.ts calls buildWorker with its processor and its own options.
import { Worker, type Job, type Queue, type WorkerOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { WorkerConfig } from '../../common/config.ts'
import { addDeadLetter, toDeadLetter } from '../../common/deadletters.ts'
import { metrics } from '../../common/metrics.ts'
import { queueTelemetry, throttledWarn } from '../../common/queue-factory.ts'
import type { QueueName } from '../../common/queues.ts'
import { observe } from './observe.ts'

export interface WorkerContext {
  config: WorkerConfig
  connection: Redis
  log: Logger
  deadLetters: Queue
}

export type JobProcessor<D, R> = (job: Job<D, R>, signal?: AbortSignal) => Promise<R>

export interface BuildWorkerOptions<D> {
  concurrency: number
  /** Runs once when a job has failed for good (after the dead letter is recorded), e.g. to mark a row failed. */
  onFinalFailure?: (job: Job<D>, err: Error) => Promise<void>
  worker?: Partial<WorkerOptions>
}

/** True when this failed attempt is the job's last: BullMQ will move it to `failed` rather than retry it. */
export function isLastAttempt(job: Pick<Job, 'attemptsMade' | 'opts'>, err: Error): boolean {
  if (err.name === 'UnrecoverableError') return true
  return job.attemptsMade + 1 >= Math.max(1, job.opts.attempts ?? 1)
}

const running = new WeakMap<Worker, () => number>()

/** Jobs this process is running in the Worker's processor now (BullMQ keeps its own count private). */
export function activeCount(worker: Worker): number {
  return running.get(worker)?.() ?? 0
}

export function buildWorker<D, R>(
  name: QueueName,
  processor: JobProcessor<D, R>,
  ctx: WorkerContext,
  opts: BuildWorkerOptions<D>,
): Worker<D, R> {
  const log = ctx.log.child({ queue: { name } })
  // Jobs whose final failure the processor already handled; the `failed` event handles the rest (a job failed by
  // the stalled checker never reaches the processor).
  const handled = new WeakSet<Job>()
  let inProcessor = 0

  async function finalFailure(job: Job<D>, err: Error, attemptsMade: number): Promise<void> {
    try {
      const id = await addDeadLetter(ctx.deadLetters, toDeadLetter(name, job, err, attemptsMade))
      metrics.jobsDeadLettered.inc({ queue: name })
      log.error(
        { job: { id: job.id, name: job.name, attempts: attemptsMade }, deadLetter: { id }, err },
        'job failed for good; moved to the dead-letter queue',
      )
    } catch (dlqErr) {
      // The job itself still lands in the failed set (kept for days by removeOnFail), where an operator can find it.
      log.error({ job: { id: job.id, name: job.name }, err: dlqErr }, 'could not record the dead letter')
    }
    if (opts.onFinalFailure) {
      await opts
        .onFinalFailure(job, err)
        .catch((hookErr: unknown) => log.error({ job: { id: job.id }, err: hookErr }, 'final-failure hook failed'))
    }
  }

  const worker = new Worker<D, R>(
    name,
    async (job, _token, signal) => {
      inProcessor++
      const start = performance.now()
      const took = () => (performance.now() - start) / 1000
      try {
        const result = await processor(job, signal)
        observe(metrics.jobProcessing, { queue: name, outcome: 'completed' }, took())
        return result
      } catch (err) {
        observe(metrics.jobProcessing, { queue: name, outcome: 'failed' }, took())
        const e = err instanceof Error ? err : new Error(String(err))
        // Recorded before BullMQ marks the job failed: a crash in between re-runs the job, never loses the letter.
        if (isLastAttempt(job, e)) {
          handled.add(job)
          await finalFailure(job, e, job.attemptsMade + 1)
        }
        throw err
      } finally {
        inProcessor--
      }
    },
    {
      connection: ctx.connection,
      prefix: ctx.config.REDIS_PREFIX,
      telemetry: queueTelemetry,
      concurrency: opts.concurrency,
      stalledInterval: ctx.config.STALLED_INTERVAL_MS,
      maxStalledCount: 1,
      lockDuration: ctx.config.JOB_LOCK_MS,
      ...opts.worker,
    },
  )

  running.set(worker, () => inProcessor)
  worker.on('error', throttledWarn(log, {}, 'worker error'))
  worker.on('active', (job) => {
    // Retries wait out their backoff on purpose; only a job's first run measures queueing delay.
    if (job.attemptsMade === 0 && job.processedOn)
      observe(metrics.jobWait, { queue: name }, Math.max(0, job.processedOn - job.timestamp - (job.opts.delay ?? 0)) / 1000)
  })
  worker.on('completed', () => metrics.jobsCompleted.inc({ queue: name }))
  worker.on('failed', (job, err) => {
    metrics.jobsFailed.inc({ queue: name })
    if (!job) return
    if (job.finishedOn === undefined || job.finishedOn === null) {
      metrics.jobsRetried.inc({ queue: name })
      log.warn({ job: { id: job.id, name: job.name, attempts: job.attemptsMade }, err }, 'job attempt failed; will retry')
      return
    }
    if (!handled.has(job)) void finalFailure(job, err, job.attemptsMade)
  })
  worker.on('stalled', (jobId) => {
    metrics.jobsStalled.inc({ queue: name })
    log.warn({ job: { id: jobId } }, 'job stalled (its worker stopped renewing the lock); moved back to wait')
  })
  return worker
}
