// rolling-restart: every API replica is restarted in turn, the next only once nginx sends the restarted one
// requests again.
import type { Criterion } from './criteria.ts'
import { steadyFault, timing as t } from './fault.ts'
import { defineDrill } from './runner.ts'

export interface Measured {
  failures: { status: number; slo: string }[]
}

export const criteria: Criterion<Measured>[] = [
  {
    text: 'no HTTP error answered (every failure, if any, is a connection reset)',
    judge: (m) => {
      const answered = m.failures.filter((f) => f.status !== 0)
      const counts = new Map<string, number>()
      for (const f of answered) counts.set(`${f.status} on ${f.slo}`, (counts.get(`${f.status} on ${f.slo}`) ?? 0) + 1)
      const which = [...counts].map(([k, n]) => `${k} x${n}`).join(', ')
      return {
        pass: answered.length === 0,
        detail: `${answered.length} failures with an HTTP status${which ? ` (${which})` : ''}; ${m.failures.length - answered.length} connection resets (no response)`,
      }
    },
  },
]

export const rollingRestart = defineDrill<Measured>({
  name: 'rolling-restart',
  title: 'Every API replica is restarted in turn, the next only once nginx sends the restarted one requests again.',
  criteria,
  budget: {
    redirect: 0,
    api: 0,
    settleSec: 2,
    why: 'a planned restart: the stopping replica finishes its requests and nginx retries refused connections, so nothing may fail',
  },
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
    d.measured.failures = d.loadResult!.failures.slice(0, 20)
    return { failures: d.loadResult!.failures }
  },
})
