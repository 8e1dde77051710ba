// The compose stack under a real Docker engine, as a user runs it: the project's image built from its Dockerfile,
// `docker compose -f docker-compose.yml -f compose/local-images.yml up` (default profile plus tracing and logs) under a
// project name and host ports of its own, then what a user would see, the compose drills on that stack, and `down -v`.
// Grafana, Elasticsearch and Kibana have no image buildable without a registry: they are not run here, and the output
// says so. The logs profile runs its shipper with VictoriaLogs standing in for Elasticsearch behind the same bulk API.
// No engine is a failure, not a skip: ops/test installs and starts one.
import t from 'tap'
import { tracedRequest } from '../helpers/traced.ts'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { parse } from 'yaml'
import { freePort } from '../../ops/lib/net.ts'
import { ComposePlatform } from '../../ops/lib/drills/platform.ts'
import { BROWSER } from '../helpers/app.ts'
import { logsQuery, type LogRow } from '../../ops/lib/logsql.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const PROJECT = `opsdrill-test-${randomBytes(3).toString('hex')}`
const FILES = ['docker-compose.yml', 'compose/local-images.yml']
/** Services no image can be built for here (no registry): the stack runs without them. */
const NOT_RUN = ['grafana', 'elasticsearch', 'kibana', 'kibana-setup']
const DRILLS = ['api-sigkill', 'rolling-restart', 'worker-ledger', 'redis-down', 'postgres-latency']
const PORTS = ['NGINX', 'PROMETHEUS', 'ALERTMANAGER', 'ALERT_RECORDER', 'JAEGER_UI', 'TOXIPROXY', 'GRAFANA', 'KIBANA', 'VICTORIALOGS']

const env: NodeJS.ProcessEnv = {
  ...process.env,
  COMPOSE_PROJECT_NAME: PROJECT,
  COMPOSE_FILE: FILES.join(':'),
  COMPOSE_PROFILES: 'tracing,logs',
  OTEL_SDK_DISABLED: 'false',
  JWT_SECRET: randomBytes(32).toString('hex'),
  POSTGRES_PASSWORD: randomBytes(12).toString('hex'),
  GRAFANA_ADMIN_PASSWORD: randomBytes(12).toString('hex'),
}
const port: Record<string, number> = {}
const url = (name: string) => `http://127.0.0.1:${port[name]}`
const timings: Record<string, string> = {}
const platform = new ComposePlatform({ project: PROJECT, files: FILES })

function run(cmd: string, args: string[], timeoutMs = 600_000): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, env, encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string }
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim().split('\n').slice(-15).join('\n')}`, {
      cause: err,
    })
  }
}
const compose = (args: string[], timeoutMs?: number) => run('docker', ['compose', ...args], timeoutMs)
const timed = <T>(label: string, fn: () => T): T => {
  const t0 = Date.now()
  const out = fn()
  timings[label] = `${((Date.now() - t0) / 1000).toFixed(1)} s`
  return out
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutSec: number): Promise<T> {
  const end = Date.now() + timeoutSec * 1000
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutSec} s${last ? ` (${(last as Error).message})` : ''}`)
    await sleep(1000)
  }
}

async function json<T>(res: Response, want: number): Promise<T> {
  const body = await res.text()
  if (res.status !== want) throw new Error(`${res.url} answered ${res.status} (wanted ${want}): ${body.slice(0, 200)}`)
  return JSON.parse(body) as T
}

const services = () => compose(['config', '--services']).trim().split('\n')
const started = () => services().filter((s) => !NOT_RUN.includes(s))

t.setTimeout(45 * 60_000)

t.before(async () => {
  // The engine first: without one nothing below can say anything, and that must read as a failure.
  run('docker', ['version', '--format', '{{.Server.Version}}'], 20_000)
  if (!existsSync(resolve(ROOT, 'compose/local-images.yml'))) throw new Error('compose/local-images.yml is missing')
  for (const name of PORTS) {
    port[name] = await freePort()
    env[`${name}_PORT`] = String(port[name])
  }
  // The local stand-ins for the registry images, built where missing and reused when present (then it takes under a
  // second). Always run: it also writes the copy of the CA bundle the app build takes as its secret (.run/ is not
  // in git), which a fresh clone on a machine whose images already exist would otherwise lack.
  timed('npm run stack -- images', () => run(process.execPath, ['ops/stack.ts', 'images'], 30 * 60_000))
})

t.teardown(() => {
  // Whatever happened above, nothing of the project may stay behind.
  try {
    compose(['down', '-v', '--remove-orphans', '--timeout', '5'])
  } catch {
    // reported by the down -v test when it runs; here only the clean-up matters
  }
  // The figures README's Docker section quotes (the test runner shows no comments of a passing file).
  mkdirSync(resolve(ROOT, '.run'), { recursive: true })
  writeFileSync(resolve(ROOT, '.run/compose-suite-timings.json'), `${JSON.stringify(timings, null, 2)}\n`)
})

void t.test('NOT RUN here: Grafana, Elasticsearch, Kibana (no image can be built without a registry)', async (t) => {
  const declared = Object.keys((parse(readFileSync(resolve(ROOT, 'docker-compose.yml'), 'utf8')) as { services: object }).services)
  for (const s of NOT_RUN) t.ok(declared.includes(s), `${s} is declared in docker-compose.yml (and left out of this run)`)
  for (const s of NOT_RUN) t.notOk(started().includes(s), `${s} is not started here`)
  t.comment(`not run: ${NOT_RUN.join(', ')}; the stack below runs without them`)
  t.comment('the logs profile runs otelcol with VictoriaLogs in place of Elasticsearch, behind the same bulk API')
  t.ok(started().includes('victorialogs') && started().includes('otelcol'), 'the logs profile starts the shipper and VictoriaLogs')
})

void t.test(
  'when the image is built from the Dockerfile, then it is multi-stage, runs as a non-root user, and has a healthcheck',
  async (t) => {
    timed('docker compose build api', () => compose(['build', 'api'], 20 * 60_000))
    const [image] = JSON.parse(run('docker', ['image', 'inspect', 'opsdrill:local'])) as {
      Config: { User: string; Healthcheck?: { Test: string[] } }
    }[]
    t.match(image!.Config.User, /^[1-9]\d*(:\d+)?$/, `runs as a numeric non-root user (${image!.Config.User})`)
    t.ok(image!.Config.Healthcheck?.Test.length, 'the image has a HEALTHCHECK')
  },
)

void t.test(
  'when the default profile plus tracing and logs comes up, then every service is healthy and migrate ran before the API',
  async (t) => {
    const list = started()
    timed('docker compose up --wait', () => compose(['up', '-d', '--wait', ...list], 15 * 60_000))
    const cs = platform.containers()
    for (const s of list.filter((x) => x !== 'migrate')) {
      const mine = cs.filter((c) => c.service === s)
      t.ok(mine.length > 0 && mine.every((c) => c.running && (c.health ?? 'healthy') === 'healthy'), `${s}: running and healthy`)
    }
    const [mig] = JSON.parse(run('docker', ['inspect', `${PROJECT}-migrate-1`])) as { State: { ExitCode: number; FinishedAt: string } }[]
    t.equal(mig!.State.ExitCode, 0, 'migrate exited 0')
    const apis = JSON.parse(run('docker', ['inspect', ...cs.filter((c) => c.service === 'api').map((c) => c.name)])) as {
      Name: string
      State: { StartedAt: string }
    }[]
    t.equal(apis.length, 3, 'three API replicas')
    for (const a of apis)
      t.ok(Date.parse(a.State.StartedAt) >= Date.parse(mig!.State.FinishedAt), `${a.Name} started after migrate finished`)
    const [api] = JSON.parse(run('docker', ['inspect', apis[0]!.Name])) as { State: { Health: { Status: string } } }[]
    t.equal(api!.State.Health.Status, 'healthy', 'the image healthcheck reports healthy')
  },
)

let token = ''
let link = { id: '', code: '' }

void t.test('when a user registers, creates a link and follows it through nginx, then the click is in the stats', async (t) => {
  const base = url('NGINX')
  const body = JSON.stringify({ email: `compose-${Date.now()}@example.com`, password: 'correct-horse-battery-staple' })
  const headers = { 'content-type': 'application/json' }
  // 202 for a new and a taken email alike (no account enumeration).
  await json(await fetch(`${base}/api/v1/auth/register`, { method: 'POST', body, headers }), 202)
  token = (await json<{ accessToken: string }>(await fetch(`${base}/api/v1/auth/login`, { method: 'POST', body, headers }), 200))
    .accessToken
  const auth = { ...headers, authorization: `Bearer ${token}` }
  link = await json(
    await fetch(`${base}/api/v1/links`, { method: 'POST', body: JSON.stringify({ url: 'https://example.com/compose' }), headers: auth }),
    201,
  )
  // A click counts only for a browser's user agent (fetch's own is a bot's).
  const hop = await fetch(`${base}/${link.code}`, { redirect: 'manual', headers: BROWSER })
  t.equal(hop.status, 302)
  t.equal(hop.headers.get('location'), 'https://example.com/compose')
  const total = await until(
    'the click in the stats',
    async () => {
      const s = await json<{ total: number }>(await fetch(`${base}/api/v1/links/${link.id}/stats`, { headers: auth }), 200)
      return s.total >= 1 ? s.total : undefined
    },
    60,
  )
  t.equal(total, 1, 'one click counted')
})

async function upstreams(n: number): Promise<Set<string>> {
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url('NGINX')}/${link.code}`, { redirect: 'manual' })
    await res.arrayBuffer()
    for (const u of (res.headers.get('x-upstream') ?? '').split(/,\s*/)) if (u) seen.add(u)
  }
  return seen
}

void t.test('when requests go through nginx, then every API replica gets some, and --scale api=5 is picked up', async (t) => {
  const addrs = () => new Set(platform.replicas('api').map((r) => `${r.host}:${r.port}`))
  t.same(await upstreams(60), addrs(), 'the 3 replicas all answered')
  compose(['up', '-d', '--wait', '--no-recreate', '--no-build', '--scale', 'api=5', 'api'])
  t.equal(addrs().size, 5)
  const all = await until(
    'nginx spreading over 5 replicas',
    async () => {
      const seen = await upstreams(50)
      return seen.size === 5 ? seen : undefined
    },
    30,
  )
  t.same(all, addrs(), 'nginx found the 2 new replicas by DNS and sends them requests')
})

void t.test('when Prometheus has scraped, then every target is up and named by its compose service', async (t) => {
  const want: Record<string, { service: string; count: number }> = {
    'opsdrill-api': { service: 'api', count: 5 },
    'opsdrill-worker': { service: 'worker', count: 2 },
    postgres: { service: 'postgres-exporter', count: 1 },
    redis: { service: 'redis-exporter', count: 1 },
    prometheus: { service: 'prometheus', count: 1 },
    alertmanager: { service: 'alertmanager', count: 1 },
  }
  type Target = { scrapePool: string; health: string; lastError: string; discoveredLabels: Record<string, string> }
  const targets = await until(
    'every target up',
    async () => {
      const r = await json<{ data: { activeTargets: Target[] } }>(await fetch(`${url('PROMETHEUS')}/api/v1/targets`), 200)
      const ts = r.data.activeTargets
      const ok = Object.entries(want).every(([job, w]) => ts.filter((x) => x.scrapePool === job && x.health === 'up').length === w.count)
      return ok && ts.every((x) => x.health === 'up') ? ts : undefined
    },
    90,
  )
  for (const [job, w] of Object.entries(want)) {
    const mine = targets.filter((x) => x.scrapePool === job)
    t.equal(mine.length, w.count, `${job}: ${w.count} targets`)
    for (const x of mine) t.equal(x.discoveredLabels.__meta_dns_name, w.service, `${job}: found as compose service ${w.service}`)
  }
  t.same([...new Set(targets.map((x) => x.scrapePool))].sort(), Object.keys(want).sort(), 'no other target (no native file_sd targets)')
})

void t.test('when a traced request starts a job, then Jaeger has one trace from the API through the worker to SQL', async (t) => {
  const traceId = randomBytes(16).toString('hex')
  const res = await fetch(`${url('NGINX')}/api/v1/links/${link.id}/exports`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
  })
  t.equal(res.status, 202, await res.text())
  type Span = { operationName: string; processID: string }
  type Trace = { spans: Span[]; processes: Record<string, { serviceName: string }> }
  const trace = await until<Trace>(
    `trace ${traceId} with worker SQL in Jaeger`,
    async () => {
      const r = await fetch(`${url('JAEGER_UI')}/api/traces/${traceId}`)
      if (r.status !== 200) return undefined
      const data = ((await r.json()) as { data: Trace[] }).data[0]
      const svc = (s: Span) => data!.processes[s.processID]!.serviceName
      const workerSql = data!.spans.some((s) => svc(s) === 'opsdrill-worker' && /pg\.query/.test(s.operationName))
      return workerSql ? data : undefined
    },
    60,
  )
  const services = new Set(Object.values(trace.processes).map((p) => p.serviceName))
  t.ok(services.has('opsdrill-api') && services.has('opsdrill-worker'), `api and worker in one trace: ${[...services].join(', ')}`)
  const names = trace.spans.map((s) => s.operationName)
  t.ok(
    names.some((n) => /exports/.test(n) && /POST/.test(n)),
    `the HTTP span: ${names.join(', ')}`,
  )
  t.ok(
    names.some((n) => /process/i.test(n) && /exports/.test(n)),
    "the worker's processing span",
  )
})

/** The API's line of a trace in the store, polled for up to `seconds`. */
async function storedLine(traceId: string, seconds: number): Promise<{ row?: LogRow; ms: number }> {
  const t0 = Date.now()
  while (Date.now() - t0 < seconds * 1000) {
    const rows = await logsQuery(url('VICTORIALOGS'), `trace.id:${traceId}`).catch(() => [])
    const row = rows.find((r) => r['service.name'] === 'opsdrill-api')
    if (row) return { row, ms: Date.now() - t0 }
    await sleep(250)
  }
  return { ms: Date.now() - t0 }
}

void t.test('when a traced request is served, then its log line reaches the store and is found by trace.id within 10 s', async (t) => {
  const { traceId, requestId } = await tracedRequest(url('NGINX'))
  const { row, ms } = await storedLine(traceId, 10)
  timings['log line in the store (compose)'] = `${ms} ms`
  t.ok(row, `the API's line of trace ${traceId} is in VictoriaLogs (${ms} ms), shipped by otelcol from Docker's json-file log`)
  if (!row) return
  t.ok(
    Number.isFinite(Date.parse(row._time!)) && Math.abs(Date.parse(row._time!) - Date.now()) < 60_000,
    `@timestamp (as _time): ${row._time}`,
  )
  t.equal(row['log.level'], 'info', 'log.level')
  t.equal(row['service.name'], 'opsdrill-api', 'service.name')
  t.equal(row['trace.id'], traceId, 'trace.id')
  t.match(row['span.id'], /^[0-9a-f]{16}$/, 'span.id')
  t.equal(row['http.request.id'], requestId, "the request id (nginx's X-Request-Id)")
  // nginx writes its access line as the response leaves; the shipper may send it a poll (500 ms) after the API's.
  let nginx = 0
  for (let i = 0; i < 40 && nginx === 0; i++) {
    nginx = (await logsQuery(url('VICTORIALOGS'), `trace.id:${traceId} service.name:nginx`)).length
    if (nginx === 0) await sleep(250)
  }
  t.equal(nginx, 1, "nginx's access line of the same request, by the same trace.id")
})

void t.test('when the store is stopped while a line is written, then the line arrives after it starts again', async (t) => {
  compose(['stop', 'victorialogs'])
  // Started again whatever happens; first the shipper fails its bulk request and backs off (1 s, 2 s, ...) for 5 s.
  const { traceId } = await tracedRequest(url('NGINX')).finally(() => sleep(5000).then(() => compose(['start', 'victorialogs'])))
  const { row, ms } = await storedLine(traceId, 30)
  timings['log line written while the store was down, after it started'] = `${ms} ms`
  t.ok(row, `the line written while VictoriaLogs was stopped arrived ${ms} ms after it started again`)
})

void t.test('when the k6 smoke runs in the load profile, then its thresholds pass and its samples are in Prometheus', async (t) => {
  // Back to the file's 3 API replicas first, as after `up`: with 5, k6's setup got a 502 on POST /api/v1/links while
  // `run` brought the api service to the file's 3 (nginx keeps a removed replica's address until its next DNS
  // lookup, every 5 s).
  compose(['up', '-d', '--wait', '--no-recreate', '--no-build', '--scale', 'api=3', 'api'])
  await sleep(6000)
  timed('k6 smoke (docker compose run)', () => compose(['--profile', 'load', 'run', '--rm', 'k6'], 10 * 60_000))
  const r = await json<{ data: { result: unknown[] } }>(
    await fetch(`${url('PROMETHEUS')}/api/v1/query?query=${encodeURIComponent('k6_http_reqs_total')}`),
    200,
  )
  t.ok(r.data.result.length > 0, 'k6_http_reqs_total remote-written into Prometheus')
})

for (const drill of DRILLS) {
  void t.test(`when the ${drill} drill runs on --target compose (short form), then it passes`, async (t) => {
    const t0 = Date.now()
    // As in the load and deploy suites: on a busy box the latency bounds widen (the error bounds never do).
    const perCore = loadavg()[0]! / cpus().length
    const SLO_LATENCY_FACTOR = perCore > 1 ? String(Math.min(10, Math.ceil(perCore * 2))) : '1'
    t.comment(`load per core ${perCore.toFixed(2)}: SLO_LATENCY_FACTOR=${SLO_LATENCY_FACTOR}`)
    const { code, out } = await new Promise<{ code: number | null; out: string }>((done) => {
      const child = spawn(process.execPath, ['ops/drill.ts', drill, '--short', '--target', 'compose'], {
        cwd: ROOT,
        env: { ...env, SLO_LATENCY_FACTOR },
      })
      let out = ''
      child.stdout.on('data', (b: Buffer) => (out += b.toString()))
      child.stderr.on('data', (b: Buffer) => (out += b.toString()))
      child.on('close', (code) => done({ code, out }))
    })
    timings[`drill ${drill}`] = `${((Date.now() - t0) / 1000).toFixed(1)} s`
    t.equal(code, 0, `npm run drill -- ${drill} --short --target compose:\n${out.split('\n').slice(-25).join('\n')}`)
    t.match(out, /PASSED/)
  })
}

void t.test(
  'when a spike of logins meets the autoscaler on compose (npm run load -- autoscale --target compose), then API replicas rise above the HPA minimum through `--scale` and come back to it',
  async (t) => {
    const t0 = Date.now()
    // The drills before this leave the api service at the count they found or set; the run restores that count.
    const before = platform.replicas('api').length
    const { code, out } = await new Promise<{ code: number | null; out: string }>((done) => {
      const child = spawn(process.execPath, ['ops/load.ts', 'autoscale', '--short', '--target', 'compose'], { cwd: ROOT, env })
      let out = ''
      child.stdout.on('data', (b: Buffer) => (out += b.toString()))
      child.stderr.on('data', (b: Buffer) => (out += b.toString()))
      child.on('close', (code) => done({ code, out }))
    })
    timings['autoscale on compose (short)'] = `${((Date.now() - t0) / 1000).toFixed(1)} s`
    const tail = out.split('\n').slice(-25).join('\n')
    t.equal(code, 0, `npm run load -- autoscale --short --target compose exited 0 (the spike's thresholds held):\n${tail}`)
    const ups = [...out.matchAll(/autoscale: api (\d+) -> (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const)
    t.ok(
      ups.some(([from, to]) => to > from),
      `the autoscaler scaled the api service up (${ups.map(([a, b]) => `${a}->${b}`).join(', ') || 'no decision'})`,
    )
    t.ok(
      ups.some(([from, to]) => to < from),
      'and back down',
    )
    const m = /API replicas (\d+) -> (\d+) -> (\d+)/.exec(out)
    t.ok(m && Number(m[2]) > Number(m[1]), `replicas rose above the minimum (${m?.slice(1).join(' -> ') ?? tail})`)
    t.equal(m?.[3], m?.[1], 'and came back to it after the scale-down window')
    t.equal(platform.replicas('api').length, before, `the api service is back at the ${before} replicas it had before the run`)
  },
)

void t.test("when Redis stays down past its alert's `for`, then the recorder behind Alertmanager receives the page", async (t) => {
  // The short redis-down drill stops Redis for about 16 s, under RedisDown's `for: 1m`, and its clicks go to the spool
  // instead of being dropped: no alert reaches Alertmanager from the drills. So this stops Redis for as long as the
  // rule needs: Prometheus (redis_up from the exporter) -> rule -> Alertmanager's page route -> 127.0.0.1:5001.
  type Notification = { status: string; receiver: string; alerts: { labels: Record<string, string> }[] }
  const t0 = Date.now()
  await platform.stopStore('redis')
  try {
    const got = await until(
      'RedisDown at the recorder',
      async () => {
        const all = await json<Notification[]>(await fetch(`${url('ALERT_RECORDER')}/`), 200)
        const page = all.find((n) => n.status === 'firing' && n.alerts.some((a) => a.labels.alertname === 'RedisDown'))
        return page
      },
      180,
    )
    timings['RedisDown at the recorder after Redis stopped'] = `${((Date.now() - t0) / 1000).toFixed(1)} s`
    t.equal(got.receiver, 'page', 'RedisDown is routed to the page receiver')
  } finally {
    await platform.startStore('redis')
  }
})

void t.test('when the stack is taken down with -v, then no container, network or volume of the project is left', async (t) => {
  compose(['down', '-v', '--remove-orphans'])
  const label = `label=com.docker.compose.project=${PROJECT}`
  t.equal(run('docker', ['ps', '-aq', '--filter', label]).trim(), '', 'no container')
  t.equal(run('docker', ['network', 'ls', '-q', '--filter', label]).trim(), '', 'no network')
  t.equal(run('docker', ['volume', 'ls', '-q', '--filter', label]).trim(), '', 'no volume')
})
