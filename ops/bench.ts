// npm run bench: throughput and p99 side by side, in one run on one machine (load generator on the same box).
//  1. bare Fastify returning a constant (the ceiling)        2-3. the redirect, cache on (hot keys) and off
//  4-7. the redirect and a Postgres-backed route with observability off and fully on (metrics, ECS logs, traces at
//       the default sampling, exported over OTLP to a local sink so serialisation and export are paid for).
// Targets: cache-on redirect >= 60% of the ceiling and >= 2x cache-off; full observability keeps >= 85% of the
// throughput and adds <= 2 ms to p99. Prints the table and the ratios; writes .run/bench/results.{json,md}.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import pg from 'pg'
import { Redis } from 'ioredis'
import { hash } from '@node-rs/argon2'
import { migrate } from '../common/migrate.ts'
import { startPostgres, startRedis, waitForPort } from './lib/localdb.ts'

const ROOT = resolve(import.meta.dirname, '..')
const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64)
const HOT_LINKS = 100
const PORT = 4810
const SINK_PORT = 4818
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123'

interface Row {
  name: string
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx3xx: number
}

function log(msg: string) {
  process.stdout.write(`==> ${msg}\n`)
}

async function setup() {
  const pgh = await startPostgres(resolve(ROOT, '.run/bench/postgres'), 55442)
  const rh = await startRedis(resolve(ROOT, '.run/bench/redis'), 56390)
  const admin = new pg.Client({ connectionString: pgh.url })
  await admin.connect()
  await admin.query('DROP DATABASE IF EXISTS opsdrill_bench WITH (FORCE)')
  await admin.query('CREATE DATABASE opsdrill_bench')
  await admin.end()
  const dbUrl = pgh.url.replace(/\/postgres$/, '/opsdrill_bench')
  await migrate(dbUrl)
  const db = new pg.Client({ connectionString: dbUrl })
  await db.connect()
  const passwordHash = await hash('bench password 123', { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 })
  const user = await db.query<{ id: string }>("INSERT INTO users (email, password_hash) VALUES ('bench@example.test', $1) RETURNING id", [
    passwordHash,
  ])
  const owner = user.rows[0]!.id
  const codes: string[] = []
  for (let i = 0; i < HOT_LINKS; i++) codes.push(`bench${i}`)
  const links = await db.query<{ id: string }>(
    `INSERT INTO links (code, owner_id, url) SELECT c, $1, 'https://example.com/' || c FROM unnest($2::text[]) c RETURNING id`,
    [owner, codes],
  )
  await db.end()
  return { dbUrl, redisUrl: rh.url, codes, linkId: links.rows[0]!.id }
}

function start(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  return child
}

async function stop(child: ChildProcess) {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await Promise.race([exited, sleep(15000).then(() => child.kill('SIGKILL'))])
}

async function measure(name: string, path: (i: number) => string, headers: Record<string, string> = {}): Promise<Row> {
  const opts = { url: `http://127.0.0.1:${PORT}`, connections: CONNECTIONS, headers }
  let i = 0
  const requests = [{ setupRequest: (req: { path?: string }) => ({ ...req, path: path(i++) }) }]
  await autocannon({ ...opts, duration: WARMUP, requests } as autocannon.Options)
  const r = await autocannon({ ...opts, duration: DURATION, requests } as autocannon.Options)
  const ok = Object.entries(r.statusCodeStats as Record<string, { count: number }>)
    .filter(([code]) => code.startsWith('2') || code.startsWith('3'))
    .reduce((n, [, v]) => n + v.count, 0)
  const total = Object.values(r.statusCodeStats as Record<string, { count: number }>).reduce((n, v) => n + v.count, 0)
  const row = {
    name,
    rps: Math.round(ok / DURATION),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx3xx: total - ok,
  }
  log(
    `${name}: ${row.rps} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms${row.errors || row.non2xx3xx ? `, ${row.errors} errors, ${row.non2xx3xx} bad statuses` : ''}`,
  )
  return row
}

async function withApi<T>(env: Record<string, string>, observability: boolean, fn: () => Promise<T>): Promise<T> {
  const args = observability ? ['--import', './common/telemetry/instrumentation.ts', 'service/server.ts'] : ['service/server.ts']
  const child = start(args, { PORT: String(PORT), METRICS_PORT: String(PORT + 1), ...env })
  try {
    await waitForPort(PORT, 30000, 'the API')
    return await fn()
  } finally {
    await stop(child)
  }
}

/** Accepts OTLP/HTTP exports and discards them, so the traced runs pay for serialising and sending spans. */
function otlpSink() {
  let spansBytes = 0
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (spansBytes += c.length))
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
  })
  server.listen(SINK_PORT, '127.0.0.1')
  return { close: () => new Promise((r) => server.close(r)), bytes: () => spansBytes }
}

const { dbUrl, redisUrl, codes, linkId } = await setup()
const redis = new Redis(redisUrl)
const base = {
  DATABASE_URL: dbUrl,
  REDIS_URL: redisUrl,
  JWT_SECRET,
  REDIS_PREFIX: 'bench',
  RATE_LIMIT_GLOBAL_MAX: '100000000',
  RATE_LIMIT_REDIRECT_MAX: '100000000',
  PG_POOL_MAX: '20',
  MAX_EVENT_LOOP_DELAY_MS: '0',
}
const obsOff = { ...base, LOG_LEVEL: 'silent', METRICS_ENABLED: 'false', OTEL_SDK_DISABLED: 'true' }
const obsOn = {
  ...base,
  LOG_LEVEL: 'info',
  METRICS_ENABLED: 'true',
  OTEL_TRACES_EXPORTER: 'otlp',
  OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${SINK_PORT}`,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
}
const hot = (i: number) => `/${codes[i % codes.length]}`
const clear = () => redis.eval("for _,k in ipairs(redis.call('keys', 'bench:*')) do redis.call('del', k) end", 0)

log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${CONNECTIONS} connections, ${WARMUP}s warm-up + ${DURATION}s per row`,
)
const rows: Row[] = []
const ceiling = start(['ops/bench/ceiling.ts'], { PORT: String(PORT) })
await waitForPort(PORT, 10000, 'the ceiling server')
rows.push(await measure('ceiling: bare Fastify constant', () => '/'))
await stop(ceiling)

let token = ''
await withApi({ ...obsOff, CACHE_ENABLED: 'true' }, false, async () => {
  const res = await fetch(`http://127.0.0.1:${PORT}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bench@example.test', password: 'bench password 123' }),
  })
  token = ((await res.json()) as { accessToken: string }).accessToken
  rows.push(await measure('redirect, cache on, observability off', hot))
  rows.push(
    await measure('pg route GET /api/v1/links/:id, observability off', () => `/api/v1/links/${linkId}`, {
      authorization: `Bearer ${token}`,
    }),
  )
})
await clear()
await withApi({ ...obsOff, CACHE_ENABLED: 'false' }, false, async () => {
  rows.push(await measure('redirect, cache off, observability off', hot))
})
await clear()
const sink = otlpSink()
await withApi({ ...obsOn, CACHE_ENABLED: 'true' }, true, async () => {
  rows.push(await measure('redirect, cache on, observability on', hot))
  rows.push(
    await measure('pg route GET /api/v1/links/:id, observability on', () => `/api/v1/links/${linkId}`, {
      authorization: `Bearer ${token}`,
    }),
  )
})
await sink.close()
await clear()
await redis.quit()

const by = (name: string) => rows.find((r) => r.name.startsWith(name))!
const ratio = (a: Row, b: Row) => a.rps / b.rps
const checks = [
  {
    what: 'redirect cache on / ceiling',
    value: ratio(by('redirect, cache on, observability off'), by('ceiling')),
    target: '>= 0.60',
    pass: (v: number) => v >= 0.6,
  },
  {
    what: 'redirect cache on / cache off',
    value: ratio(by('redirect, cache on, observability off'), by('redirect, cache off')),
    target: '>= 2.0',
    pass: (v: number) => v >= 2,
  },
  {
    what: 'redirect: observability on / off (throughput)',
    value: ratio(by('redirect, cache on, observability on'), by('redirect, cache on, observability off')),
    target: '>= 0.85',
    pass: (v: number) => v >= 0.85,
  },
  {
    what: 'redirect: observability on - off (p99 ms)',
    value: by('redirect, cache on, observability on').p99 - by('redirect, cache on, observability off').p99,
    target: '<= 2 ms',
    pass: (v: number) => v <= 2,
  },
  {
    what: 'pg route: observability on / off (throughput)',
    value: ratio(by('pg route GET /api/v1/links/:id, observability on'), by('pg route GET /api/v1/links/:id, observability off')),
    target: '>= 0.85',
    pass: (v: number) => v >= 0.85,
  },
  {
    what: 'pg route: observability on - off (p99 ms)',
    value: by('pg route GET /api/v1/links/:id, observability on').p99 - by('pg route GET /api/v1/links/:id, observability off').p99,
    target: '<= 2 ms',
    pass: (v: number) => v <= 2,
  },
]

const md = [
  `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} x ${cpus()[0]?.model} (${Math.round(totalmem() / 2 ** 30)} GiB), Node ${process.version}, autocannon with ${CONNECTIONS} connections on the same box, ${DURATION} s per row after ${WARMUP} s warm-up. Traced runs export spans over OTLP/HTTP to a local sink (${Math.round(sink.bytes() / 1024)} KiB received).`,
  '',
  '| run | req/s | p50 ms | p99 ms | errors |',
  '|---|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.errors + r.non2xx3xx} |`),
  '',
  '| ratio | value | target | met |',
  '|---|---:|---|---|',
  ...checks.map((c) => `| ${c.what} | ${c.value.toFixed(2)} | ${c.target} | ${c.pass(c.value) ? 'yes' : 'NO'} |`),
].join('\n')
process.stdout.write(`\n${md}\n`)
mkdirSync(resolve(ROOT, '.run/bench'), { recursive: true })
writeFileSync(resolve(ROOT, '.run/bench/results.md'), md + '\n')
writeFileSync(
  resolve(ROOT, '.run/bench/results.json'),
  JSON.stringify({ rows, checks: checks.map((c) => ({ ...c, pass: c.pass(c.value) })) }, null, 2),
)
