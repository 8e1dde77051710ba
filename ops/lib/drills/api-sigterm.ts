// api-sigterm: one of the API replicas gets SIGTERM under load (a deploy or a node drain); nginx keeps serving
// through the others, and the replica finishes what it holds and exits 0 within its grace period.
import type { Criterion } from './criteria.ts'
import { cleanExit, exitWithin, steadyFault, timing as t } from './fault.ts'
import { APP, defineDrill } from './runner.ts'

export interface Measured {
  /** Requests answered 502 or not at all (k6 status 0): cut by the shutdown. */
  cut: { at: number; status: number }[]
  exitMs?: number
  /** The replica's log since the SIGTERM; undefined where it cannot be read (not native). */
  log?: string
}

export const criteria: Criterion<Measured>[] = [
  {
    text: 'in-flight requests complete: no request cut (no 502, no request without a response)',
    judge: (m) => ({ pass: m.cut.length === 0, detail: `${m.cut.length} requests cut (502 or no response)` }),
  },
  {
    text: `the process is gone within SHUTDOWN_GRACE_MS (${APP.API_SHUTDOWN_GRACE_MS} ms)`,
    judge: (m) => ({
      pass: m.exitMs !== undefined && m.exitMs <= APP.API_SHUTDOWN_GRACE_MS,
      detail: m.exitMs === undefined ? 'still running' : `gone ${m.exitMs.toFixed(0)} ms after SIGTERM`,
    }),
  },
  {
    // The native stack starts replicas detached, so their exit status is not observable; close-with-grace exits 1
    // only after logging a timeout or an error.
    text: 'exit code 0, read from its log (close-with-grace logs "shutdown complete", no timeout or error)',
    targets: ['native'],
    judge: (m) => cleanExit(m.log ?? '', /shutdown complete/),
  },
]

export const apiSigterm = defineDrill<Measured>({
  name: 'api-sigterm',
  title: 'One of the API replicas gets SIGTERM under load (a deploy or a node drain); nginx keeps serving through the others.',
  criteria,
  budget: {
    redirect: 0.001,
    api: 0.001,
    settleSec: 2,
    why: 'a graceful stop: nginx retries refused connections on the other replica, so the SLO holds through it',
  },
  alerts: [],
  dashboards: ['opsdrill-overview', 'opsdrill-runtime'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 20, 20), short: t(100, 4, 8, 5) },
  async run(d) {
    const victim = 'api-1'
    const logFrom = d.logSize(victim)
    let exitMs: number | undefined
    await steadyFault(
      d,
      `SIGTERM ${victim}`,
      async () => {
        await d.platform.kill(victim, 'SIGTERM')
        exitMs = await exitWithin(d, victim, APP.API_SHUTDOWN_GRACE_MS)
      },
      () => d.platform.rejoin(victim),
    )
    const cut = d.loadResult!.failures.filter((f) => f.status === 0 || f.status === 502)
    d.measured.exitMs = exitMs
    d.measured.failures = d.loadResult!.failures.slice(0, 20)
    return { cut, ...(exitMs === undefined ? {} : { exitMs }), ...(d.native ? { log: d.logSince(victim, logFrom) } : {}) }
  },
})
