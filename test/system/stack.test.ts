// The native stack, end to end, on offset ports (so it never meets a stack a user has up): it comes up healthy,
// nginx balances over the replicas, Prometheus scrapes every target, scaling under traffic fails no request, and
// down leaves no process behind.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { stackAt } from '../../ops/lib/stack/index.ts'
import { alive } from '../../ops/lib/stack/procs.ts'
import { queryVector } from '../../ops/lib/stack/prometheus.ts'
import { logTail } from '../../ops/lib/logs.ts'
import { Redis } from 'ioredis'

// The file as a whole (tap's default is 120 s per file, .taprc).
t.setTimeout(6 * 60_000)
const stack = stackAt({ offset: 1000, log: (line) => t.comment(line) })
const upstreamFile = join(stack.dir, 'config/nginx/upstreams/api.conf')
const targetsFile = (job: string) => join(stack.dir, 'config/prometheus/targets', `${job}.json`)

t.teardown(() => stack.down())

/** GET /healthz through nginx every 25 ms until stopped; counts failures and the replicas that answered. */
function trickle() {
  let running = true
  const seen = new Map<string, number>()
  const failures: string[] = []
  let sent = 0
  const loop = (async () => {
    while (running) {
      sent++
      try {
        const res = await fetch(`${stack.baseUrl}/healthz`, { signal: AbortSignal.timeout(5000) })
        await res.arrayBuffer()
        if (res.status !== 200) failures.push(`status ${res.status}`)
        const up = res.headers.get('x-upstream') ?? 'none'
        seen.set(up, (seen.get(up) ?? 0) + 1)
      } catch (err) {
        failures.push((err as Error).message)
      }
      await sleep(25)
    }
  })()
  return {
    seen,
    failures,
    sent: () => sent,
    stop: async () => {
      running = false
      await loop
    },
    reset: () => seen.clear(),
  }
}

void t.test(
  'when the stack comes up, then every part is healthy, nginx answers with X-Upstream and Prometheus scrapes every target',
  async (t) => {
    t.setTimeout(240_000)
    await stack.down()
    const since = Math.floor(Date.now() / 1000)
    await stack.up({ api: 2, worker: 1 })

    // up() waited for each part in turn; the check here is of all of them together, tried for up to 20 s so that one
    // slow answer on a busy box is not a verdict, and names an unhealthy part's last log lines.
    let parts = await stack.status()
    for (let i = 0; i < 10 && parts.some((p) => !p.healthy); i++) {
      await sleep(2000)
      parts = await stack.status()
    }
    t.same(parts.map((p) => p.name).sort(), [
      'alertmanager',
      'api-1',
      'api-2',
      'nginx',
      'otelcol',
      'postgres',
      'postgres-exporter',
      'prometheus',
      'redis',
      'redis-cache',
      'redis-cache-exporter',
      'redis-exporter',
      'supervisor',
      'toxiproxy',
      'victoria-logs',
      'worker-1',
    ])
    const unhealthy = parts.filter((p) => !p.healthy)
    t.same(
      unhealthy.map((p) => p.name),
      [],
      `every part answers its health check${unhealthy.map((p) => `\n${p.name} (running: ${p.running}): ${logTail(p.logFile, 5, ' | ') || 'no log'}`).join('')}`,
    )

    const res = await fetch(`${stack.baseUrl}/readyz`)
    t.equal(res.status, 200, 'the API is ready through nginx')
    t.match(res.headers.get('x-upstream'), /^127\.0\.0\.1:400[12]$/, 'nginx names the replica that answered')
    // The cache lives in its own Redis (allkeys-lru), never in the queues' (noeviction): issue 11.
    const cache = new Redis(stack.cacheRedisUrl)
    const queues = new Redis(stack.redisUrl)
    try {
      t.equal((await fetch(`${stack.baseUrl}/nosuchcode1`)).status, 404)
      // The write-back follows the response.
      let cached = 0
      for (let i = 0; i < 40 && cached === 0; i++) {
        cached = await cache.exists(`${stack.redisPrefix}:link:v2:nosuchcode1`)
        if (cached === 0) await sleep(50)
      }
      t.equal(cached, 1, 'the negative entry is in the cache Redis')
      t.equal(await queues.exists(`${stack.redisPrefix}:link:v2:nosuchcode1`), 0, 'and not in the queue Redis')
      t.same(await cache.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'allkeys-lru'])
      t.same(await queues.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction'])
    } finally {
      cache.disconnect()
      queues.disconnect()
    }
    t.equal(readFileSync(upstreamFile, 'utf8').match(/^server 127\.0\.0\.1:\d+ max_fails=2 fail_timeout=5s;$/gm)?.length, 2)

    // Exporters and Prometheus itself are scraped every 15 s: wait for one round of every job. Only samples of this
    // run count: Prometheus keeps its data across stacks, and a target of an earlier stack on these ports (a second
    // worker of the load suite) keeps its last `up` sample visible for five minutes.
    const jobs = ['alertmanager', 'opsdrill-api', 'opsdrill-worker', 'postgres', 'prometheus', 'redis']
    let up: { job: string; replica: string; value: number }[] = []
    for (let i = 0; i < 60; i++) {
      up = (await queryVector(stack.prometheusUrl, `up and timestamp(up) >= ${since}`)).map((s) => ({
        job: s.metric.job!,
        replica: s.metric.replica!,
        value: s.value,
      }))
      if (jobs.every((j) => up.some((u) => u.job === j)) && up.length >= 8 && up.every((u) => u.value === 1)) break
      await sleep(1000)
    }
    t.same([...new Set(up.map((u) => u.job))].sort(), jobs, 'every job has a target')
    t.same(
      up.filter((u) => u.value !== 1),
      [],
      'every target is up',
    )
    t.same(
      up
        .filter((u) => u.job === 'opsdrill-api')
        .map((u) => u.replica)
        .sort(),
      ['api-1', 'api-2'],
      'API targets carry their replica label',
    )
    t.same(
      up
        .filter((u) => u.job === 'redis')
        .map((u) => u.replica)
        .sort(),
      ['redis-cache-exporter', 'redis-exporter'],
      'both Redis servers are scraped',
    )
  },
)

void t.test(
  'when the API scales 2 -> 3 -> 2 under a steady trickle of requests, then none fails and the third replica serves while it exists',
  async (t) => {
    t.setTimeout(180_000)
    const traffic = trickle()
    await sleep(1000)
    // Two commands at once, as from two shells: the state's lock makes the second wait and then find api-3 running,
    // instead of starting it a second time (its port in use) or dropping the first one's record.
    const other = stackAt({ offset: 1000, log: (line) => t.comment(`(second) ${line}`) })
    await Promise.all([stack.scale({ api: 3 }), other.scale({ api: 3 })])
    t.same(
      stack.replicas('api').map((r) => r.name),
      ['api-1', 'api-2', 'api-3'],
    )
    t.equal(JSON.parse(readFileSync(targetsFile('opsdrill-api'), 'utf8')).length, 3, 'Prometheus targets list 3 API replicas')
    traffic.reset()
    await sleep(3000)
    t.ok(traffic.seen.get('127.0.0.1:4003'), `api-3 answered requests (${JSON.stringify(Object.fromEntries(traffic.seen))})`)

    const api3 = stack.processes().find((p) => p.name === 'api-3')!
    await stack.scale({ api: 2 })
    traffic.reset()
    await sleep(2000)
    await traffic.stop()
    t.notOk(alive(api3), 'api-3 was stopped')
    t.notOk(traffic.seen.has('127.0.0.1:4003'), 'nginx no longer sends to api-3')
    t.equal(readFileSync(upstreamFile, 'utf8').match(/^server /gm)?.length, 2, 'the upstream list is back to 2')
    t.equal(JSON.parse(readFileSync(targetsFile('opsdrill-api'), 'utf8')).length, 2)
    t.ok(traffic.sent() > 100, `traffic kept flowing (${traffic.sent()} requests)`)
    t.same(traffic.failures, [], 'no request failed while scaling')
  },
)

void t.test(
  'when an API replica is SIGKILLed under a trickle, then the supervisor restarts it and nginx sends it requests again, with no call from the test',
  async (t) => {
    t.setTimeout(120_000)
    const before = stack.replicas('api').find((r) => r.name === 'api-1')!
    const traffic = trickle()
    await sleep(500)
    const t0 = Date.now()
    t.ok(await stack.kill('api-1', 'SIGKILL'))
    const after = await stack.revived(before, 30_000)
    const ms = Date.now() - t0
    t.comment(`MEASURED supervisor: api-1 back in nginx's rotation ${ms} ms after its SIGKILL`)
    t.not(after.pid, before.pid, 'a new process')
    t.equal(after.restarts, 1, 'one restart recorded')
    traffic.reset()
    await sleep(2000)
    await traffic.stop()
    t.ok(traffic.seen.get('127.0.0.1:4001'), `api-1 answers through nginx again (${JSON.stringify(Object.fromEntries(traffic.seen))})`)
    const row = (await stack.status()).find((p) => p.name === 'api-1')!
    t.same([row.healthy, row.restarts], [true, 1], 'status shows it healthy, with 1 restart')
    // GETs cut by the kill are resent by nginx on the other replica.
    t.same(traffic.failures, [], 'no request failed')
  },
)

void t.test(
  'when a replica cannot start, then the supervisor backs off, gives up after 5 tries and status reports a crash loop until a restart',
  async (t) => {
    t.setTimeout(180_000)
    // A bad LOG_LEVEL stops the worker at its config check, every time it starts.
    await t.rejects(stack.restartReplica('worker-1', { LOG_LEVEL: 'nope' }), /worker-1 exited during start-up/)
    const t0 = Date.now()
    let row = (await stack.status()).find((p) => p.name === 'worker-1')
    while (!row?.crashLoop && Date.now() - t0 < 120_000) {
      await sleep(500)
      row = (await stack.status()).find((p) => p.name === 'worker-1')
    }
    const ms = Date.now() - t0
    t.comment(`MEASURED supervisor: crash loop declared ${ms} ms after the failed start`)
    t.match(row?.crashLoop, /^5 restarts in a row failed, the last: worker-1 exited during start-up/)
    // Back-off: 1 + 2 + 4 + 8 s between the five tries.
    t.ok(ms >= 15_000, `the tries were spread by the back-off (${ms} ms)`)
    t.match(stack.logTail('supervisor', 200), /worker-1: restart 4 failed .*next try in 8000 ms/)
    const pid = stack.replicas('worker').find((r) => r.name === 'worker-1')!.pid
    await sleep(3000)
    t.equal(stack.replicas('worker').find((r) => r.name === 'worker-1')!.pid, pid, 'no more tries once in a crash loop')
    await stack.restartReplica('worker-1', {})
    row = (await stack.status()).find((p) => p.name === 'worker-1')
    t.same([row?.healthy, row?.crashLoop], [true, undefined], 'a restart clears it')
  },
)

void t.test('when the stack goes down, then no process it started is left, and a second down is harmless', async (t) => {
  t.setTimeout(120_000)
  const parts = stack.processes()
  t.ok(parts.length >= 12)
  const stopped = await stack.down()
  t.same(stopped.sort(), parts.map((p) => p.name).sort())
  t.same(
    parts.filter((p) => alive(p)).map((p) => p.name),
    [],
    'no pid is left running',
  )
  t.notOk(existsSync(join(stack.dir, 'state.json')), 'the state file is gone')
  t.same(await stack.down(), [], 'a second down stops nothing and does not throw')
})
