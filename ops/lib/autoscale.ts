// The k8s autoscaling rules, applied to a running stack: the HPA of k8s/base/api.yaml (CPU) for API replicas and the
// KEDA ScaledObject of k8s/base/worker.yaml (clicks wait-list length) for workers, read from the manifests themselves
// so both places keep the same minimum, maximum, target and windows. Metrics come from the stack's Prometheus (the
// replicas' own CPU counter and the worker's queue gauge); replicas change through the Platform interface, as the
// drills change them. `npm run stack -- autoscale` runs it in the foreground.
//
// The controllers' arithmetic, as Kubernetes documents it:
//   HPA  desired = ceil(current * utilization / target), no change within a 10% tolerance; scale-up at most
//        max(double, +4) per period; scale-down takes the highest recommendation of the stabilization window.
//        https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details
//   KEDA desired = ceil(listLength / target) once the list passes activationListLength, else the minimum; KEDA hands
//        the result to an HPA, whose default scale-down stabilization (300 s) applies: cooldownPeriod only governs
//        scaling to zero, which a minimum of 1 rules out. https://keda.sh/docs/latest/concepts/scaling-deployments/
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseAllDocuments } from 'yaml'
import type { Platform } from './drills/platform.ts'
import { queryScalar, queryVector } from './stack/prometheus.ts'

const ROOT = resolve(import.meta.dirname, '../..')
/** The HPA's default tolerance and scale-down window (a KEDA-made HPA keeps both). */
const HPA_TOLERANCE = 0.1
const HPA_DEFAULT_SCALE_DOWN_WINDOW_SEC = 300
/** kube-controller-manager's --horizontal-pod-autoscaler-sync-period default. */
const HPA_SYNC_SEC = 15

export interface ApiRule {
  min: number
  max: number
  /** averageUtilization / 100 */
  targetUtilization: number
  /** The container's CPU request in cores: utilization is CPU used over it. */
  cpuRequest: number
  scaleDownWindowSec: number
  periodSec: number
}
export interface WorkerRule {
  min: number
  max: number
  listLength: number
  activationListLength: number
  scaleDownWindowSec: number
  periodSec: number
}
export interface Rules {
  api: ApiRule
  worker: WorkerRule
}

type Doc = Record<string, unknown> & { kind?: string; spec?: Record<string, unknown> }
const docs = (file: string): Doc[] => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Doc)
const get = (o: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((x, k) => (x === undefined || x === null ? undefined : (x as Record<string, unknown>)[k]), o)

function cores(q: string | number): number {
  const s = String(q)
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s)
}

/** The rules as the k8s base manifests give them. */
export function readRules(dir = join(ROOT, 'k8s/base')): Rules {
  const api = docs(join(dir, 'api.yaml'))
  const hpa = api.find((d) => d.kind === 'HorizontalPodAutoscaler')
  const deployment = api.find((d) => d.kind === 'Deployment')
  const cpu = (get(hpa, 'spec.metrics') as Doc[] | undefined)?.find((m) => get(m, 'resource.name') === 'cpu')
  const containers = get(deployment, 'spec.template.spec.containers') as Doc[] | undefined
  const request = get(containers?.find((c) => c.name === 'api') ?? containers?.[0], 'resources.requests.cpu')
  const scaled = docs(join(dir, 'worker.yaml')).find((d) => d.kind === 'ScaledObject')
  const trigger = (get(scaled, 'spec.triggers') as Doc[] | undefined)?.find((x) => x.type === 'redis')
  const rules: Rules = {
    api: {
      min: Number(get(hpa, 'spec.minReplicas') ?? 1),
      max: Number(get(hpa, 'spec.maxReplicas')),
      targetUtilization: Number(get(cpu, 'resource.target.averageUtilization')) / 100,
      cpuRequest: cores(request as string),
      scaleDownWindowSec: Number(get(hpa, 'spec.behavior.scaleDown.stabilizationWindowSeconds') ?? HPA_DEFAULT_SCALE_DOWN_WINDOW_SEC),
      periodSec: HPA_SYNC_SEC,
    },
    worker: {
      min: Number(get(scaled, 'spec.minReplicaCount') ?? 0),
      max: Number(get(scaled, 'spec.maxReplicaCount') ?? 100),
      listLength: Number(get(trigger, 'metadata.listLength') ?? 5),
      activationListLength: Number(get(trigger, 'metadata.activationListLength') ?? 0),
      scaleDownWindowSec: Number(
        get(scaled, 'spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds') ??
          HPA_DEFAULT_SCALE_DOWN_WINDOW_SEC,
      ),
      periodSec: Number(get(scaled, 'spec.pollingInterval') ?? 30),
    },
  }
  for (const [kind, r] of Object.entries(rules))
    for (const [k, v] of Object.entries(r))
      if (!Number.isFinite(v)) throw new Error(`k8s/base: the ${kind} autoscaling rule has no usable ${k} (read ${String(v)})`)
  return rules
}

/** HPA: the replica count CPU utilization asks for (before stabilization and rate limits). */
export function hpaDesired(rule: ApiRule, current: number, utilization: number): number {
  const ratio = utilization / rule.targetUtilization
  if (Math.abs(ratio - 1) <= HPA_TOLERANCE) return current
  return Math.ceil(current * ratio)
}

/** KEDA redis-lists: the worker count a wait list of `length` jobs asks for. */
export function kedaDesired(rule: WorkerRule, length: number): number {
  if (length <= rule.activationListLength) return rule.min
  return Math.ceil(length / rule.listLength)
}

/**
 * One controller's memory: recommendations over the scale-down window (the highest wins, so a dip does not remove
 * replicas a returning load needs), and the scale-up limit per period (double or +4, whichever is more).
 */
export class Stabilizer {
  private readonly history: { at: number; n: number }[] = []
  private readonly min: number
  private readonly max: number
  private readonly windowSec: number
  constructor(min: number, max: number, windowSec: number) {
    this.min = min
    this.max = max
    this.windowSec = windowSec
  }

  next(now: number, current: number, desired: number): number {
    const clamped = Math.min(this.max, Math.max(this.min, desired))
    this.history.push({ at: now, n: clamped })
    while (this.history.length && this.history[0]!.at < now - this.windowSec * 1000) this.history.shift()
    const upLimit = Math.max(current * 2, current + 4)
    if (clamped > current) return Math.min(clamped, upLimit, this.max)
    return Math.max(clamped, ...this.history.map((h) => h.n))
  }
}

export interface Decision {
  at: number
  kind: 'api' | 'worker'
  from: number
  to: number
  /** The metric the decision read: average CPU utilization of the API replicas, or the clicks wait-list length. */
  metric: number
}

export interface AutoscalerOptions {
  platform: Platform
  rules?: Rules
  /** Env for the API replicas it starts (e.g. the overrides the running ones have). */
  apiEnv?: Record<string, string>
  /** Overrides the manifests' scale-down windows (seconds), for a run that must end within minutes; reported. */
  scaleDownWindowSec?: number
  /** Overrides both periods (seconds); the default is the HPA's sync period and KEDA's pollingInterval. */
  periodSec?: number
  log?: (line: string) => void
  onDecision?: (d: Decision) => void
}

/** Average CPU utilization of the API replicas over their request, from their own CPU counter (20 s rate). */
export async function apiUtilization(prometheusUrl: string, cpuRequest: number): Promise<number | undefined> {
  const v = await queryVector(prometheusUrl, 'rate(opsdrill_process_cpu_seconds_total{job="opsdrill-api"}[20s])')
  if (v.length === 0) return undefined
  return v.reduce((a, s) => a + s.value, 0) / v.length / cpuRequest
}

/** Jobs waiting on the clicks queue, as the worker's gauge reports it (KEDA reads the same list in Redis). */
export async function clicksWaiting(prometheusUrl: string): Promise<number> {
  return queryScalar(prometheusUrl, 'max(opsdrill_queue_jobs{queue="clicks",state="waiting"})')
}

/** Runs both controllers until `signal` aborts; returns every change it made. */
export async function autoscale(o: AutoscalerOptions, signal: AbortSignal): Promise<Decision[]> {
  const rules = o.rules ?? readRules()
  const say = o.log ?? ((l: string) => process.stdout.write(`${l}\n`))
  const p = o.platform
  const period = (own: number) => (o.periodSec ?? own) * 1000
  const api = new Stabilizer(rules.api.min, rules.api.max, o.scaleDownWindowSec ?? rules.api.scaleDownWindowSec)
  const worker = new Stabilizer(rules.worker.min, rules.worker.max, o.scaleDownWindowSec ?? rules.worker.scaleDownWindowSec)
  const decisions: Decision[] = []
  say(
    `autoscale: API ${rules.api.min}-${rules.api.max} replicas at ${rules.api.targetUtilization * 100}% of ${rules.api.cpuRequest} core, ` +
      `workers ${rules.worker.min}-${rules.worker.max} at ${rules.worker.listLength} waiting jobs each; scale-down windows ` +
      `${o.scaleDownWindowSec ?? rules.api.scaleDownWindowSec} s (API) and ${o.scaleDownWindowSec ?? rules.worker.scaleDownWindowSec} s (workers)` +
      `${o.scaleDownWindowSec !== undefined ? ' (overridden; the manifests say ' + `${rules.api.scaleDownWindowSec} and ${rules.worker.scaleDownWindowSec})` : ''}`,
  )
  // One change at a time: the native stack keeps its state in one file.
  let busy = Promise.resolve()
  const change = (kind: 'api' | 'worker', from: number, to: number, metric: number) =>
    (busy = busy.then(async () => {
      const d: Decision = { at: Date.now(), kind, from, to, metric }
      say(
        `autoscale: ${kind} ${from} -> ${to} (${kind === 'api' ? `CPU ${(metric * 100).toFixed(0)}% of request` : `${metric} jobs waiting`})`,
      )
      await p.scale({ [kind]: to }, kind === 'api' ? o.apiEnv : undefined)
      decisions.push(d)
      o.onDecision?.(d)
    }))
  const loop = async (kind: 'api' | 'worker', every: number, step: () => Promise<void>) => {
    while (!signal.aborted) {
      try {
        await step()
      } catch (err) {
        say(`autoscale: ${kind}: ${(err as Error).message}`)
      }
      await sleep(every, undefined, { signal }).catch(() => undefined)
    }
  }
  // Both minimums hold from the start, as a controller enforces them on its first sync.
  const apiNow = p.replicas('api').length
  if (apiNow < rules.api.min) await change('api', apiNow, rules.api.min, 0)
  await Promise.all([
    loop('api', period(rules.api.periodSec), async () => {
      const current = p.replicas('api').length
      const u = await apiUtilization(p.prometheusUrl, rules.api.cpuRequest)
      if (u === undefined) return
      const to = api.next(Date.now(), current, hpaDesired(rules.api, current, u))
      if (to !== current && !signal.aborted) await change('api', current, to, u)
    }),
    loop('worker', period(rules.worker.periodSec), async () => {
      const current = p.replicas('worker').length
      const waiting = await clicksWaiting(p.prometheusUrl)
      const to = worker.next(Date.now(), current, kedaDesired(rules.worker, waiting))
      if (to !== current && !signal.aborted) await change('worker', current, to, waiting)
    }),
  ])
  return decisions
}

/** `npm run stack -- autoscale [--scale-down-window S] [--period S]`: runs until Ctrl-C (SIGINT) or SIGTERM. */
export async function autoscaleCli(platform: Platform, args: string[]): Promise<void> {
  const opts: AutoscalerOptions = { platform }
  for (let i = 0; i < args.length; i++) {
    const [flag, value] = [args[i]!, args[i + 1]]
    const n = Number(value)
    if ((flag === '--scale-down-window' || flag === '--period') && value !== undefined && Number.isFinite(n) && n > 0) {
      if (flag === '--period') opts.periodSec = n
      else opts.scaleDownWindowSec = n
      i++
    } else throw new Error(`cannot read "${flag}${value ? ` ${value}` : ''}": expected --scale-down-window <seconds> or --period <seconds>`)
  }
  if (platform.replicas('api').length === 0) throw new Error('no API replica is running: start the stack first (npm run stack -- up)')
  const stop = new AbortController()
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort())
  await autoscale(opts, stop.signal)
}
