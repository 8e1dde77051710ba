// The click ledger, request by request. Every redirect of a drill's load carries its own Referer (k6/steady.ts,
// MARK), which the API stores with the click; k6 records the same marker with each 302 it receives. served = the
// 302s k6 received; stored = the distinct markers in Postgres; lost = served without a stored click.
// The api-ledger drill SIGKILLs API replicas under that load. What a kill can lose is the click buffer: the clicks a
// replica accepted since its last flush (at most CLICK_FLUSH_INTERVAL_MS plus one enqueue ago, and on this shared
// box the event loop's lag). Every click that left the buffer is in Redis or in the replica's spool on disk.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Criterion } from './criteria.ts'
import { exitWithin, timing as t } from './fault.ts'
import { APP, defineDrill, type DrillRun } from './runner.ts'

export const LEDGER_REFERRER = 'https://ledger.opsdrill.test/'

export interface Ledger {
  served: number
  stored: number
  lost: number
  /** Markers stored more than once: a request nginx retried on another replica after the first had taken it. */
  storedTwice: number
  /** Clicks stored for requests k6 has no 302 for (abandoned when the load stopped, or cut after the API answered). */
  storedNotServed: number
  /** Unix ms at which k6 received each lost click's 302. */
  lostAt: number[]
  settledSec: number | undefined
}

/**
 * Waits until the run's clicks have left the API (buffers and spools empty), the clicks queue is idle, and Postgres
 * holds the same clicks twice in a row; then matches served against stored.
 */
export async function clickLedger(d: DrillRun, timeoutSec: number): Promise<Ledger> {
  let rows = new Map<string, number>()
  const read = async () => {
    const r = await d.sql<{ referrer: string; n: string }>(
      'SELECT referrer, count(*) AS n FROM clicks WHERE referrer LIKE $1 GROUP BY referrer',
      [`${LEDGER_REFERRER}${d.ledgerId}.%`],
    )
    const before = rows
    rows = new Map(r.map((x) => [x.referrer.slice(LEDGER_REFERRER.length), Number(x.n)]))
    return rows.size === before.size
  }
  const settledSec = await d.until(async () => {
    const inApi = (await d.metric('api', 'opsdrill_click_buffer_size')) + (await d.metric('api', 'opsdrill_click_spool_bytes'))
    const c = await d.queueCounts()
    const queued = (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0)
    const same = await read()
    if (inApi + queued > 0 || !same) return false
    await sleep(1000)
    return await read()
  }, timeoutSec)
  const served = d.loadResult?.servedMarks ?? []
  const servedSet = new Set(served.map(([m]) => m))
  const lostAt = served.filter(([m]) => !rows.has(m)).map(([, at]) => at)
  return {
    served: servedSet.size,
    stored: rows.size,
    lost: lostAt.length,
    storedTwice: [...rows.values()].filter((n) => n > 1).length,
    storedNotServed: [...rows.keys()].filter((m) => !servedSet.has(m)).length,
    lostAt,
    settledSec,
  }
}

export function ledgerLine(l: Ledger): string {
  return `served ${l.served}, stored ${l.stored}, lost ${l.lost}, stored twice ${l.storedTwice}, stored without a 302 seen ${l.storedNotServed}`
}

// Beyond the flush interval: the enqueue round trip and the event loop's lag on a box k6 and the stack share.
export const SLACK_MS = 100
// A click the kill lost was served shortly before it; one served long before (or after) was lost some other way.
export const NEAR_KILL_MS = 1000
// A lost click's time is when k6 received its 302, and a kill's is taken just before the kill command runs: a 302 the
// replica wrote in its last instant reaches k6 through nginx after that. One received 1 ms after the kill's time was
// counted as "away from every kill" (5873 ms before the next one) and failed a full run's walk-through.
export const AFTER_KILL_MS = SLACK_MS

export interface Measured {
  ledger: Ledger
  /** Unix ms of each SIGKILL. */
  killsAt: number[]
  minKills: number
  /** Offered redirects per second: with the flush interval, what one kill may lose. */
  rate: number
  seconds: number
}

/** lost <= kills x rate x (flush interval + slack), rounded up per kill. */
export function lossBound(m: Pick<Measured, 'killsAt' | 'rate'>): { perKill: number; total: number } {
  const perKill = Math.ceil((m.rate * (APP.CLICK_FLUSH_INTERVAL_MS + SLACK_MS)) / 1000)
  return { perKill, total: m.killsAt.length * perKill }
}

export const criteria: Criterion<Measured>[] = [
  {
    text: `served = stored within the loss bound: lost <= kills x rate x (CLICK_FLUSH_INTERVAL_MS ${APP.CLICK_FLUSH_INTERVAL_MS} ms + ${SLACK_MS} ms), only the click buffer of a killed replica may be lost`,
    judge: (m) => {
      const b = lossBound(m)
      return {
        pass: m.ledger.served > 0 && m.ledger.lost <= b.total,
        detail: `${ledgerLine(m.ledger)}; bound ${m.killsAt.length} kills x ${b.perKill} = ${b.total}`,
      }
    },
  },
  {
    text: `every lost click was served within ${NEAR_KILL_MS} ms before a kill (its 302 received by k6 at most ${AFTER_KILL_MS} ms after it)`,
    judge: (m) => {
      const far = m.ledger.lostAt.filter((at) => !m.killsAt.some((k) => at <= k + AFTER_KILL_MS && at >= k - NEAR_KILL_MS))
      return { pass: far.length === 0, detail: `${far.length} of ${m.ledger.lost} lost clicks were served away from every kill` }
    },
  },
  {
    text: 'the clicks settle: API buffers and spools empty, queue idle, stored clicks stable',
    judge: (m) => ({
      pass: m.ledger.settledSec !== undefined,
      detail:
        m.ledger.settledSec === undefined
          ? 'buffers, spools or the queue never emptied'
          : `settled ${m.ledger.settledSec.toFixed(1)} s after the load ended`,
    }),
  },
  {
    text: 'the API replicas were SIGKILLed in turn (at least 2 kills short, 4 full)',
    judge: (m) => ({
      pass: m.killsAt.length >= m.minKills,
      detail: `${m.killsAt.length} SIGKILLs over ${m.seconds} s at ${m.rate}/s`,
    }),
  },
]

export const apiLedger = defineDrill<Measured>({
  name: 'api-ledger',
  title:
    'Click ledger through API crashes: the API replicas are SIGKILLed in turn under redirect load; each 302 served is matched with its click in Postgres.',
  criteria,
  alerts: ['InstanceDown (if a replica stayed down: it does not)'],
  dashboards: ['opsdrill-overview', 'opsdrill-queues'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(300, 0, 0, 0), short: t(150, 0, 0, 0) },
  async run(d) {
    // Two kills must fit the short form with the supervisor's restart between them (about 12 s, 18 s on a busy box:
    // 16 s fitted one kill in the walkthrough suite here).
    const seconds = d.short ? 30 : 60
    const killEveryMs = d.short ? 5000 : 10_000
    await d.makeLinks(50)
    // A fixed duration that k6 ends by itself, so no request is abandoned: the ledger's served side is exact.
    await d.startLoad({ apiShare: 0, duration: `${seconds}s` })
    d.phase('fault')
    d.faultStart(`SIGKILL api-1 and api-2 in turn every ${killEveryMs / 1000} s`)
    const kills: { replica: string; at: number }[] = []
    let next = Date.now() + killEveryMs / 2
    while (!(await d.loadDone())) {
      if (Date.now() >= next) {
        const victim = `api-${(kills.length % 2) + 1}`
        kills.push({ replica: victim, at: Date.now() })
        // Every killEveryMs from kill to kill, or at once when the victim took longer than that to rejoin (the
        // supervisor's restart: start-up and nginx's fail_timeout, about 12 s on a busy box).
        next = Date.now() + killEveryMs
        await d.platform.kill(victim, 'SIGKILL')
        d.log(`kill #${kills.length}: SIGKILL ${victim}, waiting for it to rejoin`)
        await exitWithin(d, victim, 4000)
        await d.platform.rejoin(victim)
        await d.progress()
      }
      await sleep(100)
    }
    await d.stopLoad(true)
    d.faultEnd()
    d.phase('settle')
    const ledger = await clickLedger(d, d.short ? 90 : 240)
    const m: Measured = { ledger, killsAt: kills.map((k) => k.at), minKills: d.short ? 2 : 4, rate: d.timing.rate, seconds }
    const r = d.loadResult!
    Object.assign(d.measured, {
      ledger: { ...ledger, lostAt: undefined },
      kills: kills.map((k) => ({ replica: k.replica, at: new Date(k.at).toISOString() })),
      bound: { ...lossBound(m), rate: m.rate, flushIntervalMs: APP.CLICK_FLUSH_INTERVAL_MS, slackMs: SLACK_MS },
      lostPerKill: kills.length ? ledger.lost / kills.length : 0,
      lostMsBeforeKill: ledger.lostAt.map((at) => Math.min(...kills.map((k) => (k.at + AFTER_KILL_MS >= at ? k.at - at : Infinity)))),
      redirectsFailed: r.redirect.failed,
      redirectsByStatus: r.redirect.byStatus,
    })
    d.log(`ledger: ${ledgerLine(ledger)}; ${kills.length} kills, bound ${lossBound(m).total}`)
    return m
  },
})
