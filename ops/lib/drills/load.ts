// Runs the drill's k6 load (k6/steady.ts) in the background through the one k6 runner (../k6.ts): live figures from
// k6's REST API while it runs, a stop through the same API when the drill is done, then every sample read back from
// k6's JSON output into per-second buckets, per-class figures, the failures with their times, and the redirects
// served per link (the ledger).
import { resolve } from 'node:path'
import { K6, points, quantile, secondsOf, type Bucket, type Live, type PerSecond } from '../k6.ts'
import { logTail } from '../logs.ts'

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

export class Load {
  private readonly k6: K6

  private constructor(k6: K6) {
    this.k6 = k6
  }

  static async start(opts: LoadOptions): Promise<Load> {
    const k6 = await K6.start({
      script: SCRIPT,
      dir: opts.dir,
      files: { summary: 'k6-summary.json', points: 'k6-points.json.gz' },
      testid: opts.testid,
      vars: {
        BASE_URL: opts.baseUrl,
        DATA: opts.dataFile,
        RATE: String(opts.rate),
        API_SHARE: String(opts.apiShare ?? 0.1),
        DURATION: opts.duration ?? '30m',
        MODE: opts.mode ?? 'steady',
        VUS: String(opts.vus ?? 64),
        ...(opts.mark ? { MARK: opts.mark } : {}),
      },
      ...(opts.prometheusUrl ? { prometheus: { url: opts.prometheusUrl, trendStats: 'p(99),max' } } : {}),
    })
    // Ready once the first request was counted (k6 compiles the script and runs setup first).
    if (await k6.until(async () => (await k6.live()).requests > 0, 30_000)) return new Load(k6)
    const exit = (await k6.done()) ? await k6.exited : 'pending'
    throw new Error(`k6 sent no request within 30 s (exit ${exit}):\n${logTail(k6.logFile)}`)
  }

  /** Totals so far from k6's REST API (zeros while it is not answering). */
  live(): Promise<Live> {
    return this.k6.live()
  }

  /** Waits for the run to end by itself (its duration is over; in-flight requests finish) and reads its samples. */
  async finished(): Promise<LoadResult> {
    return readPoints(this.k6.pointsFile, await this.k6.exited)
  }

  /** True once k6 has exited. */
  done(): Promise<boolean> {
    return this.k6.done()
  }

  /** Stops the run (requests still in flight are abandoned) and reads its samples back. */
  async stop(): Promise<LoadResult> {
    return readPoints(this.k6.pointsFile, await this.k6.stop())
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
