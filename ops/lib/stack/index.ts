// The native stack: everything docker-compose runs, as local processes from the Debian packages and the Go-built
// tools, on this machine. The CLI (ops/stack.ts), the test suite and the drills drive it through `stackAt()`.
//
// The parts are rows of one table (parts.ts). Each process starts detached, logs to <dir>/logs/<name>.log, and is
// recorded in <dir>/state.json with its pid and start time; nothing is signalled unless it is still that process.
// Every command that changes the state holds its lock (lock.ts). A supervisor process (supervisor.ts) restarts a
// crashed API or worker replica. The app reaches Postgres and Redis through toxiproxy, so drills can add latency or
// cut a link without touching the stores.
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { tool } from '../tools.ts'
import { LockTimeout, StateLock } from './lock.ts'
import { DB_NAME, PARTS, ROOT, rowOf, startOrder, type PartContext, type PartKind, type PartSpec } from './parts.ts'
import { alive, httpStatus, identify, portOwner, probeOk, signal, startDetached, stopPid, waitHealthy, type ProcId } from './procs.ts'
import { envPortOffset, MAX_REPLICAS, stackPorts, type StackPorts } from './ports.ts'
import {
  configPaths,
  removeTargets,
  requireFile,
  writeTargets,
  writeUpstreams,
  type Balancing,
  type ConfigPaths,
  type PrometheusJob,
  type Target,
} from './targets.ts'

export { BALANCING, type Balancing } from './targets.ts'
export { ROOT, type PartKind }

/** How long a command waits for another to finish with state.json (a supervisor's restart takes up to ~75 s). */
const LOCK_WAIT_MS = 120_000
/** Failed restarts of a crashed replica before the supervisor gives up on it (a crash loop), and the first back-off. */
export const CRASH_LOOP_LIMIT = 5
export const BACKOFF_MS = 1000

/**
 * A build of the app that replicas run from (`npm run stack -- deploy`, ops/lib/stack/deploy.ts): the commit and the
 * folder holding it. Replicas without one run the checkout itself (ROOT).
 */
export interface Release {
  sha: string
  dir: string
}

export interface Part extends ProcId {
  name: string
  kind: PartKind
  /** The port it serves on (for api-i its HTTP port; for worker-i its /metrics port); 0: none (supervisor). */
  port: number
  metricsPort?: number
  logFile: string
  /** Env overrides this replica was started with (restartReplica). */
  env?: Record<string, string>
  /** The release this replica runs (api and worker only); absent: the checkout. */
  release?: Release
  /** Times the supervisor brought this replica back after a crash. */
  restarts?: number
  /** The supervisor's failed restarts in a row, and when it tries again (back-off). */
  failedStarts?: number
  nextTryAt?: number
  /** Why the supervisor gave up on it (crash loop); `restart` or `up` starts it again. */
  crashLoop?: string
  /** Stopped on purpose and to stay down (a drill's instance-down): the supervisor leaves it alone. */
  held?: boolean
}

interface State {
  offset: number
  ports: StackPorts
  apiEnv: Record<string, string>
  parts: Record<string, Part>
  /** The release replicas start from unless they already run one (set by deploy; absent: the checkout). */
  release?: Release
  /** How nginx balances over the API replicas (setBalancing; absent: least_conn). */
  balancing?: Balancing
}

export interface StackLocation {
  /** Added to every default port (see ports.ts); default OPSDRILL_STACK_PORT_OFFSET or 0. */
  offset?: number
  /** State, data and logs; default .run/stack (offset 0) or .run/stack-<offset>. */
  dir?: string
  /** Progress lines; default stdout. */
  log?: (line: string) => void
  /** How long to wait for another command holding state.json; default 120 s. */
  lockWaitMs?: number
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
  restarts: number
  crashLoop?: string
}

export class StackError extends Error {}

export function stackAt(loc: StackLocation = {}): Stack {
  return new Stack(loc)
}

type Replicated = 'api' | 'worker'

export class Stack {
  readonly offset: number
  readonly dir: string
  readonly ports: StackPorts
  readonly say: (line: string) => void
  private readonly lock: StateLock

  constructor(loc: StackLocation) {
    this.offset = loc.offset ?? envPortOffset()
    this.ports = stackPorts(this.offset)
    this.dir = loc.dir ?? join(ROOT, '.run', this.offset === 0 ? 'stack' : `stack-${this.offset}`)
    this.say = loc.log ?? ((line) => process.stdout.write(`${line}\n`))
    this.lock = new StateLock(this.stateFile, { waitMs: loc.lockWaitMs ?? LOCK_WAIT_MS, say: this.say })
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
  get logsDir(): string {
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

  /** Renamed into place, so a reader without the lock (status, the supervisor's poll) never sees half a file. */
  private save(s: State): void {
    mkdirSync(this.dir, { recursive: true })
    const tmp = `${this.stateFile}.tmp-${process.pid}`
    writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n')
    renameSync(tmp, this.stateFile)
  }

  /**
   * Runs fn holding the state's lock (deploy holds it for its whole rollout, so the supervisor cannot restart a replica
   * under it); a command that waits too long fails with one line.
   */
  async exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.lock.run(what, fn)
    } catch (err) {
      if (err instanceof LockTimeout) throw new StackError(err.message)
      throw err
    }
  }

  /** Every recorded process with pid and ports, in start order. */
  processes(): Part[] {
    return Object.values(this.readState()?.parts ?? {})
  }

  replicas(kind: Replicated): Part[] {
    return replicasOf(this.readState(), kind)
  }

  configs(): ConfigPaths {
    return configPaths(ROOT, this.dir, this.ports, this.offset)
  }

  /** What the table's rows see of the stack, with the state being changed. */
  private ctx(s: State): PartContext {
    return {
      ports: this.ports,
      dir: this.dir,
      offset: this.offset,
      logsDir: this.logsDir,
      baseUrl: this.baseUrl,
      prometheusUrl: this.prometheusUrl,
      alertmanagerUrl: this.alertmanagerUrl,
      logsUrl: this.logsUrl,
      toxiproxyUrl: this.toxiproxyUrl,
      databaseUrl: this.databaseUrl,
      redisPrefix: this.redisPrefix,
      configs: () => this.configs(),
      apiEnv: () => s.apiEnv,
      jwtSecret: () => this.jwtSecret(),
      say: this.say,
      assertPortFree: (port, name) => this.assertPortFree(port, name),
      writeUpstreams: () =>
        writeUpstreams(
          this.configs().upstreamFile,
          replicasOf(s, 'api').map((r) => r.port),
          s.balancing,
        ),
      nginxTest: () => this.nginxTest(),
      reloadNginx: () => this.reloadNginx(s),
      writeAllTargets: () => this.writeAllTargets(s),
    }
  }

  // ------------------------------------------------------------------ up

  /** Starts every part that is not running, in dependency order, and waits until each is healthy. */
  async up(opts: UpOptions = {}): Promise<void> {
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
    await this.exclusive('up', async () => {
      const previous = this.readState()
      const counts = { api: opts.api, worker: opts.worker }
      const s: State = previous ?? { offset: this.offset, ports: this.ports, apiEnv: {}, parts: {} }
      if (opts.apiEnv) s.apiEnv = opts.apiEnv
      // Without counts, `up` keeps what a previous `up`/`scale` left (the table's initial counts the first time).
      const want = (row: PartSpec): number => {
        const { initial, min } = row.replicas!
        const existing = replicasOf(s, row.kind as Replicated).length
        const n = counts[row.kind as Replicated] ?? (previous && existing >= min ? existing : initial)
        checkCount(row.kind, n, min)
        return n
      }
      for (const row of PARTS) if (row.replicas) want(row)
      mkdirSync(this.logsDir, { recursive: true })
      this.save(s)
      for (const row of startOrder()) {
        if (row.replicas) {
          const kind = row.kind as Replicated
          const n = want(row)
          await this.startReplicas(s, kind, range(1, n))
          for (const extra of replicasOf(s, kind).filter((r) => replicaIndex(r.name) > n)) await this.stopReplica(s, extra)
        } else await this.ensure(s, row)
      }
    })
    this.say(this.urls())
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

  /** The generic ensure of one (not replicated) part: started unless its recorded process still runs, then healthy. */
  private async ensure(s: State, row: PartSpec): Promise<void> {
    const c = this.ctx(s)
    const name = row.name
    const known = s.parts[name]
    const port = row.port?.(this.ports, 0) ?? 0
    const probe = row.probe?.(c, port, port)
    const started = !(known && alive(known))
    if (!started) this.say(`==> ${name}: already running (pid ${known.pid})`)
    else {
      if (port) await this.assertPortFree(port, name)
      this.say(`==> ${name}: starting${port ? ` on port ${port}` : ''}`)
      const t0 = Date.now()
      await row.prepare?.(c)
      const logFile = row.logFile?.(c) ?? join(this.logsDir, `${name}.log`)
      let id: ProcId
      if (row.start) id = identify(await row.start(c)) ?? { pid: 0 }
      else {
        const cmd = row.command!(c, 0)
        id = startDetached({ name, argv: cmd.argv, ...(cmd.env ? { env: cmd.env } : {}), cwd: ROOT, logFile })
      }
      s.parts[name] = { name, kind: row.kind, ...id, port, logFile }
      this.save(s)
      if (probe) {
        if (!(await probeOk(probe))) await waitHealthy(name, probe, { pid: id, timeoutMs: row.timeoutMs, logFile })
      } else {
        // No probe (the supervisor): alive after a second, past its imports.
        await sleep(1000)
        if (!alive(id)) throw new StackError(`${name} exited during start-up: see ${logFile}`)
      }
      this.say(`    ${name}: healthy (pid ${id.pid}, ${Date.now() - t0} ms)`)
    }
    await row.ready?.(c, started)
  }

  async assertPortFree(port: number, name: string): Promise<void> {
    if (!(await probeOk({ port }))) return
    const owner = portOwner(port) ?? 'another process'
    throw new StackError(
      `port ${port} (for ${name}) is in use by ${owner}: stop it, or run this stack on other ports with OPSDRILL_STACK_PORT_OFFSET=<n> (e.g. 1000)`,
    )
  }

  // ------------------------------------------------------------------ app replicas

  private jwtSecret(): string {
    const file = join(this.dir, 'secrets/jwt_secret')
    if (!existsSync(file)) {
      mkdirSync(join(this.dir, 'secrets'), { recursive: true, mode: 0o700 })
      writeFileSync(file, randomBytes(48).toString('base64url') + '\n', { mode: 0o600 })
      chmodSync(file, 0o600)
    }
    return readFileSync(file, 'utf8').trim()
  }

  /**
   * Starts the named replicas that are not running (in parallel) and waits until each one is ready. A replica runs
   * `release` if given, else the release it ran before, else the stack's; from its folder, with OPSDRILL_VERSION set
   * to its commit (opsdrill_build_info).
   */
  private async startReplicas(
    s: State,
    kind: Replicated,
    indexes: number[],
    overrides?: Record<string, string>,
    release?: Release,
  ): Promise<void> {
    const row = rowOf(kind)!
    const c = this.ctx(s)
    const starting: Promise<void>[] = []
    for (const i of indexes) {
      const name = `${kind}-${i}`
      const known = s.parts[name]
      if (known && alive(known)) {
        this.say(`==> ${name}: already running (pid ${known.pid})`)
        continue
      }
      const env = overrides ?? known?.env ?? {}
      const rel = release ?? known?.release ?? s.release
      const port = row.port!(this.ports, i)
      const metricsPort = row.metricsPort!(this.ports, i)
      await this.assertPortFree(port, name)
      if (metricsPort !== port) await this.assertPortFree(metricsPort, `${name} /metrics`)
      const logFile = join(this.logsDir, `${name}.log`)
      this.say(
        `==> ${name}: starting on port ${port}${metricsPort !== port ? ` (metrics ${metricsPort})` : ''}${Object.keys(env).length ? ` with ${fmtEnv(env)}` : ''}${rel ? ` from ${rel.sha.slice(0, 12)}` : ''}`,
      )
      const cmd = row.command!(c, i)
      const id = startDetached({
        name,
        argv: cmd.argv,
        env: { ...cmd.env, ...env, ...(rel ? { OPSDRILL_VERSION: rel.sha } : {}) },
        cwd: rel?.dir ?? ROOT,
        logFile,
      })
      s.parts[name] = {
        name,
        kind,
        ...id,
        port,
        metricsPort,
        logFile,
        ...(Object.keys(env).length ? { env } : {}),
        ...(rel ? { release: rel } : {}),
      }
      this.save(s)
      const t0 = Date.now()
      starting.push(
        waitHealthy(name, row.probe!(c, port, metricsPort), { pid: id, timeoutMs: row.timeoutMs, logFile }).then(() =>
          this.say(`    ${name}: ready (pid ${id.pid}, ${Date.now() - t0} ms)`),
        ),
      )
    }
    await Promise.all(starting)
  }

  private async stopReplica(s: State, part: Part): Promise<void> {
    const how = await stopPid(part, rowOf(part.name)!.graceMs)
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
    await this.exclusive('scale', async () => {
      const s = this.state()
      if (want.api !== undefined) {
        checkCount('api', want.api, 1)
        const now = replicasOf(s, 'api')
        await this.startReplicas(s, 'api', range(1, want.api), env)
        const extra = now.filter((r) => replicaIndex(r.name) > want.api!)
        await this.setUpstreams(
          s,
          replicasOf(s, 'api').filter((r) => !extra.includes(r)),
        )
        for (const r of extra) await this.stopReplica(s, r)
      }
      if (want.worker !== undefined) {
        checkCount('worker', want.worker, 0)
        await this.startReplicas(s, 'worker', range(1, want.worker), env)
        for (const r of replicasOf(s, 'worker').filter((x) => replicaIndex(x.name) > want.worker!)) await this.stopReplica(s, r)
      }
      this.writeAllTargets(s)
    })
  }

  /**
   * Restarts one replica, optionally with env overrides that it keeps until the next restart ({} clears them), and
   * optionally on another release (deploy). Brings back a replica that was killed, and one the supervisor gave up on.
   * Throws when the new process is not ready within 60 s; an API replica is then taken out of nginx.
   *
   * An API replica keeps its port and its place in nginx's upstream list, and nginx is not reloaded: a reload makes
   * the old nginx workers close their client keep-alive connections, and a POST racing that close is lost (k6 status 0,
   * the rolling-restart drill). The replica drains itself on SIGTERM (service/server.ts): in-flight requests finish with
   * `Connection: close`, and once its listener is closed nginx retries the refused connections on the other replicas
   * (safe for a POST: nothing was sent). Returns once nginx sends the new process requests again, so a rolling
   * restart never stops the next replica while this one is still held out after its refused connections.
   */
  async restartReplica(name: string, env?: Record<string, string>, release?: Release): Promise<Part> {
    const m = name.match(/^(api|worker)-(\d+)$/)
    if (!m) throw new StackError(`${name} is not a replica: use api-<n> or worker-<n> (see \`npm run stack -- status\`)`)
    const kind = m[1] as Replicated
    const index = Number(m[2])
    return this.exclusive(`restart ${name}`, async () => {
      const s = this.state()
      const part = s.parts[name]
      if (part) await this.stopReplica(s, part)
      try {
        await this.startReplicas(s, kind, [index], env ?? part?.env ?? {}, release)
      } catch (err) {
        const others = replicasOf(s, 'api').filter((r) => r.name !== name)
        if (kind === 'api' && others.length > 0) await this.setUpstreams(s, others)
        throw err
      }
      if (kind === 'api') {
        // Back in the list if a failed start took it out.
        await this.setUpstreams(s, replicasOf(s, 'api'))
        await this.untilNginxRoutesTo(s, s.parts[name]!)
      }
      this.writeAllTargets(s)
      return s.parts[name]!
    })
  }

  /**
   * Restarts every replica of a kind at once with the given env overrides ({} clears them). Faster than one by one,
   * but API replicas are all down for a moment: for use between load runs, not under traffic (restartReplica is).
   */
  async restartAll(kind: Replicated, env: Record<string, string>): Promise<void> {
    await this.exclusive(`restart all ${kind}`, async () => {
      const s = this.state()
      const parts = replicasOf(s, kind)
      await Promise.all(parts.map((p) => stopPid(p, rowOf(kind)!.graceMs)))
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
      this.writeAllTargets(s)
    })
  }

  /** How nginx balances over the API replicas. */
  balancing(): Balancing {
    return this.readState()?.balancing ?? 'least_conn'
  }

  /**
   * Sets how nginx balances over the API replicas, kept across scale and restarts until set again or the stack goes
   * down. A change reloads nginx (graceful, but a reload under traffic can cost a POST: see restartReplica), so it is
   * for between load runs.
   */
  async setBalancing(balancing: Balancing): Promise<void> {
    await this.exclusive(`balancing ${balancing}`, async () => {
      const s = this.state()
      if (balancing === 'least_conn') delete s.balancing
      else s.balancing = balancing
      this.save(s)
      await this.setUpstreams(s, replicasOf(s, 'api'))
      this.say(`==> nginx balances over the API replicas by ${balancing}`)
    })
  }

  /** Sets the release that replicas started from now on run (scale, up after a crash); undefined: the checkout. */
  async setRelease(release: Release | undefined): Promise<void> {
    await this.exclusive('set release', async () => {
      const s = this.state()
      if (release) s.release = release
      else delete s.release
      this.save(s)
    })
  }

  /**
   * Sends a signal to a recorded process (drills: SIGKILL a replica mid-run, SIGSTOP to freeze one). A replica that
   * exits is a crash: the supervisor restarts it, unless `stayDown` holds it down until the next restart or up.
   */
  async kill(name: string, sig: NodeJS.Signals = 'SIGKILL', opts: { stayDown?: boolean } = {}): Promise<boolean> {
    const signalIt = async () => {
      const s = this.state()
      const part = s.parts[name]
      if (!part) throw new StackError(`no process named ${name} in this stack (see \`npm run stack -- status\`)`)
      if (opts.stayDown) {
        part.held = true
        this.save(s)
      }
      return signal(part, sig)
    }
    // A signal alone changes nothing recorded; holding a replica down does.
    return opts.stayDown ? this.exclusive(`hold ${name}`, signalIt) : signalIt()
  }

  // ------------------------------------------------------------------ supervision

  /**
   * The supervisor's restart of a crashed replica (supervisor.ts), as `restart: unless-stopped` or a kubelet would:
   * only if `seen` is still its record and still gone. A failed restart backs off (1, 2, 4, 8 s); after
   * CRASH_LOOP_LIMIT in a row the replica is left down as a crash loop, which `status` reports.
   */
  async revive(seen: Part): Promise<void> {
    await this.exclusive(`supervisor: restart ${seen.name}`, async () => {
      const before = this.readState()?.parts[seen.name]
      if (!before || before.pid !== seen.pid || alive(before) || before.held || before.crashLoop) return
      this.say(`==> ${seen.name}: pid ${seen.pid} is gone; restarting it (try ${(before.failedStarts ?? 0) + 1})`)
      // Right after a SIGKILL the kernel may still hold the dead process's listening port for a moment.
      const until = Date.now() + 5000
      while (Date.now() < until && (await probeOk({ port: before.port }))) await sleep(100)
      let failure: string | undefined
      await this.restartReplica(seen.name).catch((err: Error) => (failure = err.message))
      const s = this.state()
      // A start that failed before it spawned (a port still held) leaves no record: keep the old one to try again.
      const now = s.parts[seen.name] ?? (failure === undefined ? undefined : (s.parts[seen.name] = { ...before }))
      if (!now) return
      if (failure === undefined) {
        Object.assign(now, { restarts: (before.restarts ?? 0) + 1 })
        this.say(`    ${seen.name}: restarted by the supervisor (pid ${now.pid})`)
      } else {
        const failed = (before.failedStarts ?? 0) + 1
        Object.assign(now, { restarts: before.restarts ?? 0, failedStarts: failed })
        if (failed >= CRASH_LOOP_LIMIT) {
          now.crashLoop = `${failed} restarts in a row failed, the last: ${failure}`
          this.say(`    ${seen.name}: crash loop, left down: ${now.crashLoop} (\`npm run stack -- restart ${seen.name}\` tries again)`)
        } else {
          now.nextTryAt = Date.now() + BACKOFF_MS * 2 ** (failed - 1)
          this.say(`    ${seen.name}: restart ${failed} failed (${failure}); next try in ${BACKOFF_MS * 2 ** (failed - 1)} ms`)
        }
      }
      this.save(s)
    })
  }

  /**
   * After a crash of `before` (a drill's kill): returns the replica the supervisor started in its place, once it is
   * back in service; fails when the supervisor is not running or gave up on it.
   */
  async revived(before: Part, timeoutMs = 90_000): Promise<Part> {
    const until = Date.now() + timeoutMs
    for (;;) {
      const parts = this.readState()?.parts ?? {}
      const now = parts[before.name]
      if (now && now.pid !== before.pid && (now.restarts ?? 0) > (before.restarts ?? 0) && alive(now)) return now
      if (now?.crashLoop) throw new StackError(`${before.name} is in a crash loop: ${now.crashLoop}`)
      if (!alive(parts.supervisor))
        throw new StackError(`no supervisor runs for the stack in ${this.dir} to restart ${before.name}: run \`npm run stack -- up\``)
      if (Date.now() > until)
        throw new StackError(
          `the supervisor did not bring ${before.name} back within ${timeoutMs / 1000} s: see ${join(this.logsDir, 'supervisor.log')}`,
        )
      await sleep(100)
    }
  }

  // ------------------------------------------------------------------ nginx and Prometheus

  private nginxTest(): void {
    const cfg = this.configs()
    mkdirSync(join(this.dir, 'nginx'), { recursive: true })
    const res = spawnSync('nginx', ['-t', '-q', '-p', `${join(this.dir, 'nginx')}/`, '-c', cfg.nginxConf, '-e', 'stderr'], {
      encoding: 'utf8',
      // The config logs to /dev/stdout, which cannot be opened on the socket Node gives a child for a pipe.
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    if (res.status !== 0) throw new StackError(`nginx rejects its config: ${res.stderr.trim().split('\n')[0]}`)
  }

  /** Writes nginx's upstream list of API replicas and reloads nginx when the list changed. */
  private async setUpstreams(s: State, apis: Part[]): Promise<void> {
    const changed = writeUpstreams(
      this.configs().upstreamFile,
      apis.map((r) => r.port),
      s.balancing,
    )
    if (changed) await this.reloadNginx(s)
  }

  /**
   * Waits until nginx answers a request from this API replica (its X-Upstream header). After refused connections
   * nginx holds a replica out for fail_timeout (5 s, targets.ts) and then tries it again.
   */
  private async untilNginxRoutesTo(s: State, part: Part): Promise<void> {
    if (!alive(s.parts.nginx)) return
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
    if (!nginx || !alive(nginx)) return
    this.nginxTest()
    signal(nginx, 'SIGHUP')
    // Callers stop a replica the old workers still knew: wait until those workers have finished their requests and
    // exited, so none of their keep-alive connections to it is reused mid-shutdown (a POST on such a connection
    // fails without a retry). Bounded; at least 1 s for the master to start the new workers.
    await sleep(1000)
    const until = Date.now() + 10_000
    while (Date.now() < until && oldNginxWorkers(nginx.pid) > 0) await sleep(200)
  }

  /** Prometheus's file_sd lists, from the table's scrape column. */
  private writeAllTargets(s: State): void {
    const cfg = this.configs()
    const jobs = new Map<PrometheusJob, Target[]>()
    for (const row of PARTS.filter((r) => r.scrape)) {
      const list = jobs.get(row.scrape!.job) ?? []
      const instances = row.replicas
        ? replicasOf(s, row.kind as Replicated).map((r) => [r.name, replicaIndex(r.name)] as const)
        : [[row.name, 0] as const]
      for (const [replica, i] of instances) list.push({ address: `127.0.0.1:${row.scrape!.port(this.ports, i)}`, replica })
      jobs.set(row.scrape!.job, list)
    }
    mkdirSync(cfg.targetsDir, { recursive: true })
    for (const [job, targets] of jobs) writeTargets(cfg.targetsDir, job, targets)
  }

  // ------------------------------------------------------------------ status and down

  async status(): Promise<PartStatus[]> {
    const s = this.readState()
    if (!s) return []
    return Promise.all(
      Object.values(s.parts).map(async (part) => {
        const running = alive(part)
        const probe = rowOf(part.name)?.probe?.(this.ctx(s), part.port, part.metricsPort ?? part.port)
        return {
          name: part.name,
          kind: part.kind,
          pid: part.pid,
          port: part.port,
          running,
          // 3 s, not waitHealthy's 1 s per try: this is one try, and an exporter's /metrics runs queries before answering.
          healthy: running && (!probe || (await probeOk(probe, 3000))),
          logFile: part.logFile,
          ...(part.release ? { release: part.release } : {}),
          restarts: part.restarts ?? 0,
          ...(part.crashLoop ? { crashLoop: part.crashLoop } : {}),
        }
      }),
    )
  }

  /** The generic stop: every process `up` started, in the reverse of the start order, then forgets them. Safe to call twice. */
  async down(): Promise<string[]> {
    if (!this.readState()) {
      this.say(`nothing to stop: no stack state in ${this.dir}`)
      return []
    }
    const stopped = await this.exclusive('down', async () => {
      const s = this.state()
      const stopped: string[] = []
      const c = this.ctx(s)
      for (const row of startOrder().reverse()) {
        const parts = Object.values(s.parts).filter((p) => rowOf(p.name) === row)
        await Promise.all(
          parts.map(async (part) => {
            const running = alive(part)
            const how = running && row.stop ? row.stop(c) : await stopPid(part, row.graceMs)
            this.say(`==> ${part.name}: ${!running || how === 'gone' ? 'was not running' : `stopped (pid ${part.pid}, ${how})`}`)
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
      return stopped
    })
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

function replicasOf(s: State | undefined, kind: Replicated): Part[] {
  return Object.values(s?.parts ?? {})
    .filter((p) => p.kind === kind)
    .sort((a, b) => replicaIndex(a.name) - replicaIndex(b.name))
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
