// The drills: each one a fault under steady load, its pass criteria, and how it judges them. docs/drills.md is the
// game-day script for each; runner.ts holds what they share.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { DRAIN_WORKER_ENV, timeDrain } from '../backlog.ts'
import { alertDrill } from './alerts.ts'
import { apiLedger, clickLedger, ledgerLine } from './api-ledger.ts'
import { warm } from './client.ts'
import { APP, round, type Drill, type DrillRun, type Timing } from './runner.ts'

const t = (rate: number, baselineSec: number, faultSec: number, recoverSec: number): Timing => ({ rate, baselineSec, faultSec, recoverSec })
const pct = (x: number) => `${(x * 100).toFixed(3)}%`

/** Baseline, fault, restore, recovery under the steady load; returns the fault window. */
async function steadyFault(
  d: DrillRun,
  label: string,
  inject: () => Promise<void>,
  restore: () => Promise<void>,
  during?: () => Promise<string>,
) {
  await d.startLoad()
  d.phase('baseline')
  await d.watch(d.timing.baselineSec)
  d.phase('fault')
  d.faultStart(label)
  await inject()
  await d.watch(d.timing.faultSec, during)
  await restore()
  const w = d.faultEnd()
  d.phase('recovery')
  await d.watch(d.timing.recoverSec)
  await d.stopLoad()
  return w
}

/** Waits for a killed or signalled replica's process to be gone; returns ms, or undefined past the limit. */
async function exitWithin(d: DrillRun, replica: string, limitMs: number): Promise<number | undefined> {
  const took = await d.until(() => d.platform.gone(replica), limitMs / 1000 + 1)
  return took === undefined ? undefined : took * 1000
}

/** close-with-grace exits 0 after its handler resolves and 1 on timeout or error; its log says which. */
function cleanExit(log: string, done: RegExp): { clean: boolean; why: string } {
  if (/killed by timeout/.test(log)) return { clean: false, why: 'close-with-grace: killed by timeout (exit 1)' }
  if (/shutting down after an uncaught error|second SIG/.test(log)) return { clean: false, why: 'shut down after an error (exit 1)' }
  if (!done.test(log)) return { clean: false, why: `no "${done.source}" line in its log` }
  return { clean: true, why: `logged "${done.source}" and no timeout/error: close-with-grace exit 0` }
}

const apiSigterm: Drill = {
  name: 'api-sigterm',
  title: 'One of the API replicas gets SIGTERM under load (a deploy or a node drain); nginx keeps serving through the others.',
  criteria: [
    '< 0.1% failed requests',
    'in-flight requests complete (no request cut: no 502 or status 0)',
    `the process exits 0 within SHUTDOWN_GRACE_MS (${APP.API_SHUTDOWN_GRACE_MS} ms)`,
  ],
  alerts: [],
  dashboards: ['opsdrill-overview', 'opsdrill-runtime'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 20, 20), short: t(100, 4, 8, 5) },
  async run(d) {
    const victim = 'api-1'
    const logFrom = d.logSize(victim)
    let exitMs: number | undefined
    const w = await steadyFault(
      d,
      `SIGTERM ${victim}`,
      async () => {
        await d.platform.kill(victim, 'SIGTERM')
        exitMs = await exitWithin(d, victim, APP.API_SHUTDOWN_GRACE_MS)
      },
      async () => {
        await d.platform.restart(victim)
      },
    )
    const log = d.logSince(victim, logFrom)
    const all = d.window(d.loadResult!.seconds[0]!.t * 1000, Date.now())
    const cut = d.loadResult!.failures.filter((f) => f.status === 0 || f.status === 502)
    d.measured.exitMs = exitMs
    d.measured.failures = d.loadResult!.failures.slice(0, 20)
    d.check('< 0.1% failed requests', all.failedShare < 0.001, `${all.failed} of ${all.requests} (${pct(all.failedShare)})`)
    d.check(
      'in-flight requests complete',
      cut.length === 0,
      `${cut.length} requests cut (502 or no response) around ${new Date(w.from).toISOString()}`,
    )
    d.check(
      `exits within ${APP.API_SHUTDOWN_GRACE_MS} ms`,
      exitMs !== undefined && exitMs <= APP.API_SHUTDOWN_GRACE_MS,
      exitMs === undefined ? 'still running' : `gone ${exitMs.toFixed(0)} ms after SIGTERM`,
    )
    if (d.native) {
      const c = cleanExit(log, /shutdown complete/)
      d.check('exit code 0 (graceful)', c.clean, c.why)
      d.notes.push(
        'The native stack starts replicas detached, so their exit status is not observable; exit 0 is read from the log (close-with-grace exits 1 only after logging a timeout or an error).',
      )
    }
  },
}

const apiSigkill: Drill = {
  name: 'api-sigkill',
  title: 'One API replica is SIGKILLed (OOM kill, node loss): nginx routes around it, then it rejoins.',
  criteria: ['< 1% failed requests', 'every failure within 10 s of the kill', 'the replica rejoins and takes traffic again'],
  alerts: ['InstanceDown'],
  dashboards: ['opsdrill-overview', 'opsdrill-slo'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 20, 20), short: t(100, 4, 8, 6) },
  async run(d) {
    const victim = 'api-1'
    let killedAt = 0
    await steadyFault(
      d,
      `SIGKILL ${victim}`,
      async () => {
        killedAt = Date.now()
        await d.platform.kill(victim, 'SIGKILL')
      },
      async () => {
        await d.platform.restart(victim)
      },
    )
    const r = d.loadResult!
    const all = d.window(r.seconds[0]!.t * 1000, Date.now())
    const late = r.failures.filter((f) => f.at < killedAt || f.at > killedAt + 10_000)
    d.check('< 1% failed requests', all.failedShare < 0.01, `${all.failed} of ${all.requests} (${pct(all.failedShare)})`)
    d.check(
      'every failure within 10 s of the kill',
      late.length === 0,
      `${r.failures.length} failures, ${late.length} outside [kill, kill + 10 s]`,
    )
    // Rejoined: its own request counter grows while nginx balances (read from its /metrics).
    await d.startLoad({ rate: Math.min(50, d.timing.rate) })
    const before = (await d.perReplica('api', 'opsdrill_http_request_duration_seconds_count'))[victim] ?? 0
    await d.watch(3)
    const after = (await d.perReplica('api', 'opsdrill_http_request_duration_seconds_count'))[victim] ?? 0
    await d.stopLoad()
    d.measured.rejoinedRequests = after - before
    d.check(
      'the replica rejoins and takes traffic',
      after - before > 0,
      `${victim} served ${after - before} requests in 3 s after its restart`,
    )
  },
}

const rollingRestart: Drill = {
  name: 'rolling-restart',
  title: 'Every API replica is restarted in turn, the next only once nginx sends the restarted one requests again.',
  criteria: ['0 failed requests', 'no HTTP error answered (every failure, if any, is a connection reset)'],
  alerts: [],
  dashboards: ['opsdrill-overview'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 0, 20), short: t(100, 4, 0, 4) },
  async run(d) {
    await steadyFault(
      d,
      'rolling restart',
      async () => {
        for (const r of d.platform.replicas('api')) {
          d.log(`restarting ${r.name}`)
          await d.platform.restart(r.name)
        }
      },
      async () => undefined,
    )
    const r = d.loadResult!
    const all = d.window(r.seconds[0]!.t * 1000, Date.now())
    d.measured.failures = r.failures.slice(0, 20)
    d.check('0 failed requests', all.failed === 0, `${all.failed} of ${all.requests} failed`)
    const answered = r.failures.filter((f) => f.status !== 0)
    d.check(
      'no HTTP error answered',
      answered.length === 0,
      `${answered.length} failures with an HTTP status; ${r.failures.length - answered.length} connection resets (no response)`,
    )
  },
}

const workerSigterm: Drill = {
  name: 'worker-sigterm',
  title: 'A worker gets SIGTERM while it has a click backlog in hand: it finishes its active jobs and exits 0.',
  criteria: [
    'each job completes exactly once (stored = enqueued, rollups = stored)',
    'no stalled jobs',
    `the worker exits 0 within SHUTDOWN_GRACE_MS (${APP.WORKER_SHUTDOWN_GRACE_MS} ms)`,
  ],
  alerts: [],
  dashboards: ['opsdrill-queues'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(100, 10, 0, 10), short: t(50, 3, 0, 3) },
  async run(d) {
    const victim = 'worker-1'
    await d.makeLinks(50)
    // The backlog's own links, apart from the load's, so its clicks are counted exactly.
    const backlogLinks = await d.makeLinks(20)
    const jobs = d.short ? 5000 : 20_000
    await d.startLoad()
    d.phase('baseline')
    await d.watch(d.timing.baselineSec)
    d.phase('fault')
    const logFrom = d.logSize(victim)
    await d.enqueueClicks(backlogLinks, jobs)
    let active = 0
    await d.until(async () => (active = (await d.queueCounts()).active ?? 0) > 0, 10)
    d.faultStart(`SIGTERM ${victim} with ${active} jobs active`)
    await d.platform.kill(victim, 'SIGTERM')
    const exitMs = await exitWithin(d, victim, APP.WORKER_SHUTDOWN_GRACE_MS)
    await d.platform.restart(victim)
    d.faultEnd()
    d.phase('recovery')
    const drainSec = await d.drained(d.short ? 60 : 180)
    await d.watch(d.timing.recoverSec)
    await d.stopLoad()
    const log = d.logSince(victim, logFrom)
    const s = await d.stored(backlogLinks)
    const stalled = await d.metric('worker', 'opsdrill_jobs_stalled_total')
    Object.assign(d.measured, {
      jobs,
      activeAtSigterm: active,
      exitMs,
      drainSec,
      stored: s.stored,
      rollup: s.rollup,
      stalledAfterRestart: stalled,
    })
    d.check(
      'every job stored once (stored = enqueued)',
      s.stored === jobs,
      `${jobs} enqueued, ${s.stored} stored (lost ${jobs - s.stored}); drained in ${drainSec?.toFixed(1) ?? 'never'} s`,
    )
    d.check('no duplicate counts (rollup sum = stored)', s.rollup === s.stored, `rollup sum ${s.rollup}, stored ${s.stored}`)
    d.check('no stalled jobs', stalled === 0, `opsdrill_jobs_stalled_total on the restarted worker: ${stalled}`)
    d.check(
      `exits within ${APP.WORKER_SHUTDOWN_GRACE_MS} ms`,
      exitMs !== undefined && exitMs <= APP.WORKER_SHUTDOWN_GRACE_MS,
      exitMs === undefined ? 'still running' : `gone ${exitMs.toFixed(0)} ms after SIGTERM with ${active} jobs active`,
    )
    if (d.native) {
      const c = cleanExit(log, /shutting down: finishing active jobs/)
      d.check('exit code 0 (graceful)', c.clean, c.why)
    }
  },
}

const workerLedger: Drill = {
  name: 'worker-ledger',
  title:
    'Jepsen-style click ledger: clicks flow while a worker is SIGKILLed and restarted again and again; every acknowledged click must be stored exactly once.',
  criteria: [
    'lost = acknowledged - stored = 0',
    'duplicated = rollup sum - stored = 0',
    'every served redirect is acknowledged or counted as dropped',
  ],
  alerts: ['WorkersAbsent (only if the worker stayed down 2 min: it does not)'],
  dashboards: ['opsdrill-queues', 'opsdrill-datastores'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 0, 0, 0), short: t(80, 0, 0, 0) },
  // The short stall timings must not outlive the drill (under CPU starvation a 2 s lock stalls jobs).
  async cleanup(d) {
    await d.platform.restart('worker-1', {})
  },
  async run(d) {
    const clicks = d.short ? 2000 : 10_000
    const killEveryMs = d.short ? 5000 : 15_000
    const workerEnv = { JOB_LOCK_MS: '2000', STALLED_INTERVAL_MS: '1000' }
    d.notes.push(
      `The worker runs with ${Object.entries(workerEnv)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}, so a killed worker's jobs are back in the queue within about 3 s.`,
    )
    await d.platform.restart('worker-1', workerEnv)
    await d.makeLinks(50)
    const enq0 = await d.metric('api', 'opsdrill_clicks_enqueued_total')
    const failed0 = (await d.queueCounts()).failed ?? 0
    const drop0 = await d.metric('api', 'opsdrill_clicks_dropped_total')
    // A fixed number of requests, ended by k6 itself: stopping it early would abandon requests the API may already
    // have counted, and the ledger's "served" side must be exact.
    // A few per cent over, because an open-model run under faults can skip an iteration now and then.
    const seconds = Math.ceil((clicks * 1.03) / d.timing.rate) + 1
    await d.startLoad({ apiShare: 0, duration: `${seconds}s` })
    d.phase('fault')
    let kills = 0
    let killsWithJobActive = 0
    // Evidence that the kills hit jobs in flight: stalled jobs moved back and deliveries the primary key absorbed,
    // counted by the worker that finds them. Read from each worker just before it is killed (a worker lives 5 s in
    // the short form, less than Prometheus needs to scrape it twice) and from the last one after the drain.
    const evidence = { stalled: 0, duplicates: 0 }
    const collect = async () => {
      evidence.stalled += await d.metric('worker', 'opsdrill_jobs_stalled_total', { queue: 'clicks' })
      evidence.duplicates += await d.metric('worker', 'opsdrill_clicks_duplicate_total')
    }
    const clicksQueue = d.clicksQueue()
    d.faultStart(`SIGKILL worker-1 every ${killEveryMs / 1000} s`)
    let next = Date.now() + killEveryMs / 2
    try {
      while (!(await d.loadDone())) {
        if (Date.now() >= next) {
          next = Date.now() + killEveryMs
          await collect()
          // The click jobs are batches of a few clicks that take milliseconds: kill while one is active (up to 1 s).
          const until = Date.now() + 1000
          let active = false
          while (Date.now() < until) {
            active = (await clicksQueue.getActiveCount()) > 0
            if (active) break
            await sleep(5)
          }
          if (active) killsWithJobActive++
          await d.platform.kill('worker-1', 'SIGKILL')
          kills++
          d.log(`kill #${kills}: SIGKILL worker-1, restarting it`)
          // The port is free only once the process is really gone.
          await exitWithin(d, 'worker-1', 5000)
          await d.platform.restart('worker-1', workerEnv)
          await d.progress()
        }
        await sleep(100)
      }
    } finally {
      await clicksQueue.close()
    }
    await d.stopLoad(true)
    d.faultEnd()
    d.phase('drain')
    await sleep(1000)
    const drainSec = await d.drained(d.short ? 90 : 240)
    await collect()
    const enq = (await d.metric('api', 'opsdrill_clicks_enqueued_total')) - enq0
    const dropped = (await d.metric('api', 'opsdrill_clicks_dropped_total')) - drop0
    const served = Object.values(d.loadResult!.servedPerLink).reduce((a, b) => a + b, 0)
    const s = await d.stored(d.data.links)
    const perLinkMismatch = d.data.links.filter((l) => {
      const row = s.perLink.get(l.id)
      return !row || row.rollup !== row.stored || row.stored !== (d.loadResult!.servedPerLink[l.code] ?? 0)
    }).length
    const lost = enq - s.stored
    const duplicated = s.rollup - s.stored
    const counts = await d.queueCounts()
    Object.assign(d.measured, {
      ledger: {
        served,
        acknowledged: enq,
        dropped,
        stored: s.stored,
        rollupSum: s.rollup,
        lost,
        duplicated,
        linksWithMismatch: perLinkMismatch,
      },
      kills,
      killsWithJobActive,
      drainSec,
      clicksQueueAfter: counts,
      stalledJobsRecovered: evidence.stalled,
      duplicateDeliveriesAbsorbed: evidence.duplicates,
      clickJobsFailedForGood: (counts.failed ?? 0) - failed0,
    })
    d.log(
      `ledger: served ${served}, acknowledged ${enq}, dropped ${dropped}, stored ${s.stored}, rollup ${s.rollup}, lost ${lost}, duplicated ${duplicated}`,
    )
    d.check(
      'the backlog drained',
      drainSec !== undefined,
      drainSec === undefined ? `queue still has ${JSON.stringify(counts)}` : `${drainSec.toFixed(1)} s after the load stopped`,
    )
    d.check(
      `${kills} worker kills happened`,
      kills >= (d.short ? 2 : 3),
      `${kills} SIGKILLs, every ${killEveryMs / 1000} s, ${killsWithJobActive} with a click job active; ${evidence.stalled} stalled jobs re-run, ${evidence.duplicates} duplicate deliveries absorbed`,
    )
    // A job that stalls more often than the clicks worker's maxStalledCount fails for good: its clicks go to the
    // dead-letter queue (replayable by an admin) instead of Postgres.
    d.check(
      'lost = acknowledged - stored = 0',
      lost === 0,
      `acknowledged ${enq}, stored ${s.stored}; ${(counts.failed ?? 0) - failed0} click jobs failed for good during the drill (dead-lettered)`,
    )
    d.check('duplicated = rollup sum - stored = 0', duplicated === 0, `rollup sum ${s.rollup}, stored ${s.stored}`)
    d.check('served = acknowledged + dropped', served === enq + dropped, `served ${served} 302s, acknowledged ${enq}, dropped ${dropped}`)
    d.check(
      'per link: served = stored = rollup',
      perLinkMismatch === 0,
      `${perLinkMismatch} of ${d.data.links.length} links disagree (dropped clicks make served > stored)`,
    )
    d.check(`at least ${clicks} clicks`, served >= clicks, `${served} redirects served (${seconds} s at ${d.timing.rate}/s)`)
  },
}

const redisDown: Drill = {
  name: 'redis-down',
  title: 'The Redis server is stopped (a real stop of redis-server, not the proxy) and started again.',
  criteria: [
    'no process crashes (API and worker pids unchanged)',
    'redirects >= 99.9% successful during the outage (served from Postgres)',
    'no click lost: every 302 served has its click stored (spooled during the outage, replayed after)',
    'workers process again within 30 s of Redis returning',
  ],
  alerts: ['RedisDown', 'ClicksSpooled'],
  dashboards: ['opsdrill-cache', 'opsdrill-queues', 'opsdrill-datastores'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 30, 30), short: t(100, 4, 10, 4) },
  async run(d) {
    const pids = () => [...d.platform.replicas('api'), ...d.platform.replicas('worker')].map((r) => `${r.name}:${r.pid}`).join(' ')
    const before = pids()
    const drop0 = await d.metric('api', 'opsdrill_clicks_dropped_total')
    const spool0 = await d.metric('api', 'opsdrill_clicks_spooled_total')
    let ingested = 0
    let backAfter: number | undefined
    const w = await steadyFault(
      d,
      'Redis stopped',
      () => d.platform.stopStore('redis'),
      async () => {
        await d.platform.startStore('redis')
        const base = await d.metric('worker', 'opsdrill_clicks_ingested_total')
        backAfter = await d.until(async () => (ingested = await d.metric('worker', 'opsdrill_clicks_ingested_total')) > base, 30)
      },
      async () => `spooled ${(await d.metric('api', 'opsdrill_clicks_spooled_total')) - spool0}`,
    )
    const after = pids()
    const alive = [...d.platform.replicas('api'), ...d.platform.replicas('worker')].every((r) => !d.platform.gone(r.name))
    const dropped = (await d.metric('api', 'opsdrill_clicks_dropped_total')) - drop0
    const red = d.window(w.from, w.to, 'redirect')
    const share = 1 - red.failed / Math.max(1, red.requests)
    Object.assign(d.measured, { pidsBefore: before, pidsAfter: after, dropped, workersBackAfterSec: backAfter, ingestedAfter: ingested })
    d.check('no process crashed (pids unchanged)', before === after && alive, `${after}`)
    d.check(
      'redirects >= 99.9% successful during the outage',
      share >= 0.999,
      `${red.failed} redirect failures of ${red.requests} redirects in the fault window (${(share * 100).toFixed(3)}% ok)`,
    )
    const l = await clickLedger(d, d.short ? 60 : 180)
    d.measured.ledger = { ...l, lostAt: undefined }
    d.check('no click lost (served = stored)', l.lost === 0 && l.settledSec !== undefined, `${ledgerLine(l)}; dropped ${dropped}`)
    d.check(
      'workers process again within 30 s',
      backAfter !== undefined,
      backAfter === undefined
        ? 'no click ingested 30 s after Redis returned'
        : `first click ingested ${backAfter.toFixed(1)} s after Redis was up`,
    )
  },
}

const postgresDown: Drill = {
  name: 'postgres-down',
  title: 'The Postgres server is stopped (fast shutdown) and started again; cached redirects go on.',
  criteria: [
    'cached redirects keep succeeding (>= 99%)',
    `Postgres-backed requests get 503 within PG_CONNECT_TIMEOUT_MS + 0.5 s (${APP.PG_CONNECT_TIMEOUT_MS + 500} ms)`,
    '/readyz stays 200 on every API replica (they stay in the load balancer) while opsdrill_dependency_up{postgres} is 0',
    'full recovery within 15 s of Postgres returning',
    `no pool leak: total <= PG_POOL_MAX (${APP.PG_POOL_MAX}), waiting 0`,
  ],
  alerts: ['PostgresDown'],
  dashboards: ['opsdrill-datastores', 'opsdrill-overview', 'opsdrill-slo'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 30, 20), short: t(100, 4, 10, 4) },
  async run(d) {
    await d.makeLinks(50)
    const cached = await warmCache(d)
    let ready: Record<string, number> = {}
    let pgUp: Record<string, number> = {}
    let recoverSec: number | undefined
    const w = await steadyFault(
      d,
      'Postgres stopped',
      async () => {
        await d.platform.stopStore('postgres')
        await sleep(2000)
        ready = await d.readiness()
        pgUp = await d.perReplica('api', 'opsdrill_dependency_up', { dependency: 'postgres' })
      },
      async () => {
        await d.platform.startStore('postgres')
        recoverSec = await d.until(async () => {
          const up = await d.perReplica('api', 'opsdrill_dependency_up', { dependency: 'postgres' })
          if (!Object.values(up).every((v) => v === 1)) return false
          const res = await fetch(`${d.platform.baseUrl}/api/v1/links`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${d.data.token}` },
            body: JSON.stringify({ url: 'https://example.com/drill/recovered' }),
          })
          await res.arrayBuffer()
          return res.status === 201
        }, 15)
      },
    )
    const red = d.window(w.from, w.to, 'redirect')
    const apiFails = d.loadResult!.failures.filter((f) => f.slo === 'api' && f.at >= w.from && f.at <= w.to + 2000)
    const not503 = apiFails.filter((f) => f.status !== 503)
    const slow = apiFails.filter((f) => f.durationMs > APP.PG_CONNECT_TIMEOUT_MS + 500)
    await sleep(1000)
    const total = await d.perReplica('api', 'opsdrill_pg_pool_connections', { state: 'total' })
    const waiting = await d.perReplica('api', 'opsdrill_pg_pool_connections', { state: 'waiting' })
    Object.assign(d.measured, {
      readinessDuringOutage: ready,
      postgresUpDuringOutage: pgUp,
      recoverSec,
      apiFailures: apiFails.length,
      maxApiFailureMs: round(Math.max(0, ...apiFails.map((f) => f.durationMs))),
      pool: { total, waiting },
    })
    d.check(
      'cached redirects keep succeeding',
      red.failed / Math.max(1, red.requests) < 0.01,
      `${red.failed} redirect failures of ${red.requests}; ${cached} of ${d.data.links.length} links in the Redis cache before the fault`,
    )
    d.check(
      `Postgres-backed requests get 503 within ${APP.PG_CONNECT_TIMEOUT_MS + 500} ms`,
      apiFails.length > 0 && not503.length === 0 && slow.length === 0,
      `${apiFails.length} API failures: ${not503.length} not 503, ${slow.length} slower than the bound (max ${Math.max(0, ...apiFails.map((f) => f.durationMs)).toFixed(0)} ms)`,
    )
    d.check(
      '/readyz stays 200 during the outage while dependency_up{postgres} is 0',
      Object.values(ready).length > 0 &&
        Object.values(ready).every((c) => c === 200) &&
        Object.values(pgUp).length === Object.values(ready).length &&
        Object.values(pgUp).every((v) => v === 0),
      `readyz ${JSON.stringify(ready)}, dependency_up ${JSON.stringify(pgUp)}`,
    )
    d.check(
      'recovered within 15 s of Postgres returning',
      recoverSec !== undefined,
      recoverSec === undefined
        ? 'Postgres not reachable from every replica 15 s after it returned'
        : `reaching Postgres and creating links ${recoverSec.toFixed(1)} s after Postgres was up`,
    )
    d.check(
      'no pool leak',
      Object.values(total).every((n) => n <= APP.PG_POOL_MAX) && Object.values(waiting).every((n) => n === 0),
      `total ${JSON.stringify(total)}, waiting ${JSON.stringify(waiting)}`,
    )
  },
}

/**
 * Puts the drill's links in the Redis cache; returns how many are there. The write-back follows the response, so the
 * count is polled: a link left out of the cache has its redirects fail during the outage.
 */
async function warmCache(d: DrillRun): Promise<number> {
  await warm(d.platform.baseUrl, d.data.links)
  const { url, prefix } = d.cacheRedis
  const redis = new Redis(url)
  try {
    const keys = d.data.links.map((l) => `${prefix}:link:v2:${l.code}`)
    let cached = 0
    // The write-back follows the response; give it a moment.
    await d.until(async () => (cached = await redis.exists(...keys)) === keys.length, 2)
    return cached
  } finally {
    redis.disconnect()
  }
}

/** Postgres queries per second over every API replica and worker, measured over sec seconds. */
async function pgRate(d: DrillRun, sec: number, during?: () => Promise<string>): Promise<number> {
  const q = async () =>
    (await d.metric('api', 'opsdrill_pg_query_duration_seconds_count')) +
    (await d.metric('worker', 'opsdrill_pg_query_duration_seconds_count'))
  const a = await q()
  const t0 = Date.now()
  await d.watch(sec, during)
  return ((await q()) - a) / ((Date.now() - t0) / 1000)
}

function pgToxicDrill(name: string, title: string, toxic: 'latency' | 'blackhole'): Drill {
  const bound = toxic === 'latency' ? APP.PG_QUERY_TIMEOUT_MS + 1000 : APP.PG_CONNECT_TIMEOUT_MS + APP.PG_QUERY_TIMEOUT_MS + 1000
  return {
    name,
    title,
    criteria: [
      toxic === 'latency'
        ? `no request outlives its timeout: k6 max <= PG_QUERY_TIMEOUT_MS + 1 s (${bound} ms)`
        : `no request outlives its timeouts: k6 max <= PG_CONNECT_TIMEOUT_MS (pool wait) + PG_QUERY_TIMEOUT_MS + 1 s (${bound} ms)`,
      'no retry storm: Postgres queries/s <= 1.1 x baseline',
      'API requests succeed again within 15 s of the toxic being removed',
    ],
    alerts:
      toxic === 'latency'
        ? ['ApiLatencyErrorBudgetBurn (if sustained)']
        : ['ApiAvailabilityErrorBudgetBurn (if sustained)', 'PostgresPoolSaturated (after 5 min)'],
    dashboards: ['opsdrill-datastores', 'opsdrill-slo'],
    shape: { api: 2, worker: 1 },
    timing: { full: t(200, 20, 30, 20), short: t(100, 6, 8, 4) },
    async run(d) {
      await d.startLoad()
      d.phase('baseline')
      await d.watch(2)
      const base = await pgRate(d, d.timing.baselineSec)
      d.phase('fault')
      const from = d.faultStart(toxic === 'latency' ? 'Postgres +100 ms latency' : 'Postgres blackhole (timeout toxic 0)')
      await d.platform.toxiproxy.addToxic(
        'postgres',
        toxic === 'latency'
          ? { name: 'drill', type: 'latency', attributes: { latency: 100, jitter: 0 } }
          : { name: 'drill', type: 'timeout', attributes: { timeout: 0 } },
      )
      if (toxic === 'blackhole')
        await d.platform.toxiproxy.addToxic('postgres', {
          name: 'drill-up',
          type: 'timeout',
          stream: 'upstream',
          attributes: { timeout: 0 },
        })
      const fault = await pgRate(d, d.timing.faultSec)
      await d.platform.toxiproxy.reset()
      const w = d.faultEnd()
      d.phase('recovery')
      const recoverSec = await d.until(async () => {
        const res = await fetch(`${d.platform.baseUrl}/api/v1/links`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${d.data.token}` },
          body: JSON.stringify({ url: 'https://example.com/drill/recovered' }),
          signal: AbortSignal.timeout(10_000),
        }).catch(() => undefined)
        await res?.arrayBuffer()
        return res?.status === 201
      }, 15)
      await d.watch(d.timing.recoverSec)
      await d.stopLoad()
      void from
      const inFault = d.window(w.from, w.to + bound)
      const max = Math.max(d.loadResult!.redirect.max, d.loadResult!.api.max)
      Object.assign(d.measured, {
        pgQueriesPerSec: { baseline: round(base), fault: round(fault), ratio: round(fault / Math.max(0.001, base), 2) },
        maxRequestMs: round(max),
        faultWindow: inFault,
        recoverSec,
      })
      d.check(
        `no request outlives ${bound} ms`,
        max <= bound,
        `k6 max ${max.toFixed(0)} ms (redirect ${d.loadResult!.redirect.max.toFixed(0)}, API ${d.loadResult!.api.max.toFixed(0)})`,
      )
      d.check(
        'no retry storm (queries/s <= 1.1 x baseline)',
        fault <= 1.1 * base,
        `${fault.toFixed(1)}/s during the fault vs ${base.toFixed(1)}/s baseline (x${(fault / Math.max(0.001, base)).toFixed(2)})`,
      )
      d.check(
        'recovered within 15 s',
        recoverSec !== undefined,
        recoverSec === undefined
          ? 'link creation still failing 15 s after'
          : `link creation succeeded ${recoverSec.toFixed(1)} s after the toxic was removed`,
      )
    },
  }
}

// A redirect that misses L1 meets Redis once before Postgres, in the cache GET, bounded by the command timeout (the
// redirect's rate limit counts in memory, service/app.ts). 250 ms covers the Postgres lookup; a wait of twice the
// timeout, as ioredis auto-pipelining caused (docs/drills.md, redis-latency), fails it.
const REDIRECT_BOUND_MS = APP.REDIS_COMMAND_TIMEOUT_MS + 250

const redisLatency: Drill = {
  name: 'redis-latency',
  title: `The cache Redis answers 1 s late (toxiproxy latency, above REDIS_COMMAND_TIMEOUT_MS ${APP.REDIS_COMMAND_TIMEOUT_MS} ms): cache reads time out and redirects fall back to Postgres.`,
  criteria: [
    'cache errors / fallbacks grow (opsdrill_cache_errors_total, opsdrill_cache_fallbacks_total)',
    `redirect p99 in the fault window <= command timeout (the cache GET) + 250 ms for the Postgres lookup (${REDIRECT_BOUND_MS} ms)`,
    '< 1% failed requests',
  ],
  alerts: ['CacheHitRatioCollapsed (after 10 min)', 'RedirectLatencyErrorBudgetBurn (if sustained)'],
  dashboards: ['opsdrill-cache', 'opsdrill-slo'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 30, 20), short: t(100, 4, 10, 4) },
  async run(d) {
    const err0 = (await d.metric('api', 'opsdrill_cache_errors_total')) + (await d.metric('api', 'opsdrill_cache_fallbacks_total'))
    const w = await steadyFault(
      d,
      'cache Redis +1000 ms latency',
      () => d.platform.toxiproxy.addToxic('redis-cache', { name: 'drill', type: 'latency', attributes: { latency: 1000, jitter: 0 } }),
      () => d.platform.toxiproxy.reset(),
    )
    const errs = (await d.metric('api', 'opsdrill_cache_errors_total')) + (await d.metric('api', 'opsdrill_cache_fallbacks_total')) - err0
    const red = d.window(w.from, w.to, 'redirect')
    const api = d.window(w.from, w.to, 'api')
    const all = d.window(d.loadResult!.seconds[0]!.t * 1000, Date.now())
    Object.assign(d.measured, { cacheErrorsAndFallbacks: errs, faultWindowRedirects: red, faultWindowApi: api })
    d.notes.push(
      `API calls meet Redis more often (rate limiter, the route's own limiter, cache invalidation and publish on create), each up to the command timeout: p99 ${api.p99.toFixed(0)} ms in the fault window. Not a criterion of this drill; a reason to bound the rate limiter's Redis wait separately.`,
    )
    d.check('cache reads time out to Postgres', errs > 0, `cache errors + fallbacks +${errs}`)
    d.check(
      `redirect p99 <= ${REDIRECT_BOUND_MS} ms during the fault`,
      red.p99 <= REDIRECT_BOUND_MS,
      `p99 ${red.p99.toFixed(0)} ms over the fault window (worst second ${red.worstSecondP99.toFixed(0)} ms), max ${red.max.toFixed(0)} ms`,
    )
    d.check('< 1% failed requests', all.failedShare < 0.01, `${all.failed} of ${all.requests}`)
  },
}

const cpuStarvation: Drill = {
  name: 'cpu-starvation',
  title: 'stress-ng takes both cores (--cpu 2): the API sheds with 503 + Retry-After or stays bounded; no job stalls.',
  criteria: [
    'no stalled jobs (opsdrill_jobs_stalled_total unchanged)',
    'shed responses carry Retry-After, or (no shedding needed) p99 stays <= 2.5 s',
  ],
  alerts: ['ApiSheddingLoad (after 5 min)', 'EventLoopSaturated (after 5 min)'],
  dashboards: ['opsdrill-runtime', 'opsdrill-overview'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 30, 20), short: t(100, 4, 10, 4) },
  targets: ['native'],
  async run(d) {
    const stalled0 = await d.metric('worker', 'opsdrill_jobs_stalled_total')
    const shed0 = await d.metric('api', 'opsdrill_http_requests_shed_total')
    let stress: ReturnType<typeof spawn> | undefined
    const w = await steadyFault(
      d,
      'stress-ng --cpu 2',
      async () => {
        stress = spawn('stress-ng', ['--cpu', '2', '--timeout', `${d.timing.faultSec + 5}s`, '--quiet'], { stdio: 'ignore' })
      },
      async () => {
        stress?.kill('SIGTERM')
        await new Promise((r) => (stress?.exitCode !== null ? r(undefined) : stress.once('exit', r)))
      },
    )
    const stalled = (await d.metric('worker', 'opsdrill_jobs_stalled_total')) - stalled0
    const shed = (await d.metric('api', 'opsdrill_http_requests_shed_total')) - shed0
    const f = d.window(w.from, w.to)
    const r = d.loadResult!
    Object.assign(d.measured, {
      stalled,
      shed,
      shedWithRetryAfter: r.shedWithRetryAfter,
      shedWithoutRetryAfter: r.shedWithoutRetryAfter,
      faultWindow: f,
    })
    d.check('no stalled jobs', stalled === 0, `opsdrill_jobs_stalled_total +${stalled}`)
    if (shed > 0) {
      d.check(
        'shedding answered 503 + Retry-After',
        r.shedWithoutRetryAfter === 0 && r.shedWithRetryAfter > 0,
        `${shed} shed by the API; k6 saw ${r.shedWithRetryAfter} 503s with Retry-After, ${r.shedWithoutRetryAfter} without`,
      )
    } else {
      d.check(
        'no shedding needed: p99 stayed <= 2500 ms',
        f.p99 <= 2500,
        `nothing shed; p99 ${f.p99.toFixed(0)} ms in the fault window (worst second ${f.worstSecondP99.toFixed(0)} ms, max ${f.max.toFixed(0)} ms)`,
      )
    }
  },
}

const scaleOut: Drill = {
  name: 'scale-out',
  title: 'Throughput with 1 -> 2 API replicas under a saturating ramp, and backlog drain with 1 -> 2 workers.',
  criteria: [
    'API throughput factor (2 replicas / 1, interleaved runs) > 1.0, unless one replica already kept the box >= 80% busy (then reported as inconclusive)',
    'drain rate factor (2 workers / 1, each CLICK_CONCURRENCY=20) > 1.1',
  ],
  alerts: [],
  dashboards: ['opsdrill-overview', 'opsdrill-queues'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(0, 0, 20, 0), short: t(0, 0, 6, 0) },
  targets: ['native'],
  async run(d) {
    d.notes.push(
      'k6, nginx, Postgres, Redis, Prometheus and the replicas share 2 cores here: a second replica can only use what the first leaves idle, so factors near 2 are not possible on this box.',
    )
    d.notes.push(
      `Drain: each worker runs with CLICK_CONCURRENCY=${DRAIN_WORKER_ENV.CLICK_CONCURRENCY} (the default is 200), so the comparison measures a second consumer rather than how much of the box one process takes; the queue is paused while the workers start, and the drain is timed from resume to an empty queue.`,
    )
    const hold = d.timing.faultSec
    const throughput = async (api: number) => {
      await d.platform.scale({ api })
      d.phase(`api=${api}`)
      const from = d.faultStart(`${api} API replica${api > 1 ? 's' : ''}`)
      await d.startLoad({ mode: 'saturate', vus: 32, apiShare: 0, duration: `${hold}s` })
      // CPU over the measured part of the run only (after the ramp, before the end).
      await d.watch(3)
      const cpu0 = cpuTimes()
      await d.watch(hold - 3)
      const busy = cpuBusy(cpu0, cpuTimes())
      await d.watch(2)
      await d.stopLoad()
      d.faultEnd()
      const secs = d.loadResult!.seconds.filter((s) => s.t * 1000 >= from + 3000 && s.t * 1000 < Date.now() - 1000)
      return { rps: secs.reduce((a, s) => a + s.reqs - s.failed, 0) / Math.max(1, secs.length), busy }
    }
    // Interleaved (1, 2, 1, 2) so that whatever else the box runs weighs on both sides alike.
    const runs: { api: number; rps: number; busy: number }[] = []
    for (const api of [1, 2, 1, 2]) runs.push({ api, ...(await throughput(api)) })
    const mean = (api: number) => runs.filter((r) => r.api === api).reduce((a, r) => a + r.rps, 0) / 2
    const rps1 = mean(1)
    const rps2 = mean(2)
    d.measured.throughputRuns = runs.map((r) => ({ api: r.api, rps: round(r.rps), cpuBusy: round(r.busy, 2) }))
    const jobs = d.short ? 10_000 : 40_000
    const linkIds = (await d.makeLinks(20)).map((l) => l.id)
    const drain = async (workers: number) => {
      const q = d.clicksQueue()
      try {
        const scaleWorkers = async (n: number) => {
          if (n > 0) d.phase(`worker=${n}`)
          await d.platform.scale({ worker: n }, n > 0 ? DRAIN_WORKER_ENV : undefined)
        }
        const r = await timeDrain(q, { linkIds, jobs, workers, scaleWorkers, timeoutSec: 300 })
        return r.seconds === undefined ? 0 : r.jobs / r.seconds
      } finally {
        await q.close()
      }
    }
    const drain1 = await drain(1)
    const drain2 = await drain(2)
    const f1 = rps1 > 0 ? rps2 / rps1 : 0
    const f2 = drain1 > 0 ? drain2 / drain1 : 0
    Object.assign(d.measured, {
      throughput: { api1: round(rps1), api2: round(rps2), factor: round(f1, 2) },
      drain: { jobs, worker1PerSec: round(drain1), worker2PerSec: round(drain2), factor: round(f2, 2) },
    })
    // A second replica can only add throughput with CPU to spare: when the box was already >= 80% busy with one
    // replica (k6 and whatever else runs on it included, measured while the load held), the comparison measures the box, not the replicas, and
    // the report says so instead of calling it either way.
    const busy1 = Math.min(...runs.filter((r) => r.api === 1).map((r) => r.busy))
    const saturated = busy1 >= 0.8
    d.measured.throughputVerdict =
      f1 > 1.0 ? 'scales' : saturated ? 'inconclusive: the box was saturated with one replica' : 'does not scale'
    d.check(
      'API throughput factor 1 -> 2 replicas > 1.0 (inconclusive when one replica already saturates the box)',
      f1 > 1.0 || saturated,
      `${rps1.toFixed(0)} -> ${rps2.toFixed(0)} req/s (x${f1.toFixed(2)}); the box ${(busy1 * 100).toFixed(0)}% busy with one replica` +
        (f1 > 1.0 ? '' : saturated ? ': INCONCLUSIVE, no CPU left for a second replica' : ''),
    )
    d.check(
      'drain factor 1 -> 2 workers > 1.1',
      f2 > 1.1,
      `${drain1.toFixed(0)} -> ${drain2.toFixed(0)} clicks/s over ${jobs} jobs (x${f2.toFixed(2)})`,
    )
  },
}

/** Busy and total jiffies of all CPUs (/proc/stat). */
function cpuTimes(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

function cpuBusy(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  return (b.busy - a.busy) / Math.max(1, b.total - a.total)
}

export const DRILLS: Drill[] = [
  apiSigterm,
  apiSigkill,
  rollingRestart,
  workerSigterm,
  workerLedger,
  apiLedger,
  redisDown,
  postgresDown,
  pgToxicDrill('postgres-latency', 'Postgres answers 100 ms late (toxiproxy latency toxic on the postgres proxy).', 'latency'),
  pgToxicDrill(
    'postgres-blackhole',
    'Postgres stops answering without closing connections (toxiproxy timeout toxic 0, both directions).',
    'blackhole',
  ),
  redisLatency,
  cpuStarvation,
  scaleOut,
  alertDrill,
]

export function drillNamed(name: string): Drill | undefined {
  return DRILLS.find((x) => x.name === name)
}
