// What every drill shares: the stack brought to its starting shape, the drill's own links, the k6 load, progress
// lines (phase, elapsed, live error rate), fault windows, criteria, and the report with its verdict.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { clicksQueue, drained, enqueueClicks } from '../backlog.ts'
import { makeData, readyz, scrape, sumMetric, type DrillData, type Link } from './client.ts'
import { quantile } from '../k6.ts'
import { Load, type LoadResult, type Second } from './load.ts'
import { NativePlatform, apiAddr, metricsAddr, type Kind, type Platform } from './platform.ts'
import { alertmanagerAlerts } from './alertmanager.ts'
import { publish } from './annotations.ts'
import { errorBudgetSpent, sloCriteria, timeline, type Budget, type Criterion, type SloMeasure, type Traffic } from './criteria.ts'
import { writeReport, type Check, type ErrorLines, type Report, type Window } from './report.ts'
import { ERROR_LINES, errorLinesPerService, logsUiLink, timeWindow } from '../logsql.ts'
import { alive } from '../stack/procs.ts'

export const ROOT = resolve(import.meta.dirname, '../../..')

/** The app's defaults that criteria are stated against (common/config.ts); the stack runs with them. */
export const APP = {
  PG_CONNECT_TIMEOUT_MS: 2000,
  PG_QUERY_TIMEOUT_MS: 2500,
  PG_POOL_MAX: 10,
  REDIS_COMMAND_TIMEOUT_MS: 500,
  API_SHUTDOWN_GRACE_MS: 10_000,
  WORKER_SHUTDOWN_GRACE_MS: 25_000,
  MAX_EVENT_LOOP_DELAY_MS: 500,
  CLICK_FLUSH_INTERVAL_MS: 50,
}

export interface Timing {
  /** Offered load, requests per second. */
  rate: number
  baselineSec: number
  faultSec: number
  recoverSec: number
}

interface DrillMeta {
  name: string
  title: string
  /** Alerts (prometheus/rules/alerts.yml) this fault should raise: the name first, then when, in parentheses. */
  alerts: string[]
  /** Grafana dashboards (uids) to watch. */
  dashboards: string[]
  /** Starting shape of the stack. */
  shape: { api: number; worker: number }
  timing: { full: Timing; short: Timing }
  /** Platforms the drill can run on; default all. */
  targets?: Platform['target'][]
  /**
   * Drills with a steady load around one fault: outside the window the SLOs hold, inside it this budget. Absent for
   * drills whose fault spans the whole load (worker-ledger, alerts) or that measure capacity (scale-out).
   */
  budget?: Budget
  /** Undoes what run() changed beyond the starting shape (runs even when run() failed). */
  cleanup?(d: DrillRun): Promise<void>
}

/** A drill as its file defines it: the fault and load in run(), which returns what it measured, judged by criteria. */
export interface DrillDef<M> extends DrillMeta {
  criteria: Criterion<M>[]
  run(d: DrillRun): Promise<M>
}

export interface Drill extends DrillMeta {
  /** Every criterion's text, the SLO ones included: what `npm run drill -- --list` prints. */
  criteria: string[]
  run(d: DrillRun): Promise<void>
}

export function defineDrill<M>(def: DrillDef<M>): Drill {
  return {
    ...def,
    criteria: [...def.criteria, ...(def.budget ? sloCriteria(def.budget) : [])].map((c) => c.text),
    async run(d) {
      d.judge(def.criteria, await def.run(d))
    },
  }
}

export interface RunOptions {
  short: boolean
  platform: Platform
  /** Widens the SLO latency bound on a box busy with other work (default SLO_LATENCY_FACTOR or 1). */
  latencyFactor?: number
  /** Reports go to <outDir>/<name>-<timestamp>/; default .run/drills. */
  outDir?: string
  log?: (line: string) => void
}

export interface Outcome {
  passed: boolean
  dir: string
  report: Report
}

export class DrillRun {
  readonly drill: Drill
  readonly short: boolean
  readonly platform: Platform
  readonly timing: Timing
  readonly dir: string
  readonly checks: Check[] = []
  readonly windows: Window[] = []
  readonly measured: Record<string, unknown> = {}
  readonly notes: string[] = []
  readonly latencyFactor: number
  /** Alerts Alertmanager showed during the drill, first startsAt per alert name (polled with each progress line). */
  readonly alertsSeen = new Map<string, number>()
  private alertmanagerError: string | undefined
  data: DrillData = { token: '', links: [] }
  loadResult: LoadResult | undefined
  private load: Load | undefined
  private loadDesc = 'none'
  private phaseName = 'setup'
  private readonly t0 = Date.now()
  private readonly say: (line: string) => void
  private openWindow: { label: string; from: number } | undefined
  private lastLive = { at: 0, requests: 0, failed: 0 }
  /** Every redirect of this run's loads carries <ledgerId>.<load>/<iteration> (api-ledger.ts reads the clicks back). */
  readonly ledgerId: string
  private loads = 0

  constructor(drill: Drill, opts: RunOptions) {
    this.drill = drill
    this.short = opts.short
    this.platform = opts.platform
    this.timing = opts.short ? drill.timing.short : drill.timing.full
    this.latencyFactor = opts.latencyFactor ?? Number(process.env.SLO_LATENCY_FACTOR ?? 1)
    const stamp = new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')
    this.dir = join(opts.outDir ?? join(ROOT, '.run/drills'), `${drill.name}-${stamp}`)
    this.ledgerId = `${drill.name}-${Date.now().toString(36)}`
    mkdirSync(this.dir, { recursive: true })
    this.say = opts.log ?? ((l) => process.stdout.write(`${l}\n`))
  }

  get native(): NativePlatform | undefined {
    return this.platform instanceof NativePlatform ? this.platform : undefined
  }

  log(line: string): void {
    this.say(`[${this.drill.name}] ${line}`)
  }

  phase(name: string): void {
    this.phaseName = name
    this.log(`phase ${name} at +${this.elapsed()}`)
  }

  elapsed(): string {
    return `${((Date.now() - this.t0) / 1000).toFixed(1)}s`
  }

  check(name: string, pass: boolean, detail: string): boolean {
    this.checks.push({ name, pass, detail })
    this.log(`${pass ? 'PASS' : 'FAIL'} ${name}: ${detail}`)
    return pass
  }

  /** Judges each criterion on what the drill measured; one that does not apply to this target is named in the notes. */
  judge<M>(criteria: Criterion<M>[], m: M): void {
    for (const c of criteria) {
      if (c.targets && !c.targets.includes(this.platform.target)) {
        this.notes.push(`not judged on ${this.platform.target}: ${c.text}`)
        continue
      }
      const v = c.judge(m)
      this.check(c.text, v.pass, v.detail)
    }
  }

  /** Opens a fault window (shaded in the chart); returns its start (unix ms). */
  faultStart(label: string): number {
    const from = Date.now()
    this.openWindow = { label, from }
    this.log(`inject: ${label}`)
    return from
  }

  faultEnd(): Window {
    const w = { ...this.openWindow!, to: Date.now() }
    this.windows.push(w)
    this.openWindow = undefined
    this.log(`restored: ${w.label} (${((w.to - w.from) / 1000).toFixed(1)} s)`)
    return w
  }

  // ------------------------------------------------------------------------------------------ setup

  /** The stack in the drill's starting shape: no toxics, stores up, replica counts. */
  async prepare(): Promise<void> {
    this.phase('prepare')
    await this.platform.toxiproxy.reset()
    const native = this.native
    if (native) {
      const down = native.stack.processes().filter((p) => (p.kind === 'postgres' || p.kind === 'redis') && !alive(p))
      if (down.length) await native.stack.up()
    }
    await this.platform.scale(this.drill.shape)
  }

  async makeLinks(n: number): Promise<Link[]> {
    const data = await makeData(this.platform.baseUrl, n)
    if (!this.data.token) this.data = data
    return data.links
  }

  get databaseUrl(): string {
    const url = this.native?.stack.databaseUrl ?? this.platform.databaseUrl ?? process.env.DATABASE_URL
    if (!url) throw new Error('set DATABASE_URL (a direct Postgres URL) to run this drill on this target')
    return url
  }

  /** The queue Redis (REDIS_URL). */
  get redis(): { url: string; prefix: string } {
    const url = this.native?.stack.redisUrl ?? this.platform.redisUrl ?? process.env.REDIS_URL
    if (!url) throw new Error('set REDIS_URL (a direct Redis URL) to run this drill on this target')
    return { url, prefix: this.native?.stack.redisPrefix ?? process.env.REDIS_PREFIX ?? 'opsdrill' }
  }

  /** The cache Redis (the API's CACHE_REDIS_URL, which defaults to REDIS_URL), where redirect entries live. */
  get cacheRedis(): { url: string; prefix: string } {
    const url = this.native?.stack.cacheRedisUrl ?? this.platform.cacheRedisUrl ?? process.env.CACHE_REDIS_URL ?? process.env.REDIS_URL
    if (!url) throw new Error('set CACHE_REDIS_URL (a direct URL of the cache Redis) to run this drill on this target')
    return { url, prefix: this.native?.stack.redisPrefix ?? process.env.REDIS_PREFIX ?? 'opsdrill' }
  }

  async sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ connectionString: this.databaseUrl })
    await c.connect()
    try {
      return (await c.query<T>(text, params)).rows
    } finally {
      await c.end()
    }
  }

  /** Adds n single-click jobs (jobId = clickId) for the links: the API now sends batch jobs, and the worker takes both shapes. */
  async enqueueClicks(links: Link[], n: number): Promise<number> {
    const q = clicksQueue(this.redis.url, this.redis.prefix)
    try {
      await enqueueClicks(
        q,
        links.map((l) => l.id),
        n,
      )
    } finally {
      await q.close()
    }
    return n
  }

  async queueCounts(): Promise<Record<string, number>> {
    const q = clicksQueue(this.redis.url, this.redis.prefix)
    try {
      return await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed')
    } finally {
      await q.close()
    }
  }

  /** Waits until the clicks queue has nothing waiting, active or delayed; returns seconds taken. */
  async drained(timeoutSec: number): Promise<number | undefined> {
    const q = clicksQueue(this.redis.url, this.redis.prefix)
    try {
      return await drained(q, timeoutSec)
    } finally {
      await q.close()
    }
  }

  /** Stored clicks and rollup sum for the links, straight from Postgres. */
  async stored(links: Link[]): Promise<{ stored: number; rollup: number; perLink: Map<string, { stored: number; rollup: number }> }> {
    const ids = links.map((l) => l.id)
    const rows = await this.sql<{ link_id: string; stored: string; rollup: string }>(
      `SELECT l.id AS link_id,
              (SELECT count(*) FROM clicks c WHERE c.link_id = l.id) AS stored,
              (SELECT coalesce(sum(r.clicks), 0) FROM click_rollups_daily r WHERE r.link_id = l.id) AS rollup
         FROM links l WHERE l.id = ANY($1::uuid[])`,
      [ids],
    )
    const perLink = new Map(rows.map((r) => [r.link_id, { stored: Number(r.stored), rollup: Number(r.rollup) }]))
    const sum = (k: 'stored' | 'rollup') => [...perLink.values()].reduce((a, b) => a + b[k], 0)
    return { stored: sum('stored'), rollup: sum('rollup'), perLink }
  }

  // ------------------------------------------------------------------------------------------ metrics

  /**
   * A metric summed over every replica of a kind (or the named ones), read from their /metrics now (native: exact, no
   * scrape lag). A replica that does not answer throws: its counters are unknown, not 0.
   */
  async metric(kind: Kind, name: string, labels: Record<string, string> = {}, only?: string[]): Promise<number> {
    const per = await this.perReplica(kind, name, labels, only)
    return Object.values(per).reduce((a, b) => a + b, 0)
  }

  async perReplica(kind: Kind, name: string, labels: Record<string, string> = {}, only?: string[]): Promise<Record<string, number>> {
    const reps = this.platform.replicas(kind).filter((r) => !only || only.includes(r.name))
    if (reps.some((r) => !r.metricsPort))
      throw new Error(`${kind} replicas have no /metrics port on ${this.platform.target}: ${name} unknown`)
    const pages = await scrape(reps.map(metricsAddr))
    return Object.fromEntries(reps.map((r, i) => [r.name, sumMetric(pages[i]!, name, labels)]))
  }

  async readiness(): Promise<Record<string, number>> {
    const reps = this.platform.replicas('api')
    const codes = await Promise.all(reps.map((r) => readyz(apiAddr(r))))
    return Object.fromEntries(reps.map((r, i) => [r.name, codes[i]!]))
  }

  // ------------------------------------------------------------------------------------------ load

  async startLoad(
    opts: {
      rate?: number
      apiShare?: number
      links?: Link[]
      mode?: 'steady' | 'saturate'
      vus?: number
      duration?: string
    } = {},
  ): Promise<void> {
    if (!this.data.token) await this.makeLinks(50)
    const data: DrillData = { token: this.data.token, links: opts.links ?? this.data.links }
    const file = join(this.dir, 'data.json')
    writeFileSync(file, JSON.stringify(data))
    const rate = opts.rate ?? this.timing.rate
    const apiShare = opts.apiShare ?? 0.1
    this.loadDesc =
      opts.mode === 'saturate'
        ? `k6 ramping-vus 1 -> ${opts.vus ?? 64} VUs (closed model, as fast as the stack answers), redirects only`
        : `k6 constant-arrival-rate ${rate} req/s: ${Math.round((1 - apiShare) * 100)}% redirects over ${data.links.length} links` +
          (apiShare > 0 ? `, ${Math.round((apiShare / 2) * 100)}% POST /api/v1/links, ${Math.round((apiShare / 2) * 100)}% GET stats` : '')
    this.log(`load: ${this.loadDesc}`)
    this.load = await Load.start({
      baseUrl: this.platform.baseUrl,
      dataFile: file,
      dir: this.dir,
      rate,
      apiShare,
      testid: `drill-${this.drill.name}`,
      prometheusUrl: this.platform.prometheusUrl,
      ...(opts.mode ? { mode: opts.mode } : {}),
      ...(opts.vus ? { vus: opts.vus } : {}),
      ...(opts.duration ? { duration: opts.duration } : {}),
      mark: `${this.ledgerId}.${this.loads++}`,
    })
    this.lastLive = { at: Date.now(), requests: 0, failed: 0 }
  }

  /** Stops the load now, or (natural) waits for its duration to end so that no request is abandoned mid-flight. */
  async stopLoad(natural = false): Promise<LoadResult> {
    this.phase('collect')
    const r = natural ? await this.load!.finished() : await this.load!.stop()
    this.load = undefined
    this.loadResult = this.loadResult ? merge(this.loadResult, r) : r
    return r
  }

  async loadDone(): Promise<boolean> {
    return this.load ? this.load.done() : true
  }

  async live(): Promise<{ requests: number; failed: number }> {
    return this.load ? this.load.live() : { requests: 0, failed: 0 }
  }

  /** Waits sec seconds, printing a progress line every 2 s: phase, elapsed, requests and error rate (total, last 2 s). */
  async watch(sec: number, extra?: () => Promise<string>): Promise<void> {
    const until = Date.now() + sec * 1000
    while (Date.now() < until) {
      await sleep(Math.min(2000, Math.max(0, until - Date.now())))
      await this.progress(extra)
    }
  }

  async progress(extra?: () => Promise<string>): Promise<void> {
    await this.pollAlerts()
    const more = extra ? `  ${await extra()}` : ''
    if (!this.load) {
      this.log(`${this.phaseName.padEnd(9)} +${this.elapsed()}${more}`)
      return
    }
    const live = await this.load.live()
    const dReq = live.requests - this.lastLive.requests
    const dFail = live.failed - this.lastLive.failed
    const rate = (live.failed / Math.max(1, live.requests)) * 100
    const recent = (dFail / Math.max(1, dReq)) * 100
    this.lastLive = { at: Date.now(), ...live }
    this.log(
      `${this.phaseName.padEnd(9)} +${this.elapsed()}  req ${live.requests}  errors ${rate.toFixed(2)}% (last 2 s: ${recent.toFixed(2)}%)${more}`,
    )
  }

  /** Waits until cond holds (polled every 100 ms) or timeoutSec passes; returns the seconds it took. */
  async until(cond: () => Promise<boolean> | boolean, timeoutSec: number): Promise<number | undefined> {
    const t = Date.now()
    let lastProgress = t
    while (Date.now() - t < timeoutSec * 1000) {
      if (await cond()) return (Date.now() - t) / 1000
      if (Date.now() - lastProgress > 2000) {
        lastProgress = Date.now()
        await this.progress()
      }
      await sleep(100)
    }
    return undefined
  }

  /** Requests, failures and latency of the requests (all, or one class) that ended inside [from, to] (unix ms). */
  window(from: number, to: number, slo?: 'redirect' | 'api'): Traffic {
    return this.traffic([[from, to]], slo)
  }

  /** The same over several spans (unix ms, inclusive). */
  traffic(spans: [number, number][], slo?: 'redirect' | 'api'): Traffic {
    const r = this.loadResult!
    const inside = (at: number) => spans.some(([from, to]) => at >= from && at <= to)
    // One sample per request (its duration), so a class's figures, its worst second included, are its own.
    const samples = r.samples.filter(([at, , c]) => inside(at) && (!slo || c === slo))
    const failed = r.failures.filter((f) => inside(f.at) && (!slo || f.slo === slo)).length
    const perSecond = new Map<number, number[]>()
    for (const [at, ms] of samples) {
      const second = perSecond.get(Math.floor(at / 1000))
      if (second) second.push(ms)
      else perSecond.set(Math.floor(at / 1000), [ms])
    }
    const sorted = (xs: number[]) => xs.sort((x, y) => x - y)
    const durations = sorted(samples.map(([, ms]) => ms))
    return {
      requests: samples.length,
      failed,
      failedShare: failed / Math.max(1, samples.length),
      p99: round(quantile(durations, 0.99)),
      max: round(durations.at(-1) ?? 0),
      worstSecondP99: round(Math.max(0, ...[...perSecond.values()].map((xs) => quantile(sorted(xs), 0.99)))),
    }
  }

  /** Lines of a replica's log written after byte offset `from` (native). */
  logSince(replica: string, from: number): string {
    const part = this.native?.stack.processes().find((p) => p.name === replica)
    if (!part || !existsSync(part.logFile)) return ''
    return readFileSync(part.logFile, 'utf8').slice(from)
  }

  logSize(replica: string): number {
    const part = this.native?.stack.processes().find((p) => p.name === replica)
    return part && existsSync(part.logFile) ? statSync(part.logFile).size : 0
  }

  // ------------------------------------------------------------------------------------------ alerts and SLO

  get alertmanagerUrl(): string {
    return this.native?.stack.alertmanagerUrl ?? process.env.ALERTMANAGER_URL ?? 'http://127.0.0.1:9093'
  }

  /** Records the alerts Alertmanager shows now (firing, and inhibited or silenced too), keeping each first startsAt. */
  async pollAlerts(): Promise<void> {
    try {
      for (const a of await alertmanagerAlerts(this.alertmanagerUrl)) {
        const seen = this.alertsSeen.get(a.alert)
        if (seen === undefined || a.startsAt < seen) this.alertsSeen.set(a.alert, a.startsAt)
      }
      this.alertmanagerError = undefined
    } catch (err) {
      this.alertmanagerError = (err as Error).message
    }
  }

  /** The SLO figures of the run: the requests outside every fault window (and its settle time), and those inside. */
  sloMeasure(budget: Budget): SloMeasure {
    const r = this.loadResult!
    const spans = this.windows.map((w): [number, number] => [w.from, w.to + budget.settleSec * 1000])
    const start = r.seconds[0]!.t * 1000
    const end = Date.now()
    const outside: [number, number][] = []
    let at = start
    for (const [from, to] of spans.sort((a, b) => a[0] - b[0])) {
      if (from > at) outside.push([at, from - 1])
      at = Math.max(at, to + 1)
    }
    if (at < end) outside.push([at, end])
    return {
      budget,
      latencyFactor: this.latencyFactor,
      outside: { all: this.traffic(outside), redirect: this.traffic(outside, 'redirect') },
      inside: { redirect: this.traffic(spans, 'redirect'), api: this.traffic(spans, 'api') },
    }
  }

  // ------------------------------------------------------------------------------------------ report

  /**
   * The error lines of each fault window in the log store, per service, with the query and a link to it; undefined
   * where the target runs no store it can query (a note says so when the query fails).
   */
  private async errorLines(): Promise<ErrorLines[] | undefined> {
    const url = this.platform.logsUrl
    const ui = this.platform.logsUiUrl
    if (!url || !ui) return undefined
    try {
      return await Promise.all(
        this.windows.map(async (w) => {
          const query = `${timeWindow(w.from, w.to)} ${ERROR_LINES}`
          return { window: w.label, query, link: logsUiLink(ui, query), perService: await errorLinesPerService(url, w.from, w.to) }
        }),
      )
    } catch (err) {
      this.notes.push(`the log store did not answer (${(err as Error).message}): no error lines per service`)
      return undefined
    }
  }

  async finish(error?: unknown): Promise<Outcome> {
    if (this.load) await this.stopLoad().catch(() => undefined)
    if (error)
      this.check(
        'the drill ran to its end',
        false,
        String((error as Error).stack ?? error)
          .split('\n')
          .slice(0, 3)
          .join(' '),
      )
    if (this.checks.length === 0) this.check('the drill judged something', false, 'no criterion was evaluated')
    await this.pollAlerts()
    const alertNames = this.drill.alerts.map((a) => a.split(' ')[0]!)
    const firing = [...this.alertsSeen].filter(([a]) => alertNames.includes(a)).map(([alert, startsAt]) => ({ alert, startsAt }))
    const timelines = this.windows.map((w) => timeline(w, this.loadResult?.failures ?? [], firing))
    if (this.alertmanagerError) this.notes.push(`Alertmanager did not answer (${this.alertmanagerError}): time to detect unknown`)
    const errorLines = await this.errorLines()
    const passed = this.checks.every((c) => c.pass)
    const report: Report = {
      drill: this.drill.name,
      title: this.drill.title,
      target: this.platform.target,
      form: this.short ? 'short' : 'full',
      startedAt: new Date(this.t0).toISOString(),
      durationSec: (Date.now() - this.t0) / 1000,
      load: this.loadDesc,
      passed,
      checks: this.checks,
      windows: this.windows,
      timeline: timelines,
      alerts: alertNames,
      errorBudget: this.loadResult ? errorBudgetSpent(this.loadResult.samples.length, this.loadResult.failures.length) : undefined,
      measured: {
        ...this.measured,
        ...(this.loadResult
          ? {
              k6: {
                redirect: {
                  ...this.loadResult.redirect,
                  p99: round(this.loadResult.redirect.p99),
                  max: round(this.loadResult.redirect.max),
                },
                api: { ...this.loadResult.api, p99: round(this.loadResult.api.p99), max: round(this.loadResult.api.max) },
                failedRequests: this.loadResult.failures.length,
              },
            }
          : {}),
      },
      ...(errorLines ? { errorLines } : {}),
      notes: this.notes,
      seconds: this.loadResult?.seconds ?? ([] as Second[]),
    }
    await writeReport(this.dir, report)
    await publish(this.platform.prometheusUrl, report).catch((err: Error) =>
      this.log(`could not push the verdict and fault windows to Prometheus: ${err.message}`),
    )
    this.log(`${passed ? 'PASSED' : 'FAILED'}: report in ${this.dir}/report.md`)
    return { passed, dir: this.dir, report }
  }
}

export async function runDrill(drill: Drill, opts: RunOptions): Promise<Outcome> {
  if (drill.targets && !drill.targets.includes(opts.platform.target)) {
    throw new Error(`drill ${drill.name} runs on ${drill.targets.join(', ')} only (asked for ${opts.platform.target})`)
  }
  const d = new DrillRun(drill, opts)
  let error: unknown
  try {
    await d.prepare()
    await drill.run(d)
    if (drill.budget) d.judge(sloCriteria(drill.budget), d.sloMeasure(drill.budget))
  } catch (err) {
    error = err
  }
  // Whatever happened, leave the stack as the drill found it: no toxics, stores up, starting shape.
  try {
    if (d.windows.length === 0 && error === undefined) d.notes.push('no fault window was recorded')
    await d.platform.toxiproxy.reset()
    await d.prepare()
    await drill.cleanup?.(d)
  } catch (err) {
    d.notes.push(`could not restore the stack after the drill: ${(err as Error).message}`)
  }
  return d.finish(error)
}

function merge(a: LoadResult, b: LoadResult): LoadResult {
  const sumStatus = (x: Record<string, number>, y: Record<string, number>) => {
    const out = { ...x }
    for (const [k, v] of Object.entries(y)) out[k] = (out[k] ?? 0) + v
    return out
  }
  const cls = (x: LoadResult['redirect'], y: LoadResult['redirect']) => ({
    requests: x.requests + y.requests,
    failed: x.failed + y.failed,
    p50: Math.max(x.p50, y.p50),
    p95: Math.max(x.p95, y.p95),
    p99: Math.max(x.p99, y.p99),
    max: Math.max(x.max, y.max),
    byStatus: sumStatus(x.byStatus, y.byStatus),
  })
  return {
    exitCode: b.exitCode,
    seconds: [...a.seconds, ...b.seconds],
    redirect: cls(a.redirect, b.redirect),
    api: cls(a.api, b.api),
    failures: [...a.failures, ...b.failures],
    servedPerLink: sumStatus(a.servedPerLink, b.servedPerLink),
    servedMarks: [...a.servedMarks, ...b.servedMarks],
    shedWithRetryAfter: a.shedWithRetryAfter + b.shedWithRetryAfter,
    shedWithoutRetryAfter: a.shedWithoutRetryAfter + b.shedWithoutRetryAfter,
    samples: [...a.samples, ...b.samples],
  }
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
