// worker-ledger: a Jepsen-style click ledger. Clicks flow while a worker is SIGKILLed and restarted again and again;
// every acknowledged click must be stored exactly once, and at least one kill must land on a job in flight.
import { setTimeout as sleep } from 'node:timers/promises'
import { clicksQueue } from '../backlog.ts'
import type { Criterion } from './criteria.ts'
import { exitWithin, timing as t } from './fault.ts'
import { defineDrill } from './runner.ts'

export interface Measured {
  clicks: number
  served: number
  acknowledged: number
  dropped: number
  stored: number
  rollup: number
  linksWithMismatch: number
  links: number
  kills: number
  minKills: number
  killsWithJobActive: number
  stalledJobsRecovered: number
  duplicateDeliveriesAbsorbed: number
  drainSec?: number
  queueAfter: Record<string, number>
  failedForGood: number
}

export const criteria: Criterion<Measured>[] = [
  {
    text: 'the backlog drained after the load',
    judge: (m) => ({
      pass: m.drainSec !== undefined,
      detail:
        m.drainSec === undefined ? `queue still has ${JSON.stringify(m.queueAfter)}` : `${m.drainSec.toFixed(1)} s after the load stopped`,
    }),
  },
  {
    text: 'the worker was SIGKILLed at its interval (at least 2 kills short, 3 full)',
    judge: (m) => ({ pass: m.kills >= m.minKills, detail: `${m.kills} SIGKILLs` }),
  },
  {
    // A kill of an idle worker proves nothing about jobs in flight: each kill waits up to 1 s for an active job.
    text: 'at least one kill landed while a click job was active',
    judge: (m) => ({
      pass: m.killsWithJobActive >= 1,
      detail: `${m.killsWithJobActive} of ${m.kills} kills with a click job active; ${m.stalledJobsRecovered} stalled jobs re-run, ${m.duplicateDeliveriesAbsorbed} duplicate deliveries absorbed`,
    }),
  },
  {
    // A job that stalls more often than the clicks worker's maxStalledCount fails for good: its clicks go to the
    // dead-letter queue (replayable by an admin) instead of Postgres.
    text: 'lost = acknowledged - stored = 0',
    judge: (m) => ({
      pass: m.acknowledged === m.stored,
      detail: `acknowledged ${m.acknowledged}, stored ${m.stored}; ${m.failedForGood} click jobs failed for good during the drill (dead-lettered)`,
    }),
  },
  {
    text: 'duplicated = rollup sum - stored = 0',
    judge: (m) => ({ pass: m.rollup === m.stored, detail: `rollup sum ${m.rollup}, stored ${m.stored}` }),
  },
  {
    text: 'every served redirect is acknowledged or counted as dropped: served = acknowledged + dropped',
    judge: (m) => ({
      pass: m.served === m.acknowledged + m.dropped,
      detail: `served ${m.served} 302s, acknowledged ${m.acknowledged}, dropped ${m.dropped}`,
    }),
  },
  {
    text: 'per link: served = stored = rollup',
    judge: (m) => ({
      pass: m.linksWithMismatch === 0,
      detail: `${m.linksWithMismatch} of ${m.links} links disagree (dropped clicks make served > stored)`,
    }),
  },
  {
    text: 'the ledger holds at least the planned clicks (2,000 short, 10,000 full)',
    judge: (m) => ({ pass: m.served >= m.clicks, detail: `${m.served} redirects served, ${m.clicks} planned` }),
  },
]

export const workerLedger = defineDrill<Measured>({
  name: 'worker-ledger',
  title:
    'Jepsen-style click ledger: clicks flow while a worker is SIGKILLed and restarted again and again; every acknowledged click must be stored exactly once.',
  criteria,
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
    const queue = clicksQueue(d.redis.url, d.redis.prefix)
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
            active = (await queue.getActiveCount()) > 0
            if (active) break
            await sleep(5)
          }
          if (active) killsWithJobActive++
          await d.platform.kill('worker-1', 'SIGKILL')
          kills++
          d.log(
            `kill #${kills}: SIGKILL worker-1${active ? ' with a click job active' : ' (no click job active)'}, waiting for it to rejoin`,
          )
          await exitWithin(d, 'worker-1', 5000)
          // Native: the supervisor restarts it with the env it ran with (workerEnv); compose: restarted here.
          await d.platform.rejoin('worker-1')
          await d.progress()
        }
        await sleep(100)
      }
    } finally {
      await queue.close()
    }
    await d.stopLoad(true)
    d.faultEnd()
    d.phase('drain')
    await sleep(1000)
    const drainSec = await d.drained(d.short ? 90 : 240)
    await collect()
    const acknowledged = (await d.metric('api', 'opsdrill_clicks_enqueued_total')) - enq0
    const dropped = (await d.metric('api', 'opsdrill_clicks_dropped_total')) - drop0
    const served = Object.values(d.loadResult!.servedPerLink).reduce((a, b) => a + b, 0)
    const s = await d.stored(d.data.links)
    const linksWithMismatch = d.data.links.filter((l) => {
      const row = s.perLink.get(l.id)
      return !row || row.rollup !== row.stored || row.stored !== (d.loadResult!.servedPerLink[l.code] ?? 0)
    }).length
    const queueAfter = await d.queueCounts()
    const m: Measured = {
      clicks,
      served,
      acknowledged,
      dropped,
      stored: s.stored,
      rollup: s.rollup,
      linksWithMismatch,
      links: d.data.links.length,
      kills,
      minKills: d.short ? 2 : 3,
      killsWithJobActive,
      stalledJobsRecovered: evidence.stalled,
      duplicateDeliveriesAbsorbed: evidence.duplicates,
      ...(drainSec === undefined ? {} : { drainSec }),
      queueAfter,
      failedForGood: (queueAfter.failed ?? 0) - failed0,
    }
    Object.assign(d.measured, m)
    d.log(
      `ledger: served ${served}, acknowledged ${acknowledged}, dropped ${dropped}, stored ${s.stored}, rollup ${s.rollup}, lost ${acknowledged - s.stored}, duplicated ${s.rollup - s.stored}`,
    )
    return m
  },
})
