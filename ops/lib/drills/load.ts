// Runs the drill's k6 load (k6/steady.ts) in the background: live figures from k6's REST API while it runs, a stop
// through the same API when the drill is done, then every sample read back from k6's JSON output into per-second
// buckets, per-class figures, the failures with their times, and the redirects served per link (the ledger).
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { points, quantile, secondsOf, spawnK6, type Bucket, type PerSecond } from '../k6.ts'
import { logTail } from '../logs.ts'
import { freePort } from '../net.ts'

const SCRIPT = resolve(import.meta.dirname, 'k6/steady.ts')

export interface LoadOptions {
  baseUrl: string
  dataFile: string
  dir: string
  rate: number
  apiShare?: number
  mode?: 'steady' | 'saturate'
  vus?: number
  /** Upper bound; the drill normally stops the run earlier. */
  duration?: string
  prometheusUrl?: string
  testid: string
  /** Marks each redirect for the click ledger (k6/steady.ts, MARK). */
  mark?: string
}

export type Second = Bucket

export interface ClassFigures {
  requests: number
  failed: number
  p50: number
  p95: number
  p99: number
  max: number
  byStatus: Record<string, number>
}

export interface LoadResult {
  exitCode: number
  seconds: Second[]
  redirect: ClassFigures
  api: ClassFigures
  /** Unix ms of every failed request, with its class and status (0: no response). */
  failures: { at: number; slo: string; status: number; durationMs: number }[]
  /** 302s served per link code: the ledger's "sent" side. */
  servedPerLink: Record<string, number>
  /** With a mark: <mark>/<iteration> of every redirect answered 302, one by one, with its unix ms. */
  servedMarks: [string, number][]
  shedWithRetryAfter: number
  shedWithoutRetryAfter: number
  /** Every request as [unix ms, duration ms, class], for percentiles over any window. */
  samples: [number, number, 'redirect' | 'api'][]
}

export interface Live {
  requests: number
  failed: number
}

export class Load {
  private readonly opts: LoadOptions
  private readonly port: number
  private readonly exited: Promise<number>

  private constructor(opts: LoadOptions, port: number, exited: Promise<number>) {
    this.opts = opts
    this.port = port
    this.exited = exited
  }

  static async start(opts: LoadOptions): Promise<Load> {
    const port = await freePort()
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      K6_NO_USAGE_REPORT: 'true',
      ...(opts.prometheusUrl
        ? { K6_PROMETHEUS_RW_SERVER_URL: `${opts.prometheusUrl}/api/v1/write`, K6_PROMETHEUS_RW_TREND_STATS: 'p(99),max' }
        : {}),
    }
    const vars: Record<string, string> = {
      BASE_URL: opts.baseUrl,
      DATA: opts.dataFile,
      RATE: String(opts.rate),
      API_SHARE: String(opts.apiShare ?? 0.1),
      DURATION: opts.duration ?? '30m',
      MODE: opts.mode ?? 'steady',
      VUS: String(opts.vus ?? 64),
      ...(opts.mark ? { MARK: opts.mark } : {}),
    }
    const args = [
      'run',
      '--quiet',
      '--address',
      `127.0.0.1:${port}`,
      '--summary-export',
      join(opts.dir, 'k6-summary.json'),
      '--out',
      `json=${join(opts.dir, 'k6-points.json.gz')}`,
      ...(opts.prometheusUrl ? ['--out', 'experimental-prometheus-rw'] : []),
      '--tag',
      `testid=${opts.testid}`,
      ...Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
      SCRIPT,
    ]
    const exited = spawnK6(args, env, join(opts.dir, 'k6.log'))
    const load = new Load(opts, port, exited)
    // Ready once the first request was counted (k6 compiles the script and runs setup first).
    const until = Date.now() + 30_000
    let done = false
    void exited.then(() => (done = true))
    while (Date.now() < until && !done) {
      if ((await load.live()).requests > 0) return load
      await sleep(200)
    }
    throw new Error(`k6 sent no request within 30 s (exit ${done ? await exited : 'pending'}):\n${logTail(join(opts.dir, 'k6.log'))}`)
  }

  /** Totals so far from k6's REST API (zeros while it is not answering). */
  async live(): Promise<Live> {
    const metric = async (name: string): Promise<Record<string, number>> => {
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/v1/metrics/${name}`, { signal: AbortSignal.timeout(1000) })
        if (!res.ok) return {}
        const body = (await res.json()) as { data?: { attributes?: { sample?: Record<string, number> } } }
        return body.data?.attributes?.sample ?? {}
      } catch {
        return {}
      }
    }
    const [reqs, failed] = await Promise.all([metric('http_reqs'), metric('http_req_failed')])
    return { requests: reqs.count ?? 0, failed: failed.passes ?? 0 }
  }

  /** Waits for the run to end by itself (its duration is over; in-flight requests finish) and reads its samples. */
  async finished(): Promise<LoadResult> {
    return readPoints(join(this.opts.dir, 'k6-points.json.gz'), await this.exited)
  }

  /** True once k6 has exited. */
  done(): Promise<boolean> {
    return Promise.race([this.exited.then(() => true), sleep(0).then(() => false)])
  }

  /** Stops the run (requests still in flight are abandoned) and reads its samples back. */
  async stop(): Promise<LoadResult> {
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
    const exitCode = await this.exited
    return readPoints(join(this.opts.dir, 'k6-points.json.gz'), exitCode)
  }
}

export async function readPoints(file: string, exitCode: number): Promise<LoadResult> {
  const perSec: PerSecond = new Map()
  const cls = { redirect: newClass(), api: newClass() }
  const durations = { redirect: [] as number[], api: [] as number[] }
  const failures: LoadResult['failures'] = []
  const servedPerLink: Record<string, number> = {}
  const servedMarks: [string, number][] = []
  let shedWithRetryAfter = 0
  let shedWithoutRetryAfter = 0
  // k6 writes http_req_duration before http_req_failed for a request; the failure's duration comes from there.
  const lastDuration = new Map<string, number>()
  const samples: LoadResult['samples'] = []
  for await (const p of points(file)) {
    if (p.metric === 'drill_503_with_retry_after') shedWithRetryAfter += p.data.value
    if (p.metric === 'drill_503_without_retry_after') shedWithoutRetryAfter += p.data.value
    const slo = p.data.tags?.slo as 'redirect' | 'api' | undefined
    if (slo !== 'redirect' && slo !== 'api') continue
    const ms = Date.parse(p.data.time)
    const t = Math.floor(ms / 1000)
    let b = perSec.get(t)
    if (!b) perSec.set(t, (b = { reqs: 0, failed: 0, durations: [] }))
    const status = p.data.tags?.status ?? '0'
    if (p.metric === 'http_reqs') {
      b.reqs += 1
      cls[slo].requests += 1
      cls[slo].byStatus[status] = (cls[slo].byStatus[status] ?? 0) + 1
      const code = p.data.tags?.link
      if (slo === 'redirect' && status === '302' && code) servedPerLink[code] = (servedPerLink[code] ?? 0) + 1
      const mark = p.data.metadata?.click
      if (slo === 'redirect' && status === '302' && mark !== undefined) servedMarks.push([mark, ms])
    } else if (p.metric === 'http_req_duration') {
      b.durations.push(p.data.value)
      durations[slo].push(p.data.value)
      samples.push([ms, p.data.value, slo])
      lastDuration.set(slo, p.data.value)
    } else if (p.metric === 'http_req_failed' && p.data.value === 1) {
      b.failed += 1
      cls[slo].failed += 1
      failures.push({ at: ms, slo, status: Number(status), durationMs: lastDuration.get(slo) ?? 0 })
    }
  }
  for (const k of ['redirect', 'api'] as const) {
    const d = durations[k].sort((x, y) => x - y)
    Object.assign(cls[k], { p50: quantile(d, 0.5), p95: quantile(d, 0.95), p99: quantile(d, 0.99), max: d.at(-1) ?? 0 })
  }
  const seconds = secondsOf(perSec)
  return {
    exitCode,
    seconds,
    redirect: cls.redirect,
    api: cls.api,
    failures,
    servedPerLink,
    servedMarks,
    shedWithRetryAfter,
    shedWithoutRetryAfter,
    samples,
  }
}

function newClass(): ClassFigures {
  return { requests: 0, failed: 0, p50: 0, p95: 0, p99: 0, max: 0, byStatus: {} }
}
