// redis-down: the Redis server is stopped (a real stop of redis-server, not the proxy) and started again. Redirects
// fail open to Postgres, the API spools the clicks it cannot enqueue to disk and replays them, BullMQ reconnects.
import { clickLedger, ledgerLine, type Ledger } from './api-ledger.ts'
import type { Criterion } from './criteria.ts'
import { steadyFault, timing as t } from './fault.ts'
import { defineDrill } from './runner.ts'

export interface Measured {
  pidsBefore: string
  pidsAfter: string
  allAlive: boolean
  /** opsdrill_clicks_dropped_total and opsdrill_clicks_spooled_total, increase over the drill. */
  dropped: number
  spooled: number
  /** Served 302s matched with stored clicks, once the spools are replayed and the queue is drained. */
  ledger: Ledger
  /** Seconds from Redis being up until the worker ingested a click again. */
  workersBackAfterSec?: number
}

export const criteria: Criterion<Measured>[] = [
  {
    text: 'no process crashes (API and worker pids unchanged and alive)',
    judge: (m) => ({ pass: m.pidsBefore === m.pidsAfter && m.allAlive, detail: `before ${m.pidsBefore}; after ${m.pidsAfter}` }),
  },
  {
    text: 'no click lost: every 302 served has its click stored (spooled during the outage, replayed after)',
    judge: (m) => ({
      pass: m.ledger.served > 0 && m.ledger.lost === 0 && m.ledger.settledSec !== undefined,
      detail: `${ledgerLine(m.ledger)}${m.ledger.settledSec === undefined ? '; never settled' : `; settled in ${m.ledger.settledSec.toFixed(1)} s`}; spooled ${m.spooled}, dropped ${m.dropped}`,
    }),
  },
  {
    text: 'workers process again within 30 s of Redis returning',
    judge: (m) => ({
      pass: m.workersBackAfterSec !== undefined,
      detail:
        m.workersBackAfterSec === undefined
          ? 'no click ingested 30 s after Redis returned'
          : `first click ingested ${m.workersBackAfterSec.toFixed(1)} s after Redis was up`,
    }),
  },
]

export const redisDown = defineDrill<Measured>({
  name: 'redis-down',
  title: 'The Redis server is stopped (a real stop of redis-server, not the proxy) and started again.',
  criteria,
  budget: {
    redirect: 0.001,
    api: 0.01,
    settleSec: 5,
    why: 'redirects fall back to Postgres and the rate limiter fails open, so both keep the SLO; the API waits on Redis timeouts',
  },
  alerts: ['RedisDown (for 1m)', 'ClicksSpooled (for 1m)'],
  dashboards: ['opsdrill-cache', 'opsdrill-queues', 'opsdrill-datastores'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 30, 30), short: t(100, 4, 10, 4) },
  async run(d) {
    const replicas = () => [...d.platform.replicas('api'), ...d.platform.replicas('worker')]
    const pids = () =>
      replicas()
        .map((r) => `${r.name}:${r.pid}`)
        .join(' ')
    const pidsBefore = pids()
    const drop0 = await d.metric('api', 'opsdrill_clicks_dropped_total')
    const spool0 = await d.metric('api', 'opsdrill_clicks_spooled_total')
    let workersBackAfterSec: number | undefined
    await steadyFault(
      d,
      'Redis stopped',
      () => d.platform.stopStore('redis'),
      () => d.platform.startStore('redis'),
      {
        during: async () => `spooled ${(await d.metric('api', 'opsdrill_clicks_spooled_total')) - spool0}`,
        recover: async () => {
          const base = await d.metric('worker', 'opsdrill_clicks_ingested_total')
          workersBackAfterSec = await d.until(async () => (await d.metric('worker', 'opsdrill_clicks_ingested_total')) > base, 30)
        },
      },
    )
    const m: Measured = {
      pidsBefore,
      pidsAfter: pids(),
      allAlive: replicas().every((r) => !d.platform.gone(r.name)),
      dropped: (await d.metric('api', 'opsdrill_clicks_dropped_total')) - drop0,
      spooled: (await d.metric('api', 'opsdrill_clicks_spooled_total')) - spool0,
      ledger: await clickLedger(d, d.short ? 60 : 180),
      ...(workersBackAfterSec === undefined ? {} : { workersBackAfterSec }),
    }
    Object.assign(d.measured, { ...m, ledger: { ...m.ledger, lostAt: undefined } })
    return m
  },
})
