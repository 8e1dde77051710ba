// The proof that no dashboard shows "No data": the native stack (API replicas, worker, Postgres, Redis, exporters and a
// real Prometheus with the repo's config and rules) serves real traffic, including client errors, a Redis and a
// Postgres outage through toxiproxy, retries, dead letters and load shedding, plus a k6 run streamed into Prometheus.
// Then every PromQL expression of every dashboard panel and every recording rule must return at least one series,
// every alert expression must evaluate, and every metric any of them names must exist. A failure names the dashboard
// and panel (or rule group and rule).
import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { stackAt } from '../../ops/lib/stack/index.ts'
import { queryRange, queryVector, waitForScrape } from '../../ops/lib/stack/prometheus.ts'
import { allExpressions, metricNames, recordedNames } from '../../ops/lib/promql.ts'
import { runK6 } from '../../ops/lib/k6.ts'
import { QUEUES } from '../../common/queues.ts'
import { BROWSER_USER_AGENT } from '../../loadtests/lib/browser.ts'

// Counters that only an injected worker crash produces within a test's time: the worker-ledger drill
// (test/system/drills.test.ts) proves them against the same Prometheus.
const PROVEN_BY_DRILLS = new Set(['opsdrill_jobs_stalled_total'])
const PASSWORD = 'observability proof 1'

const stack = stackAt({ offset: 210, log: () => undefined })

/** A request through nginx, or to `base` (one replica) when given. */
async function call(method: string, path: string, opts: { body?: unknown; token?: string; base?: string } = {}) {
  const res = await fetch((opts.base ?? stack.baseUrl) + path, {
    method,
    redirect: 'manual',
    headers: {
      'user-agent': BROWSER_USER_AGENT,
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    signal: AbortSignal.timeout(15_000),
  })
  const text = await res.text()
  return { status: res.status, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {} }
}

async function toxiproxy(proxy: 'postgres' | 'redis' | 'redis-cache', enabled: boolean) {
  const res = await fetch(`${stack.toxiproxyUrl}/proxies/${proxy}`, { method: 'POST', body: JSON.stringify({ enabled }) })
  if (!res.ok) throw new Error(`toxiproxy ${proxy} enabled=${enabled}: ${res.status}`)
}

async function driveTraffic(t: Test) {
  const email = `obs-${Date.now()}@example.test`
  t.equal((await call('POST', '/api/v1/auth/register', { body: { email, password: PASSWORD } })).status, 202)
  const token = String((await call('POST', '/api/v1/auth/login', { body: { email, password: PASSWORD } })).json.accessToken)
  const links: { id: string; code: string }[] = []
  for (let i = 0; i < 30; i++)
    links.push(
      (await call('POST', '/api/v1/links', { body: { url: `https://example.com/obs/${i}` }, token })).json as { id: string; code: string },
    )
  // Hits, misses (first sight of each code), negative hits, 404s and 410s, concurrent cold loads (single flight).
  for (let round = 0; round < 4; round++) await Promise.all(links.map((l) => call('GET', `/${l.code}`)))
  await Promise.all(Array.from({ length: 20 }, () => call('GET', `/cold${links.length}`)))
  for (let i = 0; i < 3; i++) await call('GET', '/no-such-code')
  await call('PATCH', `/api/v1/links/${links[0]!.id}`, { body: { url: 'https://example.com/changed' }, token })
  await call('DELETE', `/api/v1/links/${links[1]!.id}`, { token })
  await call('GET', `/${links[1]!.code}`)
  await call('GET', '/api/v1/links')
  await call('POST', '/api/v1/links', { body: { url: 'ftp://nope' }, token })
  await call('GET', `/api/v1/links/${links[2]!.id}/stats`, { token })
  t.equal((await call('POST', `/api/v1/links/${links[2]!.id}/exports`, { token })).status, 202)

  // Retries and dead letters: an export of a row that does not exist fails every attempt; an invalid click payload
  // is unrecoverable at once.
  const connection = new Redis(stack.redisUrl, { maxRetriesPerRequest: null })
  const exportsQ = new Queue(QUEUES.exports, { connection, prefix: stack.redisPrefix })
  const clicksQ = new Queue(QUEUES.clicks, { connection, prefix: stack.redisPrefix })
  await exportsQ.add(
    'export',
    { exportId: crypto.randomUUID(), linkId: links[2]!.id },
    { attempts: 2, backoff: { type: 'fixed', delay: 100 } },
  )
  await clicksQ.add('click', { clickId: 'not-a-uuid' })
  await Promise.all([exportsQ.close(), clicksQ.close()])
  await connection.quit()

  // Postgres unreachable: Postgres-backed routes answer 503; cached redirects still succeed and their clicks fail to
  // store in the worker, whose jobs are retried once Postgres is back.
  await toxiproxy('postgres', false)
  // A click batch that reaches the worker now fails to store and is retried once Postgres is back (not left to the
  // timing of the redirects' own clicks).
  const retryConn = new Redis(stack.redisUrl, { maxRetriesPerRequest: null })
  const retryQ = new Queue(QUEUES.clicks, { connection: retryConn, prefix: stack.redisPrefix })
  const click = {
    clickId: crypto.randomUUID(),
    linkId: links[3]!.id,
    at: new Date().toISOString(),
    referrer: null,
    uaFamily: 'Chrome',
    country: null,
  }
  await retryQ.add('clicks', { clicks: [click] }, { attempts: 5, backoff: { type: 'fixed', delay: 2000 } })
  await retryQ.close()
  await retryConn.quit()
  const during = await Promise.all(Array.from({ length: 5 }, () => call('GET', '/api/v1/links', { token })))
  t.ok(
    during.some((r) => r.status === 503),
    `Postgres-backed requests answer 503 while Postgres is unreachable (${during.map((r) => r.status).join(',')})`,
  )
  for (let i = 0; i < 3; i++) {
    await Promise.all(links.slice(2).map((l) => call('GET', `/${l.code}`)))
    await sleep(1000)
  }
  await toxiproxy('postgres', true)
  await sleep(3000)

  // Redis unreachable for a few seconds: cache errors (codes not in any replica's L1, so lookups reach Redis),
  // fail-open redirects, spooled clicks, client reconnects. Both Redis servers: the queues' and the cache's.
  await toxiproxy('redis', false)
  await toxiproxy('redis-cache', false)
  for (let i = 0; i < 3; i++) {
    await Promise.all(Array.from({ length: 20 }, (_, j) => call('GET', `/redis-down-${i}-${j}`)))
    await Promise.all(links.slice(2).map((l) => call('GET', `/${l.code}`)))
    await sleep(1000)
  }
  await toxiproxy('redis', true)
  await toxiproxy('redis-cache', true)
  await sleep(3000)
  // k6, remote-written into Prometheus, for the k6 dashboard.
  const k6 = await runK6({
    scenario: 'smoke',
    short: true,
    baseUrl: stack.baseUrl,
    prometheusUrl: stack.prometheusUrl,
    label: 'observability-proof',
  })
  t.equal(k6.exitCode, 0, `k6 smoke thresholds held (${k6.failedThresholds.join(', ')})`)

  // Load shedding, last: api-2 restarts with a threshold of 1% event-loop utilisation and sheds under bursts of GETs
  // sent to its own port, so that every burst reaches it whatever nginx's passive health state. It stays so until the
  // queries are done (a restart would drop its counters). It sheds nothing in its first two seconds (service/app.ts),
  // so the bursts go on until it has shed, for at most 30 s; a failure lists what it answered.
  const api2 = await stack.restartReplica('api-2', { MAX_EVENT_LOOP_UTILIZATION: '0.01' })
  const shed = async () =>
    /^opsdrill_http_requests_shed_total\{.*\} [1-9]/m.test(await (await fetch(`http://127.0.0.1:${api2.metricsPort}/metrics`)).text())
  const statuses = new Map<number | string, number>()
  const burst = async (j: number) => {
    const res = await call('GET', `/${links[2 + (j % 20)]!.code}`, { base: `http://127.0.0.1:${api2.port}` }).then(
      (r) => r.status,
      (err: Error) => err.name,
    )
    statuses.set(res, (statuses.get(res) ?? 0) + 1)
  }
  const until = Date.now() + 30_000
  do await Promise.all(Array.from({ length: 100 }, (_, j) => burst(j)))
  while (Date.now() < until && !(await shed()))
  t.ok(await shed(), `api-2 shed load (its answers: ${JSON.stringify([...statuses])})`)
}

void t.test(
  'when the stack has served real traffic and faults, then every panel, recording rule and alert query has data',
  { timeout: 900_000 },
  async (t) => {
    await stack.down().catch(() => undefined)
    t.teardown(() => stack.down())
    await stack.up({ api: 2, worker: 1 })
    const trafficStart = Math.floor(Date.now() / 1000)
    await driveTraffic(t)

    // Two scrapes and two rule evaluations after the last request, so rates, recorded series and ALERTS exist.
    const since = Date.now() / 1000
    for (const job of ['opsdrill-api', 'opsdrill-worker', 'postgres', 'redis']) await waitForScrape(stack.prometheusUrl, job, since, 60_000)
    await sleep(35_000)

    const present = new Set(
      (await queryVector(stack.prometheusUrl, 'count by (__name__) ({__name__=~"opsdrill_.+|pg_.+|redis_.+|k6_.+|[a-z_]+:.+"})')).map(
        (s) => s.metric.__name__!,
      ),
    )
    const expressions = allExpressions()
    t.ok(expressions.length > 100, `found ${expressions.length} expressions`)
    const problems: string[] = []
    for (const e of expressions) {
      // A panel is drawn by a range query over the dashboard's time window (here: the test's traffic); an alert is
      // evaluated now.
      let series: number
      try {
        const now = Math.floor(Date.now() / 1000)
        series =
          e.kind === 'alert' || e.kind === 'annotation'
            ? (await queryVector(stack.prometheusUrl, e.expr)).length
            : (await queryRange(stack.prometheusUrl, e.expr, trafficStart, now, 15)).length
      } catch (err) {
        problems.push(`${e.where}: query failed: ${(err as Error).message}`)
        continue
      }
      // Alerts are empty while healthy; the drill annotations read series only a drill writes (test/static/grafana.test.ts).
      if (e.kind === 'annotation') continue
      if (e.kind !== 'alert' && series === 0) problems.push(`${e.where}: no series for ${e.expr.replace(/\s+/g, ' ')}`)
      // Label values in quotes (result="redis_hit") are not metric names.
      const code = e.expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')
      const names = [...['opsdrill_', 'pg_', 'redis_', 'k6_'].flatMap((p) => metricNames(code, p)), ...recordedNames(code)]
      for (const name of names) {
        const exists = present.has(name) || ['_bucket', '_sum', '_count'].some((s) => present.has(name + s))
        if (!exists && !PROVEN_BY_DRILLS.has(name)) problems.push(`${e.where}: metric ${name} has no series in Prometheus`)
      }
    }
    t.equal(problems.length, 0, `${problems.length} problems in ${expressions.length} expressions:\n${problems.join('\n')}`)
  },
)
