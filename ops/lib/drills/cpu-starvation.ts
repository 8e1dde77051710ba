// cpu-starvation: stress-ng takes both cores next to the stack and the load. The API may shed load, always with
// 503 + Retry-After and within the budget; no job stalls.
import { spawn } from 'node:child_process'
import type { Criterion, Traffic } from './criteria.ts'
import { steadyFault, timing as t } from './fault.ts'
import { defineDrill } from './runner.ts'

const P99_BOUND_MS = 2500

export interface Measured {
  /** opsdrill_jobs_stalled_total increase over the drill (worker /metrics, read after stress-ng ended). */
  stalled: number
  shed: number
  shedWithRetryAfter: number
  shedWithoutRetryAfter: number
  fault: Traffic
}

export const criteria: Criterion<Measured>[] = [
  {
    text: 'no stalled jobs (opsdrill_jobs_stalled_total unchanged)',
    judge: (m) => ({ pass: m.stalled === 0, detail: `opsdrill_jobs_stalled_total +${m.stalled}` }),
  },
  {
    text: 'every 503 k6 received carries Retry-After',
    judge: (m) => ({
      pass: m.shedWithoutRetryAfter === 0,
      detail: `${m.shed} shed by the API; k6 saw ${m.shedWithRetryAfter} 503s with Retry-After, ${m.shedWithoutRetryAfter} without`,
    }),
  },
  {
    text: `p99 in the fault window <= ${P99_BOUND_MS} ms`,
    judge: ({ fault: f }) => ({
      pass: f.requests > 0 && f.p99 <= P99_BOUND_MS,
      detail: `p99 ${f.p99.toFixed(0)} ms over ${f.requests} requests (worst second ${f.worstSecondP99.toFixed(0)} ms, max ${f.max.toFixed(0)} ms)`,
    }),
  },
]

export const cpuStarvation = defineDrill<Measured>({
  name: 'cpu-starvation',
  title: 'stress-ng takes both cores (--cpu 2): the API sheds with 503 + Retry-After or stays bounded; no job stalls.',
  criteria,
  budget: {
    redirect: 0.01,
    api: 0.01,
    settleSec: 2,
    why: 'the API may shed (503 + Retry-After) while its event loop lags past MAX_EVENT_LOOP_DELAY_MS, up to 1% of requests',
  },
  alerts: ['ApiSheddingLoad (for 5m)', 'EventLoopSaturated (for 5m)'],
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
    const r = d.loadResult!
    const m: Measured = {
      stalled: (await d.metric('worker', 'opsdrill_jobs_stalled_total')) - stalled0,
      shed: (await d.metric('api', 'opsdrill_http_requests_shed_total')) - shed0,
      shedWithRetryAfter: r.shedWithRetryAfter,
      shedWithoutRetryAfter: r.shedWithoutRetryAfter,
      fault: d.window(w.from, w.to),
    }
    Object.assign(d.measured, m)
    return m
  },
})
