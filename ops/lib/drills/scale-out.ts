// scale-out: throughput with 1 -> 2 API replicas under a saturating ramp, and backlog drain with 1 -> 2 workers.
import { clicksQueue, DRAIN_WORKER_ENV, timeDrain } from '../backlog.ts'
import { cpuBusy, cpuTicks } from '../cpu.ts'
import type { Criterion } from './criteria.ts'
import { timing as t } from './fault.ts'
import { defineDrill, round } from './runner.ts'

export interface Measured {
  /** Successful requests/s after the ramp, per run (interleaved 1, 2, 1, 2 replicas), and the box's CPU use. */
  runs: { api: number; rps: number; busy: number }[]
  drain: { jobs: number; perSec1: number; perSec2: number }
}

const mean = (m: Measured, api: number) => m.runs.filter((r) => r.api === api).reduce((a, r) => a + r.rps, 0) / 2

export const criteria: Criterion<Measured>[] = [
  {
    // A second replica only adds throughput with CPU to spare: on a box one replica already keeps busy this fails,
    // and the detail says how busy the box was.
    text: 'API throughput factor 1 -> 2 replicas (mean of interleaved runs) > 1.0',
    judge: (m) => {
      const [r1, r2] = [mean(m, 1), mean(m, 2)]
      const f = r1 > 0 ? r2 / r1 : 0
      const busy1 = Math.min(...m.runs.filter((r) => r.api === 1).map((r) => r.busy))
      return {
        pass: f > 1.0,
        detail: `${r1.toFixed(0)} -> ${r2.toFixed(0)} req/s (x${f.toFixed(2)}); the box ${(busy1 * 100).toFixed(0)}% busy with one replica`,
      }
    },
  },
  {
    text: `drain rate factor 1 -> 2 workers (each CLICK_CONCURRENCY=${DRAIN_WORKER_ENV.CLICK_CONCURRENCY}) > 1.1`,
    judge: ({ drain: d }) => {
      const f = d.perSec1 > 0 ? d.perSec2 / d.perSec1 : 0
      return { pass: f > 1.1, detail: `${d.perSec1.toFixed(0)} -> ${d.perSec2.toFixed(0)} clicks/s over ${d.jobs} jobs (x${f.toFixed(2)})` }
    },
  },
]

export const scaleOut = defineDrill<Measured>({
  name: 'scale-out',
  title: 'Throughput with 1 -> 2 API replicas under a saturating ramp, and backlog drain with 1 -> 2 workers.',
  criteria,
  alerts: [],
  dashboards: ['opsdrill-overview', 'opsdrill-queues'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(0, 0, 20, 0), short: t(0, 0, 6, 0) },
  targets: ['native'],
  async run(d) {
    d.notes.push(
      'k6, nginx, Postgres, Redis, Prometheus and the replicas share the box: a second replica can only use what the first leaves idle.',
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
      const cpu0 = cpuTicks()
      await d.watch(hold - 3)
      const busy = cpuBusy(cpu0, cpuTicks())
      await d.watch(2)
      await d.stopLoad()
      d.faultEnd()
      const secs = d.loadResult!.seconds.filter((s) => s.t * 1000 >= from + 3000 && s.t * 1000 < Date.now() - 1000)
      return { rps: secs.reduce((a, s) => a + s.reqs - s.failed, 0) / Math.max(1, secs.length), busy }
    }
    // Interleaved (1, 2, 1, 2) so that whatever else the box runs weighs on both sides alike.
    const runs: Measured['runs'] = []
    for (const api of [1, 2, 1, 2]) runs.push({ api, ...(await throughput(api)) })
    const jobs = d.short ? 10_000 : 40_000
    const linkIds = (await d.makeLinks(20)).map((l) => l.id)
    const drain = async (workers: number) => {
      const q = clicksQueue(d.redis.url, d.redis.prefix)
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
    const m: Measured = { runs, drain: { jobs, perSec1: await drain(1), perSec2: await drain(2) } }
    d.measured.throughputRuns = runs.map((r) => ({ api: r.api, rps: round(r.rps), cpuBusy: round(r.busy, 2) }))
    d.measured.drain = { jobs, worker1PerSec: round(m.drain.perSec1), worker2PerSec: round(m.drain.perSec2) }
    return m
  },
})

/**
 * The API factor needs CPU a second replica can use. With the box at least this busy while one replica serves (k6,
 * nginx, the stores and the replica share it), a factor <= 1 says nothing about the API.
 */
export const SATURATED_BUSY = 0.9

/**
 * Why a scale-out report cannot judge the API factor on this box, or undefined when it can: the factor is its only
 * failing criterion and the box was at least SATURATED_BUSY with one replica. The drills suite reports the test
 * SKIPPED with this reason; the drill's verdict stays FAILED.
 */
export function boxCannotShowFactor(report: {
  checks: { name: string; pass: boolean; detail: string }[]
  measured: Record<string, unknown>
}): string | undefined {
  const failed = report.checks.filter((c) => !c.pass)
  if (failed.length !== 1 || !failed[0]!.name.startsWith('API throughput factor')) return undefined
  const runs = (report.measured.throughputRuns ?? []) as { api: number; cpuBusy: number }[]
  const one = runs.filter((r) => r.api === 1).map((r) => r.cpuBusy)
  const busy1 = Math.min(...one)
  if (one.length === 0 || !(busy1 >= SATURATED_BUSY)) return undefined
  return `the box is ${(busy1 * 100).toFixed(0)}% busy with one API replica (>= ${SATURATED_BUSY * 100}%), so a second has no CPU to add: ${failed[0]!.detail}`
}
