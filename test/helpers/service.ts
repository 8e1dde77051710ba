// Assertions and probes shared by the API's integration tests: problem bodies, metric readings, SQL, tokens, Redis.
import { createHmac } from 'node:crypto'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import pg from 'pg'
import type { Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import type { Counter, Histogram } from 'prom-client'
import { buildApp, type App } from '../../service/app.ts'
import { createLogger } from '../../common/logger.ts'
import type { ApiConfig } from '../../common/config.ts'
import { startRedis, stopRedis, type RedisServerKind } from '../../ops/lib/localdb.ts'
import { portOpen } from '../../ops/lib/stack/procs.ts'
import { freePort } from '../../ops/lib/net.ts'
import { metrics } from '../../common/metrics.ts'
import { apiConfig, testDatabase, TEST_JWT_SECRET } from './env.ts'

type T = Pick<Test, 'teardown' | 'equal' | 'match' | 'ok'>

/** Asserts an RFC 9457 problem: status, content type, stable code and, for 400s, the offending field. */
export function assertProblem(t: T, res: LightMyRequestResponse, status: number, code: string, field?: string): void {
  t.equal(res.statusCode, status, `status ${status}: ${res.body}`)
  t.match(res.headers['content-type'], /^application\/problem\+json/, 'content-type is application/problem+json')
  const body = res.json() as { status: number; code: string; detail?: string; errors?: { field: string }[] }
  t.equal(body.status, status, 'body.status matches')
  t.equal(body.code, code, `code is ${code}`)
  if (field !== undefined) {
    t.ok(
      body.errors?.some((e) => e.field === field),
      `errors[] names ${field}: ${JSON.stringify(body.errors)}`,
    )
    t.match(body.detail, field, `detail names ${field}`)
  }
}

/** How many times a query of this operation ran (count of the pg duration histogram). */
export async function pgQueries(histogram: Histogram, operation: string): Promise<number> {
  const { values } = await histogram.get()
  return values
    .filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count') && v.labels.operation === operation)
    .reduce((sum, v) => sum + v.value, 0)
}

/** The value of a counter for exactly these labels (0 when never incremented). */
export async function counterValue(counter: Counter, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get()
  const match = values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
  return match?.value ?? 0
}

/** opsdrill_dependency_up for one dependency, probed now as a scrape would (undefined when not reported). */
export async function dependencyUp(dependency: string): Promise<number | undefined> {
  const { values } = await metrics.dependencyUp.get()
  return values.find((v) => v.labels.dependency === dependency)?.value
}

/** A Postgres client on the test database, closed at teardown. */
export async function sql(t: T, databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

/** Signs a JWT by hand so tests can forge every kind of bad token (wrong alg, no exp, other issuer...). */
export function signJwt(header: Record<string, unknown>, payload: Record<string, unknown>, secret = TEST_JWT_SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`
  const alg = header.alg === 'HS512' ? 'sha512' : header.alg === 'HS384' ? 'sha384' : 'sha256'
  const sig = header.alg === 'none' ? '' : createHmac(alg, secret).update(input).digest('base64url')
  return `${input}.${sig}`
}

export interface OwnRedis {
  url: string
  port: number
  stop(): Promise<void>
  start(): Promise<void>
}

/** A Redis server this test owns (own port and folder), so it can be stopped and started again. */
export async function ownRedis(t: T, as?: RedisServerKind): Promise<OwnRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-redis-'))
  const port = await freePort()
  const handle = await startRedis(dir, port, as)
  const stop = async () => {
    stopRedis(dir)
    for (let i = 0; i < 100 && (await portOpen(port)); i++) await new Promise((r) => setTimeout(r, 50))
  }
  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  return { url: handle.url, port, stop, start: async () => void (await startRedis(dir, port, as)) }
}

/** Collects a logger's ECS lines as parsed objects. */
export function captureLogs(config: Pick<ApiConfig, 'LOG_LEVEL'>) {
  const logs: Record<string, unknown>[] = []
  const raw: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue
        raw.push(line)
        logs.push(JSON.parse(line) as Record<string, unknown>)
      }
      done()
    },
  })
  const logger = createLogger({ serviceName: 'opsdrill-api', instanceId: 'test', level: config.LOG_LEVEL }, sink)
  return { logger, logs, raw }
}

/** Builds an app without calling ready(), so a test can add routes first; closed at teardown. */
export async function unreadyApp(t: T, config: ApiConfig) {
  const { logger, logs } = captureLogs(config)
  const app: App = await buildApp({ config, logger })
  t.teardown(() => app.close())
  return { app, logs }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls fn until it returns true or the time is up; returns the last result. */
export async function eventually(fn: () => Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const until = Date.now() + timeoutMs
  for (;;) {
    if (await fn()) return true
    if (Date.now() > until) return false
    await sleep(stepMs)
  }
}

/**
 * service/server.ts in a process of its own (as deployed: `instrumented` adds OpenTelemetry's --import) on a free port,
 * over a fresh test database and the test Redis (apiConfig), with `env` on top and logs at info; its output collects in
 * `out`. Resolves once it serves a route; killed when the test ends.
 */
export async function spawnApi(t: T, env: Record<string, string> = {}, { instrumented = false } = {}) {
  const [port, databaseUrl] = [await freePort(), await testDatabase(t)]
  const config: Record<string, string> = { PATH: process.env.PATH ?? '' }
  for (const [k, v] of Object.entries(apiConfig(databaseUrl))) config[k] = String(v)
  const args = [...(instrumented ? ['--import', './common/telemetry/instrumentation.ts'] : []), 'service/server.ts']
  const child = spawn(process.execPath, args, {
    cwd: resolve(import.meta.dirname, '../..'),
    env: { ...config, HOST: '127.0.0.1', PORT: String(port), METRICS_HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const base = `http://127.0.0.1:${port}`
  const srv = { port, base, databaseUrl, child, out: '', exited: once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]> }
  child.stdout.on('data', (c: Buffer) => (srv.out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (srv.out += c.toString()))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  // Listening is logged before the first request is routed: wait until a real route answers.
  const serves = async () => (await fetch(`${base}/api/v1/links`).catch(() => null))?.status === 401
  t.ok(await eventually(serves, 20_000, 100), `the API serves requests: ${srv.out.slice(-300)}`)
  return srv
}
