// One small interface between the drills and where the stack runs. `native` drives the local stack
// (ops/lib/stack) and process signals; `compose` and `k8s` are the commands an operator's machine would run
// (docker compose, kubectl), built here and unit-tested by the commands they produce: this machine has no Docker
// engine and no cluster. Faults on the data path go through toxiproxy's HTTP API, the same on every target.
import { execFileSync } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
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
  /** The process id where the platform knows it (native). */
  pid?: number
  /** API: HTTP port; native only. */
  port?: number
  /** /metrics port; native only. */
  metricsPort?: number
}

export interface Platform {
  readonly target: Target
  readonly baseUrl: string
  readonly prometheusUrl: string
  readonly toxiproxy: Toxiproxy
  replicas(kind: Kind): Replica[]
  kill(replica: string, signal: Signal): Promise<void>
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
}

// ---------------------------------------------------------------------------------------------- native

export class NativePlatform implements Platform {
  readonly target = 'native'
  readonly stack: Stack
  readonly toxiproxy: Toxiproxy
  private readonly killedPids = new Map<string, number>()

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

  async kill(replica: string, signal: Signal): Promise<void> {
    this.killedPids.set(replica, this.part(replica).pid)
    this.stack.kill(replica, signal)
  }

  /** The process last killed under this name is gone (or, without a kill since its last start, the current one). */
  gone(replica: string): boolean {
    return !alive(this.killedPids.get(replica) ?? this.part(replica).pid)
  }

  async pause(replica: string): Promise<void> {
    this.stack.kill(replica, 'SIGSTOP')
  }

  async resume(replica: string): Promise<void> {
    this.stack.kill(replica, 'SIGCONT')
  }

  async scale(want: { api?: number; worker?: number }, env?: Record<string, string>): Promise<void> {
    this.killedPids.clear()
    await this.stack.scale(want, env)
  }

  async restart(replica: string, env?: Record<string, string>): Promise<void> {
    this.killedPids.delete(replica)
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
    const pid = this.part(store).pid
    // Postgres: SIGINT is its "fast" shutdown (SIGTERM waits for every client to leave). Redis: SIGTERM saves and exits.
    this.stack.kill(store, store === 'postgres' ? 'SIGINT' : 'SIGTERM')
    const until = Date.now() + 20_000
    while (alive(pid) && Date.now() < until) await sleep(50)
    if (alive(pid)) throw new Error(`${store} (pid ${pid}) did not stop within 20 s`)
  }

  /** `up` starts whatever part of the stack is not running, here the stopped store, and keeps the rest. */
  async startStore(store: Store): Promise<void> {
    // up() also restarts any replica that is not running.
    this.killedPids.clear()
    await this.stack.up()
    if (!alive(this.part(store).pid)) throw new Error(`${store} did not start again`)
  }
}

// ---------------------------------------------------------------------------------------------- compose, k8s

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
 * docker compose (project `opsdrill`, docker-compose.yml): replica api-2 is container opsdrill-api-2, so one replica
 * gets the signal, not the whole service. Scaling keeps the others running (--no-recreate).
 */
export function composeCommands(project = 'opsdrill'): CommandSet {
  const container = (replica: string) => {
    const { kind, index } = splitReplica(replica)
    return `${project}-${SERVICE[kind]}-${index}`
  }
  const compose = ['docker', 'compose', '-p', project]
  return {
    kill: (r, sig) => ['docker', 'kill', '--signal', sig, container(r)],
    pause: (r) => ['docker', 'pause', container(r)],
    resume: (r) => ['docker', 'unpause', container(r)],
    scale: (want) => [
      [
        ...compose,
        'up',
        '-d',
        '--no-recreate',
        ...(want.api !== undefined ? ['--scale', `api=${want.api}`] : []),
        ...(want.worker !== undefined ? ['--scale', `worker=${want.worker}`] : []),
        ...(want.api !== undefined ? ['api'] : []),
        ...(want.worker !== undefined ? ['worker'] : []),
      ],
    ],
    restart: (r) => ['docker', 'restart', '--time', '15', container(r)],
    stopStore: (s) => [...compose, 'stop', s],
    startStore: (s) => [...compose, 'start', s],
  }
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

export class ComposePlatform extends CommandPlatform {
  readonly target = 'compose'
  commands: CommandSet

  constructor(opts: CommandOptions & { project?: string } = {}) {
    super(opts)
    this.commands = composeCommands(opts.project)
  }
}

export class K8sPlatform extends CommandPlatform {
  readonly target = 'k8s'
  commands: CommandSet

  constructor(opts: CommandOptions & { namespace?: string } = {}) {
    super(opts)
    this.commands = k8sCommands(opts.namespace)
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
