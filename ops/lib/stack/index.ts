// The native stack: everything docker-compose runs, as local processes from the Debian packages and the Go-built
// tools, on this machine. The CLI (ops/stack.ts), the test suite and the drills drive it through `stackAt()`.
//
// Each process starts detached, logs to <dir>/logs/<name>.log, and is recorded with its pid in <dir>/state.json;
// `down` stops exactly those pids. The app reaches Postgres and Redis through toxiproxy, so drills can add latency
// or cut a link without touching the stores.
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { startPostgres, startRedis, stopPostgres } from '../localdb.ts'
import { alive, httpStatus, portOwner, probeOk, signal, startDetached, stopPid, waitHealthy, type Probe } from './procs.ts'
import { envPortOffset, MAX_REPLICAS, stackPorts, type StackPorts } from './ports.ts'
import { configPaths, removeTargets, requireFile, writeTargets, writeUpstreams, type ConfigPaths, type Target } from './targets.ts'
import { tool } from '../tools.ts'

export const ROOT = resolve(import.meta.dirname, '../../..')
/** The telemetry bootstrap (OpenTelemetry SDK) the app processes preload with --import, as `npm run start:api` does. */
export const INSTRUMENTATION = 'common/telemetry/instrumentation.ts'
const DB_NAME = 'opsdrill'
const APP_STOP_GRACE_MS = 15_000
const TOOL_STOP_GRACE_MS = 5_000

/**
 * App settings for a stack that is load-tested from this machine: every k6 request comes from 127.0.0.1, so the
 * per-IP rate limits (60k/min global, 20/min on auth) would turn a load test into a 429 test. They are raised far
 * above anything one box can send; the limits themselves are covered by the API's own tests.
 */
/** The cache Redis's memory cap: a full cache evicts (allkeys-lru); about 50,000 hot links fit. */
export const REDIS_CACHE_MAXMEMORY = '64mb'

export const LOAD_FRIENDLY_API_ENV: Record<string, string> = {
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

/**
 * A build of the app that replicas run from (`npm run stack -- deploy`, ops/lib/stack/deploy.ts): the commit and the
 * folder holding it. Replicas without one run the checkout itself (ROOT).
 */
export interface Release {
  sha: string
  dir: string
}

export interface Part {
  name: string
  kind: PartKind
  pid: number
  /** The port it serves on (for api-i its HTTP port; for worker-i its /metrics port). */
  port: number
  metricsPort?: number
  logFile: string
  /** Env overrides this replica was started with (restartReplica). */
  env?: Record<string, string>
  /** The release this replica runs (api and worker only); absent: the checkout. */
  release?: Release
}

interface State {
  offset: number
  ports: StackPorts
  apiEnv: Record<string, string>
  parts: Record<string, Part>
  /** The release replicas start from unless they already run one (set by deploy; absent: the checkout). */
  release?: Release
}

export interface StackLocation {
  /** Added to every default port (see ports.ts); default OPSDRILL_STACK_PORT_OFFSET or 0. */
  offset?: number
  /** State, data and logs; default .run/stack (offset 0) or .run/stack-<offset>. */
  dir?: string
  /** Progress lines; default stdout. */
  log?: (line: string) => void
}

export interface UpOptions {
  api?: number
  worker?: number
  /** Extra env for every API replica (e.g. CACHE_ENABLED=false); kept for replicas added by scale. */
  apiEnv?: Record<string, string>
}

export interface PartStatus {
  name: string
  kind: PartKind
  pid: number | undefined
  port: number
  running: boolean
  healthy: boolean
  logFile: string
  release?: Release
}

export class StackError extends Error {}

export function stackAt(loc: StackLocation = {}): Stack {
  return new Stack(loc)
}

export class Stack {
  readonly offset: number
  readonly dir: string
  readonly ports: StackPorts
  private readonly say: (line: string) => void

  constructor(loc: StackLocation) {
    this.offset = loc.offset ?? envPortOffset()
    this.ports = stackPorts(this.offset)
    this.dir = loc.dir ?? join(ROOT, '.run', this.offset === 0 ? 'stack' : `stack-${this.offset}`)
    this.say = loc.log ?? ((line) => process.stdout.write(`${line}\n`))
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.ports.nginx}`
  }
  get prometheusUrl(): string {
    return `http://127.0.0.1:${this.ports.prometheus}`
  }
  get alertmanagerUrl(): string {
    return `http://127.0.0.1:${this.ports.alertmanager}`
  }
  /** VictoriaLogs: the Elasticsearch bulk API the shipper writes to, LogsQL at /select/logsql/query. */
  get logsUrl(): string {
    return `http://127.0.0.1:${this.ports.victoriaLogs}`
  }
  /** VictoriaLogs' web UI, where a trace's lines are found by `trace.id:<id>`. */
  get logsUiUrl(): string {
    return `${this.logsUrl}/select/vmui/`
  }
  /** toxiproxy's HTTP API; proxies `postgres` and `redis` sit between the app and the stores. */
  get toxiproxyUrl(): string {
    return `http://127.0.0.1:${this.ports.toxiproxy}`
  }
  /** Direct (not proxied) superuser URL of the stack's database, for tests and reports. */
  get databaseUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.ports.postgres}/${DB_NAME}`
  }
  get redisUrl(): string {
    return `redis://127.0.0.1:${this.ports.redis}`
  }
  get cacheRedisUrl(): string {
    return `redis://127.0.0.1:${this.ports.redisCache}`
  }
  readonly redisPrefix = 'opsdrill'
  private get logsDir(): string {
    return join(this.dir, 'logs')
  }
  private get stateFile(): string {
    return join(this.dir, 'state.json')
  }

  // ------------------------------------------------------------------ state

  private readState(): State | undefined {
    if (!existsSync(this.stateFile)) return undefined
    return JSON.parse(readFileSync(this.stateFile, 'utf8')) as State
  }

  private state(): State {
    const s = this.readState()
    if (!s) throw new StackError(`no stack is running from ${this.dir}: start it with \`npm run stack -- up\``)
    return s
  }

  private save(s: State): void {
    mkdirSync(this.dir, { recursive: true })
    writeFileSync(this.stateFile, JSON.stringify(s, null, 2) + '\n')
  }

  /** Every recorded process with pid and ports, in start order. */
  processes(): Part[] {
    return Object.values(this.readState()?.parts ?? {})
  }

  replicas(kind: 'api' | 'worker'): Part[] {
    return this.processes()
      .filter((p) => p.kind === kind)
      .sort((a, b) => replicaIndex(a.name) - replicaIndex(b.name))
  }

  private configs(): ConfigPaths {
    return configPaths(ROOT, this.dir, this.ports, this.offset)
  }

  // ------------------------------------------------------------------ up

  async up(opts: UpOptions = {}): Promise<void> {
    const previous = this.readState()
    // Without counts, `up` keeps what a previous `up`/`scale` left (2 API replicas and 1 worker the first time).
    const apiCount = opts.api ?? (this.replicas('api').length || 2)
    const workerCount = opts.worker ?? (previous ? this.replicas('worker').length : 1)
    checkCount('api', apiCount, 1)
    checkCount('worker', workerCount, 0)
    for (const bin of [
      'nginx',
      'prometheus',
      'prometheus-alertmanager',
      'prometheus-postgres-exporter',
      'prometheus-redis-exporter',
      tool('toxiproxy-server'),
      'redis-server',
      tool('victoria-logs'),
      tool('otelcol-opsdrill'),
    ]) {
      if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', bin]).status !== 0)
        throw new StackError(`${bin} is not installed: run \`ops/stack up\` (it installs what is missing)`)
    }
    const cfg = this.configs()
    requireFile(cfg.nginxConf, 'nginx/nginx.conf')
    requireFile(cfg.prometheusConf, 'prometheus/prometheus.yml')
    requireFile(cfg.alertmanagerConf, 'alertmanager/alertmanager.yml')
    const s: State = previous ?? { offset: this.offset, ports: this.ports, apiEnv: {}, parts: {} }
    if (opts.apiEnv) s.apiEnv = opts.apiEnv
    mkdirSync(this.logsDir, { recursive: true })
    this.save(s)
    const p = this.ports

    await this.part(
      s,
      'postgres',
      'postgres',
      p.postgres,
      { port: p.postgres },
      async () => {
        const dir = join(this.dir, 'postgres')
        // Enough connections for 20 replicas' pools plus the exporters; statements logged when slow, for the drills.
        await startPostgres(dir, p.postgres, ['max_connections=400', 'log_min_duration_statement=500'])
        const url = `postgres://postgres@127.0.0.1:${p.postgres}/postgres`
        const admin = new pg.Client({ connectionString: url })
        await admin.connect()
        const has = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME])
        if (has.rowCount === 0) await admin.query(`CREATE DATABASE ${DB_NAME}`)
        await admin.end()
        return Number(readFileSync(join(dir, 'data/postmaster.pid'), 'utf8').split('\n')[0])
      },
      join(this.dir, 'postgres/postgres.log'),
    )

    await this.part(
      s,
      'redis',
      'redis',
      p.redis,
      { port: p.redis },
      async () => {
        const dir = join(this.dir, 'redis')
        await startRedis(dir, p.redis)
        // redis-server writes its pid file after it starts listening.
        return Number((await waitForFile(join(dir, 'redis.pid'), 5000)).trim())
      },
      join(this.dir, 'redis/redis.log'),
    )
    await this.part(
      s,
      'redis-cache',
      'redis',
      p.redisCache,
      { port: p.redisCache },
      async () => {
        const dir = join(this.dir, 'redis-cache')
        await startRedis(dir, p.redisCache, { role: 'cache', maxmemory: REDIS_CACHE_MAXMEMORY })
        return Number((await waitForFile(join(dir, 'redis.pid'), 5000)).trim())
      },
      join(this.dir, 'redis-cache/redis.log'),
    )

    await this.part(s, 'toxiproxy', 'toxiproxy', p.toxiproxy, { http: `${this.toxiproxyUrl}/version` }, async (logFile) => {
      const pid = startDetached({
        name: 'toxiproxy',
        argv: [tool('toxiproxy-server'), '-host', '127.0.0.1', '-port', String(p.toxiproxy)],
        cwd: ROOT,
        logFile,
      })
      await waitHealthy('toxiproxy', { http: `${this.toxiproxyUrl}/version` }, { pid, timeoutMs: 10_000, logFile })
      return pid
    })
    await this.ensureProxies()

    this.say('==> migrations')
    const mig = spawnSync(process.execPath, ['ops/migrate.ts'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: this.databaseUrl },
      encoding: 'utf8',
    })
    if (mig.status !== 0) throw new StackError(`migrations failed: ${(mig.stderr || mig.stdout).trim().split('\n').pop()}`)
    this.say(`    ${mig.stdout.trim()}`)

    await this.part(
      s,
      'postgres-exporter',
      'postgres-exporter',
      p.postgresExporter,
      { http: `http://127.0.0.1:${p.postgresExporter}/metrics` },
      async (logFile) => {
        const env = { ...process.env, DATA_SOURCE_NAME: `postgresql://postgres@127.0.0.1:${p.postgres}/${DB_NAME}?sslmode=disable` }
        const pid = startDetached({
          name: 'postgres-exporter',
          argv: ['prometheus-postgres-exporter', `--web.listen-address=127.0.0.1:${p.postgresExporter}`],
          env,
          cwd: ROOT,
          logFile,
        })
        await waitHealthy(
          'postgres-exporter',
          { http: `http://127.0.0.1:${p.postgresExporter}/metrics` },
          { pid, timeoutMs: 15_000, logFile },
        )
        return pid
      },
    )
    await this.part(
      s,
      'redis-exporter',
      'redis-exporter',
      p.redisExporter,
      { http: `http://127.0.0.1:${p.redisExporter}/metrics` },
      async (logFile) => {
        const argv = [
          'prometheus-redis-exporter',
          `-redis.addr=redis://127.0.0.1:${p.redis}`,
          `-web.listen-address=127.0.0.1:${p.redisExporter}`,
        ]
        const pid = startDetached({ name: 'redis-exporter', argv, cwd: ROOT, logFile })
        await waitHealthy('redis-exporter', { http: `http://127.0.0.1:${p.redisExporter}/metrics` }, { pid, timeoutMs: 15_000, logFile })
        return pid
      },
    )
    await this.part(
      s,
      'redis-cache-exporter',
      'redis-exporter',
      p.redisCacheExporter,
      { http: `http://127.0.0.1:${p.redisCacheExporter}/metrics` },
      async (logFile) => {
        const argv = [
          'prometheus-redis-exporter',
          `-redis.addr=redis://127.0.0.1:${p.redisCache}`,
          `-web.listen-address=127.0.0.1:${p.redisCacheExporter}`,
        ]
        const pid = startDetached({ name: 'redis-cache-exporter', argv, cwd: ROOT, logFile })
        const probe = { http: `http://127.0.0.1:${p.redisCacheExporter}/metrics` }
        await waitHealthy('redis-cache-exporter', probe, { pid, timeoutMs: 15_000, logFile })
        return pid
      },
    )

    await this.startReplicas(s, 'api', range(1, apiCount))
    await this.startReplicas(s, 'worker', range(1, workerCount))
    for (const extra of this.replicas('api').filter((r) => replicaIndex(r.name) > apiCount)) await this.stopReplica(s, extra)
    for (const extra of this.replicas('worker').filter((r) => replicaIndex(r.name) > workerCount)) await this.stopReplica(s, extra)
    const upstreamsChanged = writeUpstreams(
      cfg.upstreamFile,
      this.replicasOf(s, 'api').map((r) => r.port),
    )

    const nginxPrefix = join(this.dir, 'nginx')
    const nginxProbe = { http: `http://127.0.0.1:${p.nginxStatus}/nginx_status` }
    await this.part(s, 'nginx', 'nginx', p.nginx, nginxProbe, async (logFile) => {
      mkdirSync(nginxPrefix, { recursive: true })
      this.nginxTest()
      const argv = ['nginx', '-p', `${nginxPrefix}/`, '-c', cfg.nginxConf, '-e', 'stderr', '-g', 'daemon off;']
      const pid = startDetached({ name: 'nginx', argv, cwd: ROOT, logFile })
      await waitHealthy('nginx', nginxProbe, { pid, timeoutMs: 10_000, logFile })
      return pid
    })
    // Only when the replicas changed: a reload under traffic resets client keep-alive requests (see reloadNginx), and
    // `up` also runs to bring back a stopped store in the drills.
    if (previous && upstreamsChanged) await this.reloadNginx(s)

    this.writeAllTargets(s, cfg)
    await this.part(s, 'prometheus', 'prometheus', p.prometheus, { http: `${this.prometheusUrl}/-/ready` }, async (logFile) => {
      const argv = [
        'prometheus',
        `--config.file=${cfg.prometheusConf}`,
        `--storage.tsdb.path=${join(this.dir, 'prometheus')}`,
        `--web.listen-address=127.0.0.1:${p.prometheus}`,
        '--web.enable-remote-write-receiver',
        '--enable-feature=exemplar-storage',
        '--web.enable-lifecycle',
      ]
      const pid = startDetached({ name: 'prometheus', argv, cwd: ROOT, logFile })
      await waitHealthy('prometheus', { http: `${this.prometheusUrl}/-/ready` }, { pid, timeoutMs: 30_000, logFile })
      return pid
    })
    await this.part(s, 'alertmanager', 'alertmanager', p.alertmanager, { http: `${this.alertmanagerUrl}/-/ready` }, async (logFile) => {
      const argv = [
        'prometheus-alertmanager',
        `--config.file=${cfg.alertmanagerConf}`,
        `--storage.path=${join(this.dir, 'alertmanager')}`,
        `--web.listen-address=127.0.0.1:${p.alertmanager}`,
        // No gossip port: one instance, and a second stack (tests) must not join the first one's cluster.
        '--cluster.listen-address=',
      ]
      const pid = startDetached({ name: 'alertmanager', argv, cwd: ROOT, logFile })
      await waitHealthy('alertmanager', { http: `${this.alertmanagerUrl}/-/ready` }, { pid, timeoutMs: 15_000, logFile })
      return pid
    })
    await this.logStore(s)
    await this.logShipper(s)
    this.say(this.urls())
  }

  /** VictoriaLogs, the searchable store of the ECS lines (what Elasticsearch is in compose's logs profile). */
  private async logStore(s: State): Promise<void> {
    const probe = { http: `${this.logsUrl}/health` }
    await this.part(s, 'victoria-logs', 'victoria-logs', this.ports.victoriaLogs, probe, async (logFile) => {
      const argv = [
        tool('victoria-logs'),
        `-httpListenAddr=127.0.0.1:${this.ports.victoriaLogs}`,
        `-storageDataPath=${join(this.dir, 'victoria-logs')}`,
        '-retentionPeriod=7d',
        // Its caches, not its data: bounded so the store stays a small part of the stack's memory.
        '-memory.allowedBytes=64MiB',
      ]
      const pid = startDetached({ name: 'victoria-logs', argv, cwd: ROOT, logFile })
      await waitHealthy('victoria-logs', probe, { pid, timeoutMs: 15_000, logFile })
      return pid
    })
  }

  /** The log shipper: otelcol/config.yaml, the file compose runs, tailing this stack's logs/ into VictoriaLogs. */
  private async logShipper(s: State): Promise<void> {
    const probe = { http: `http://127.0.0.1:${this.ports.otelcolHealth}/` }
    await this.part(s, 'otelcol', 'otelcol', this.ports.otelcolHealth, probe, async (logFile) => {
      const env = {
        ...process.env,
        OTELCOL_LOG_FILES: join(this.logsDir, '*.log'),
        OTELCOL_START_AT: 'beginning',
        LOGS_ES_ENDPOINT: `${this.logsUrl}/insert/elasticsearch`,
        OTELCOL_STORAGE_DIR: join(this.dir, 'otelcol'),
        OTELCOL_HEALTH_ENDPOINT: `127.0.0.1:${this.ports.otelcolHealth}`,
      }
      const argv = [tool('otelcol-opsdrill'), `--config=${join(ROOT, 'otelcol/config.yaml')}`]
      const pid = startDetached({ name: 'otelcol', argv, env, cwd: ROOT, logFile })
      await waitHealthy('otelcol', probe, { pid, timeoutMs: 15_000, logFile })
      return pid
    })
  }

  urls(): string {
    const p = this.ports
    return [
      'stack is up:',
      `  API (through nginx)   ${this.baseUrl}            (docs: ${this.baseUrl}/docs)`,
      `  Prometheus            ${this.prometheusUrl}`,
      `  Alertmanager          ${this.alertmanagerUrl}`,
      `  Logs (VictoriaLogs)   ${this.logsUiUrl}   (search a trace's lines: trace.id:<id>)`,
      `  toxiproxy API         ${this.toxiproxyUrl}            (proxies: postgres :${p.postgresProxy}, redis :${p.redisProxy}, redis-cache :${p.redisCacheProxy})`,
      `  Postgres              ${this.databaseUrl}`,
      `  Redis (queues)        ${this.redisUrl}`,
      `  Redis (cache)         ${this.cacheRedisUrl}`,
      `  logs                  ${this.logsDir}/<name>.log      (npm run stack -- logs <name>)`,
    ].join('\n')
  }

  /** Starts one part unless its recorded pid still runs; refuses a port some other process holds. */
  private async part(
    s: State,
    name: string,
    kind: PartKind,
    port: number,
    probe: Probe,
    start: (logFile: string) => Promise<number>,
    logFile = join(this.logsDir, `${name}.log`),
  ): Promise<void> {
    const known = s.parts[name]
    if (known && alive(known.pid)) {
      this.say(`==> ${name}: already running (pid ${known.pid})`)
      return
    }
    await this.assertPortFree(port, name)
    this.say(`==> ${name}: starting on port ${port}`)
    const t0 = Date.now()
    const pid = await start(logFile)
    s.parts[name] = { name, kind, pid, port, logFile }
    this.save(s)
    if (!(await probeOk(probe))) await waitHealthy(name, probe, { pid, timeoutMs: 30_000, logFile })
    this.say(`    ${name}: healthy (pid ${pid}, ${Date.now() - t0} ms)`)
  }

  private async assertPortFree(port: number, name: string): Promise<void> {
    if (!(await probeOk({ port }))) return
    const owner = portOwner(port) ?? 'another process'
    throw new StackError(
      `port ${port} (for ${name}) is in use by ${owner}: stop it, or run this stack on other ports with OPSDRILL_STACK_PORT_OFFSET=<n> (e.g. 1000)`,
    )
  }

  private async ensureProxies(): Promise<void> {
    const p = this.ports
    const proxies = [
      { name: 'postgres', listen: `127.0.0.1:${p.postgresProxy}`, upstream: `127.0.0.1:${p.postgres}`, enabled: true },
      { name: 'redis', listen: `127.0.0.1:${p.redisProxy}`, upstream: `127.0.0.1:${p.redis}`, enabled: true },
      { name: 'redis-cache', listen: `127.0.0.1:${p.redisCacheProxy}`, upstream: `127.0.0.1:${p.redisCache}`, enabled: true },
    ]
    const existing = (await (await fetch(`${this.toxiproxyUrl}/proxies`)).json()) as Record<string, unknown>
    const missing = proxies.filter((x) => !(x.name in existing))
    if (missing.length === 0) return
    for (const x of missing) await this.assertPortFree(Number(x.listen.split(':')[1]), `toxiproxy proxy ${x.name}`)
    const res = await fetch(`${this.toxiproxyUrl}/populate`, {
      method: 'POST',
      body: JSON.stringify(missing),
      headers: { 'content-type': 'application/json' },
    })
    if (!res.ok) throw new StackError(`toxiproxy refused the proxies: ${res.status} ${await res.text()}`)
    this.say(`    toxiproxy: proxies ${missing.map((x) => `${x.name} ${x.listen} -> ${x.upstream}`).join(', ')}`)
  }

  // ------------------------------------------------------------------ app replicas

  private appEnv(s: State, kind: 'api' | 'worker', index: number, overrides: Record<string, string>): NodeJS.ProcessEnv {
    const p = this.ports
    const common: Record<string, string> = {
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      DATABASE_URL: `postgres://postgres@127.0.0.1:${p.postgresProxy}/${DB_NAME}`,
      REDIS_URL: `redis://127.0.0.1:${p.redisProxy}`,
      REDIS_PREFIX: this.redisPrefix,
      INSTANCE_ID: `${kind}-${index}`,
      METRICS_HOST: '127.0.0.1',
      OTEL_SERVICE_NAME: `opsdrill-${kind}`,
      // The native stack runs no trace backend: spans are made (and sampled) but only exported when the user
      // points OTEL_EXPORTER_OTLP_ENDPOINT at a collector.
      OTEL_TRACES_EXPORTER: process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? 'otlp' : 'none',
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('OTEL_')) as [string, string][]),
    }
    const own: Record<string, string> =
      kind === 'api'
        ? {
            HOST: '127.0.0.1',
            PORT: String(p.apiBase + index),
            METRICS_PORT: String(p.apiMetricsBase + index),
            JWT_SECRET: this.jwtSecret(),
            PUBLIC_BASE_URL: this.baseUrl,
            CACHE_REDIS_URL: `redis://127.0.0.1:${p.redisCacheProxy}`,
            // Its own spool, kept across restarts: a replica replays what its killed predecessor left.
            CLICK_SPOOL_DIR: join(this.dir, 'spool', `${kind}-${index}`),
            ...LOAD_FRIENDLY_API_ENV,
            ...s.apiEnv,
          }
        : { METRICS_PORT: String(p.workerMetricsBase + index) }
    return { PATH: process.env.PATH, HOME: process.env.HOME, ...common, ...own, ...overrides }
  }

  private jwtSecret(): string {
    const file = join(this.dir, 'secrets/jwt_secret')
    if (!existsSync(file)) {
      mkdirSync(join(this.dir, 'secrets'), { recursive: true, mode: 0o700 })
      writeFileSync(file, randomBytes(48).toString('base64url') + '\n', { mode: 0o600 })
      chmodSync(file, 0o600)
    }
    return readFileSync(file, 'utf8').trim()
  }

  private replicasOf(s: State, kind: 'api' | 'worker'): Part[] {
    return Object.values(s.parts)
      .filter((p) => p.kind === kind)
      .sort((a, b) => replicaIndex(a.name) - replicaIndex(b.name))
  }

  private probeFor(kind: 'api' | 'worker', port: number, metricsPort: number): Probe {
    return { http: `http://127.0.0.1:${kind === 'api' ? port : metricsPort}/readyz` }
  }

  /**
   * Starts the named replicas that are not running (in parallel) and waits until each one is ready. A replica runs
   * `release` if given, else the release it ran before, else the stack's; from its folder, with OPSDRILL_VERSION set
   * to its commit (opsdrill_build_info).
   */
  private async startReplicas(
    s: State,
    kind: 'api' | 'worker',
    indexes: number[],
    overrides?: Record<string, string>,
    release?: Release,
  ): Promise<void> {
    const starting: Promise<void>[] = []
    for (const i of indexes) {
      const name = `${kind}-${i}`
      const known = s.parts[name]
      if (known && alive(known.pid)) {
        this.say(`==> ${name}: already running (pid ${known.pid})`)
        continue
      }
      const env = overrides ?? known?.env ?? {}
      const rel = release ?? known?.release ?? s.release
      const port = kind === 'api' ? this.ports.apiBase + i : this.ports.workerMetricsBase + i
      const metricsPort = kind === 'api' ? this.ports.apiMetricsBase + i : port
      await this.assertPortFree(port, name)
      if (kind === 'api') await this.assertPortFree(metricsPort, `${name} /metrics`)
      const logFile = join(this.logsDir, `${name}.log`)
      const entry = kind === 'api' ? 'service/server.ts' : 'worker/main.ts'
      this.say(
        `==> ${name}: starting on port ${port}${kind === 'api' ? ` (metrics ${metricsPort})` : ''}${Object.keys(env).length ? ` with ${fmtEnv(env)}` : ''}${rel ? ` from ${rel.sha.slice(0, 12)}` : ''}`,
      )
      const pid = startDetached({
        name,
        argv: [process.execPath, '--import', `./${INSTRUMENTATION}`, entry],
        env: { ...this.appEnv(s, kind, i, env), ...(rel ? { OPSDRILL_VERSION: rel.sha } : {}) },
        cwd: rel?.dir ?? ROOT,
        logFile,
      })
      s.parts[name] = {
        name,
        kind,
        pid,
        port,
        metricsPort,
        logFile,
        ...(Object.keys(env).length ? { env } : {}),
        ...(rel ? { release: rel } : {}),
      }
      this.save(s)
      const t0 = Date.now()
      starting.push(
        waitHealthy(name, this.probeFor(kind, port, metricsPort), { pid, timeoutMs: 60_000, logFile }).then(() =>
          this.say(`    ${name}: ready (pid ${pid}, ${Date.now() - t0} ms)`),
        ),
      )
    }
    await Promise.all(starting)
  }

  private async stopReplica(s: State, part: Part): Promise<void> {
    const how = await stopPid(part.pid, APP_STOP_GRACE_MS)
    this.say(`==> ${part.name}: stopped (pid ${part.pid}, ${how})`)
    delete s.parts[part.name]
    this.save(s)
  }

  /**
   * Sets the number of API replicas and workers. New replicas join nginx only once ready; a removed API replica is
   * first taken out of nginx (graceful reload: in-flight requests finish), then sent SIGTERM, so no request fails.
   * `env` applies to the replicas this call starts (see restartReplica).
   */
  async scale(want: { api?: number; worker?: number }, env?: Record<string, string>): Promise<void> {
    const s = this.state()
    const cfg = this.configs()
    if (want.api !== undefined) {
      checkCount('api', want.api, 1)
      const now = this.replicasOf(s, 'api')
      await this.startReplicas(s, 'api', range(1, want.api), env)
      const extra = now.filter((r) => replicaIndex(r.name) > want.api!)
      await this.setUpstreams(
        s,
        cfg,
        this.replicasOf(s, 'api').filter((r) => !extra.includes(r)),
      )
      for (const r of extra) await this.stopReplica(s, r)
    }
    if (want.worker !== undefined) {
      checkCount('worker', want.worker, 0)
      await this.startReplicas(s, 'worker', range(1, want.worker), env)
      for (const r of this.replicasOf(s, 'worker').filter((x) => replicaIndex(x.name) > want.worker!)) await this.stopReplica(s, r)
    }
    this.writeAllTargets(s, cfg)
  }

  /**
   * Restarts one replica, optionally with env overrides that it keeps until the next restart ({} clears them), and
   * optionally on another release (deploy). Brings back a replica that was killed. Throws when the new process is not
   * ready within 60 s; an API replica is then taken out of nginx.
   *
   * An API replica keeps its port and its place in nginx's upstream list, and nginx is not reloaded: a reload makes
   * the old nginx workers close their client keep-alive connections, and a POST racing that close is lost (k6 status 0,
   * the rolling-restart drill). The replica drains itself on SIGTERM (service/server.ts): in-flight requests finish with
   * `Connection: close`, and once its listener is closed nginx retries the refused connections on the other replicas
   * (safe for a POST: nothing was sent). Returns once nginx sends the new process requests again, so a rolling
   * restart never stops the next replica while this one is still held out after its refused connections.
   */
  async restartReplica(name: string, env?: Record<string, string>, release?: Release): Promise<Part> {
    const s = this.state()
    const part = s.parts[name]
    const m = name.match(/^(api|worker)-(\d+)$/)
    if (!m) throw new StackError(`${name} is not a replica: use api-<n> or worker-<n> (see \`npm run stack -- status\`)`)
    const kind = m[1] as 'api' | 'worker'
    const index = Number(m[2])
    const cfg = this.configs()
    if (part) await this.stopReplica(s, part)
    try {
      await this.startReplicas(s, kind, [index], env ?? part?.env ?? {}, release)
    } catch (err) {
      const others = this.replicasOf(s, 'api').filter((r) => r.name !== name)
      if (kind === 'api' && others.length > 0) await this.setUpstreams(s, cfg, others)
      throw err
    }
    if (kind === 'api') {
      // Back in the list if a failed start took it out.
      await this.setUpstreams(s, cfg, this.replicasOf(s, 'api'))
      await this.untilNginxRoutesTo(s, s.parts[name]!)
    }
    this.writeAllTargets(s, cfg)
    return s.parts[name]!
  }

  /**
   * Restarts every replica of a kind at once with the given env overrides ({} clears them). Faster than one by one,
   * but API replicas are all down for a moment: for use between load runs, not under traffic (restartReplica is).
   */
  async restartAll(kind: 'api' | 'worker', env: Record<string, string>): Promise<void> {
    const s = this.state()
    const parts = this.replicasOf(s, kind)
    await Promise.all(parts.map((p) => stopPid(p.pid, APP_STOP_GRACE_MS)))
    for (const p of parts) delete s.parts[p.name]
    this.save(s)
    this.say(`==> ${parts.map((p) => p.name).join(', ')}: stopped`)
    await this.startReplicas(
      s,
      kind,
      parts.map((p) => replicaIndex(p.name)),
      env,
    )
    if (kind === 'api') await this.reloadNginx(s)
    this.writeAllTargets(s, this.configs())
  }

  /** Sets the release that replicas started from now on run (scale, up after a crash); undefined: the checkout. */
  setRelease(release: Release | undefined): void {
    const s = this.state()
    if (release) s.release = release
    else delete s.release
    this.save(s)
  }

  /** Sends a signal to a recorded process (drills: SIGKILL a replica mid-run, SIGSTOP to freeze one). */
  kill(name: string, sig: NodeJS.Signals = 'SIGKILL'): void {
    const part = this.state().parts[name]
    if (!part) throw new StackError(`no process named ${name} in this stack (see \`npm run stack -- status\`)`)
    signal(part.pid, sig)
  }

  private nginxTest(): void {
    const cfg = this.configs()
    const res = spawnSync('nginx', ['-t', '-q', '-p', `${join(this.dir, 'nginx')}/`, '-c', cfg.nginxConf, '-e', 'stderr'], {
      encoding: 'utf8',
      // The config logs to /dev/stdout, which cannot be opened on the socket Node gives a child for a pipe.
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    if (res.status !== 0) throw new StackError(`nginx rejects its config: ${res.stderr.trim().split('\n')[0]}`)
  }

  /** Writes nginx's upstream list of API replicas and reloads nginx when the list changed. */
  private async setUpstreams(s: State, cfg: ConfigPaths, apis: Part[]): Promise<void> {
    const changed = writeUpstreams(
      cfg.upstreamFile,
      apis.map((r) => r.port),
    )
    if (changed) await this.reloadNginx(s)
  }

  /**
   * Waits until nginx answers a request from this API replica (its X-Upstream header). After refused connections
   * nginx holds a replica out for fail_timeout (5 s, targets.ts) and then tries it again.
   */
  private async untilNginxRoutesTo(s: State, part: Part): Promise<void> {
    if (!s.parts.nginx || !alive(s.parts.nginx.pid)) return
    const want = `127.0.0.1:${part.port}`
    const t0 = Date.now()
    while (Date.now() - t0 < 15_000) {
      const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
      await res?.arrayBuffer()
      // One address per upstream tried ("a, b" after a retry): the last one answered.
      if (res?.headers.get('x-upstream')?.split(', ').at(-1) === want) {
        this.say(`    ${part.name}: back in nginx's rotation (${Date.now() - t0} ms)`)
        return
      }
      await sleep(100)
    }
    throw new StackError(`${part.name} is ready, but nginx sent it no request within 15 s: see ${join(this.logsDir, 'nginx.log')}`)
  }

  /** Graceful reload: new workers take new connections, old ones finish what they serve, then exit. */
  private async reloadNginx(s: State): Promise<void> {
    const nginx = s.parts.nginx
    if (!nginx || !alive(nginx.pid)) return
    this.nginxTest()
    signal(nginx.pid, 'SIGHUP')
    // Callers stop a replica the old workers still knew: wait until those workers have finished their requests and
    // exited, so none of their keep-alive connections to it is reused mid-shutdown (a POST on such a connection
    // fails without a retry). Bounded; at least 1 s for the master to start the new workers.
    await sleep(1000)
    const until = Date.now() + 10_000
    while (Date.now() < until && oldNginxWorkers(nginx.pid) > 0) await sleep(200)
  }

  private writeAllTargets(s: State, cfg: ConfigPaths): void {
    const p = this.ports
    const at = (port: number, replica: string): Target => ({ address: `127.0.0.1:${port}`, replica })
    mkdirSync(cfg.targetsDir, { recursive: true })
    writeTargets(
      cfg.targetsDir,
      'opsdrill-api',
      this.replicasOf(s, 'api').map((r) => at(r.metricsPort!, r.name)),
    )
    writeTargets(
      cfg.targetsDir,
      'opsdrill-worker',
      this.replicasOf(s, 'worker').map((r) => at(r.metricsPort!, r.name)),
    )
    writeTargets(cfg.targetsDir, 'postgres', [at(p.postgresExporter, 'postgres-exporter')])
    writeTargets(cfg.targetsDir, 'redis', [at(p.redisExporter, 'redis-exporter'), at(p.redisCacheExporter, 'redis-cache-exporter')])
    writeTargets(cfg.targetsDir, 'prometheus', [at(p.prometheus, 'prometheus')])
    writeTargets(cfg.targetsDir, 'alertmanager', [at(p.alertmanager, 'alertmanager')])
  }

  // ------------------------------------------------------------------ status and down

  async status(): Promise<PartStatus[]> {
    const s = this.readState()
    if (!s) return []
    return Promise.all(
      Object.values(s.parts).map(async (part) => {
        const running = alive(part.pid)
        return {
          name: part.name,
          kind: part.kind,
          pid: part.pid,
          port: part.port,
          running,
          // 3 s, not waitHealthy's 1 s per try: this is one try, and an exporter's /metrics runs queries before answering.
          healthy: running && (await probeOk(this.healthProbe(part), 3000)),
          logFile: part.logFile,
          ...(part.release ? { release: part.release } : {}),
        }
      }),
    )
  }

  private healthProbe(part: Part): Probe {
    const p = this.ports
    switch (part.kind) {
      case 'api':
      case 'worker':
        return this.probeFor(part.kind, part.port, part.metricsPort!)
      case 'nginx':
        return { http: `http://127.0.0.1:${p.nginxStatus}/nginx_status` }
      case 'prometheus':
        return { http: `${this.prometheusUrl}/-/ready` }
      case 'alertmanager':
        return { http: `${this.alertmanagerUrl}/-/ready` }
      case 'toxiproxy':
        return { http: `${this.toxiproxyUrl}/version` }
      case 'victoria-logs':
        return { http: `${this.logsUrl}/health` }
      case 'otelcol':
        return { http: `http://127.0.0.1:${p.otelcolHealth}/` }
      case 'postgres-exporter':
      case 'redis-exporter':
        return { http: `http://127.0.0.1:${part.port}/metrics` }
      case 'postgres':
      case 'redis':
        return { port: part.port }
    }
  }

  /** Stops every process `up` started (recorded pids, newest first), then forgets them. Safe to call twice. */
  async down(): Promise<string[]> {
    const s = this.readState()
    if (!s) {
      this.say(`nothing to stop: no stack state in ${this.dir}`)
      return []
    }
    const stopped: string[] = []
    const order: PartKind[] = [
      'nginx',
      'api',
      'worker',
      'otelcol',
      'victoria-logs',
      'alertmanager',
      'prometheus',
      'postgres-exporter',
      'redis-exporter',
      'toxiproxy',
      'redis',
      'postgres',
    ]
    for (const kind of order) {
      const parts = Object.values(s.parts).filter((p) => p.kind === kind)
      await Promise.all(
        parts.map(async (part) => {
          // Postgres is stopped by pg_ctl (clean shutdown, waits until the postmaster exits), the rest by pid.
          const pgRunning = kind === 'postgres' && alive(part.pid)
          if (pgRunning) stopPostgres(join(this.dir, 'postgres'))
          const how = pgRunning
            ? 'pg_ctl -m fast'
            : await stopPid(part.pid, kind === 'api' || kind === 'worker' ? APP_STOP_GRACE_MS : TOOL_STOP_GRACE_MS)
          this.say(`==> ${part.name}: ${how === 'gone' ? 'was not running' : `stopped (pid ${part.pid}, ${how})`}`)
          stopped.push(part.name)
          delete s.parts[part.name]
          this.save(s)
        }),
      )
    }
    const cfg = this.configs()
    removeTargets(cfg.targetsDir)
    rmSync(cfg.upstreamFile, { force: true })
    rmSync(this.stateFile, { force: true })
    this.say(`stack in ${this.dir} is down (${stopped.length} processes stopped)`)
    return stopped
  }

  /** Last lines of a part's log. */
  logTail(name: string, lines = 100): string {
    const part = this.readState()?.parts[name]
    const file = part?.logFile ?? join(this.logsDir, `${name}.log`)
    if (!existsSync(file)) throw new StackError(`no log for ${name} (${file}): names are listed by \`npm run stack -- status\``)
    return execFileSync('tail', ['-n', String(lines), file], { encoding: 'utf8' })
  }

  /** Health of one URL through nginx, used by status output and tests. */
  async nginxAnswers(): Promise<boolean> {
    return (await httpStatus(`${this.baseUrl}/healthz`)) === 200
  }
}

async function waitForFile(file: string, timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs
  while (!existsSync(file)) {
    if (Date.now() > until) throw new StackError(`${file} did not appear within ${timeoutMs} ms`)
    await sleep(50)
  }
  return readFileSync(file, 'utf8')
}

/** nginx workers of the previous configuration still draining after a reload. */
function oldNginxWorkers(masterPid: number): number {
  const res = spawnSync('pgrep', ['-a', '-P', String(masterPid)], { encoding: 'utf8' })
  return (res.stdout ?? '').split('\n').filter((l) => l.includes('shutting down')).length
}

function replicaIndex(name: string): number {
  return Number(name.split('-').pop())
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
}

function checkCount(kind: string, n: number, min: number): void {
  if (!Number.isInteger(n) || n < min || n > MAX_REPLICAS)
    throw new StackError(`${kind} replicas must be a whole number from ${min} to ${MAX_REPLICAS} (got ${n})`)
}

function fmtEnv(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
}
