// Builds and starts the worker process's parts; never touches signals or process.exit (main.ts does), so tests run
// it in-process and close it.
import type { Queue } from 'bullmq'
import type { WorkerConfig } from '../common/config.ts'
import { batchDbOptions, createDb, dbOptions } from '../common/db.ts'
import { createLogger, type Logger } from '../common/logger.ts'
import { collectRuntimeMetrics, observeDependencies, observePgPool } from '../common/metrics.ts'
import { startMetricsServer } from '../common/metrics-server.ts'
import { createQueue } from '../common/queue-factory.ts'
import { QUEUES, defaultJobOptions, type ExportJob, type MaintenanceJob } from '../common/queues.ts'
import { closeRedis, createRedis } from '../common/redis.ts'
import { createClicksWorker } from './clicks/clicks.worker.ts'
import { createExportsWorker } from './exports/exports.worker.ts'
import { activeCount } from './lib/build-worker.ts'
import { observeQueues } from './lib/queue-metrics.ts'
import { createMaintenanceWorker, scheduleMaintenance } from './maintenance/maintenance.worker.ts'

export const SERVICE_NAME = 'opsdrill-worker'

export interface RunningWorker {
  metricsPort: number
  /** Stops fetching, lets active jobs finish, flushes the click batch, then closes queues, Postgres, Redis, /metrics. */
  close(): Promise<void>
}

export async function startWorker(config: WorkerConfig, logger?: Logger): Promise<RunningWorker> {
  const log = logger ?? createLogger({ serviceName: SERVICE_NAME, instanceId: config.INSTANCE_ID, level: config.LOG_LEVEL })
  collectRuntimeMetrics({ service: SERVICE_NAME, instance_id: config.INSTANCE_ID })
  let ready = false
  // /metrics and /healthz answer while the rest connects; /readyz says 200 once jobs are being fetched.
  const metricsServer = await startMetricsServer(config.METRICS_HOST, config.METRICS_PORT, () => ready)

  const db = createDb(dbOptions(config, SERVICE_NAME), log)
  observePgPool(db.pool)
  // Exports and maintenance on their own pool and limits (batchDbOptions): a long scan neither takes click
  // ingestion's connections nor runs under its short timeouts. The pool gauges stay those of the ingestion pool.
  const batchDb = createDb(batchDbOptions(config, `${SERVICE_NAME}:batch`), log)
  const connection = createRedis(
    'bullmq',
    { url: config.REDIS_URL, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS, connectTimeoutMs: config.REDIS_CONNECT_TIMEOUT_MS },
    log,
  )
  // Like the API's, the worker's readiness is its own state (fetching jobs, not draining); store health is this gauge.
  observeDependencies({ postgres: () => db.ping(), redis: () => connection.ping() }, config.PG_CONNECT_TIMEOUT_MS)
  const queueOpts = { connection, prefix: config.REDIS_PREFIX, log }
  const deadLetters = createQueue(QUEUES.deadLetters, queueOpts)
  const maintenanceQueue = createQueue<MaintenanceJob>(QUEUES.maintenance, queueOpts)
  // The maintenance sweep re-enqueues exports whose enqueue was lost, with the producers' job options.
  const exportsQueue = createQueue<ExportJob>(QUEUES.exports, {
    ...queueOpts,
    defaultJobOptions: defaultJobOptions(config.JOB_ATTEMPTS, config.JOB_BACKOFF_MS),
  })
  // Handles for the depth gauges; the API produces into the clicks and exports queues.
  const queues: Queue[] = [createQueue(QUEUES.clicks, queueOpts), exportsQueue, maintenanceQueue, deadLetters]
  const ctx = { config, connection, log, deadLetters }
  const parts = [createClicksWorker(ctx, db), createExportsWorker(ctx, batchDb), createMaintenanceWorker(ctx, batchDb, exportsQueue)]
  const unobserve = observeQueues(queues)
  // Jobs each Worker is running now, by queue: what a slow shutdown is waiting for.
  const activeJobs = () => Object.fromEntries(parts.map((p) => [p.worker.name, activeCount(p.worker)]))

  let closing: Promise<void> | undefined
  async function close(): Promise<void> {
    ready = false
    const steps: [string, () => Promise<unknown>][] = [
      ['workers', () => Promise.all(parts.map((p) => p.close()))],
      ['queues', () => Promise.all(queues.map((q) => q.close()))],
      ['metrics server', () => metricsServer.close()],
      ['postgres', () => Promise.all([db.close(), batchDb.close()])],
      ['redis', () => closeRedis(connection)],
    ]
    unobserve()
    const began = performance.now()
    for (const [what, step] of steps) {
      const start = performance.now()
      // A step that hangs names itself every 5 s, so a shutdown killed at SHUTDOWN_GRACE_MS says what it waited on.
      const slow = setInterval(
        () =>
          log.warn(
            { step: what, waitedMs: Math.round(performance.now() - start), active: activeJobs() },
            `shutdown: still closing ${what}`,
          ),
        5000,
      ).unref()
      // Every step runs even when one fails: a stuck Redis must not keep the Postgres pool open.
      await step()
        .catch((err: unknown) => log.error({ err }, `shutdown: closing ${what} failed`))
        .finally(() => clearInterval(slow))
      log.debug({ step: what, tookMs: Math.round(performance.now() - start) }, `shutdown: closed ${what}`)
    }
    log.info({ tookMs: Math.round(performance.now() - began) }, 'worker stopped')
  }

  try {
    await Promise.all(parts.map((p) => p.worker.waitUntilReady()))
    await scheduleMaintenance(maintenanceQueue, config)
  } catch (err) {
    await close()
    throw err
  }
  ready = true
  log.info(
    { queues: Object.values(QUEUES), metrics: { port: metricsServer.port }, redis: { prefix: config.REDIS_PREFIX } },
    'worker started',
  )
  return {
    metricsPort: metricsServer.port,
    close: () => (closing ??= close()),
  }
}
