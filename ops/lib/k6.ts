// The one k6 runner: every k6 process opsdrill starts (load scenarios, the deploy gate, drills, the screenshots and
// observability runs) is started here, with one command line, one environment, one REST API client and one reader of
// its JSON output. K6.start runs a script; runK6 runs a scenario of loadtests/scenarios with every output opsdrill
// keeps, into .run/load/<name>-<time>/:
//   summary.json   end-of-test summary (--summary-export): thresholds, percentiles per SLO tag
//   report.html    k6's web-dashboard report, self-contained (opens offline)
//   points.json.gz every sample (--out json), bucketed here into per-second throughput and latency
//   k6.log         k6's own output
// and the samples streamed into Prometheus (experimental-prometheus-rw) tagged testid=<name>-<time>, so Grafana
// shows the run next to the server-side metrics.
import { execFileSync, spawn } from 'node:child_process'
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
  say(`==> k6 ${opts.scenario}${opts.label ? ` (${opts.label})` : ''}${opts.short ? ' --short' : ''} -> ${dir}`)
  const k6 = await K6.start({
    script: join(ROOT, 'loadtests/scenarios', `${opts.scenario}.ts`),
    dir,
    testid,
    vars: { BASE_URL: opts.baseUrl, ...(opts.short ? { SHORT: '1' } : {}), ...opts.env },
    // The report needs a few aggregation periods to exist at all; short runs last seconds.
    report: { period: opts.short ? '1s' : '5s' },
    ...(opts.prometheusUrl ? { prometheus: { url: opts.prometheusUrl, trendStats: 'p(95),p(99),avg', pushInterval: '5s' } } : {}),
  })
  const during = opts.during ? runDuring(k6, opts.during, say) : Promise.resolve()
  const exitCode = await k6.exited
  await during
  if (!existsSync(k6.summaryFile)) {
    throw new Error(`k6 ${opts.scenario} exited ${exitCode} without a summary:\n${logTail(k6.logFile)}`)
  }
  const summary = JSON.parse(readFileSync(k6.summaryFile, 'utf8')) as Summary
  const series = await bucketPoints(k6.pointsFile)
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

/** Waits for the scenario's first iteration (setup excluded), then afterSec, then runs the action; nothing once k6 exited. */
async function runDuring(k6: K6, d: NonNullable<K6Options['during']>, say: (l: string) => void): Promise<void> {
  if (!(await k6.until(async () => ((await k6.sample('iterations')).count ?? 0) > 0))) return
  await sleep(d.afterSec * 1000)
  if (await k6.done()) return
  say(`    (${d.afterSec} s into the run)`)
  await d.action()
}

/** One k6 run: the script, its -e variables, and where its outputs go. */
export interface K6Run {
  /** Absolute path of the script. */
  script: string
  /** Folder of the outputs (made if missing). */
  dir: string
  /** Output file names inside dir: the summary (--summary-export) and every sample (--out json, gzipped). */
  files?: { summary: string; points: string }
  testid: string
  vars: Record<string, string>
  /** Streams the samples into this Prometheus (remote write) with these trend stats. */
  prometheus?: { url: string; trendStats: string; pushInterval?: string }
  /** Exports k6's web-dashboard report to dir/report.html, aggregated every period. */
  report?: { period: string }
}

/** A running k6: its exit, its REST API (live totals, stop) and its output files. */
export class K6 {
  readonly exited: Promise<number>
  readonly summaryFile: string
  readonly pointsFile: string
  readonly logFile: string
  private readonly port: number
  private finished = false

  private constructor(run: K6Run, port: number) {
    const files = run.files ?? { summary: 'summary.json', points: 'points.json.gz' }
    this.port = port
    this.summaryFile = join(run.dir, files.summary)
    this.pointsFile = join(run.dir, files.points)
    this.logFile = join(run.dir, 'k6.log')
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      K6_NO_USAGE_REPORT: 'true',
      ...(run.report
        ? {
            K6_WEB_DASHBOARD: 'true',
            K6_WEB_DASHBOARD_PORT: '-1',
            K6_WEB_DASHBOARD_PERIOD: run.report.period,
            K6_WEB_DASHBOARD_EXPORT: join(run.dir, 'report.html'),
          }
        : {}),
      ...(run.prometheus
        ? {
            K6_PROMETHEUS_RW_SERVER_URL: `${run.prometheus.url}/api/v1/write`,
            K6_PROMETHEUS_RW_TREND_STATS: run.prometheus.trendStats,
            ...(run.prometheus.pushInterval ? { K6_PROMETHEUS_RW_PUSH_INTERVAL: run.prometheus.pushInterval } : {}),
          }
        : {}),
    }
    const args = [
      'run',
      '--quiet',
      '--address',
      `127.0.0.1:${port}`,
      '--summary-export',
      this.summaryFile,
      '--out',
      `json=${this.pointsFile}`,
      ...(run.prometheus ? ['--out', 'experimental-prometheus-rw'] : []),
      '--tag',
      `testid=${run.testid}`,
      ...Object.entries(run.vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
      run.script,
    ]
    this.exited = spawnK6(args, env, this.logFile)
    void this.exited.then(
      () => (this.finished = true),
      () => (this.finished = true),
    )
  }

  static async start(run: K6Run): Promise<K6> {
    mkdirSync(run.dir, { recursive: true })
    return new K6(run, await freePort())
  }

  /** A metric's sample from k6's REST API (e.g. count, passes); empty while k6 is not answering. */
  async sample(metric: string): Promise<Record<string, number>> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/v1/metrics/${metric}`, { signal: AbortSignal.timeout(1000) })
      if (!res.ok) return {}
      const body = (await res.json()) as { data?: { attributes?: { sample?: Record<string, number> } } }
      return body.data?.attributes?.sample ?? {}
    } catch {
      return {}
    }
  }

  /** Requests and failed requests so far (zeros while k6 is not answering). */
  async live(): Promise<Live> {
    const [reqs, failed] = await Promise.all([this.sample('http_reqs'), this.sample('http_req_failed')])
    const requests = reqs.count ?? 0
    // k6 2's REST API gives a rate metric its rate only (no passes), so failures are that rate of the requests.
    return { requests, failed: Math.round((failed.rate ?? 0) * requests) }
  }

  /** Polls cond every 200 ms: true once it holds, false if k6 exits first or timeoutMs passes. */
  async until(cond: () => Promise<boolean>, timeoutMs = Infinity): Promise<boolean> {
    const end = Date.now() + timeoutMs
    while (!this.finished && Date.now() < end) {
      if (await cond()) return true
      await sleep(200)
    }
    return false
  }

  /** True once k6 has exited. */
  async done(): Promise<boolean> {
    await sleep(0)
    return this.finished
  }

  /** Stops the run through the REST API (requests in flight are abandoned); resolves to k6's exit code. */
  async stop(): Promise<number> {
    try {
      await fetch(`http://127.0.0.1:${this.port}/v1/status`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: { type: 'status', id: 'default', attributes: { stopped: true } } }),
        signal: AbortSignal.timeout(5000),
      })
    } catch {
      /* already finished */
    }
    return this.exited
  }
}

export interface Live {
  requests: number
  failed: number
}

/** The k6 opsdrill runs, as `k6 version` prints it (first line). */
export function k6Version(): string {
  return execFileSync(tool('k6'), ['version'], { encoding: 'utf8' }).trim().split('\n')[0]!
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
function spawnK6(args: string[], env: NodeJS.ProcessEnv, logFile: string): Promise<number> {
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
