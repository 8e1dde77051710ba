// Every drill criterion can fail: each is fed what a broken system would measure and must say FAIL, and what a
// healthy one measures and must say pass. The SLO figures are the ones prometheus/rules/recording.yml states.
import t, { type Test as T } from 'tap'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse } from 'yaml'
import { criteria as alerts, type AlertsMeasured } from '../../../ops/lib/drills/alerts.ts'
import { criteria as apiLedger, type Measured as ApiLedger } from '../../../ops/lib/drills/api-ledger.ts'
import { criteria as sigkill } from '../../../ops/lib/drills/api-sigkill.ts'
import { criteria as sigterm } from '../../../ops/lib/drills/api-sigterm.ts'
import { criteria as cpu } from '../../../ops/lib/drills/cpu-starvation.ts'
import {
  errorBudgetSpent,
  sloCriteria,
  SLO,
  timeline,
  type Budget,
  type Criterion,
  type SloMeasure,
  type Traffic,
} from '../../../ops/lib/drills/criteria.ts'
import { criteria as pgDown } from '../../../ops/lib/drills/postgres-down.ts'
import { criteria as pgToxic } from '../../../ops/lib/drills/postgres-toxic.ts'
import { criteria as redisDown } from '../../../ops/lib/drills/redis-down.ts'
import { criteria as redisLatency } from '../../../ops/lib/drills/redis-latency.ts'
import { criteria as rolling } from '../../../ops/lib/drills/rolling-restart.ts'
import { criteria as scaleOut } from '../../../ops/lib/drills/scale-out.ts'
import { criteria as ledger, type Measured as Ledger } from '../../../ops/lib/drills/worker-ledger.ts'
import { criteria as workerSigterm, type Measured as WorkerSigterm } from '../../../ops/lib/drills/worker-sigterm.ts'

const ROOT = resolve(import.meta.dirname, '../../..')

/** Asserts that the criterion whose text starts with `start` passes on `good` and fails on `bad`. */
function canFail<M>(t: T, list: Criterion<M>[], start: string, good: M, bad: M): void {
  const c = list.find((x) => x.text.startsWith(start))
  if (!t.ok(c, `a criterion "${start}..." exists`)) return
  t.equal(c!.judge(good).pass, true, `${c!.text}: passes on a healthy run (${c!.judge(good).detail})`)
  t.equal(c!.judge(bad).pass, false, `${c!.text}: fails on a broken one (${c!.judge(bad).detail})`)
}

const traffic = (requests: number, failed: number, p99 = 10): Traffic => ({
  requests,
  failed,
  failedShare: failed / Math.max(1, requests),
  p99,
  max: p99,
  worstSecondP99: p99,
})

void t.test('when the SLO constants are read, then they are the objectives the recording rules state', async (t) => {
  const doc = parse(readFileSync(resolve(ROOT, 'prometheus/rules/recording.yml'), 'utf8')) as {
    groups: { rules: { record?: string; expr: string; labels?: Record<string, string> }[] }[]
  }
  const rules = doc.groups.flatMap((g) => g.rules)
  const objective = (slo: string) => rules.find((r) => r.record === 'slo:opsdrill_objective:ratio' && r.labels?.slo === slo)?.expr
  t.equal(objective('availability'), `vector(${SLO.availability})`)
  t.equal(objective('redirect-latency'), `vector(${SLO.redirectLatencyObjective})`)
  const redirectSli = rules.find((r) => r.record === 'slo:opsdrill_sli_error:ratio_rate5m' && r.labels?.slo === 'redirect-latency')
  t.match(redirectSli?.expr, `route="/:code",le="${SLO.redirectLatencyMs / 1000}"`)
})

void t.test('when the SLO criteria judge a run, then each fails on a run that breaks it', async (t) => {
  const budget: Budget = { redirect: 0.001, api: 0.01, settleSec: 2, why: 'test' }
  const [availability, latency, inside] = sloCriteria(budget) as [Criterion<SloMeasure>, Criterion<SloMeasure>, Criterion<SloMeasure>]
  const good: SloMeasure = {
    budget,
    latencyFactor: 1,
    outside: { all: traffic(2000, 1), redirect: traffic(1800, 0, 40) },
    inside: { redirect: traffic(1000, 1), api: traffic(100, 1) },
  }
  canFail(t, [availability], 'outside the fault window: availability', good, {
    ...good,
    outside: { ...good.outside, all: traffic(2000, 3) },
  })
  canFail(t, [availability], 'outside the fault window: availability', good, { ...good, outside: { ...good.outside, all: traffic(0, 0) } })
  canFail(t, [latency], 'outside the fault window: redirect latency', good, {
    ...good,
    outside: { ...good.outside, redirect: traffic(1800, 0, 101) },
  })
  t.equal(latency.judge({ ...good, latencyFactor: 3, outside: { ...good.outside, redirect: traffic(1800, 0, 250) } }).pass, true)
  canFail(t, [inside], 'inside the fault window', good, { ...good, inside: { ...good.inside, api: traffic(100, 2) } })
  canFail(t, [inside], 'inside the fault window', good, { ...good, inside: { ...good.inside, redirect: traffic(1000, 2) } })
  t.match(inside.text, /<= 0\.1% of redirects and <= 1\.0% of API requests fail/, 'the budget is stated in the text')
})

void t.test('when the timeline is built, then detect is the first alert after the injection and recover the last failure', async (t) => {
  const w = { from: 10_000, to: 20_000 }
  const tl = timeline(
    w,
    [{ at: 5000 }, { at: 12_000 }, { at: 23_000 }],
    [
      { alert: 'Old', startsAt: 1000 },
      { alert: 'RedisDown', startsAt: 70_000 },
      { alert: 'ClicksDropped', startsAt: 15_000 },
    ],
  )
  t.same(tl, { inject: 10_000, mitigate: 20_000, detect: { at: 15_000, alert: 'ClicksDropped' }, recover: 23_000 })
  t.same(timeline(w, [{ at: 5000 }], []), { inject: 10_000, mitigate: 20_000 }, 'no failure after inject, no alert: neither')
  t.same(errorBudgetSpent(10_000, 5), { allowed: 10, failed: 5, spent: 0.5 })
})

void t.test('when api-sigterm, api-sigkill and rolling-restart are judged, then each criterion fails on a broken run', async (t) => {
  const st = { cut: [], exitMs: 300, log: 'shutdown complete' }
  canFail(t, sigterm, 'in-flight requests complete', st, { ...st, cut: [{ at: 1, status: 502 }] })
  canFail(t, sigterm, 'the process is gone', st, { cut: [], log: st.log })
  canFail(t, sigterm, 'exit code 0', st, { ...st, log: 'close-with-grace: killed by timeout' })
  const sk = { killedAt: 10_000, failures: [{ at: 11_000 }], rejoinedRequests: 40 }
  canFail(t, sigkill, 'every failure within 10 s', sk, { ...sk, failures: [{ at: 25_000 }] })
  canFail(t, sigkill, 'the replica rejoins', sk, { ...sk, rejoinedRequests: 0 })
  canFail(t, rolling, 'no HTTP error answered', { failures: [{ status: 0, slo: 'api' }] }, { failures: [{ status: 502, slo: 'api' }] })
  t.match(
    rolling[0]!.judge({ failures: [{ status: 502, slo: 'api' }] }).detail,
    /502 on api x1/,
    'the detail names the status and the request class',
  )
})

void t.test('when the worker drills are judged, then each criterion fails on a broken run', async (t) => {
  const ws: WorkerSigterm = {
    jobs: 5000,
    active: 20,
    stored: 5000,
    rollup: 5000,
    stalled: 0,
    exitMs: 500,
    drainSec: 3,
    log: 'shutting down: finishing active jobs',
  }
  canFail(t, workerSigterm, 'each job stored once', ws, { ...ws, stored: 4999, rollup: 4999 })
  canFail(t, workerSigterm, 'no duplicate counts', ws, { ...ws, rollup: 5001 })
  canFail(t, workerSigterm, 'no stalled jobs', ws, { ...ws, stalled: 3 })
  canFail(t, workerSigterm, 'the worker is gone', ws, { ...ws, exitMs: 30_000 })
  canFail(t, workerSigterm, 'exit code 0', ws, { ...ws, log: 'shutting down after an uncaught error' })
  const l: Ledger = {
    clicks: 2000,
    served: 2100,
    acknowledged: 2100,
    dropped: 0,
    stored: 2100,
    rollup: 2100,
    linksWithMismatch: 0,
    links: 50,
    kills: 5,
    minKills: 2,
    killsWithJobActive: 3,
    stalledJobsRecovered: 7,
    duplicateDeliveriesAbsorbed: 1,
    drainSec: 2,
    queueAfter: {},
    failedForGood: 0,
  }
  canFail(t, ledger, 'the backlog drained', l, withoutDrain(l))
  canFail(t, ledger, 'the worker was SIGKILLed', l, { ...l, kills: 1 })
  canFail(t, ledger, 'at least one kill landed while a click job was active', l, { ...l, killsWithJobActive: 0 })
  canFail(t, ledger, 'lost = acknowledged - stored = 0', l, { ...l, stored: 2099, rollup: 2099 })
  canFail(t, ledger, 'duplicated', l, { ...l, rollup: 2101 })
  canFail(t, ledger, 'every served redirect', l, { ...l, served: 2101 })
  canFail(t, ledger, 'per link', l, { ...l, linksWithMismatch: 1 })
  canFail(t, ledger, 'the ledger holds at least', l, { ...l, served: 1999, acknowledged: 1999, stored: 1999, rollup: 1999 })
})

void t.test('when api-ledger is judged, then losing more than the bound, away from a kill, or unsettled fails', async (t) => {
  // 2 kills at 150/s: ceil(150 x (50 + 100) ms) = 23 clicks per kill, 46 in all.
  const lost = (n: number, at: number) => ({ stored: 2401 - n, lost: n, lostAt: Array.from({ length: n }, () => at) })
  const a: ApiLedger = {
    ledger: { served: 2401, storedTwice: 0, storedNotServed: 0, settledSec: 3, ...lost(3, 9_800) },
    killsAt: [10_000, 15_000],
    minKills: 2,
    rate: 150,
    seconds: 16,
  }
  canFail(t, apiLedger, 'served = stored within the loss bound', a, { ...a, ledger: { ...a.ledger, ...lost(47, 9_800) } })
  canFail(t, apiLedger, 'served = stored within the loss bound', a, { ...a, ledger: { ...a.ledger, served: 0, stored: 0 } })
  canFail(t, apiLedger, 'every lost click was served within', a, { ...a, ledger: { ...a.ledger, ...lost(3, 12_000) } })
  // A 302 the killed replica wrote in its last instant reaches k6 a little after the kill's recorded time.
  const justAfter = { ...a, ledger: { ...a.ledger, ...lost(3, 10_001) } }
  canFail(t, apiLedger, 'every lost click was served within', justAfter, { ...a, ledger: { ...a.ledger, ...lost(3, 10_101) } })
  canFail(t, apiLedger, 'the clicks settle', a, { ...a, ledger: { ...a.ledger, settledSec: undefined } })
  canFail(t, apiLedger, 'the API replicas were SIGKILLed', a, { ...a, killsAt: [10_000] })
})

function withoutDrain(l: Ledger): Omit<Ledger, 'drainSec'> {
  const { drainSec: _, ...rest } = l
  return rest
}

void t.test('when the datastore drills are judged, then each criterion fails on a broken run', async (t) => {
  const rd = {
    pidsBefore: 'api-1:1 api-2:2 worker-1:3',
    pidsAfter: 'api-1:1 api-2:2 worker-1:3',
    allAlive: true,
    dropped: 0,
    spooled: 140,
    ledger: { served: 1400, stored: 1400, lost: 0, storedTwice: 0, storedNotServed: 0, lostAt: [], settledSec: 2 },
    workersBackAfterSec: 1,
  }
  canFail(t, redisDown, 'no process crashes', rd, { ...rd, pidsAfter: 'api-1:1 api-2:9 worker-1:3' })
  canFail(t, redisDown, 'no click lost', rd, { ...rd, ledger: { ...rd.ledger, stored: 1399, lost: 1, lostAt: [1] } })
  canFail(t, redisDown, 'no click lost', rd, { ...rd, ledger: { ...rd.ledger, settledSec: undefined } })
  canFail(t, redisDown, 'no click lost', rd, { ...rd, ledger: { ...rd.ledger, served: 0, stored: 0 } })
  const { workersBackAfterSec: _, ...notBack } = rd
  canFail(t, redisDown, 'workers process again', rd, notBack)
  const pool = [{ checkedOut: { 'api-1': 0, 'api-2': 0 }, waiting: { 'api-1': 0, 'api-2': 0 } }]
  const pd = {
    apiFailures: [{ status: 503, durationMs: 20 }],
    readinessDuringOutage: { 'api-1': 200, 'api-2': 200 },
    postgresUpDuringOutage: { 'api-1': 0, 'api-2': 0 },
    recoverSec: 1,
    pool: [...pool, { checkedOut: { 'api-1': 1, 'api-2': 0 }, waiting: { 'api-1': 0, 'api-2': 0 } }, ...pool],
  }
  canFail(t, pgDown, 'Postgres-backed requests get 503', pd, { ...pd, apiFailures: [{ status: 503, durationMs: 3000 }] })
  canFail(t, pgDown, 'Postgres-backed requests get 503', pd, { ...pd, apiFailures: [{ status: 500, durationMs: 20 }] })
  canFail(t, pgDown, '/readyz stays 200', pd, { ...pd, readinessDuringOutage: { 'api-1': 503, 'api-2': 200 } })
  canFail(t, pgDown, '/readyz stays 200', pd, { ...pd, postgresUpDuringOutage: { 'api-1': 0, 'api-2': 1 } })
  canFail(t, pgDown, 'full recovery within 15 s', pd, {
    apiFailures: pd.apiFailures,
    readinessDuringOutage: pd.readinessDuringOutage,
    postgresUpDuringOutage: pd.postgresUpDuringOutage,
    pool: pd.pool,
  })
  const leak = { checkedOut: { 'api-1': 1, 'api-2': 0 }, waiting: { 'api-1': 0, 'api-2': 0 } }
  canFail(t, pgDown, 'no pool leak', pd, { ...pd, pool: [leak, leak, leak] })
  const tox = pgToxic(3500, 'bound')
  canFail(
    t,
    tox,
    'no request outlives',
    { maxMs: { redirect: 400, api: 2600 }, recoverSec: 1 },
    { maxMs: { redirect: 400, api: 3600 }, recoverSec: 1 },
  )
  canFail(t, tox, 'API requests succeed again', { maxMs: { redirect: 1, api: 1 }, recoverSec: 1 }, { maxMs: { redirect: 1, api: 1 } })
  const rl = { cacheErrorsAndFallbacks: 300, faultRedirects: traffic(900, 0, 510) }
  canFail(t, redisLatency, 'cache reads time out', rl, { ...rl, cacheErrorsAndFallbacks: 0 })
  canFail(t, redisLatency, 'redirect p99 in the fault window', rl, { ...rl, faultRedirects: traffic(900, 0, 1000) })
})

void t.test('when cpu-starvation and scale-out are judged, then each criterion fails on a broken run', async (t) => {
  const c = { stalled: 0, shed: 4, shedWithRetryAfter: 4, shedWithoutRetryAfter: 0, fault: traffic(1000, 4, 300) }
  canFail(t, cpu, 'no stalled jobs', c, { ...c, stalled: 1 })
  canFail(t, cpu, 'every 503 k6 received carries Retry-After', c, { ...c, shedWithoutRetryAfter: 1 })
  canFail(t, cpu, 'p99 in the fault window', c, { ...c, fault: traffic(1000, 4, 2600) })
  const runs = (r1: number, r2: number) => [1, 2, 1, 2].map((api) => ({ api, capacity: api === 1 ? r1 : r2 }))
  const s = { runs: runs(60, 110), drain: { jobs: 10_000, perSec1: 1000, perSec2: 1300 } }
  // A busy box passes no more as "inconclusive": below the factor the criterion fails, whatever the reason.
  canFail(t, scaleOut, 'login capacity factor', s, { ...s, runs: runs(60, 90) })
  canFail(t, scaleOut, 'login capacity factor', s, { ...s, runs: runs(0, 0) })
  canFail(t, scaleOut, 'drain rate factor', s, { ...s, drain: { jobs: 10_000, perSec1: 1000, perSec2: 1100 } })
})

void t.test('when the alerts drill is judged, then an alert that fired early, late, never or stays fails', async (t) => {
  const ok = { forSec: 60, before: false, detectSec: 75, resolvedSec: 20 }
  const m: AlertsMeasured = {
    alerts: {
      InstanceDown: ok,
      WorkersAbsent: { ...ok, forSec: 120, detectSec: 135 },
      RedisDown: ok,
      ClicksSpooled: ok,
      PostgresDown: ok,
    },
    spooledInFault: 40,
  }
  const with_ = (alert: string, s: object): AlertsMeasured => ({ ...m, alerts: { ...m.alerts, [alert]: { ...m.alerts[alert]!, ...s } } })
  canFail(t, alerts, 'RedisDown neither pending in Prometheus nor in Alertmanager before', m, with_('RedisDown', { before: true }))
  canFail(t, alerts, 'RedisDown fires in Alertmanager', m, with_('RedisDown', { detectSec: 30 }))
  canFail(t, alerts, 'RedisDown fires in Alertmanager', m, with_('RedisDown', { detectSec: 200 }))
  canFail(t, alerts, 'RedisDown fires in Alertmanager', m, { ...m, alerts: { ...m.alerts, RedisDown: { forSec: 60, before: false } } })
  canFail(t, alerts, 'RedisDown leaves Alertmanager', m, {
    ...m,
    alerts: { ...m.alerts, RedisDown: { forSec: 60, before: false, detectSec: 75 } },
  })
  canFail(t, alerts, 'ClicksSpooled fires in Alertmanager', m, with_('ClicksSpooled', { detectSec: 20 }))
  canFail(t, alerts, 'ClicksSpooled leaves Alertmanager', m, {
    ...m,
    alerts: { ...m.alerts, ClicksSpooled: { forSec: 60, before: false, detectSec: 75 } },
  })
  canFail(t, alerts, 'InstanceDown fires in Alertmanager', m, { ...with_('InstanceDown', { before: true, detectSec: -30 }) })
})
