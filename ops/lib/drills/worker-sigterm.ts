// worker-sigterm: a worker gets SIGTERM while it has a click backlog in hand: it finishes its active jobs and exits 0.
import type { Criterion } from './criteria.ts'
import { cleanExit, exitWithin, timing as t } from './fault.ts'
import { APP, defineDrill } from './runner.ts'

export interface Measured {
  jobs: number
  active: number
  stored: number
  rollup: number
  /** opsdrill_jobs_stalled_total of the restarted worker. */
  stalled: number
  exitMs?: number
  drainSec?: number
  log?: string
}

export const criteria: Criterion<Measured>[] = [
  {
    text: 'each job stored once: stored = enqueued',
    judge: (m) => ({
      pass: m.stored === m.jobs,
      detail: `${m.jobs} enqueued, ${m.stored} stored (lost ${m.jobs - m.stored}); drained in ${m.drainSec?.toFixed(1) ?? 'never'} s`,
    }),
  },
  {
    text: 'no duplicate counts: rollup sum = stored',
    judge: (m) => ({ pass: m.rollup === m.stored, detail: `rollup sum ${m.rollup}, stored ${m.stored}` }),
  },
  {
    text: 'no stalled jobs: opsdrill_jobs_stalled_total 0 on the restarted worker',
    judge: (m) => ({ pass: m.stalled === 0, detail: `opsdrill_jobs_stalled_total ${m.stalled}` }),
  },
  {
    text: `the worker is gone within SHUTDOWN_GRACE_MS (${APP.WORKER_SHUTDOWN_GRACE_MS} ms)`,
    judge: (m) => ({
      pass: m.exitMs !== undefined && m.exitMs <= APP.WORKER_SHUTDOWN_GRACE_MS,
      detail: m.exitMs === undefined ? 'still running' : `gone ${m.exitMs.toFixed(0)} ms after SIGTERM with ${m.active} jobs active`,
    }),
  },
  {
    text: 'exit code 0, read from its log ("shutting down: finishing active jobs", no timeout or error)',
    targets: ['native'],
    judge: (m) => cleanExit(m.log ?? '', /shutting down: finishing active jobs/),
  },
]

export const workerSigterm = defineDrill<Measured>({
  name: 'worker-sigterm',
  title: 'A worker gets SIGTERM while it has a click backlog in hand: it finishes its active jobs and exits 0.',
  criteria,
  budget: { redirect: 0.001, api: 0.001, settleSec: 2, why: 'the API does not wait on the worker: the SLO holds through it' },
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
    await d.platform.rejoin(victim)
    d.faultEnd()
    d.phase('recovery')
    const drainSec = await d.drained(d.short ? 60 : 180)
    await d.watch(d.timing.recoverSec)
    await d.stopLoad()
    const s = await d.stored(backlogLinks)
    const stalled = await d.metric('worker', 'opsdrill_jobs_stalled_total')
    const m: Measured = {
      jobs,
      active,
      stored: s.stored,
      rollup: s.rollup,
      stalled,
      ...(exitMs === undefined ? {} : { exitMs }),
      ...(drainSec === undefined ? {} : { drainSec }),
      ...(d.native ? { log: d.logSince(victim, logFrom) } : {}),
    }
    Object.assign(d.measured, { ...m, log: undefined })
    return m
  },
})
