// The native stack's parts as one table, the way compose and process-compose describe services: what each runs, with
// which env, on which port, how it is probed, what it needs first and what Prometheus scrapes of it. Stack.up()
// walks it in dependency order with one generic ensure, Stack.down() in reverse with one generic stop. A new part
// is a row here (plus, for a new scrape job, its file_sd job in prometheus/prometheus.yml and PROMETHEUS_JOBS).
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { startPostgres, startRedis, stopPostgres } from '../localdb.ts'
import { tool } from '../tools.ts'
import type { StackPorts } from './ports.ts'
import type { Probe } from './procs.ts'
import type { ConfigPaths, PrometheusJob } from './targets.ts'

export const ROOT = join(import.meta.dirname, '../../..')
/** The telemetry bootstrap (OpenTelemetry SDK) the app processes preload with --import, as `npm run start:api` does. */
const INSTRUMENTATION = 'common/telemetry/instrumentation.ts'
export const DB_NAME = 'opsdrill'
/** The cache Redis's memory cap: a full cache evicts (allkeys-lru); about 50,000 hot links fit. */
const REDIS_CACHE_MAXMEMORY = '64mb'

/**
 * App settings for a stack that is load-tested from this machine: every k6 request comes from 127.0.0.1, so the
 * per-IP rate limits (60k/min global, 20/min on auth) would turn a load test into a 429 test. They are raised far
 * above anything one box can send; the limits themselves are covered by the API's own tests.
 */
const LOAD_FRIENDLY_API_ENV: Record<string, string> = {
  RATE_LIMIT_GLOBAL_MAX: '100000000',
  RATE_LIMIT_REDIRECT_MAX: '100000000',
  RATE_LIMIT_AUTH_MAX: '1000000',
  RATE_LIMIT_LINK_CREATE_MAX: '10000000',
}

export type PartKind =
  | 'postgres'
  | 'redis'
  | 'toxiproxy'
  | 'postgres-exporter'
  | 'redis-exporter'
  | 'api'
  | 'worker'
  | 'nginx'
  | 'prometheus'
  | 'alertmanager'
  | 'victoria-logs'
  | 'otelcol'
  | 'supervisor'

/** What a row's functions may use of the stack (Stack implements it). */
export interface PartContext {
  readonly ports: StackPorts
  readonly dir: string
  readonly offset: number
  readonly logsDir: string
  readonly baseUrl: string
  readonly prometheusUrl: string
  readonly alertmanagerUrl: string
  readonly logsUrl: string
  readonly toxiproxyUrl: string
  readonly databaseUrl: string
  readonly redisPrefix: string
  configs(): ConfigPaths
  /** Extra env every API replica gets (up's apiEnv). */
  apiEnv(): Record<string, string>
  jwtSecret(): string
  say(line: string): void
  assertPortFree(port: number, name: string): Promise<void>
  /** nginx: write the upstream list from the API replicas; true when it changed. */
  writeUpstreams(): boolean
  nginxTest(): void
  reloadNginx(): Promise<void>
  writeAllTargets(): void
}

export interface Command {
  argv: string[]
  /** Default: this process's environment. */
  env?: NodeJS.ProcessEnv
}

export interface PartSpec {
  /** The part's name; for a replicated part the kind, its instances named <name>-<i>. */
  name: string
  kind: PartKind
  /** Parts that must be up first; down stops in the reverse order. */
  needs: string[]
  /** api and worker: how many up starts the first time, and the fewest scale allows. */
  replicas?: { initial: number; min: number }
  /** The port it serves on (api: HTTP; worker: /metrics); none for the supervisor. */
  port?: (p: StackPorts, i: number) => number
  metricsPort?: (p: StackPorts, i: number) => number
  /** Health: an HTTP 200 or an open port; none: running is healthy. */
  probe?: (c: PartContext, port: number, metricsPort: number) => Probe
  /** A process the stack starts detached and records by its pid... */
  command?: (c: PartContext, i: number) => Command
  /** ...or a server that daemonizes itself (Postgres, Redis): started here, its pid read from its pid file. */
  start?: (c: PartContext) => Promise<number>
  /** Its own graceful stop instead of SIGTERM to the pid; returns how it stopped. */
  stop?: (c: PartContext) => string
  logFile?: (c: PartContext) => string
  /** Before it starts. */
  prepare?: (c: PartContext) => void | Promise<void>
  /** On every up, once it is healthy; started: whether this up started it. */
  ready?: (c: PartContext, started: boolean) => Promise<void>
  timeoutMs: number
  /** SIGTERM, then SIGKILL after this. */
  graceMs: number
  /** Prometheus file_sd job it is listed in, at which port. */
  scrape?: { job: PrometheusJob; port: (p: StackPorts, i: number) => number }
}

const http = (url: string): Probe => ({ http: url })
const local = (port: number) => `127.0.0.1:${port}`
const APP_GRACE_MS = 15_000
const TOOL_GRACE_MS = 5_000

function exporter(
  name: string,
  kind: PartKind,
  port: keyof StackPorts,
  needs: string,
  job: PrometheusJob,
  argv: (p: StackPorts) => string[],
  env?: (p: StackPorts) => Record<string, string>,
): PartSpec {
  return {
    name,
    kind,
    needs: [needs],
    port: (p) => p[port],
    probe: (_c, at) => http(`http://${local(at)}/metrics`),
    command: (c) => ({ argv: argv(c.ports), ...(env ? { env: { ...process.env, ...env(c.ports) } } : {}) }),
    timeoutMs: 15_000,
    graceMs: TOOL_GRACE_MS,
    scrape: { job, port: (p) => p[port] },
  }
}

function redisServer(name: string, port: 'redis' | 'redisCache', role: 'queues' | 'cache'): PartSpec {
  return {
    name,
    kind: 'redis',
    needs: [],
    port: (p) => p[port],
    probe: (_c, at) => ({ port: at }),
    start: async (c) => {
      const dir = join(c.dir, name)
      await startRedis(dir, c.ports[port], role === 'cache' ? { role, maxmemory: REDIS_CACHE_MAXMEMORY } : { role })
      // redis-server writes its pid file ("<pid>\n") after it starts listening. Read before the write lands, the file
      // is empty: a pid of 0 was recorded once on a busy box, and the stack then took its own Redis for a stranger's
      // (every drill of a .ci/run failed with "port ... is in use by redis-server").
      return Number(await waitForFile(join(dir, 'redis.pid'), 5000, /^(\d+)\n$/))
    },
    logFile: (c) => join(c.dir, name, 'redis.log'),
    timeoutMs: 30_000,
    graceMs: TOOL_GRACE_MS,
  }
}

/** The env of app replica <kind>-<i>: only what it needs, not this shell's. */
function appEnv(c: PartContext, kind: 'api' | 'worker', i: number): NodeJS.ProcessEnv {
  const p = c.ports
  const common: Record<string, string> = {
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    DATABASE_URL: `postgres://postgres@127.0.0.1:${p.postgresProxy}/${DB_NAME}`,
    REDIS_URL: `redis://127.0.0.1:${p.redisProxy}`,
    REDIS_PREFIX: c.redisPrefix,
    INSTANCE_ID: `${kind}-${i}`,
    METRICS_HOST: '127.0.0.1',
    OTEL_SERVICE_NAME: `opsdrill-${kind}`,
    // The native stack runs no trace backend: spans are made (and sampled) but only exported when the user points
    // OTEL_EXPORTER_OTLP_ENDPOINT at a collector.
    OTEL_TRACES_EXPORTER: process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? 'otlp' : 'none',
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('OTEL_')) as [string, string][]),
  }
  const own: Record<string, string> =
    kind === 'api'
      ? {
          HOST: '127.0.0.1',
          PORT: String(p.apiBase + i),
          METRICS_PORT: String(p.apiMetricsBase + i),
          JWT_SECRET: c.jwtSecret(),
          PUBLIC_BASE_URL: c.baseUrl,
          CACHE_REDIS_URL: `redis://127.0.0.1:${p.redisCacheProxy}`,
          // Its own spool, kept across restarts: a replica replays what its killed predecessor left.
          CLICK_SPOOL_DIR: join(c.dir, 'spool', `${kind}-${i}`),
          ...LOAD_FRIENDLY_API_ENV,
          ...c.apiEnv(),
        }
      : { METRICS_PORT: String(p.workerMetricsBase + i) }
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...common, ...own }
}

function app(kind: 'api' | 'worker', entry: string, replicas: { initial: number; min: number }): PartSpec {
  const port = (p: StackPorts, i: number) => (kind === 'api' ? p.apiBase : p.workerMetricsBase) + i
  const metricsPort = (p: StackPorts, i: number) => (kind === 'api' ? p.apiMetricsBase : p.workerMetricsBase) + i
  return {
    name: kind,
    kind,
    // Through toxiproxy to the stores; migrations ran with Postgres.
    needs: ['postgres', 'redis', 'redis-cache', 'toxiproxy'],
    replicas,
    port,
    metricsPort,
    probe: (_c, at, metrics) => http(`http://${local(kind === 'api' ? at : metrics)}/readyz`),
    command: (c, i) => ({ argv: [process.execPath, '--import', `./${INSTRUMENTATION}`, entry], env: appEnv(c, kind, i) }),
    timeoutMs: 60_000,
    graceMs: APP_GRACE_MS,
    scrape: { job: kind === 'api' ? 'opsdrill-api' : 'opsdrill-worker', port: metricsPort },
  }
}

export const PARTS: PartSpec[] = [
  {
    name: 'postgres',
    kind: 'postgres',
    needs: [],
    port: (p) => p.postgres,
    probe: (_c, at) => ({ port: at }),
    start: async (c) => {
      const dir = join(c.dir, 'postgres')
      // Enough connections for 20 replicas' pools plus the exporters; statements logged when slow, for the drills.
      await startPostgres(dir, c.ports.postgres, ['max_connections=400', 'log_min_duration_statement=500'])
      return Number(readFileSync(join(dir, 'data/postmaster.pid'), 'utf8').split('\n')[0])
    },
    // pg_ctl: a clean shutdown that waits until the postmaster exits.
    stop: (c) => {
      stopPostgres(join(c.dir, 'postgres'))
      return 'pg_ctl -m fast'
    },
    ready: async (c) => {
      const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${c.ports.postgres}/postgres` })
      await admin.connect()
      try {
        const has = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME])
        if (has.rowCount === 0) await admin.query(`CREATE DATABASE ${DB_NAME}`)
      } finally {
        await admin.end()
      }
      c.say('==> migrations')
      const mig = spawnSync(process.execPath, ['ops/migrate.ts'], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: c.databaseUrl },
        encoding: 'utf8',
      })
      if (mig.status !== 0) throw new Error(`migrations failed: ${(mig.stderr || mig.stdout).trim().split('\n').pop()}`)
      c.say(`    ${mig.stdout.trim()}`)
    },
    logFile: (c) => join(c.dir, 'postgres/postgres.log'),
    timeoutMs: 30_000,
    graceMs: TOOL_GRACE_MS,
  },
  redisServer('redis', 'redis', 'queues'),
  redisServer('redis-cache', 'redisCache', 'cache'),
  {
    name: 'toxiproxy',
    kind: 'toxiproxy',
    needs: [],
    port: (p) => p.toxiproxy,
    probe: (c) => http(`${c.toxiproxyUrl}/version`),
    command: (c) => ({ argv: [tool('toxiproxy-server'), '-host', '127.0.0.1', '-port', String(c.ports.toxiproxy)] }),
    ready: ensureProxies,
    timeoutMs: 10_000,
    graceMs: TOOL_GRACE_MS,
  },
  // Straight to the stores, not through toxiproxy: they must see the store, not the link.
  exporter(
    'postgres-exporter',
    'postgres-exporter',
    'postgresExporter',
    'postgres',
    'postgres',
    (p) => ['prometheus-postgres-exporter', `--web.listen-address=${local(p.postgresExporter)}`],
    (p) => ({ DATA_SOURCE_NAME: `postgresql://postgres@127.0.0.1:${p.postgres}/${DB_NAME}?sslmode=disable` }),
  ),
  exporter('redis-exporter', 'redis-exporter', 'redisExporter', 'redis', 'redis', (p) => [
    'prometheus-redis-exporter',
    `-redis.addr=redis://${local(p.redis)}`,
    `-web.listen-address=${local(p.redisExporter)}`,
  ]),
  exporter('redis-cache-exporter', 'redis-exporter', 'redisCacheExporter', 'redis-cache', 'redis', (p) => [
    'prometheus-redis-exporter',
    `-redis.addr=redis://${local(p.redisCache)}`,
    `-web.listen-address=${local(p.redisCacheExporter)}`,
  ]),
  app('api', 'service/server.ts', { initial: 2, min: 1 }),
  app('worker', 'worker/main.ts', { initial: 1, min: 0 }),
  {
    name: 'nginx',
    kind: 'nginx',
    needs: ['api'],
    port: (p) => p.nginx,
    probe: (c) => http(`http://${local(c.ports.nginxStatus)}/nginx_status`),
    prepare: (c) => {
      c.writeUpstreams()
      c.nginxTest()
    },
    command: (c) => ({
      argv: ['nginx', '-p', `${join(c.dir, 'nginx')}/`, '-c', c.configs().nginxConf, '-e', 'stderr', '-g', 'daemon off;'],
    }),
    // Reloaded only when the replicas changed: a reload under traffic resets client keep-alive requests (see
    // Stack.reloadNginx), and `up` also runs to bring back a stopped store in the drills.
    ready: async (c, started) => {
      if (!started && c.writeUpstreams()) await c.reloadNginx()
    },
    timeoutMs: 10_000,
    graceMs: TOOL_GRACE_MS,
  },
  {
    name: 'prometheus',
    kind: 'prometheus',
    needs: [],
    port: (p) => p.prometheus,
    probe: (c) => http(`${c.prometheusUrl}/-/ready`),
    prepare: (c) => c.writeAllTargets(),
    command: (c) => ({
      argv: [
        'prometheus',
        `--config.file=${c.configs().prometheusConf}`,
        `--storage.tsdb.path=${join(c.dir, 'prometheus')}`,
        `--web.listen-address=${local(c.ports.prometheus)}`,
        '--web.enable-remote-write-receiver',
        '--enable-feature=exemplar-storage',
        '--web.enable-lifecycle',
      ],
    }),
    // It re-reads the target files on change.
    ready: async (c) => c.writeAllTargets(),
    timeoutMs: 30_000,
    graceMs: TOOL_GRACE_MS,
    scrape: { job: 'prometheus', port: (p) => p.prometheus },
  },
  {
    name: 'alertmanager',
    kind: 'alertmanager',
    needs: [],
    port: (p) => p.alertmanager,
    probe: (c) => http(`${c.alertmanagerUrl}/-/ready`),
    command: (c) => ({
      argv: [
        'prometheus-alertmanager',
        `--config.file=${c.configs().alertmanagerConf}`,
        `--storage.path=${join(c.dir, 'alertmanager')}`,
        `--web.listen-address=${local(c.ports.alertmanager)}`,
        // No gossip port: one instance, and a second stack (tests) must not join the first one's cluster.
        '--cluster.listen-address=',
      ],
    }),
    timeoutMs: 15_000,
    graceMs: TOOL_GRACE_MS,
    scrape: { job: 'alertmanager', port: (p) => p.alertmanager },
  },
  {
    // The searchable store of the ECS lines (what Elasticsearch is in compose's logs profile).
    name: 'victoria-logs',
    kind: 'victoria-logs',
    needs: [],
    port: (p) => p.victoriaLogs,
    probe: (c) => http(`${c.logsUrl}/health`),
    command: (c) => ({
      argv: [
        tool('victoria-logs'),
        `-httpListenAddr=${local(c.ports.victoriaLogs)}`,
        `-storageDataPath=${join(c.dir, 'victoria-logs')}`,
        '-retentionPeriod=7d',
        // Its caches, not its data: bounded so the store stays a small part of the stack's memory.
        '-memory.allowedBytes=64MiB',
      ],
    }),
    timeoutMs: 15_000,
    graceMs: TOOL_GRACE_MS,
  },
  {
    // The log shipper: otelcol/config.yaml, the file compose runs, tailing this stack's logs/ into VictoriaLogs.
    name: 'otelcol',
    kind: 'otelcol',
    needs: ['victoria-logs'],
    port: (p) => p.otelcolHealth,
    probe: (_c, at) => http(`http://${local(at)}/`),
    command: (c) => ({
      argv: [tool('otelcol-opsdrill'), `--config=${join(ROOT, 'otelcol/config.yaml')}`],
      env: {
        ...process.env,
        OTELCOL_LOG_FILES: join(c.logsDir, '*.log'),
        OTELCOL_START_AT: 'beginning',
        LOGS_ES_ENDPOINT: `${c.logsUrl}/insert/elasticsearch`,
        OTELCOL_STORAGE_DIR: join(c.dir, 'otelcol'),
        OTELCOL_HEALTH_ENDPOINT: local(c.ports.otelcolHealth),
      },
    }),
    timeoutMs: 15_000,
    graceMs: TOOL_GRACE_MS,
  },
  {
    // Restarts a crashed API or worker replica (supervisor.ts); last up, first down, so it never sees a stack half
    // started or half stopped.
    name: 'supervisor',
    kind: 'supervisor',
    needs: ['api', 'worker', 'nginx'],
    command: (c) => ({ argv: [process.execPath, 'ops/lib/stack/supervisor.ts', c.dir, String(c.offset)] }),
    timeoutMs: 10_000,
    graceMs: TOOL_GRACE_MS,
  },
]

/** The rows in an order where every part comes after what it needs (stable: table order otherwise). */
export function startOrder(rows: PartSpec[] = PARTS): PartSpec[] {
  const out: PartSpec[] = []
  const visit = (row: PartSpec, path: string[]) => {
    if (out.includes(row)) return
    if (path.includes(row.name)) throw new Error(`parts need each other: ${[...path, row.name].join(' -> ')}`)
    for (const n of row.needs) {
      const dep = rows.find((r) => r.name === n)
      if (!dep) throw new Error(`${row.name} needs ${n}, which is not a part`)
      visit(dep, [...path, row.name])
    }
    out.push(row)
  }
  for (const row of rows) visit(row, [])
  return out
}

/** The row a recorded part comes from: api-2 from api. */
export function rowOf(name: string): PartSpec | undefined {
  return PARTS.find((r) => r.name === name || (r.replicas && name.startsWith(`${r.name}-`)))
}

async function ensureProxies(c: PartContext): Promise<void> {
  const p = c.ports
  const proxies = [
    { name: 'postgres', listen: local(p.postgresProxy), upstream: local(p.postgres), enabled: true },
    { name: 'redis', listen: local(p.redisProxy), upstream: local(p.redis), enabled: true },
    { name: 'redis-cache', listen: local(p.redisCacheProxy), upstream: local(p.redisCache), enabled: true },
  ]
  const existing = (await (await fetch(`${c.toxiproxyUrl}/proxies`)).json()) as Record<string, unknown>
  const missing = proxies.filter((x) => !(x.name in existing))
  if (missing.length === 0) return
  for (const x of missing) await c.assertPortFree(Number(x.listen.split(':')[1]), `toxiproxy proxy ${x.name}`)
  const res = await fetch(`${c.toxiproxyUrl}/populate`, {
    method: 'POST',
    body: JSON.stringify(missing),
    headers: { 'content-type': 'application/json' },
  })
  if (!res.ok) throw new Error(`toxiproxy refused the proxies: ${res.status} ${await res.text()}`)
  c.say(`    toxiproxy: proxies ${missing.map((x) => `${x.name} ${x.listen} -> ${x.upstream}`).join(', ')}`)
}

/** The first group of `complete` in the file's text, once the file exists and its text matches. */
export async function waitForFile(file: string, timeoutMs: number, complete: RegExp): Promise<string> {
  const until = Date.now() + timeoutMs
  let text: string | undefined
  for (;;) {
    try {
      text = readFileSync(file, 'utf8')
      const m = complete.exec(text)
      if (m) return m[1]!
    } catch {
      // Not there yet.
    }
    if (Date.now() > until)
      throw new Error(
        `${file} did not ${text === undefined ? 'appear' : `hold a complete value (read ${JSON.stringify(text)})`} within ${timeoutMs} ms`,
      )
    await new Promise((r) => setTimeout(r, 50))
  }
}
