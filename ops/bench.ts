// npm run bench: throughput and p99 side by side, in one run on one machine (load generator on the same box).
//  1. bare Fastify returning a constant (the ceiling)        2-3. the redirect, cache on (hot keys) and off
//  4-7. the redirect and a Postgres-backed route with observability off and fully on (metrics, ECS logs, traces at
//       the default sampling, exported over OTLP to a local sink so serialisation and export are paid for).
// Every server is up for the whole run and the rows are measured in interleaved rounds (row 1..6, then again),
// each row's figure being the median of its rounds: a shared or virtual machine drifts by tens of per cent within
// a minute, and interleaving spreads that drift over all rows instead of over whichever ran last.
// Targets: cache-on redirect >= 60% of the ceiling and >= 2x cache-off; full observability keeps >= 85% of the
// throughput and adds <= 2 ms to p99. Prints the table and the ratios; writes results.{json,md} to BENCH_OUT (.run/bench).
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
const DURATION = Number(process.env.BENCH_DURATION ?? 5)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64)
const HOT_LINKS = 100
const PORT = 4810
const SINK_PORT = 4818
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123'

interface Sample {
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx3xx: number
}

interface Row extends Sample {
  name: string
  /** Lowest and highest req/s over the rounds. */
  spread: [number, number]
}

interface Case {
  name: string
  port: number
  path: (i: number) => string
  headers?: Record<string, string>
  /** A fixed request rate (open model, latency counted from the scheduled send); saturation when unset. */
  rate?: number
}

function log(msg: string) {
  process.stdout.write(`==> ${msg}\n`)
}

async function setup() {
  const pgh = await startPostgres(resolve(ROOT, '.run/bench/postgres'), 15442)
  const rh = await startRedis(resolve(ROOT, '.run/bench/redis'), 16390)
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
  return spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
}

async function stop(child: ChildProcess) {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await Promise.race([exited, sleep(15000).then(() => child.kill('SIGKILL'))])
}

async function measure(c: Case, seconds: number): Promise<Sample> {
  let i = 0
  const requests = [{ setupRequest: (req: { path?: string }) => ({ ...req, path: c.path(i++) }) }]
  const opts = {
    url: `http://127.0.0.1:${c.port}`,
    connections: CONNECTIONS,
    headers: c.headers ?? {},
    duration: seconds,
    requests,
    ...(c.rate ? { overallRate: c.rate } : {}),
  }
  const r = await autocannon(opts as autocannon.Options)
  const stats = Object.entries(r.statusCodeStats as Record<string, { count: number }>)
  const ok = stats.filter(([code]) => code.startsWith('2') || code.startsWith('3')).reduce((n, [, v]) => n + v.count, 0)
  const total = stats.reduce((n, [, v]) => n + v.count, 0)
  return { rps: Math.round(ok / seconds), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx3xx: total - ok }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Warms every case up, then measures them in interleaved rounds; each row is the median of its rounds. */
async function interleaved(cases: Case[], between: () => Promise<unknown>): Promise<Row[]> {
  for (const c of cases) await measure(c, WARMUP)
  const samples = new Map<string, Sample[]>(cases.map((c) => [c.name, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    // Every other round runs the rows in reverse, so no row always follows the same neighbour.
    for (const c of round % 2 ? cases : [...cases].reverse()) {
      const s = await measure(c, DURATION)
      samples.get(c.name)!.push(s)
      log(
        `round ${round}/${ROUNDS} ${c.name}: ${s.rps} req/s, p99 ${s.p99} ms${s.errors || s.non2xx3xx ? `, ${s.errors} errors, ${s.non2xx3xx} bad statuses` : ''}`,
      )
    }
    await between()
  }
  return cases.map((c) => {
    const xs = samples.get(c.name)!
    const rps = xs.map((x) => x.rps)
    return {
      name: c.name,
      rps: Math.round(median(rps)),
      p50: median(xs.map((x) => x.p50)),
      p99: median(xs.map((x) => x.p99)),
      errors: xs.reduce((n, x) => n + x.errors, 0),
      non2xx3xx: xs.reduce((n, x) => n + x.non2xx3xx, 0),
      spread: [Math.min(...rps), Math.max(...rps)],
    }
  })
}

async function startApi(port: number, env: Record<string, string>, observability: boolean): Promise<ChildProcess> {
  const args = observability ? ['--import', './common/telemetry/instrumentation.ts', 'service/server.ts'] : ['service/server.ts']
  const child = start(args, { PORT: String(port), METRICS_PORT: String(port + 100), ...env })
  await waitForPort(port, 30000, `the API on ${port}`)
  return child
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
const clear = () => redis.eval("for _,k in ipairs(redis.call('keys', 'bench:*')) do redis.call('del', k) end return 0", 0)
// Between rounds the clicks queue is emptied (no worker consumes it here), so Redis does not grow for the run.
const trimClicks = () => redis.eval("for _,k in ipairs(redis.call('keys', 'bench:clicks:*')) do redis.call('del', k) end return 0", 0)

log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${CONNECTIONS} connections, ${WARMUP}s warm-up, then ${ROUNDS} interleaved rounds of ${DURATION}s per row`,
)
await clear()
const sink = otlpSink()
const children = [
  start(['ops/bench/ceiling.ts'], { PORT: String(PORT) }),
  await startApi(PORT + 1, { ...obsOff, CACHE_ENABLED: 'true' }, false),
  await startApi(PORT + 2, { ...obsOff, CACHE_ENABLED: 'false' }, false),
  await startApi(PORT + 3, { ...obsOn, CACHE_ENABLED: 'true' }, true),
]
let rows: Row[]
try {
  await waitForPort(PORT, 10000, 'the ceiling server')
  const res = await fetch(`http://127.0.0.1:${PORT + 1}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bench@example.test', password: 'bench password 123' }),
  })
  const auth = { authorization: `Bearer ${((await res.json()) as { accessToken: string }).accessToken}` }
  const pgRoute = () => `/api/v1/links/${linkId}`
  rows = await interleaved(
    [
      { name: 'ceiling: bare Fastify constant', port: PORT, path: () => '/' },
      { name: 'redirect, cache on, observability off', port: PORT + 1, path: hot },
      { name: 'pg route GET /api/v1/links/:id, observability off', port: PORT + 1, path: pgRoute, headers: auth },
      { name: 'redirect, cache off, observability off', port: PORT + 2, path: hot },
      { name: 'redirect, cache on, observability on', port: PORT + 3, path: hot },
      { name: 'pg route GET /api/v1/links/:id, observability on', port: PORT + 3, path: pgRoute, headers: auth },
    ],
    trimClicks,
  )
  // At saturation a closed-loop client's latency is connections / throughput, so the p99 there only restates the
  // throughput ratio. The latency observability adds to a request is measured at a fixed rate both can serve:
  // half the observability-on throughput.
  const half = (name: string) => Math.max(100, Math.floor(rows.find((r) => r.name === name)!.rps / 200) * 100)
  const redirectRate = half('redirect, cache on, observability on')
  const pgRate = half('pg route GET /api/v1/links/:id, observability on')
  rows.push(
    ...(await interleaved(
      [
        { name: `redirect at ${redirectRate} req/s, observability off`, port: PORT + 1, path: hot, rate: redirectRate },
        { name: `redirect at ${redirectRate} req/s, observability on`, port: PORT + 3, path: hot, rate: redirectRate },
        { name: `pg route at ${pgRate} req/s, observability off`, port: PORT + 1, path: pgRoute, headers: auth, rate: pgRate },
        { name: `pg route at ${pgRate} req/s, observability on`, port: PORT + 3, path: pgRoute, headers: auth, rate: pgRate },
      ],
      trimClicks,
    )),
  )
} finally {
  await Promise.all(children.map(stop))
  await sink.close()
}
await clear()
await redis.quit()

const by = (name: string, and = '') => rows.find((r) => r.name.startsWith(name) && r.name.includes(and))!
const ratio = (a: Row, b: Row) => a.rps / b.rps
const atLeast = (what: string, value: number, min: number) => ({ what, value, target: `>= ${min.toFixed(2)}`, pass: value >= min })
const atMost = (what: string, value: number, maxMs: number) => ({ what, value, target: `<= ${maxMs} ms`, pass: value <= maxMs })
/** Observability on against off for one route: the throughput ratio at saturation, the p99 added at a fixed rate. */
const observabilityCost = (label: string, saturated: string, fixedRate: string) => [
  atLeast(
    `${label}: observability on / off (throughput)`,
    ratio(by(`${saturated}, observability on`), by(`${saturated}, observability off`)),
    0.85,
  ),
  atMost(
    `${label}: observability on - off (p99 ms at a fixed rate)`,
    by(fixedRate, 'observability on').p99 - by(fixedRate, 'observability off').p99,
    2,
  ),
]
const checks = [
  atLeast('redirect cache on / ceiling', ratio(by('redirect, cache on, observability off'), by('ceiling')), 0.6),
  atLeast('redirect cache on / cache off', ratio(by('redirect, cache on, observability off'), by('redirect, cache off')), 2),
  ...observabilityCost('redirect', 'redirect, cache on', 'redirect at'),
  ...observabilityCost('pg route', 'pg route GET /api/v1/links/:id', 'pg route at'),
]

const md = [
  `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} x ${cpus()[0]?.model} (${Math.round(totalmem() / 2 ** 30)} GiB), Node ${process.version}, autocannon with ${CONNECTIONS} connections on the same box, ${ROUNDS} interleaved rounds of ${DURATION} s per row after a ${WARMUP} s warm-up; each figure is the median of the rounds. Traced runs export spans over OTLP/HTTP to a local sink (${Math.round(sink.bytes() / 1024)} KiB received).`,
  '',
  '| run | req/s (median) | req/s (lowest - highest) | p50 ms | p99 ms | errors |',
  '|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${r.rps} | ${r.spread[0]} - ${r.spread[1]} | ${r.p50} | ${r.p99} | ${r.errors + r.non2xx3xx} |`),
  '',
  '| ratio | value | target | met |',
  '|---|---:|---|---|',
  ...checks.map((c) => `| ${c.what} | ${c.value.toFixed(2)} | ${c.target} | ${c.pass ? 'yes' : 'NO'} |`),
].join('\n')
process.stdout.write(`\n${md}\n`)
const OUT = resolve(ROOT, process.env.BENCH_OUT ?? '.run/bench')
mkdirSync(OUT, { recursive: true })
writeFileSync(resolve(OUT, 'results.md'), md + '\n')
writeFileSync(resolve(OUT, 'results.json'), JSON.stringify({ rows, checks }, null, 2))
