// postgres-down: the Postgres server is stopped (fast shutdown) and started again; cached redirects go on,
// Postgres-backed requests fail fast with 503, and everything is back soon after Postgres returns.
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { warm } from './client.ts'
import type { Criterion } from './criteria.ts'
import { createsLink, steadyFault, timing as t } from './fault.ts'
import { APP, defineDrill, type DrillRun } from './runner.ts'

const FAST_503_MS = APP.PG_CONNECT_TIMEOUT_MS + 500

export interface Measured {
  /** The API requests that failed in the fault window (and 2 s after). */
  apiFailures: { status: number; durationMs: number }[]
  readinessDuringOutage: Record<string, number>
  /** opsdrill_dependency_up{dependency="postgres"} per API replica during the outage. */
  postgresUpDuringOutage: Record<string, number>
  recoverSec?: number
  /** Per replica, in each of three reads after the load: connections checked out (total - idle) and clients waiting. */
  pool: { checkedOut: Record<string, number>; waiting: Record<string, number> }[]
}

export const criteria: Criterion<Measured>[] = [
  {
    text: `Postgres-backed requests get 503 within PG_CONNECT_TIMEOUT_MS + 0.5 s (${FAST_503_MS} ms)`,
    judge: (m) => {
      const not503 = m.apiFailures.filter((f) => f.status !== 503)
      const slow = m.apiFailures.filter((f) => f.durationMs > FAST_503_MS)
      return {
        pass: m.apiFailures.length > 0 && not503.length === 0 && slow.length === 0,
        detail: `${m.apiFailures.length} API failures: ${not503.length} not 503, ${slow.length} slower than the bound (max ${Math.max(0, ...m.apiFailures.map((f) => f.durationMs)).toFixed(0)} ms)`,
      }
    },
  },
  {
    // A Postgres outage hits every replica alike: taking them all out of the load balancer would also stop the
    // cached redirects, so readiness stays up and the dependency gauge says what is down.
    text: '/readyz stays 200 on every API replica (they stay in the load balancer) while opsdrill_dependency_up{postgres} is 0',
    judge: (m) => {
      const codes = Object.values(m.readinessDuringOutage)
      const up = Object.values(m.postgresUpDuringOutage)
      return {
        pass: codes.length > 0 && codes.every((c) => c === 200) && up.length === codes.length && up.every((v) => v === 0),
        detail: `readyz ${JSON.stringify(m.readinessDuringOutage)}, dependency_up ${JSON.stringify(m.postgresUpDuringOutage)}`,
      }
    },
  },
  {
    text: 'full recovery within 15 s of Postgres returning: every replica reaches Postgres and a link is created',
    judge: (m) => ({
      pass: m.recoverSec !== undefined,
      detail:
        m.recoverSec === undefined
          ? 'Postgres not reachable from every replica 15 s after it returned'
          : `reaching Postgres and creating links ${m.recoverSec.toFixed(1)} s after Postgres was up`,
    }),
  },
  {
    // A client the outage left checked out stays out once the load is gone; one seen out in a single read may be a
    // readiness probe's query.
    text: 'no pool leak: after the load, no replica keeps a connection checked out or a client waiting (three reads, 0.5 s apart)',
    judge: (m) => {
      const leaked = Object.keys(m.pool[0]?.checkedOut ?? {}).filter((r) =>
        m.pool.every((p) => (p.checkedOut[r] ?? 0) > 0 || (p.waiting[r] ?? 0) > 0),
      )
      return {
        pass: m.pool.length > 0 && leaked.length === 0,
        detail: `${leaked.length ? `leaked on ${leaked.join(', ')}: ` : ''}${JSON.stringify(m.pool)}`,
      }
    },
  },
]

export const postgresDown = defineDrill<Measured>({
  name: 'postgres-down',
  title: 'The Postgres server is stopped (fast shutdown) and started again; cached redirects go on.',
  criteria,
  budget: {
    redirect: 0.01,
    api: 1,
    settleSec: 5,
    why: 'cached redirects are served from Redis; every Postgres-backed API request fails by design, bounded in time instead (503 within the connect timeout)',
  },
  alerts: ['PostgresDown (for 1m)'],
  dashboards: ['opsdrill-datastores', 'opsdrill-overview', 'opsdrill-slo'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 30, 20), short: t(100, 4, 10, 4) },
  async run(d) {
    await d.makeLinks(50)
    const cached = await warmCache(d)
    d.notes.push(`${cached} of ${d.data.links.length} links in the Redis cache before the fault`)
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
      () => d.platform.startStore('postgres'),
      {
        recover: async () => {
          recoverSec = await d.until(async () => {
            const up = await d.perReplica('api', 'opsdrill_dependency_up', { dependency: 'postgres' })
            return Object.values(up).every((v) => v === 1) && (await createsLink(d))
          }, 15)
        },
      },
    )
    const apiFailures = d.loadResult!.failures.filter((f) => f.slo === 'api' && f.at >= w.from && f.at <= w.to + 2000)
    const pool: Measured['pool'] = []
    for (let i = 0; i < 3; i++) {
      await sleep(500)
      const total = await d.perReplica('api', 'opsdrill_pg_pool_connections', { state: 'total' })
      const idle = await d.perReplica('api', 'opsdrill_pg_pool_connections', { state: 'idle' })
      const waiting = await d.perReplica('api', 'opsdrill_pg_pool_connections', { state: 'waiting' })
      pool.push({ checkedOut: Object.fromEntries(Object.entries(total).map(([r, n]) => [r, n - (idle[r] ?? 0)])), waiting })
    }
    const m: Measured = {
      apiFailures,
      readinessDuringOutage: ready,
      postgresUpDuringOutage: pgUp,
      ...(recoverSec === undefined ? {} : { recoverSec }),
      pool,
    }
    Object.assign(d.measured, {
      ...m,
      apiFailures: apiFailures.length,
      maxApiFailureMs: Math.max(0, ...apiFailures.map((f) => f.durationMs)),
    })
    return m
  },
})

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
