// One small interface between the drills and where the stack runs. `native` drives the local stack
// (ops/lib/stack) and process signals; `compose` drives a running compose project through the Docker engine
// (containers are replicas, reached on their network addresses); `k8s` is the commands an operator's machine would
// run (kubectl), built here and unit-tested by the commands they produce: this machine has no cluster. Faults on the
// data path go through toxiproxy's HTTP API, the same on every target.
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify } from 'yaml'
import { stackAt, type Part, type Stack } from '../stack/index.ts'
import { alive } from '../stack/procs.ts'
import { Toxiproxy } from './toxiproxy.ts'

export const TARGETS = ['native', 'compose', 'k8s'] as const
export type Target = (typeof TARGETS)[number]
export type Kind = 'api' | 'worker'
export type Store = 'postgres' | 'redis'
export type Signal = 'SIGTERM' | 'SIGKILL'

export interface Replica {
  name: string
  /** The process id where the platform knows it (native; compose: the container's main process, as the host sees it). */
  pid?: number
  /** Address of the replica's listeners: 127.0.0.1 when absent (native); the container's address (compose). */
  host?: string
  /** API: HTTP port. */
  port?: number
  /** /metrics port. */
  metricsPort?: number
}

/** host:port of a replica's /metrics listener, and of its API listener. */
export const metricsAddr = (r: Replica): string => `${r.host ?? '127.0.0.1'}:${r.metricsPort ?? 0}`
export const apiAddr = (r: Replica): string => `${r.host ?? '127.0.0.1'}:${r.port ?? 0}`

export interface Platform {
  readonly target: Target
  readonly baseUrl: string
  readonly prometheusUrl: string
  readonly toxiproxy: Toxiproxy
  replicas(kind: Kind): Replica[]
  /** stayDown: the replica is to stay down until restart() (an instance-down fault), not be brought back. */
  kill(replica: string, signal: Signal, opts?: { stayDown?: boolean }): Promise<void>
  /**
   * After kill(): returns once the replica runs and serves again. native: the stack's supervisor restarts it and this
   * only waits, so what a drill measures is the supervisor; compose and k8s: restarted here (`docker kill` is a
   * manual stop, which `restart: unless-stopped` leaves down).
   */
  rejoin(replica: string): Promise<void>
  pause(replica: string): Promise<void>
  resume(replica: string): Promise<void>
  /** env applies to the replicas this call starts (native; compose and k8s take env from their files). */
  scale(want: { api?: number; worker?: number }, env?: Record<string, string>): Promise<void>
  /** Restarts one replica (an API replica is drained first); env overrides stay with it until the next restart. */
  restart(replica: string, env?: Record<string, string>): Promise<void>
  /** A real stop of the store's server (not the proxy): what "Redis down" means in the drills. */
  stopStore(store: Store): Promise<void>
  startStore(store: Store): Promise<void>
  /** True once the replica's process is gone (after a kill). */
  gone(replica: string): boolean
  /** Direct URLs of the stores (not through toxiproxy) where the platform knows them, for the drills' own checks. */
  readonly databaseUrl?: string
  readonly redisUrl?: string
  readonly cacheRedisUrl?: string
  /** The log store's LogsQL API and web UI (VictoriaLogs) where this target runs one; undefined where it does not. */
  readonly logsUrl?: string
  readonly logsUiUrl?: string
  /** Why no drill can run on this target now (no engine, no cluster, no stack up), or undefined when one can. */
  unavailable?(): string | undefined
}

/** The first line of a failed command's error, for a one-line "why". */
function firstLine(err: unknown): string {
  const e = err as Error & { stderr?: string | Buffer; code?: string }
  if (e.code === 'ENOENT') return 'the command is not installed'
  return (String(e.stderr ?? '').trim() || e.message).split('\n')[0]!
}

// ---------------------------------------------------------------------------------------------- native

export class NativePlatform implements Platform {
  readonly target = 'native'
  readonly stack: Stack
  readonly toxiproxy: Toxiproxy
  /** The process last killed under each name, by identity (a pid alone may since name another process). */
  private readonly killed = new Map<string, Part>()

  constructor(stack: Stack = stackAt()) {
    this.stack = stack
    this.toxiproxy = new Toxiproxy(stack.toxiproxyUrl)
  }

  get baseUrl(): string {
    return this.stack.baseUrl
  }
  get prometheusUrl(): string {
    return this.stack.prometheusUrl
  }
  get logsUrl(): string | undefined {
    return this.stack.processes().some((p) => p.kind === 'victoria-logs') ? this.stack.logsUrl : undefined
  }
  get logsUiUrl(): string | undefined {
    return this.logsUrl && this.stack.logsUiUrl
  }

  replicas(kind: Kind): Replica[] {
    return this.stack
      .replicas(kind)
      .map((p: Part) => ({ name: p.name, pid: p.pid, port: p.port, ...(p.metricsPort ? { metricsPort: p.metricsPort } : {}) }))
  }

  private part(name: string): Part {
    const p = this.stack.processes().find((x) => x.name === name)
    if (!p) throw new Error(`no ${name} in the stack at ${this.stack.dir}`)
    return p
  }

  async kill(replica: string, signal: Signal, opts: { stayDown?: boolean } = {}): Promise<void> {
    this.killed.set(replica, this.part(replica))
    await this.stack.kill(replica, signal, opts)
  }

  async rejoin(replica: string): Promise<void> {
    const before = this.killed.get(replica) ?? this.part(replica)
    this.killed.delete(replica)
    await this.stack.revived(before)
  }

  /** The process last killed under this name is gone (or, without a kill since its last start, the current one). */
  gone(replica: string): boolean {
    return !alive(this.killed.get(replica) ?? this.part(replica))
  }

  async pause(replica: string): Promise<void> {
    await this.stack.kill(replica, 'SIGSTOP')
  }

  async resume(replica: string): Promise<void> {
    await this.stack.kill(replica, 'SIGCONT')
  }

  async scale(want: { api?: number; worker?: number }, env?: Record<string, string>): Promise<void> {
    this.killed.clear()
    await this.stack.scale(want, env)
  }

  async restart(replica: string, env?: Record<string, string>): Promise<void> {
    this.killed.delete(replica)
    // Right after a SIGKILL the kernel may still hold the dead process's listening port for a moment.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.stack.restartReplica(replica, env)
        return
      } catch (err) {
        if (attempt >= 10 || !/is in use/.test((err as Error).message)) throw err
        await sleep(500)
      }
    }
  }

  async stopStore(store: Store): Promise<void> {
    const part = this.part(store)
    // Postgres: SIGINT is its "fast" shutdown (SIGTERM waits for every client to leave). Redis: SIGTERM saves and exits.
    await this.stack.kill(store, store === 'postgres' ? 'SIGINT' : 'SIGTERM')
    const until = Date.now() + 20_000
    while (alive(part) && Date.now() < until) await sleep(50)
    if (alive(part)) throw new Error(`${store} (pid ${part.pid}) did not stop within 20 s`)
  }

  /** `up` starts whatever part of the stack is not running, here the stopped store, and keeps the rest. */
  async startStore(store: Store): Promise<void> {
    // up() also restarts any replica that is not running.
    this.killed.clear()
    await this.stack.up()
    if (!alive(this.part(store))) throw new Error(`${store} did not start again`)
  }
}

// ---------------------------------------------------------------------------------------------- compose

interface Inspected {
  Id: string
  Name: string
  State: { Running: boolean; Pid: number; Health?: { Status: string } }
  Config: { Env: string[] | null; Labels: Record<string, string> }
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null>; Networks: Record<string, { IPAddress: string }> }
}

interface Container {
  name: string
  service: string
  number: number
  running: boolean
  pid: number
  /** healthy, unhealthy, starting; undefined without a healthcheck. */
  health?: string
  ip: string
  env: Record<string, string>
  ports: Inspected['NetworkSettings']['Ports']
}

const dockerFailed = (args: string[], err: unknown) => {
  const e = err as Error & { stderr?: string }
  return new Error(`docker ${args.join(' ')}: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' | ')}`, { cause: err })
}

/** A quick docker command (ps, inspect, kill): run synchronously, so `replicas()` and the like stay synchronous. */
function docker(args: string[]): string {
  try {
    return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
  } catch (err) {
    throw dockerFailed(args, err)
  }
}

/**
 * `docker inspect` of containers listed a moment before: one removed in between (a scale-down under way beside this
 * call) is left out, as `docker inspect` itself prints the others and fails with "No such object" for it.
 */
export function inspectListed(ids: string[]): Inspected[] {
  try {
    return JSON.parse(docker(['inspect', ...ids])) as Inspected[]
  } catch (err) {
    const out = ((err as Error & { cause?: { stdout?: string } }).cause?.stdout ?? '').trim()
    if (/No such object/.test((err as Error).message) && out.startsWith('[')) return JSON.parse(out) as Inspected[]
    throw err
  }
}

const execFileAsync = promisify(execFile)
/**
 * A docker command that takes seconds (`compose up --wait`, restart, stop): run without blocking the event loop, so
 * what else runs in the process goes on meanwhile. A synchronous `compose up` of the api service stalled the
 * autoscaler's worker controller until its Prometheus query timed out ("worker: The operation was aborted").
 */
async function dockerAwait(args: string[]): Promise<string> {
  try {
    return (await execFileAsync('docker', args, { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 })).stdout.trim()
  } catch (err) {
    throw dockerFailed(args, err)
  }
}

export interface ComposeOptions {
  /** Compose project; default COMPOSE_PROJECT_NAME, else opsdrill (the name in docker-compose.yml). */
  project?: string
  /** Compose files, as `up` was given them; default COMPOSE_FILE (colon-separated), else docker-compose.yml. */
  files?: string[]
}

/**
 * A running compose project, through the Docker engine. Replica api-2 is the api container numbered 2, reached on its
 * address in the project network (the host routes to it; the api and worker publish no port). Faults go to one
 * container (docker kill, restart, stop); scaling and env overrides go through `docker compose up`, so nginx and
 * Prometheus find the replicas by service name as they do for users. An env override recreates the service's
 * containers with one more compose file holding it.
 */
export class ComposePlatform implements Platform {
  readonly target = 'compose'
  readonly project: string
  readonly files: string[]
  private readonly killedPids = new Map<string, number>()
  private readonly overrides = new Map<Kind, Record<string, string>>()
  private toxi?: Toxiproxy

  constructor(opts: ComposeOptions = {}) {
    this.project = opts.project ?? process.env.COMPOSE_PROJECT_NAME ?? 'opsdrill'
    this.files = opts.files ?? (process.env.COMPOSE_FILE ?? 'docker-compose.yml').split(':').filter(Boolean)
  }

  /** Every container of the project's services (one-off `run` containers excluded), or of one service. */
  containers(service?: string): Container[] {
    const filters = ['project=' + this.project, 'oneoff=False', ...(service ? ['service=' + service] : [])]
    const ids = docker(['ps', '-aq', ...filters.flatMap((f) => ['--filter', `label=com.docker.compose.${f}`])])
      .split('\n')
      .filter(Boolean)
    if (ids.length === 0) return []
    return inspectListed(ids)
      .map((c) => ({
        name: c.Name.replace(/^\//, ''),
        service: c.Config.Labels['com.docker.compose.service']!,
        number: Number(c.Config.Labels['com.docker.compose.container-number']),
        running: c.State.Running,
        pid: c.State.Pid,
        ...(c.State.Health ? { health: c.State.Health.Status } : {}),
        ip: Object.values(c.NetworkSettings.Networks)[0]?.IPAddress ?? '',
        env: Object.fromEntries((c.Config.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
        ports: c.NetworkSettings.Ports,
      }))
      .sort((a, b) => a.number - b.number)
  }

  unavailable(): string | undefined {
    try {
      docker(['version', '--format', '{{.Server.Version}}'])
    } catch (err) {
      return `no Docker engine answers (${firstLine((err as Error).cause ?? err)})`
    }
    if (!this.containers('nginx').some((c) => c.running)) {
      return `compose project ${this.project} is not up (no running nginx): docker compose -p ${this.project} up -d --wait`
    }
    return undefined
  }

  /** A replica (api-2) or a single-container service (redis). */
  private container(name: string): Container {
    const m = name.match(/^(.+)-(\d+)$/)
    const [service, number] = m ? [m[1]!, Number(m[2])] : [name, 1]
    const c = this.containers(service).find((x) => x.number === number)
    if (!c) throw new Error(`no ${name} in compose project ${this.project} (is it up? docker compose -p ${this.project} ps)`)
    return c
  }

  private hostUrl(service: string, port: number): string {
    const binding = this.container(service).ports[`${port}/tcp`]?.[0]
    if (!binding) throw new Error(`${service} publishes no host port for ${port} in compose project ${this.project}`)
    return `http://${binding.HostIp === '0.0.0.0' || binding.HostIp === '' ? '127.0.0.1' : binding.HostIp}:${binding.HostPort}`
  }

  get baseUrl(): string {
    return this.hostUrl('nginx', 8080)
  }
  get prometheusUrl(): string {
    return this.hostUrl('prometheus', 9090)
  }
  /** VictoriaLogs where the project runs it (profile victorialogs, or logs on local images); not Elasticsearch. */
  get logsUrl(): string | undefined {
    return this.containers('victorialogs').length > 0 ? this.hostUrl('victorialogs', 9428) : undefined
  }
  get logsUiUrl(): string | undefined {
    const url = this.logsUrl
    return url && `${url}/select/vmui/`
  }
  get toxiproxy(): Toxiproxy {
    const url = this.hostUrl('toxiproxy', 8474)
    if (this.toxi?.url !== url) this.toxi = new Toxiproxy(url)
    return this.toxi
  }
  get databaseUrl(): string {
    const c = this.container('postgres')
    const { POSTGRES_USER: user = 'postgres', POSTGRES_PASSWORD: pw = '', POSTGRES_DB: db = user } = c.env
    return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(pw)}@${c.ip}:5432/${db}`
  }
  get redisUrl(): string {
    return `redis://${this.container('redis').ip}:6379`
  }
  get cacheRedisUrl(): string {
    return `redis://${this.container('redis-cache').ip}:6379`
  }

  replicas(kind: Kind): Replica[] {
    return this.containers(kind).map((c) => ({
      name: `${kind}-${c.number}`,
      pid: c.pid,
      host: c.ip,
      ...(c.env.PORT && kind === 'api' ? { port: Number(c.env.PORT) } : {}),
      ...(c.env.METRICS_PORT ? { metricsPort: Number(c.env.METRICS_PORT) } : {}),
    }))
  }

  async kill(replica: string, signal: Signal): Promise<void> {
    this.killedPids.set(replica, this.container(replica).pid)
    docker(['kill', '--signal', signal, this.container(replica).name])
  }

  async rejoin(replica: string): Promise<void> {
    await this.restart(replica)
  }

  /** The container last killed under this name has stopped, or runs another process (the engine restarted it). */
  gone(replica: string): boolean {
    const c = this.container(replica)
    return !c.running || c.pid !== (this.killedPids.get(replica) ?? c.pid)
  }

  async pause(replica: string): Promise<void> {
    docker(['pause', this.container(replica).name])
  }

  async resume(replica: string): Promise<void> {
    docker(['unpause', this.container(replica).name])
  }

  async scale(want: { api?: number; worker?: number }, env?: Record<string, string>): Promise<void> {
    const kinds = (['api', 'worker'] as const).filter((k) => want[k] !== undefined)
    const removed = kinds.some((k) => this.containers(k).length > want[k]!)
    // Recreated only when the env changes: the autoscaler passes the same env at every step, and recreating the
    // running replicas to add one took the whole api service down for 6 s mid-spike (502s).
    let changed = false
    if (env) for (const k of kinds) changed = this.setOverride(k, env) || changed
    this.killedPids.clear()
    await this.up(kinds, want, changed)
    // nginx re-resolves `api` every 5 s (nginx/upstreams.compose): until then it may still pick a removed replica.
    if (removed && kinds.includes('api')) await sleep(6000)
  }

  /** Restarts one replica with its grace period, or, when env changes its overrides, recreates its service's containers. */
  async restart(replica: string, env?: Record<string, string>): Promise<void> {
    const kind = replica.replace(/-\d+$/, '') as Kind
    this.killedPids.delete(replica)
    if (env !== undefined && this.setOverride(kind, env)) {
      this.killedPids.clear()
      await this.up([kind], { [kind]: this.containers(kind).length }, true)
      return
    }
    await dockerAwait(['restart', this.container(replica).name])
    await this.healthy(replica)
    if (kind === 'api') await this.untilNginxRoutesTo(replica)
  }

  /**
   * Returns once nginx sends the restarted replica a request again. nginx took it out for fail_timeout (5 s) after
   * its refused connections and learns its address again only at its next DNS lookup (valid=5s): a rolling restart
   * that stopped the next replica before then left nginx with no live upstream (the rolling-restart drill's 502s).
   */
  private async untilNginxRoutesTo(replica: string, timeoutSec = 15): Promise<void> {
    const c = this.container(replica)
    const want = `${c.ip}:${c.env.PORT ?? 3000}`
    const until = Date.now() + timeoutSec * 1000
    while (Date.now() < until) {
      const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
      await res?.arrayBuffer()
      // One address per upstream tried ("a, b" after a retry): the last one answered.
      if (res?.headers.get('x-upstream')?.split(', ').at(-1) === want) return
      await sleep(100)
    }
    throw new Error(
      `${c.name} is healthy, but nginx sent it no request within ${timeoutSec} s: docker logs ${this.container('nginx').name}`,
    )
  }

  async stopStore(store: Store): Promise<void> {
    await dockerAwait(['stop', this.container(store).name])
  }

  async startStore(store: Store): Promise<void> {
    await dockerAwait(['start', this.container(store).name])
    await this.healthy(store)
  }

  /** Records the env override of a service; true when it changed. */
  private setOverride(kind: Kind, env: Record<string, string>): boolean {
    const before = JSON.stringify(this.overrides.get(kind) ?? {})
    if (Object.keys(env).length > 0) this.overrides.set(kind, env)
    else this.overrides.delete(kind)
    return JSON.stringify(this.overrides.get(kind) ?? {}) !== before
  }

  /** `docker compose up` for some services at a scale, with the env overrides as one more compose file. */
  private async up(kinds: readonly Kind[], scale: { api?: number; worker?: number }, recreate: boolean): Promise<void> {
    const files = [...this.files]
    if (this.overrides.size > 0) {
      const file = join(mkdtempSync(join(tmpdir(), 'opsdrill-compose-')), 'env-overrides.yml')
      const services = Object.fromEntries([...this.overrides].map(([k, env]) => [k, { environment: env }]))
      writeFileSync(file, stringify({ services }))
      files.push(file)
    }
    const args = ['compose', '-p', this.project, ...files.flatMap((f) => ['-f', f]), 'up', '-d', '--wait', '--no-deps', '--no-build']
    args.push(recreate ? '--force-recreate' : '--no-recreate')
    for (const k of kinds) args.push('--scale', `${k}=${scale[k]}`)
    await dockerAwait([...args, ...kinds])
  }

  /**
   * Up again: an app replica once its own /healthz answers (at once, not at the engine's next healthcheck interval,
   * which would slow every restart by up to 5 s), a store once the engine reports it healthy.
   */
  private async healthy(name: string, timeoutSec = 60): Promise<void> {
    const until = Date.now() + timeoutSec * 1000
    for (;;) {
      const c = this.container(name)
      const probe = c.env.HEALTHCHECK_PORT ?? c.env.METRICS_PORT
      if (c.running && probe) {
        const ok = await fetch(`http://${c.ip}:${probe}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
          (r) => r.ok,
          () => false,
        )
        if (ok) return
      } else if (c.running && (c.health === undefined || c.health === 'healthy')) return
      if (Date.now() > until) throw new Error(`${c.name} is not healthy ${timeoutSec} s after its start (${c.health ?? 'not running'})`)
      await sleep(200)
    }
  }
}

// ---------------------------------------------------------------------------------------------- k8s

/** Runs one command line; the default executes it, tests pass a recorder. */
export type Runner = (argv: string[]) => Promise<void>

export const execRunner: Runner = async (argv) => {
  execFileSync(argv[0]!, argv.slice(1), { stdio: 'inherit' })
}

interface CommandOptions {
  run?: Runner
  baseUrl?: string
  prometheusUrl?: string
  toxiproxyUrl?: string
}

abstract class CommandPlatform implements Platform {
  abstract readonly target: Target
  readonly baseUrl: string
  readonly prometheusUrl: string
  readonly toxiproxy: Toxiproxy
  protected readonly run: Runner

  constructor(opts: CommandOptions) {
    this.run = opts.run ?? execRunner
    this.baseUrl = opts.baseUrl ?? 'http://127.0.0.1:8080'
    this.prometheusUrl = opts.prometheusUrl ?? 'http://127.0.0.1:9090'
    this.toxiproxy = new Toxiproxy(opts.toxiproxyUrl ?? 'http://127.0.0.1:8474')
  }

  abstract commands: CommandSet

  replicas(_kind: Kind): Replica[] {
    return []
  }
  gone(_replica: string): boolean {
    return false
  }
  async kill(replica: string, signal: Signal): Promise<void> {
    await this.run(this.commands.kill(replica, signal))
  }
  async rejoin(replica: string): Promise<void> {
    await this.restart(replica)
  }
  async pause(replica: string): Promise<void> {
    await this.run(this.commands.pause(replica))
  }
  async resume(replica: string): Promise<void> {
    await this.run(this.commands.resume(replica))
  }
  async scale(want: { api?: number; worker?: number }): Promise<void> {
    for (const argv of this.commands.scale(want)) await this.run(argv)
  }
  async restart(replica: string): Promise<void> {
    await this.run(this.commands.restart(replica))
  }
  async stopStore(store: Store): Promise<void> {
    await this.run(this.commands.stopStore(store))
  }
  async startStore(store: Store): Promise<void> {
    await this.run(this.commands.startStore(store))
  }
}

export interface CommandSet {
  kill(replica: string, signal: Signal): string[]
  pause(replica: string): string[]
  resume(replica: string): string[]
  scale(want: { api?: number; worker?: number }): string[][]
  restart(replica: string): string[]
  stopStore(store: Store): string[]
  startStore(store: Store): string[]
}

const SERVICE: Record<Kind, string> = { api: 'api', worker: 'worker' }

function splitReplica(replica: string): { kind: Kind; index: number } {
  const m = replica.match(/^(api|worker)-(\d+)$/)
  if (!m) throw new Error(`${replica} is not a replica name (api-<n> or worker-<n>)`)
  return { kind: m[1] as Kind, index: Number(m[2]) }
}

/**
 * Kubernetes (namespace `opsdrill`, k8s/base): a replica is a pod, named here by its ordinal among the
 * deployment's pods (api-1 = the first pod of opsdrill-api by name), resolved when the command runs.
 * A SIGTERM is a pod delete (the kubelet sends SIGTERM, then SIGKILL after terminationGracePeriodSeconds);
 * a SIGKILL is a forced delete with no grace. Pause has no Kubernetes verb: SIGSTOP to PID 1 in the container.
 */
export function k8sCommands(namespace = 'opsdrill'): CommandSet {
  const kubectl = ['kubectl', '-n', namespace]
  const pod = (replica: string) => {
    const { kind, index } = splitReplica(replica)
    // Pod names are generated; this shell snippet picks the index-th pod of the deployment.
    return `$(kubectl -n ${namespace} get pods -l app.kubernetes.io/name=opsdrill-${SERVICE[kind]} -o name | sed -n ${index}p)`
  }
  const sh = (cmd: string) => ['sh', '-c', cmd]
  const storeKind: Record<Store, string> = { postgres: 'statefulset/postgres', redis: 'deployment/redis' }
  return {
    kill: (r, sig) => sh(`${kubectl.join(' ')} delete ${pod(r)}${sig === 'SIGKILL' ? ' --grace-period=0 --force' : ''} --wait=false`),
    pause: (r) => sh(`${kubectl.join(' ')} exec ${pod(r)} -- kill -STOP 1`),
    resume: (r) => sh(`${kubectl.join(' ')} exec ${pod(r)} -- kill -CONT 1`),
    scale: (want) => [
      ...(want.api !== undefined ? [[...kubectl, 'scale', 'deployment/opsdrill-api', `--replicas=${want.api}`]] : []),
      ...(want.worker !== undefined ? [[...kubectl, 'scale', 'deployment/opsdrill-worker', `--replicas=${want.worker}`]] : []),
    ],
    restart: (r) => sh(`${kubectl.join(' ')} delete ${pod(r)} --wait=true`),
    stopStore: (s) => [...kubectl, 'scale', storeKind[s], '--replicas=0'],
    startStore: (s) => [...kubectl, 'scale', storeKind[s], '--replicas=1'],
  }
}

export class K8sPlatform extends CommandPlatform {
  readonly target = 'k8s'
  commands: CommandSet

  constructor(opts: CommandOptions & { namespace?: string } = {}) {
    super(opts)
    this.commands = k8sCommands(opts.namespace)
  }

  unavailable(): string | undefined {
    try {
      execFileSync('kubectl', ['cluster-info', '--request-timeout=5s'], { stdio: ['ignore', 'pipe', 'pipe'] })
      return undefined
    } catch (err) {
      return `no Kubernetes cluster answers (kubectl cluster-info: ${firstLine(err)})`
    }
  }
}

export function platformFor(target: Target, stack?: Stack): Platform {
  switch (target) {
    case 'native':
      return new NativePlatform(stack)
    case 'compose':
      return new ComposePlatform()
    case 'k8s':
      return new K8sPlatform({ toxiproxyUrl: process.env.TOXIPROXY_URL ?? 'http://127.0.0.1:8474' })
  }
}
