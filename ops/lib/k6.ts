// Runs one k6 scenario from loadtests/scenarios with every output opsdrill keeps, into .run/load/<name>-<time>/:
//   summary.json   end-of-test summary (--summary-export): thresholds, percentiles per SLO tag
//   report.html    k6's web-dashboard report, self-contained (opens offline)
//   points.json.gz every sample (--out json), bucketed here into per-second throughput and latency
//   k6.log         k6's own output
// and the samples streamed into Prometheus (experimental-prometheus-rw) tagged testid=<name>-<time>, so Grafana
// shows the run next to the server-side metrics.
import { spawn } from 'node:child_process'
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { createGunzip } from 'node:zlib'
import { logTail } from './logs.ts'
import { freePort } from './net.ts'
import { tool } from './tools.ts'

const ROOT = resolve(import.meta.dirname, '../..')
export const SCENARIOS = ['smoke', 'average', 'stress', 'spike', 'soak', 'breakpoint', 'caching', 'balancing', 'autoscale'] as const
export type ScenarioName = (typeof SCENARIOS)[number]

export interface K6Options {
  scenario: ScenarioName
  short: boolean
  baseUrl: string
  /** Prometheus to stream samples into; none when undefined. */
  prometheusUrl?: string
  /** Extra -e variables for the script. */
  env?: Record<string, string>
  /** Distinguishes runs of one scenario in names and the testid (e.g. cache-off). */
  label?: string
  /** Called once, this many seconds after the first request of the scenario (not of setup) was sent. */
  during?: { afterSec: number; action: () => Promise<void> }
  log?: (line: string) => void
}

/** One second of a run: requests, failures and latency percentiles (ms). */
export interface Bucket {
  t: number
  reqs: number
  failed: number
  p50: number
  p95: number
  p99: number
  max: number
}

/** Requests per unix second while k6's points are read; secondsOf turns it into Buckets. */
export type PerSecond = Map<number, { reqs: number; failed: number; durations: number[] }>

export interface Figures {
  requests: number
  rps: number
  errorRate: number
  redirect?: { p50: number; p95: number; p99: number }
  api?: { p50: number; p95: number; p99: number }
}

export interface K6Result {
  name: string
  dir: string
  testid: string
  exitCode: number
  /** k6 exit code 0: every threshold held. */
  thresholdsHeld: boolean
  failedThresholds: string[]
  summary: Summary
  series: Bucket[]
  figures: Figures
  /** Unix seconds of the first and last measured request. */
  start: number
  end: number
}

type MetricSummary = Record<string, number> & { thresholds?: Record<string, boolean> }
export interface Summary {
  metrics: Record<string, MetricSummary>
}

export async function runK6(opts: K6Options): Promise<K6Result> {
  const say = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`))
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
  const name = `${opts.scenario}${opts.label ? `-${opts.label}` : ''}`
  const testid = `${name}-${stamp}`
  const dir = join(ROOT, '.run/load', testid)
  mkdirSync(dir, { recursive: true })
  const apiPort = await freePort()
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    K6_NO_USAGE_REPORT: 'true',
    K6_WEB_DASHBOARD: 'true',
    K6_WEB_DASHBOARD_PORT: '-1',
    // The report needs a few aggregation periods to exist at all; short runs last seconds.
    K6_WEB_DASHBOARD_PERIOD: opts.short ? '1s' : '5s',
    K6_WEB_DASHBOARD_EXPORT: join(dir, 'report.html'),
    ...(opts.prometheusUrl
      ? {
          K6_PROMETHEUS_RW_SERVER_URL: `${opts.prometheusUrl}/api/v1/write`,
          K6_PROMETHEUS_RW_TREND_STATS: 'p(95),p(99),avg',
          K6_PROMETHEUS_RW_PUSH_INTERVAL: '5s',
        }
      : {}),
  }
  const vars = { BASE_URL: opts.baseUrl, ...(opts.short ? { SHORT: '1' } : {}), ...opts.env }
  const args = [
    'run',
    '--quiet',
    '--address',
    `127.0.0.1:${apiPort}`,
    '--summary-export',
    join(dir, 'summary.json'),
    '--out',
    `json=${join(dir, 'points.json.gz')}`,
    ...(opts.prometheusUrl ? ['--out', 'experimental-prometheus-rw'] : []),
    '--tag',
    `testid=${testid}`,
    ...Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    join(ROOT, 'loadtests/scenarios', `${opts.scenario}.ts`),
  ]
  say(`==> k6 ${opts.scenario}${opts.label ? ` (${opts.label})` : ''}${opts.short ? ' --short' : ''} -> ${dir}`)
  const exited = spawnK6(args, env, join(dir, 'k6.log'))
  const during = opts.during ? runDuring(apiPort, opts.during, exited, say) : Promise.resolve()
  const exitCode = await exited
  await during
  const summaryFile = join(dir, 'summary.json')
  if (!existsSync(summaryFile)) {
    throw new Error(`k6 ${opts.scenario} exited ${exitCode} without a summary:\n${logTail(join(dir, 'k6.log'))}`)
  }
  const summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as Summary
  const series = await bucketPoints(join(dir, 'points.json.gz'))
  const failedThresholds = Object.entries(summary.metrics).flatMap(([m, s]) =>
    Object.entries(s.thresholds ?? {})
      .filter(([, failed]) => failed)
      .map(([t]) => `${m} ${t}`),
  )
  const figures = figuresOf(summary, series)
  say(
    `    exit ${exitCode}; ${figures.requests} requests, ${figures.rps.toFixed(0)} req/s, errors ${(figures.errorRate * 100).toFixed(2)}%` +
      (figures.redirect ? `, redirect p95 ${figures.redirect.p95.toFixed(1)} ms p99 ${figures.redirect.p99.toFixed(1)} ms` : '') +
      (failedThresholds.length ? `; thresholds crossed: ${failedThresholds.join(', ')}` : ''),
  )
  return {
    name,
    dir,
    testid,
    exitCode,
    thresholdsHeld: exitCode === 0,
    failedThresholds,
    summary,
    series,
    figures,
    start: series[0]?.t ?? 0,
    end: (series.at(-1)?.t ?? 0) + 1,
  }
}

/** Polls k6's REST API until the scenario's first iteration, waits afterSec, then runs the action. */
async function runDuring(
  port: number,
  d: NonNullable<K6Options['during']>,
  exited: Promise<number>,
  say: (l: string) => void,
): Promise<void> {
  let done = false
  void exited.then(() => {
    done = true
  })
  while (!done) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/metrics/iterations`, { signal: AbortSignal.timeout(1000) })
      if (res.ok) {
        const body = (await res.json()) as { data?: { attributes?: { sample?: { count?: number } } } }
        if ((body.data?.attributes?.sample?.count ?? 0) > 0) break
      }
    } catch {
      /* k6 not listening yet */
    }
    await sleep(200)
  }
  if (done) return
  await sleep(d.afterSec * 1000)
  if (done) return
  say(`    (${d.afterSec} s into the run)`)
  await d.action()
}

export interface Point {
  type: string
  metric: string
  data: { time: string; value: number; tags?: Record<string, string>; metadata?: Record<string, string> }
}

/**
 * Runs k6 with its stdout and stderr in one log file; resolves to its exit code once the log is flushed. Neither pipe
 * ends the log (the default would let the first stream to close end it under the other's last writes).
 */
export function spawnK6(args: string[], env: NodeJS.ProcessEnv, logFile: string): Promise<number> {
  const log = createWriteStream(logFile)
  const child = spawn(tool('k6'), args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.pipe(log, { end: false })
  child.stderr.pipe(log, { end: false })
  return new Promise<number>((done, fail) => {
    child.once('error', (err) => fail(new Error(`could not run k6 (${err.message}): run ops/stack up or ops/test, which install it`)))
    child.once('close', (code) => log.end(() => done(code ?? 1)))
  })
}

/** The sample points of k6's JSON output (`--out json=<file>.gz`), in file order. */
export async function* points(file: string): AsyncGenerator<Point> {
  const lines = createInterface({ input: createReadStream(file).pipe(createGunzip()), crlfDelay: Infinity })
  for await (const line of lines) if (line.includes('"Point"')) yield JSON.parse(line) as Point
}

/** The seconds in time order, each with its percentiles (sorts each second's durations in place). */
export function secondsOf(perSec: PerSecond): Bucket[] {
  return [...perSec.entries()]
    .sort(([a], [b]) => a - b)
    .map(([t, b]) => {
      b.durations.sort((x, y) => x - y)
      const q = (x: number) => quantile(b.durations, x)
      return { t, reqs: b.reqs, failed: b.failed, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: b.durations.at(-1) ?? 0 }
    })
}

/** Per-second throughput, failures and latency percentiles of the scenario's requests (setup excluded). */
export async function bucketPoints(file: string): Promise<Bucket[]> {
  if (!existsSync(file)) return []
  const perSec: PerSecond = new Map()
  for await (const p of points(file)) {
    if (!p.data.tags?.slo) continue
    const t = Math.floor(Date.parse(p.data.time) / 1000)
    let b = perSec.get(t)
    if (!b) perSec.set(t, (b = { reqs: 0, failed: 0, durations: [] }))
    if (p.metric === 'http_reqs') b.reqs += p.data.value
    else if (p.metric === 'http_req_failed') b.failed += p.data.value
    else if (p.metric === 'http_req_duration') b.durations.push(p.data.value)
  }
  return secondsOf(perSec)
}

/** The q-quantile of ascending values (nearest rank); 0 for none. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

function figuresOf(summary: Summary, series: Bucket[]): Figures {
  const m = summary.metrics
  const lat = (key: string) => (m[key] ? { p50: m[key]!.med!, p95: m[key]!['p(95)']!, p99: m[key]!['p(99)']! } : undefined)
  const requests = series.reduce((a, b) => a + b.reqs, 0)
  const failed = series.reduce((a, b) => a + b.failed, 0)
  const seconds = series.length ? series.at(-1)!.t - series[0]!.t + 1 : 0
  const redirect = lat('http_req_duration{slo:redirect}')
  const api = lat('http_req_duration{slo:api}')
  return {
    requests,
    rps: seconds ? requests / seconds : 0,
    errorRate: requests ? failed / requests : 0,
    ...(redirect ? { redirect } : {}),
    ...(api && m['http_req_duration{slo:api}']!.max ? { api } : {}),
  }
}

/**
 * The highest throughput sustained for `window` seconds within the SLO: every second's p99 < sloP99Ms and errors
 * < 1% over the window. The load is open-model, so a server that falls behind shows it as latency, not as less load.
 */
export function maxSustained(series: Bucket[], sloP99Ms: number, window = 5): number {
  let best = 0
  for (let i = 0; i + window <= series.length; i++) {
    const w = series.slice(i, i + window)
    const reqs = w.reduce((a, b) => a + b.reqs, 0)
    const failed = w.reduce((a, b) => a + b.failed, 0)
    const avg = reqs / window
    if (w.every((b) => b.p99 < sloP99Ms) && failed / Math.max(1, reqs) < 0.01) best = Math.max(best, avg)
  }
  return best
}
