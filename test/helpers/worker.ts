// What the worker tests share: a Postgres pool on the test database, producer-side queues in the test's Redis
// prefix, click payloads, polling, and a worker child process for the signal tests.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { resolve } from 'node:path'
import { Writable } from 'node:stream'
import type { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import pg from 'pg'
import { pino } from 'pino'
import type { WorkerConfig } from '../../common/config.ts'
import { createLogger } from '../../common/logger.ts'
import { createQueue } from '../../common/queue-factory.ts'
import { QUEUES, defaultJobOptions, type ClickBatchJob, type ClickJob } from '../../common/queues.ts'
import { startWorker, type RunningWorker } from '../../worker/app.ts'
import { workerConfig } from './env.ts'

interface T {
  teardown(fn: () => unknown): void
}

export const ROOT = resolve(import.meta.dirname, '../..')

export function pgPool(t: T, databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 3 })
  // An idle client cut off by the database's drop at teardown must not crash the test process.
  pool.on('error', () => undefined)
  t.teardown(() => pool.end())
  return pool
}

export interface Producer {
  connection: Redis
  /** Both shapes the worker takes: single clicks (a previous release) and batches (what the API adds). */
  clicks: Queue<ClickJob | ClickBatchJob>
  exports: Queue
  maintenance: Queue
  deadLetters: Queue
}

/** Queues as the API would hold them: same prefix and default job options as the worker's config. */
export function producer(t: T, config: WorkerConfig): Producer {
  const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null })
  const opts = {
    connection,
    prefix: config.REDIS_PREFIX,
    log: pino({ level: 'silent' }),
    defaultJobOptions: defaultJobOptions(config.JOB_ATTEMPTS, config.JOB_BACKOFF_MS),
  }
  const p: Producer = {
    connection,
    clicks: createQueue<ClickJob | ClickBatchJob>(QUEUES.clicks, opts),
    exports: createQueue(QUEUES.exports, opts),
    maintenance: createQueue(QUEUES.maintenance, opts),
    deadLetters: createQueue(QUEUES.deadLetters, opts),
  }
  t.teardown(async () => {
    await Promise.all([p.clicks, p.exports, p.maintenance, p.deadLetters].map((q) => q.close()))
    await connection.quit()
  })
  return p
}

export function clickJob(linkId: string, overrides: Partial<ClickJob> = {}): ClickJob {
  return { clickId: randomUUID(), linkId, at: new Date().toISOString(), referrer: null, uaFamily: 'Firefox', country: 'DE', ...overrides }
}

/** Adds clicks the way the API does: addBulk, job id = click id. */
export async function enqueueClicks(p: Producer, clicks: ClickJob[]): Promise<void> {
  await p.clicks.addBulk(clicks.map((c) => ({ name: 'click', data: c, opts: { jobId: c.clickId } })))
}

/** Polls until fn returns a truthy value; fails with what it last saw. */
export async function waitFor<R>(
  fn: () => Promise<R>,
  { timeoutMs = 15_000, intervalMs = 50, what = 'condition' } = {},
): Promise<NonNullable<R>> {
  const until = Date.now() + timeoutMs
  let last: R | undefined
  for (;;) {
    last = await fn()
    if (last) return last as NonNullable<R>
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

export async function count(pool: pg.Pool, sqlText: string, params: unknown[] = []): Promise<number> {
  const res = await pool.query<{ n: string }>(sqlText, params)
  return Number(res.rows[0]?.n ?? 0)
}

export interface WorkerChild {
  child: ChildProcess
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  output: () => string
}

/** Runs `node [nodeArgs] worker/main.ts` with the config as its environment. */
export function spawnWorker(t: T, config: WorkerConfig, extraEnv: Record<string, string> = {}, nodeArgs: string[] = []): WorkerChild {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '' }
  for (const [k, v] of Object.entries(config)) env[k] = String(v)
  Object.assign(env, { METRICS_PORT: '0', INSTANCE_ID: `child-${randomUUID().slice(0, 8)}` }, extraEnv)
  const child = spawn(process.execPath, [...nodeArgs, resolve(ROOT, 'worker/main.ts')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, exit, output: () => out }
}

export interface TestWorker {
  config: WorkerConfig
  worker: RunningWorker
  logs: Record<string, unknown>[]
}

/** The worker in-process on databaseUrl with its own Redis prefix; closed at teardown. Logs are captured. */
export async function startTestWorker(t: T, databaseUrl: string, overrides: Record<string, string> = {}): Promise<TestWorker> {
  const config = workerConfig(databaseUrl, { LOG_LEVEL: 'info', JOB_BACKOFF_MS: '10', ...overrides })
  const logs: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const worker = await startWorker(
    config,
    createLogger({ serviceName: 'opsdrill-worker', instanceId: 'test', level: config.LOG_LEVEL }, sink),
  )
  t.teardown(() => worker.close())
  return { config, worker, logs }
}

type AnyMetric = { get(): Promise<{ values: { labels: object; value: number }[] }> }

/** Current value of a counter or gauge series (0 when absent); for a histogram, pass the sample name (e.g. _count). */
export async function metricValue(metric: AnyMetric, labels: Record<string, string> = {}, sample?: string): Promise<number> {
  const { values } = await metric.get()
  const hit = values.find((v) => {
    const got = v as { labels: Record<string, unknown>; metricName?: string }
    return (
      (sample === undefined || got.metricName === sample) && Object.entries(labels).every(([k, want]) => String(got.labels[k]) === want)
    )
  })
  return hit?.value ?? 0
}
