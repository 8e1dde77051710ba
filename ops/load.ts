// npm run load -- <scenario> [--short] [--base-url URL]   one k6 scenario (outputs in .run/load/<scenario>-<time>/)
// npm run load -- report [--short]                        every scenario, then docs/load-results.md and its charts
// OPSDRILL_SHORT=1 in the environment is --short (test/system/walkthrough.test.ts runs the README's commands as written).
//
// caching, balancing and scaling are comparisons that drive the native stack between runs (restart replicas with
// the cache off, kill a replica mid-run, scale replicas and workers); they need `npm run stack -- up` first.
// The functions are exported for the test suite (test/system/load.test.ts).
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import pg from 'pg'
import { clicksQueue, DRAIN_WORKER_ENV, timeDrain } from './lib/backlog.ts'
import { lineChart, type Row } from './lib/charts.ts'
import { cpuBusy, cpuTicks } from './lib/cpu.ts'
import { makeData } from './lib/drills/client.ts'
import { Toxiproxy } from './lib/drills/toxiproxy.ts'
import { k6Version, maxSustained, runK6, SCENARIOS, type Bucket, type Figures, type K6Result, type ScenarioName } from './lib/k6.ts'
import { stackAt, type Stack } from './lib/stack/index.ts'
import { queryVector, waitForScrape } from './lib/stack/prometheus.ts'

const ROOT = resolve(import.meta.dirname, '..')
const REDIRECT_P99_SLO_MS = 100
type Say = (line: string) => void
const stdout: Say = (l) => process.stdout.write(`${l}\n`)

// ------------------------------------------------------------------ helpers

async function withCpu<T>(fn: () => Promise<T>): Promise<T & { cpuBusy: number }> {
  const a = cpuTicks()
  const r = await fn()
  return { ...r, cpuBusy: cpuBusy(a, cpuTicks()) }
}

async function counters(stack: Stack, query: string, by: string): Promise<Map<string, number>> {
  const v = await queryVector(stack.prometheusUrl, `sum by (${by}) (${query})`)
  return new Map(v.map((s) => [s.metric[by] ?? '', s.value]))
}

/** Counter totals once Prometheus has scraped every API replica after now. */
async function freshCounters(stack: Stack, query: string, by: string): Promise<Map<string, number>> {
  await waitForScrape(stack.prometheusUrl, 'opsdrill-api', Date.now() / 1000)
  return counters(stack, query, by)
}

function delta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)]))
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0)

export interface RunOptions {
  stack: Stack
  short: boolean
  baseUrl?: string
  say?: Say
  /** -e variables for every run */ env?: Record<string, string>
}
export type Run = K6Result & { cpuBusy: number }

export async function scenario(name: ScenarioName, o: RunOptions, extra: Partial<Parameters<typeof runK6>[0]> = {}): Promise<Run> {
  // Samples go to the stack's Prometheus when a stack runs; against another base URL there may be none.
  const prometheusUrl = o.stack.processes().some((p) => p.kind === 'prometheus') ? o.stack.prometheusUrl : undefined
  return withCpu(() =>
    runK6({
      scenario: name,
      short: o.short,
      baseUrl: o.baseUrl ?? o.stack.baseUrl,
      ...(prometheusUrl ? { prometheusUrl } : {}),
      ...(o.say ? { log: o.say } : {}),
      ...extra,
      env: { ...o.env, ...extra.env },
    }),
  )
}

// ------------------------------------------------------------------ caching

const CACHE_LOOKUPS = 'opsdrill_cache_lookups_total'
const PG_BY_CODE = 'opsdrill_pg_query_duration_seconds_count{operation="link_by_code"}'

export interface CacheSide {
  run: Run
  hitRatio: number
  pgQueriesPerSec: number
  lookups: number
}
export interface CachingResult {
  on: CacheSide
  off: CacheSide
}

async function cacheSide(o: RunOptions, label: string): Promise<CacheSide> {
  const lookups0 = await freshCounters(o.stack, CACHE_LOOKUPS, 'result')
  const pg0 = await counters(o.stack, PG_BY_CODE, 'operation')
  const run = await scenario('caching', o, { label })
  const lookups = delta(lookups0, await freshCounters(o.stack, CACHE_LOOKUPS, 'result'))
  const pg = sum(delta(pg0, await counters(o.stack, PG_BY_CODE, 'operation')))
  const total = sum(lookups)
  const hits = (lookups.get('l1_hit') ?? 0) + (lookups.get('redis_hit') ?? 0) + (lookups.get('negative_hit') ?? 0)
  const seconds = Math.max(1, run.end - run.start)
  return { run, hitRatio: total ? hits / total : 0, pgQueriesPerSec: pg / seconds, lookups: total }
}

/** Latency added to every Postgres reply during the caching comparison, as a managed database across a network has. */
export const CACHING_PG_LATENCY_MS = 20

/**
 * The same Zipf redirect load with the cache on, then with every API replica restarted with CACHE_ENABLED=false, both
 * with Postgres behind CACHING_PG_LATENCY_MS of toxiproxy latency: on loopback a Postgres lookup costs about as much
 * as a Redis one, so without it the two p95s differ by run-to-run noise.
 */
export async function caching(o: RunOptions): Promise<CachingResult> {
  const say = o.say ?? stdout
  if (o.stack.replicas('api').some((x) => x.env?.CACHE_ENABLED === 'false')) await o.stack.restartAll('api', {})
  const toxiproxy = new Toxiproxy(o.stack.toxiproxyUrl)
  await toxiproxy.addToxic('postgres', {
    name: 'caching-latency',
    type: 'latency',
    attributes: { latency: CACHING_PG_LATENCY_MS, jitter: 0 },
  })
  try {
    const on = await cacheSide(o, 'cache-on')
    say('==> restarting API replicas with CACHE_ENABLED=false')
    await o.stack.restartAll('api', { CACHE_ENABLED: 'false' })
    const off = await cacheSide(o, 'cache-off')
    return { on, off }
  } finally {
    await toxiproxy.removeToxic('postgres', 'caching-latency')
    say('==> restarting API replicas with the cache on')
    await o.stack.restartAll('api', {})
  }
}

// ------------------------------------------------------------------ balancing

export interface BalancingResult {
  share: Run
  /** Each replica's share of requests by X-Upstream (k6) and by its own request counter (Prometheus). */
  sharesK6: Record<string, number>
  sharesPrometheus: Record<string, number>
  failover: Run
  killed: string
  /** Requests answered by the killed replica after the kill (from X-Upstream): nginx should route around it. */
  killedAfterKill: number
}

function upstreamCounts(run: K6Result): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(run.summary.metrics)) {
    const m = k.match(/^upstream_requests\{upstream:(.+)\}$/)
    if (m) out[m[1]!] = v.count ?? 0
  }
  return out
}

const shares = (counts: Record<string, number>) => {
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, total ? v / total : 0]))
}

/** Even share across the API replicas, then one replica SIGKILLed mid-run (and restarted afterwards). */
export async function balancing(o: RunOptions): Promise<BalancingResult> {
  const replicas = o.stack.replicas('api')
  if (replicas.length < 2) throw new Error('balancing needs at least 2 API replicas: npm run stack -- scale api=2')
  const UPSTREAMS = replicas.map((r) => `127.0.0.1:${r.port}`).join(',')
  const byReplica = 'opsdrill_http_request_duration_seconds_count{job="opsdrill-api"}'
  const before = await freshCounters(o.stack, byReplica, 'replica')
  const share = await scenario('balancing', o, { label: 'share', env: { UPSTREAMS } })
  const served = delta(before, await freshCounters(o.stack, byReplica, 'replica'))
  const sharesK6 = shares(Object.fromEntries(replicas.map((r) => [r.name, upstreamCounts(share)[`127.0.0.1:${r.port}`] ?? 0])))
  const sharesPrometheus = shares(Object.fromEntries(replicas.map((r) => [r.name, served.get(r.name) ?? 0])))

  const victim = replicas.at(-1)!
  let killedAt = 0
  const failover = await scenario('balancing', o, {
    label: 'failover',
    env: { UPSTREAMS },
    during: {
      afterSec: o.short ? 3 : 20,
      action: async () => {
        ;(o.say ?? stdout)(`==> SIGKILL ${victim.name} (pid ${victim.pid})`)
        o.stack.kill(victim.name, 'SIGKILL')
        killedAt = Date.now() / 1000
      },
    },
  })
  await o.stack.restartReplica(victim.name)
  // Requests the dead replica answered after the kill would show up as its X-Upstream count growing; k6 only has
  // totals, so compare with what it served before the kill at the same rate.
  const victimCount = upstreamCounts(failover)[`127.0.0.1:${victim.port}`] ?? 0
  const beforeKill = failover.series.filter((b) => b.t < killedAt).reduce((a, b) => a + b.reqs, 0)
  return { share, sharesK6, sharesPrometheus, failover, killed: victim.name, killedAfterKill: Math.max(0, victimCount - beforeKill) }
}

// ------------------------------------------------------------------ scaling

export interface DrainResult {
  workers: number
  /** Click jobs in the backlog when the queue was resumed. */
  jobs: number
  seconds: number
  jobsPerSec: number
  /** Clicks of the backlog's own links found in Postgres after the drain: each job stores one. */
  stored: number
}
export interface ScalingResult {
  /** maxSustained within the redirect SLO; peak, the best 5-second throughput with any latency (errors < 1%). */
  ramps: { replicas: number; run: Run; maxSustained: number; peak: number }[]
  drains: DrainResult[]
}

async function storedClicks(stack: Stack, linkIds: string[]): Promise<number> {
  const client = new pg.Client({ connectionString: stack.databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM clicks WHERE link_id = ANY($1::uuid[])', [linkIds])
    return Number(rows[0]!.n)
  } finally {
    await client.end()
  }
}

/**
 * Times `workers` workers draining `jobs` single-click jobs for links of its own (ops/lib/backlog.ts), then counts
 * those clicks in Postgres. The backlog is queued directly, not through redirects: the API batches its clicks (up to
 * 500 a job), so a backlog of redirects big enough to time takes longer to make than to drain.
 */
export async function drain(o: RunOptions, workers: number, jobs: number): Promise<DrainResult> {
  const say = o.say ?? stdout
  const { links } = await makeData(o.stack.baseUrl, 20)
  const linkIds = links.map((l) => l.id)
  const queue = clicksQueue(o.stack.redisUrl, o.stack.redisPrefix)
  try {
    const scaleWorkers = async (n: number) => {
      if (n > 0) say(`==> click jobs waiting; starting ${n} worker(s) on the paused queue`)
      await o.stack.scale({ worker: n }, n > 0 ? DRAIN_WORKER_ENV : undefined)
    }
    const r = await timeDrain(queue, { linkIds, jobs, workers, scaleWorkers, timeoutSec: 300 })
    if (r.seconds === undefined) throw new Error(`${workers} worker(s) did not drain ${r.jobs} click jobs within 300 s`)
    const stored = await storedClicks(o.stack, linkIds)
    const jobsPerSec = r.jobs / r.seconds
    say(
      `    ${workers} worker(s) drained ${r.jobs} jobs in ${r.seconds.toFixed(2)} s (${jobsPerSec.toFixed(0)} jobs/s); ${stored} clicks stored`,
    )
    return { workers, jobs: r.jobs, seconds: r.seconds, jobsPerSec, stored }
  } finally {
    await queue.close()
  }
}

/** The arrival-rate ramp against 1 then 2 API replicas; the backlog drain with 1 then 2 workers. */
export async function scaling(o: RunOptions): Promise<ScalingResult> {
  const apiBefore = o.stack.replicas('api').length
  const workersBefore = o.stack.replicas('worker').length
  const ramps: ScalingResult['ramps'] = []
  try {
    for (const n of [1, 2]) {
      await o.stack.scale({ api: n })
      const run = await scenario('scaling', o, { label: `api${n}` })
      ramps.push({
        replicas: n,
        run,
        maxSustained: maxSustained(run.series, REDIRECT_P99_SLO_MS),
        peak: maxSustained(run.series, Infinity),
      })
    }
    const jobs = o.short ? 5000 : 20000
    const drains = [await drain(o, 1, jobs), await drain(o, 2, jobs)]
    return { ramps, drains }
  } finally {
    await o.stack.scale({ worker: 0 })
    await o.stack.scale({ api: Math.max(1, apiBefore), worker: workersBefore }, {})
  }
}

// ------------------------------------------------------------------ report

const ms = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(1))
const pct = (v: number) => `${(v * 100).toFixed(2)}%`

function row(name: string, r: Run, note = ''): string {
  const f: Figures = r.figures
  return `| ${name} | ${r.exitCode === 0 ? 'held' : `crossed (${r.failedThresholds.length})`} | ${f.rps.toFixed(0)} | ${pct(f.errorRate)} | ${ms(f.redirect?.p50)} | ${ms(f.redirect?.p95)} | ${ms(f.redirect?.p99)} | ${ms(f.api?.p99)} | ${(r.cpuBusy * 100).toFixed(0)}% | ${note} |`
}

function machine(): string {
  const k6 = k6Version()
  const model = cpus()[0]?.model ?? 'unknown'
  return `${cpus().length} cores (${model}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${k6}`
}

function seriesRows(series: Bucket[], label: string, pick: (b: Bucket) => number): Row[] {
  const t0 = series[0]?.t ?? 0
  return series.map((b) => ({ x: b.t - t0, y: pick(b), series: label }))
}

/** What the two ramps say, in words that match the figures: ramp-limited, box-limited, or a plain comparison. */
function rampReading(ramps: ScalingResult['ramps']): string {
  const figures = ramps.map((r) => `${r.replicas} replica(s) ${r.maxSustained.toFixed(0)} req/s`).join(', ')
  const busy = Math.max(0, ...ramps.map((r) => r.run.cpuBusy))
  const busyText = `the box at most ${(busy * 100).toFixed(0)}% busy`
  if (ramps.every((r) => r.maxSustained >= 0.95 * r.peak))
    return `${figures}, ${busyText}: each setup kept the SLO up to the highest rate the ramp reached (${ramps.map((r) => r.peak.toFixed(0)).join(' and ')} req/s over 5 s), so these figures show the ramp, not a capacity. A ramp that climbs higher (the full form) finds where each setup breaks.`
  if (busy >= 0.8)
    return `${figures}, ${busyText}. k6 and everything it tests share ${cpus().length} cores: a second replica adds a process but no CPU, so past that point the replicas compete with k6, nginx and Postgres for the same cores and the curve is the machine's. On separate machines (or the Kubernetes manifests with CPU limits) each replica brings its own core and the same run measures the code.`
  return `${figures}, ${busyText}.`
}

export async function report(o: RunOptions): Promise<string> {
  const started = Date.now()
  const loadAtStart = loadavg()[0]!
  const runs: [string, Run, string][] = []
  for (const name of ['smoke', 'average', 'stress', 'spike', 'soak', 'breakpoint'] as const) {
    const r = await scenario(name, o)
    const peak = name === 'breakpoint' ? `peak ${Math.max(0, ...r.series.map((b) => b.reqs))} req/s in one second` : ''
    runs.push([name, r, peak])
  }
  const c = await caching(o)
  const b = await balancing(o)
  const s = await scaling(o)
  const minutes = ((Date.now() - started) / 60000).toFixed(1)

  const dir = join(ROOT, 'docs/load-results')
  mkdirSync(dir, { recursive: true })
  await lineChart(join(dir, 'caching-throughput.svg'), {
    title: 'Caching: redirects served per second',
    xTitle: 'seconds',
    yTitle: 'req/s',
    rows: [...seriesRows(c.on.run.series, 'cache on', (x) => x.reqs), ...seriesRows(c.off.run.series, 'cache off', (x) => x.reqs)],
  })
  await lineChart(join(dir, 'caching-latency.svg'), {
    title: 'Caching: redirect latency p95 per second',
    xTitle: 'seconds',
    yTitle: 'ms',
    rows: [...seriesRows(c.on.run.series, 'cache on', (x) => x.p95), ...seriesRows(c.off.run.series, 'cache off', (x) => x.p95)],
  })
  await lineChart(join(dir, 'scaling-throughput.svg'), {
    title: 'Scaling: throughput under a rising arrival rate',
    xTitle: 'seconds',
    yTitle: 'req/s',
    rows: s.ramps.flatMap((r) => seriesRows(r.run.series, `${r.replicas} API replica(s)`, (x) => x.reqs)),
  })
  await lineChart(join(dir, 'scaling-latency.svg'), {
    title: 'Scaling: redirect latency p99 per second (log scale)',
    xTitle: 'seconds',
    yTitle: 'ms',
    logY: true,
    rows: s.ramps.flatMap((r) => seriesRows(r.run.series, `${r.replicas} API replica(s)`, (x) => x.p99)),
  })

  const form = o.short ? 'short form (`npm run load -- report --short`: each run lasts seconds)' : 'full form (`npm run load -- report`)'
  const [d1, d2] = s.drains
  const lines = [
    '# Load results',
    '',
    `One run of every k6 scenario against the native stack (\`npm run stack -- up\`: nginx, ${o.stack.replicas('api').length} API replicas, ${o.stack.replicas('worker').length} worker, Postgres and Redis behind toxiproxy), ${form}, ${new Date().toISOString().slice(0, 16)}Z, ${minutes} minutes in all.`,
    `Regenerate with \`npm run load -- report${o.short ? ' --short' : ''}\`; each run's k6 HTML report, summary and samples are in \`.run/load/\`.`,
    '',
    `**Machine:** ${machine()}. k6, nginx, both API replicas, the worker, Postgres, Redis, toxiproxy and Prometheus share these cores. Load average (1 min) when the report started: ${loadAtStart.toFixed(1)}, at the end: ${loadavg()[0]!.toFixed(1)}${loadAtStart > cpus().length ? ' — the box was busy with other work as well, so latencies are higher and noisier than on an idle machine' : ''}.`,
    '',
    '## Every scenario',
    '',
    'SLO: errors < 1% (smoke < 0.1%), redirect p99 < 100 ms, API p99 < 500 ms (spike: 10x the latency bound). Latency in ms, as k6 sees it through nginx. "CPU" is the whole box busy during the run.',
    '',
    '| scenario | thresholds | req/s | errors | redirect p50 | p95 | p99 | API p99 | CPU | note |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...runs.map(([n, r, note]) => row(n, r, note)),
    row('caching (cache on)', c.on.run, `hit ratio ${pct(c.on.hitRatio)}, ${c.on.pgQueriesPerSec.toFixed(0)} PG queries/s`),
    row('caching (cache off)', c.off.run, `hit ratio ${pct(c.off.hitRatio)}, ${c.off.pgQueriesPerSec.toFixed(0)} PG queries/s`),
    row('balancing (even share)', b.share, ''),
    row(`balancing (${b.killed} killed)`, b.failover, ''),
    ...s.ramps.map((r) => row(`scaling ramp, ${r.replicas} API`, r.run, `max sustained within SLO ${r.maxSustained.toFixed(0)} req/s`)),
    '',
    '## Caching',
    '',
    `Zipf-popular links (s = 1) over ${o.short ? 200 : 1000} links, redirects only, the same arrival rate twice: cache on (per-replica LRU + Redis), then every API replica restarted with \`CACHE_ENABLED=false\`, Postgres behind ${CACHING_PG_LATENCY_MS} ms of toxiproxy latency both times. Hit ratio from \`opsdrill_cache_lookups_total\`, Postgres lookups from \`opsdrill_pg_query_duration_seconds_count{operation="link_by_code"}\` (Prometheus, counter deltas over the run).`,
    '',
    '| | hit ratio | redirect p50 | p95 | p99 | req/s | Postgres link lookups/s |',
    '|---|---|---|---|---|---|---|',
    ...(
      [
        ['cache on', c.on],
        ['cache off', c.off],
      ] as const
    ).map(
      ([n, x]) =>
        `| ${n} | ${pct(x.hitRatio)} | ${ms(x.run.figures.redirect?.p50)} | ${ms(x.run.figures.redirect?.p95)} | ${ms(x.run.figures.redirect?.p99)} | ${x.run.figures.rps.toFixed(0)} | ${x.pgQueriesPerSec.toFixed(1)} |`,
    ),
    '',
    '![caching throughput](load-results/caching-throughput.svg)',
    '![caching latency](load-results/caching-latency.svg)',
    '',
    '## Balancing',
    '',
    "nginx `least_conn` over the API replicas. Each replica's share of the requests, counted two ways: by the `X-Upstream` header k6 saw, and by the replica's own request counter in Prometheus.",
    '',
    '| replica | share by X-Upstream | share by Prometheus |',
    '|---|---|---|',
    ...Object.keys(b.sharesK6).map((r) => `| ${r} | ${pct(b.sharesK6[r]!)} | ${pct(b.sharesPrometheus[r] ?? 0)} |`),
    '',
    `Failover: ${b.killed} was SIGKILLed ${o.short ? 3 : 20} s into a second run. Errors over that run: ${pct(b.failover.figures.errorRate)} (${Math.round(b.failover.figures.errorRate * b.failover.figures.requests)} of ${b.failover.figures.requests}); nginx retried the requests that hit the dead replica on another one (\`proxy_next_upstream error\`) and took it out for \`fail_timeout\`.`,
    '',
    '## Scaling',
    '',
    'The same arrival-rate ramp against 1 and then 2 API replicas. "Max sustained" is the highest 5-second average throughput with redirect p99 < 100 ms, and errors < 1% (the load is open-model, so falling behind shows as latency).',
    '',
    `| API replicas | max sustained req/s within SLO | box CPU busy |`,
    '|---|---|---|',
    ...s.ramps.map((r) => `| ${r.replicas} | ${r.maxSustained.toFixed(0)} | ${(r.run.cpuBusy * 100).toFixed(0)}% |`),
    '',
    '![scaling throughput](load-results/scaling-throughput.svg)',
    '![scaling latency](load-results/scaling-latency.svg)',
    '',
    `Queue backlog: workers stopped, ${d1?.jobs} single-click jobs queued straight onto the paused queue (the API's own jobs carry up to 500 clicks each, so a backlog of redirects large enough to time would take longer to make than to drain), the workers started (each with \`CLICK_CONCURRENCY=${DRAIN_WORKER_ENV.CLICK_CONCURRENCY}\`, see below), then the queue resumed; drain time from resume to an empty queue, and the backlog's clicks counted in Postgres afterwards.`,
    '',
    '| workers | jobs | drain time | jobs/s | clicks stored |',
    '|---|---|---|---|---|',
    ...s.drains.map((d) => `| ${d.workers} | ${d.jobs} | ${d.seconds.toFixed(2)} s | ${d.jobsPerSec.toFixed(0)} | ${d.stored} |`),
    '',
    '## Reading the scaling figures',
    '',
    rampReading(s.ramps),
    '',
    `The drain comparison bounds each worker to ${DRAIN_WORKER_ENV.CLICK_CONCURRENCY} concurrent jobs (the default is 200), so it measures what a second consumer adds rather than how much of the box one process can take: two workers drained ${d2?.jobsPerSec.toFixed(0)} jobs/s against ${d1?.jobsPerSec.toFixed(0)} with one (x${((d2?.jobsPerSec ?? 0) / Math.max(1, d1?.jobsPerSec ?? 0)).toFixed(2)}).`,
    '',
  ]
  const md = lines.join('\n')
  writeFileSync(join(ROOT, 'docs/load-results.md'), md)
  return md
}

// ------------------------------------------------------------------ CLI

function parse(argv: string[]): { what: string; short: boolean; baseUrl?: string } {
  const out: { what: string; short: boolean; baseUrl?: string } = { what: '', short: process.env.OPSDRILL_SHORT === '1' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--short') out.short = true
    else if (a === '--base-url') out.baseUrl = argv[++i]
    else if (a.startsWith('--base-url=')) out.baseUrl = a.slice('--base-url='.length)
    else if (!out.what) out.what = a
    else throw new Error(`unexpected argument "${a}"`)
  }
  return out
}

async function main(): Promise<number> {
  const usage = `usage: npm run load -- <${SCENARIOS.join('|')}|report> [--short] [--base-url URL]`
  const { what, short, baseUrl } = parse(process.argv.slice(2))
  const stack = stackAt()
  const o: RunOptions = { stack, short, ...(baseUrl ? { baseUrl } : {}) }
  const needsStack = ['caching', 'balancing', 'scaling', 'report'].includes(what)
  if (needsStack && stack.processes().length === 0)
    throw new Error(`${what} drives the native stack between runs: start it with \`npm run stack -- up\``)
  switch (what) {
    case 'caching': {
      const r = await caching(o)
      stdout(
        `cache on: hit ratio ${pct(r.on.hitRatio)}, p95 ${ms(r.on.run.figures.redirect?.p95)} ms, ${r.on.pgQueriesPerSec.toFixed(1)} PG lookups/s; cache off: p95 ${ms(r.off.run.figures.redirect?.p95)} ms, ${r.off.pgQueriesPerSec.toFixed(1)} PG lookups/s`,
      )
      return 0
    }
    case 'balancing': {
      const r = await balancing(o)
      stdout(
        `shares by X-Upstream ${JSON.stringify(r.sharesK6)}, by Prometheus ${JSON.stringify(r.sharesPrometheus)}; with ${r.killed} killed: errors ${pct(r.failover.figures.errorRate)}`,
      )
      return 0
    }
    case 'scaling': {
      const r = await scaling(o)
      stdout(
        r.ramps
          .map((x) => `${x.replicas} API: ${x.maxSustained.toFixed(0)} req/s within SLO`)
          .concat(r.drains.map((d) => `${d.workers} worker(s): ${d.seconds.toFixed(2)} s for ${d.jobs} jobs`))
          .join('; '),
      )
      return 0
    }
    case 'report':
      await report(o)
      stdout('wrote docs/load-results.md and docs/load-results/*.svg')
      return 0
    default: {
      if (!(SCENARIOS as readonly string[]).includes(what)) {
        process.stderr.write(`${usage}\n`)
        return 2
      }
      const r = await scenario(what as ScenarioName, o)
      stdout(`report: ${r.dir}/report.html`)
      return r.exitCode
    }
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await main()
  } catch (err) {
    process.stderr.write(`load: ${(err as Error).message}\n`)
    process.exitCode = 1
  }
}
