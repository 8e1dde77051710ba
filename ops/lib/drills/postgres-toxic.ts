// What postgres-latency and postgres-blackhole share: a toxic on toxiproxy's postgres proxy under the steady load,
// a bound on how long any request may take while it is there, and recovery once it is gone.
import type { Toxic } from './toxiproxy.ts'
import type { Budget, Criterion } from './criteria.ts'
import { createsLink, steadyFault, timing as t } from './fault.ts'
import { defineDrill, round, type Drill } from './runner.ts'

export interface Measured {
  /** k6's longest request, per class, over the run. */
  maxMs: { redirect: number; api: number }
  recoverSec?: number
}

export function criteria(boundMs: number, boundText: string): Criterion<Measured>[] {
  return [
    {
      text: `no request outlives its timeouts: k6 max <= ${boundText} (${boundMs} ms)`,
      judge: (m) => {
        const max = Math.max(m.maxMs.redirect, m.maxMs.api)
        return {
          pass: max <= boundMs,
          detail: `k6 max ${max.toFixed(0)} ms (redirect ${m.maxMs.redirect.toFixed(0)}, API ${m.maxMs.api.toFixed(0)})`,
        }
      },
    },
    {
      text: 'API requests succeed again within 15 s of the toxic being removed',
      judge: (m) => ({
        pass: m.recoverSec !== undefined,
        detail:
          m.recoverSec === undefined
            ? 'link creation still failing 15 s after'
            : `link creation succeeded ${m.recoverSec.toFixed(1)} s after the toxic was removed`,
      }),
    },
  ]
}

export function pgToxicDrill(o: {
  name: string
  title: string
  label: string
  toxics: Toxic[]
  boundMs: number
  boundText: string
  budget: Budget
  alerts: string[]
}): Drill {
  return defineDrill<Measured>({
    name: o.name,
    title: o.title,
    criteria: criteria(o.boundMs, o.boundText),
    budget: o.budget,
    alerts: o.alerts,
    dashboards: ['opsdrill-datastores', 'opsdrill-slo'],
    shape: { api: 2, worker: 1 },
    timing: { full: t(200, 20, 30, 20), short: t(100, 6, 8, 4) },
    async run(d) {
      let recoverSec: number | undefined
      await steadyFault(
        d,
        o.label,
        async () => {
          for (const x of o.toxics) await d.platform.toxiproxy.addToxic('postgres', x)
        },
        () => d.platform.toxiproxy.reset(),
        {
          recover: async () => {
            recoverSec = await d.until(() => createsLink(d), 15)
          },
        },
      )
      const maxMs = { redirect: round(d.loadResult!.redirect.max), api: round(d.loadResult!.api.max) }
      Object.assign(d.measured, { maxRequestMs: maxMs, recoverSec })
      return { maxMs, ...(recoverSec === undefined ? {} : { recoverSec }) }
    },
  })
}
