// What one more replica buys, measured the same way by `npm run load -- scaling|breakpoint` and the scale-out drill:
// the login breakpoint (loadtests/scenarios/breakpoint.ts) against N API replicas, each held to the CPU the k8s
// manifests give a pod; and the time N workers take to drain a click backlog at their default concurrency.
import { clicksQueue, timeDrain } from './backlog.ts'
import { limitCpu } from './cpu-limit.ts'
import { cpuBusy, cpuTicks, serverCpuSeconds } from './cpu.ts'
import type { Platform, Replica } from './drills/platform.ts'
import { maxSustained, runK6, type K6Result } from './k6.ts'

/**
 * API env for a capacity run: every login here comes from one client address and one account, so the login rate
 * limits are raised past anything the ramp reaches.
 */
export const CAPACITY_API_ENV = { RATE_LIMIT_AUTH_MAX: '1000000', RATE_LIMIT_AUTH_ACCOUNT_MAX: '1000000' }
/**
 * Each replica's CPU in a capacity run: k8s/base/api.yaml's `requests.cpu: 500m`, what Kubernetes guarantees a pod
 * on a busy node (and what the HPA's 70% is of). Without a quota one replica takes both cores of a 2-core box
 * (argon2id runs on libuv's 4 threads) and a second has nothing to add; at 1 core each, two replicas plus k6, nginx,
 * Postgres and Redis need more than the box has (x1.6-1.65 in the runs here not disturbed by other work).
 */
export const REPLICA_CORES = 0.5
/** The API latency objective the capacity is read against (loadtests/lib/thresholds.ts, apiP99Ms). */
export const API_P99_SLO_MS = 500

/**
 * CPU seconds one login costs an API replica on this box: a fresh account, 10 logins to warm the route up, then `n`
 * logins in `concurrency` parallel streams straight to the replica, with its process CPU read before and after (11.5
 * ms here, the same one at a time or 4 or 8 at once). The login rates of the capacity ramp and the autoscale spike are
 * sized from it, because a fixed rate holds on one box only: a CI box that served the whole fixed 100/s ramp with 2
 * replicas also never passed the HPA target with the fixed 80/s spike.
 */
export async function loginCpuSeconds(replica: Replica, n = 40, concurrency = 4): Promise<number> {
  if (!replica.pid) throw new Error(`replica ${replica.name} has no pid to measure a login on`)
  const api = replicaApi(replica)
  await api.post('/api/v1/auth/register', 202, api.creds)
  for (let i = 0; i < 10; i++) await api.post('/api/v1/auth/login', 200, api.creds)
  const before = serverCpuSeconds(replica.pid)
  const stream = async () => {
    for (let i = 0; i < n / concurrency; i++) await api.post('/api/v1/auth/login', 200, api.creds)
  }
  await Promise.all(Array.from({ length: concurrency }, stream))
  return (serverCpuSeconds(replica.pid) - before) / (Math.ceil(n / concurrency) * concurrency)
}

/** Calls straight to one replica, bypassing nginx, as a fresh calibration account. */
function replicaApi(replica: Replica) {
  if (!replica.port) throw new Error(`replica ${replica.name} has no port to calibrate on`)
  const base = `http://${replica.host ?? '127.0.0.1'}:${replica.port}`
  const creds = {
    email: `calibrate-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`,
    password: 'correct-horse-battery-staple',
  }
  /** POSTs `body` as JSON and returns the parsed answer, or throws naming the replica when the status is not `want`. */
  const post = async (path: string, want: number, body: unknown, token?: string) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    })
    const text = await res.text()
    if (res.status !== want) throw new Error(`${path} on ${replica.name} answered ${res.status}, not ${want}: ${text.slice(0, 200)}`)
    return JSON.parse(text || '{}') as Record<string, string>
  }
  return { base, creds, post }
}

/** A fresh account's short link on one replica, created straight on it, and a way to follow it there. */
export async function calibrationLink(replica: Replica): Promise<{ code: string; follow: () => Promise<number> }> {
  const api = replicaApi(replica)
  await api.post('/api/v1/auth/register', 202, api.creds)
  const { accessToken } = await api.post('/api/v1/auth/login', 200, api.creds)
  const { code } = await api.post('/api/v1/links', 201, { url: 'https://example.com/calibrate' }, accessToken)
  const follow = async () => {
    const res = await fetch(`${api.base}/${code!}`, { redirect: 'manual', signal: AbortSignal.timeout(10_000) })
    await res.arrayBuffer()
    return res.status
  }
  return { code: code!, follow }
}

/**
 * Redirects a second `follow` gets answered with 302 over `sec` seconds, from `concurrency` streams that each send the
 * next as soon as the last is answered: what the replica serves saturated. Other answers are counted apart.
 */
export async function saturatedRate(follow: () => Promise<number>, sec: number, concurrency = 16): Promise<{ rps: number; other: number }> {
  const until = performance.now() + sec * 1000
  let [ok, other] = [0, 0]
  const t0 = performance.now()
  const stream = async () => {
    while (performance.now() < until) {
      if ((await follow().catch(() => 0)) === 302) ok++
      else other++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, stream))
  return { rps: ok / ((performance.now() - t0) / 1000), other }
}

export interface HeldReplica {
  /** The quota found, and the redirects a second the replica served saturated under it (the last probe). */
  cores: number
  rps: number
  /** Every probe, in order. */
  probes: { cores: number; rps: number; other: number }[]
}

/**
 * The CPU quota under which a replica serves about `targetRps` redirects a second, saturated: probes of `probeSec`
 * under a quota, cutting it until one serves less than the target, then narrowing between the probes either side of
 * it, until one lands within 0.6-1.0x the target, or after 6 probes the one heldQuota() picks. Used to slow
 * a replica to a known fraction of its share: a quota derived from CPU per request does not give one, because what a redirect costs depends on the load (1 ms at a steady
 * 75/s, 0.04-0.08 ms saturated, here) and the replica's own background work takes a share of any quota.
 */
export async function quotaForRate(
  replica: Replica,
  targetRps: number,
  opts: { startCores: number; minCores: number; periodUs: number; probeSec: number; log?: (line: string) => void },
): Promise<HeldReplica> {
  if (!replica.pid) throw new Error(`replica ${replica.name} has no pid to hold to a quota`)
  const { follow } = await calibrationLink(replica)
  for (let i = 0; i < 200; i++) await follow()
  const probes: HeldReplica['probes'] = []
  const probe = async (cores: number) => {
    const release = limitCpu(`calibrate-${replica.name}-${process.pid}`, replica.pid!, cores, opts.periodUs)
    try {
      const r = await saturatedRate(follow, opts.probeSec)
      probes.push({ cores, ...r })
      opts.log?.(
        `    ${replica.name} at ${cores} core: ${r.rps.toFixed(0)} redirects/s saturated${r.other ? ` (${r.other} other answers)` : ''}`,
      )
      return r.rps
    } finally {
      release()
      // The backlog a probe left drains before the next one, at full speed.
      await new Promise((ok) => setTimeout(ok, 300))
    }
  }
  const round = (c: number) => Math.max(opts.minCores, Math.round(c * 10_000) / 10_000)
  // Cut the quota (by the rate's ratio, a quarter to a half) until a probe serves less than the target, then read the
  // next quota off the line between the nearest probes on either side of it, aiming at 0.8x: throughput is far from linear near the least quota (0.043 core served 1108/s
  // and 0.005 core 54/s here), so a line through two probes above the target overshoots to the least quota.
  type Point = { cores: number; rps: number }
  let above: Point = { cores: round(opts.startCores), rps: await probe(round(opts.startCores)) }
  let below: Point | undefined
  let q = round(above.cores / 2)
  for (let i = 1; i < 6; i++) {
    const r = await probe(q)
    if (r <= targetRps && r >= 0.6 * targetRps) break
    if (r > targetRps) above = { cores: q, rps: r }
    else below = { cores: q, rps: r }
    if (r > targetRps && q === opts.minCores) break
    const next = below
      ? below.cores + ((0.8 * targetRps - below.rps) * (above.cores - below.cores)) / Math.max(1, above.rps - below.rps)
      : q * Math.max(0.25, Math.min(0.5, targetRps / r))
    if (round(next) === q) break
    q = round(next)
  }
  return { ...heldQuota(probes, targetRps), probes }
}

/**
 * Of a quota search's probes, the one to hold the replica at: the fastest that served no more than the target, leaving
 * out any probe that a smaller quota outserved. A saturated replica serves more with more CPU, so such a probe measured
 * something else: in a .ci/run on a busy box the first probe, at the 0.2 core the replica had used, served 121/s where
 * 0.1 core then served 579/s, and holding the replica at 0.2 core did not slow it (p99 77 ms with least_conn, 67 with
 * round-robin). With no such probe under the target, the slowest of the rest.
 */
export function heldQuota(probes: { cores: number; rps: number }[], targetRps: number): { cores: number; rps: number } {
  const consistent = probes.filter((p) => !probes.some((q) => q.cores < p.cores && q.rps > p.rps))
  const fit = consistent.filter((p) => p.rps <= targetRps)
  const best = fit.length ? fit.reduce((a, b) => (b.rps > a.rps ? b : a)) : consistent.reduce((a, b) => (b.rps < a.rps ? b : a))
  return { cores: best.cores, rps: best.rps }
}

/** Logins per second that take `cores` cores at `cpuPerLogin` seconds each. */
export const loginsPerSec = (cores: number, cpuPerLogin: number): number => Math.ceil(cores / cpuPerLogin)

export interface CapacityOptions {
  short: boolean
  /** Where k6 streams its samples (the stack's Prometheus); none when undefined. */
  prometheusUrl?: string
  /**
   * -e variables for k6. SLO_LATENCY_FACTOR is dropped: a capacity is read against the SLO itself, and a busy box
   * lowers it for 1 and 2 replicas alike.
   */
  env?: Record<string, string>
  log?: (line: string) => void
}

export interface Capacity {
  replicas: number
  /** The k6 run, with how busy the whole box was during it. */
  run: K6Result & { cpuBusy: number }
  /** Highest 5-second login throughput with every second's p99 within the API SLO and errors < 1%. */
  capacity: number
  /** k6 stopped the run on a crossed threshold (exit code 99), as a breakpoint run should. */
  aborted: boolean
  /** CPU seconds a login cost a replica on this box (loginCpuSeconds), and the ramp's peak rate sized from it. */
  cpuPerLogin: number
  peakRate: number
}

/**
 * The ramp's slope: it reaches this rate in 40 s (short form), 15% past what 2 replicas at REPLICA_CORES each would
 * serve if every cycle went to logins (100 logins/s here, the fixed peak the factor was first measured with), then
 * climbs on at the same slope to twice it (loadtests/lib/profiles.ts). Queueing and the CFS quota's throttling break
 * the SLO before that (1 replica near 25-40/s here, 2 near 50-90/s), on a fast box as on a slow one; once 2 replicas
 * held to 100/s, hence the second stage.
 */
export const rampPeak = (cpuPerLogin: number): number => loginsPerSec(1.15 * 2 * REPLICA_CORES, cpuPerLogin)

/**
 * The login breakpoint against `replicas` API replicas, each restarted with CAPACITY_API_ENV and held to
 * REPLICA_CORES for the run. The replicas keep the env until restoreApi().
 */
export async function capacity(p: Platform, replicas: number, o: CapacityOptions, label = `api${replicas}`): Promise<Capacity> {
  await p.scale({ api: replicas })
  for (const r of p.replicas('api')) await p.restart(r.name, CAPACITY_API_ENV)
  const cpuPerLogin = await loginCpuSeconds(p.replicas('api')[0]!)
  const peakRate = rampPeak(cpuPerLogin)
  o.log?.(
    `    a login costs ${(cpuPerLogin * 1000).toFixed(1)} ms of CPU here: the ramp passes ${peakRate} logins/s at ${o.short ? '40 s' : '3 min'} and climbs on to ${2 * peakRate}`,
  )
  const undo = p.replicas('api').map((r) => limitCpu(`${new URL(p.baseUrl).port}-${r.name}`, r.pid!, REPLICA_CORES))
  const ticks = cpuTicks()
  const k6 = await runK6({
    scenario: 'breakpoint',
    short: o.short,
    baseUrl: p.baseUrl,
    label,
    ...(o.prometheusUrl ? { prometheusUrl: o.prometheusUrl } : {}),
    env: { ...Object.fromEntries(Object.entries(o.env ?? {}).filter(([k]) => k !== 'SLO_LATENCY_FACTOR')), PEAK_RATE: String(peakRate) },
    ...(o.log ? { log: o.log } : {}),
  }).finally(() => undo.forEach((f) => f()))
  const run = { ...k6, cpuBusy: cpuBusy(ticks, cpuTicks()) }
  const c = { replicas, run, capacity: maxSustained(run.series, API_P99_SLO_MS), aborted: run.exitCode === 99, cpuPerLogin, peakRate }
  o.log?.(`    ${replicas} API replica(s) at ${REPLICA_CORES} core each: ${c.capacity.toFixed(1)} logins/s within the SLO`)
  return c
}

/** Back to `replicas` API replicas without the capacity env. */
export async function restoreApi(p: Platform, replicas: number): Promise<void> {
  await p.scale({ api: replicas })
  for (const r of p.replicas('api')) await p.restart(r.name, {})
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)

/** Mean capacity with 2 replicas over the mean with 1 (0 when 1 replica served nothing within the SLO). */
export function factor(runs: Capacity[]): number {
  const of = (n: number) => mean(runs.filter((r) => r.replicas === n).map((r) => r.capacity))
  return of(1) > 0 ? of(2) / of(1) : 0
}

/** The spread of repeated measurements of one setup: (max - min) / mean. */
export function spread(xs: number[]): number {
  return xs.length < 2 ? 0 : (Math.max(...xs) - Math.min(...xs)) / mean(xs)
}

/**
 * Clicks per job in a drain: the API flushes its click buffer every 50 ms (CLICK_FLUSH_INTERVAL_MS), so at 200
 * redirects/s a replica enqueues jobs of about 10 clicks.
 */
export const CLICKS_PER_JOB = 10
/**
 * Each worker's CPU in a drain: k8s/base/worker.yaml's `requests.cpu: 100m`. Unbounded, one worker at the default
 * concurrency already takes what the box has left beside Redis and Postgres, and a second one added nothing here
 * (single-click jobs x1.14 twice; jobs of 10 clicks x0.86).
 */
export const WORKER_CORES = 0.1

export interface DrainResult {
  workers: number
  /** Click jobs in the backlog when the queue was resumed. */
  jobs: number
  clicks: number
  seconds: number
  jobsPerSec: number
  clicksPerSec: number
}

/**
 * Times `workers` workers at their default concurrency, each held to WORKER_CORES, draining `jobs` jobs of
 * CLICKS_PER_JOB clicks for `linkIds`
 * (ops/lib/backlog.ts). The backlog is queued directly, not through redirects, so that it is all waiting when the
 * clock starts.
 */
export async function drain(
  p: Platform,
  redis: { url: string; prefix: string },
  linkIds: string[],
  workers: number,
  jobs: number,
  log?: (line: string) => void,
): Promise<DrainResult> {
  const queue = clicksQueue(redis.url, redis.prefix)
  try {
    let undo: (() => void)[] = []
    const scaleWorkers = async (n: number) => {
      if (n > 0) log?.(`==> click jobs waiting; starting ${n} worker(s) on the paused queue, ${WORKER_CORES} core each`)
      await p.scale({ worker: n })
      undo = p.replicas('worker').map((r) => limitCpu(`${new URL(p.baseUrl).port}-${r.name}`, r.pid!, WORKER_CORES))
    }
    const r = await timeDrain(queue, { linkIds, jobs, perJob: CLICKS_PER_JOB, workers, scaleWorkers, timeoutSec: 300 }).finally(() =>
      undo.forEach((f) => f()),
    )
    if (r.seconds === undefined) throw new Error(`${workers} worker(s) did not drain ${r.jobs} click jobs within 300 s`)
    const d = {
      workers,
      jobs: r.jobs,
      clicks: r.jobs * CLICKS_PER_JOB,
      seconds: r.seconds,
      jobsPerSec: r.jobs / r.seconds,
      clicksPerSec: (r.jobs * CLICKS_PER_JOB) / r.seconds,
    }
    log?.(
      `    ${workers} worker(s) drained ${d.jobs} jobs (${d.clicks} clicks) in ${d.seconds.toFixed(2)} s (${d.clicksPerSec.toFixed(0)} clicks/s)`,
    )
    return d
  } finally {
    await queue.close()
  }
}
