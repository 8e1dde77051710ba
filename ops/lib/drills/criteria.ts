// A drill's pass criteria: each one object holding the sentence the report prints and the check that decides it, so
// the two cannot say different things. A check reads only what the drill measured (its M), which keeps it a pure
// function a unit test can feed a failing input (test/ops/drills/criteria.test.ts).
// The SLO criteria are shared: outside the fault window every drill with a steady load is held to the project's SLOs
// (prometheus/rules/recording.yml, docs/drills.md "Judged on the SLO"), inside it to the drill's stated budget.
import type { Target } from './platform.ts'

export interface Verdict {
  pass: boolean
  detail: string
}

export interface Criterion<M> {
  text: string
  /** Where the criterion can be judged (e.g. a replica's log is readable on native only); default everywhere. */
  targets?: Target[]
  judge(m: M): Verdict
}

/** The objectives of prometheus/rules/recording.yml (slo:opsdrill_objective:ratio and the SLIs' `le` bounds). */
export const SLO = {
  /** availability: share of requests not answered 5xx. */
  availability: 0.999,
  /** redirect-latency: 99% of GET /:code under 100 ms. */
  redirectLatencyMs: 100,
  redirectLatencyObjective: 0.99,
}

/** Requests and failures of one class of k6 traffic over some span. */
export interface Traffic {
  requests: number
  failed: number
  failedShare: number
  p99: number
  max: number
  worstSecondP99: number
}

/** Failed share allowed inside the fault window, per class of traffic, and why. */
export interface Budget {
  redirect: number
  api: number
  /** Seconds after the fault is removed that still count as the fault window (reconnects, nginx's fail_timeout). */
  settleSec: number
  why: string
}

export interface SloMeasure {
  budget: Budget
  /** SLO_LATENCY_FACTOR of the run: widens the latency bound on a box busy with other work, never the error bound. */
  latencyFactor: number
  outside: { all: Traffic; redirect: Traffic }
  inside: { redirect: Traffic; api: Traffic }
}

const pct = (x: number, digits = 2) => `${(x * 100).toFixed(digits)}%`

export const sloAvailability: Criterion<SloMeasure> = {
  text: `outside the fault window: availability SLO, >= ${SLO.availability * 100}% of requests succeed`,
  judge: ({ outside: { all } }) => ({
    pass: all.requests > 0 && all.failed <= errorBudgetSpent(all.requests, all.failed).allowed,
    detail:
      all.requests === 0
        ? 'no request outside the fault window: nothing to judge'
        : `${all.failed} failed of ${all.requests} (${pct(1 - all.failedShare, 3)} ok)`,
  }),
}

export const sloRedirectLatency: Criterion<SloMeasure> = {
  text: `outside the fault window: redirect latency SLO, p99 <= ${SLO.redirectLatencyMs} ms (x SLO_LATENCY_FACTOR on a busy box)`,
  judge: ({ outside: { redirect }, latencyFactor }) => {
    const bound = SLO.redirectLatencyMs * latencyFactor
    return {
      pass: redirect.requests > 0 && redirect.p99 <= bound,
      detail:
        redirect.requests === 0
          ? 'no redirect outside the fault window: nothing to judge'
          : `p99 ${redirect.p99.toFixed(0)} ms over ${redirect.requests} redirects (bound ${bound} ms, factor ${latencyFactor})`,
    }
  },
}

export const faultBudget = (b: Budget): Criterion<SloMeasure> => ({
  text: `inside the fault window (until ${b.settleSec} s after the fault is removed): <= ${pct(b.redirect, 1)} of redirects and <= ${pct(b.api, 1)} of API requests fail`,
  judge: ({ inside, budget }) => {
    const over = (['redirect', 'api'] as const).filter((c) => inside[c].failedShare > budget[c])
    return {
      pass: inside.redirect.requests + inside.api.requests > 0 && over.length === 0,
      detail:
        `redirects ${inside.redirect.failed} of ${inside.redirect.requests} failed (${pct(inside.redirect.failedShare)}, budget ${pct(budget.redirect)}), ` +
        `API ${inside.api.failed} of ${inside.api.requests} (${pct(inside.api.failedShare)}, budget ${pct(budget.api)}): ${budget.why}`,
    }
  },
})

/** The criteria every drill with a budget is judged by, after its own. */
export const sloCriteria = (b: Budget): Criterion<SloMeasure>[] => [sloAvailability, sloRedirectLatency, faultBudget(b)]

/** Inject, detect, mitigate, recover (unix ms), as the report's timeline gives them. */
export interface Timeline {
  inject: number
  /** The first alert of the drill's fault that Alertmanager shows firing (its startsAt), if any did. */
  detect?: { at: number; alert: string }
  /** The fault taken away. */
  mitigate: number
  /** The last failed request after the injection (its end): the impact is over. Absent: no request failed. */
  recover?: number
}

/** The timeline of a fault window from the load's failures and Alertmanager's alerts. */
export function timeline(
  w: { from: number; to: number },
  failures: { at: number }[],
  firing: { alert: string; startsAt: number }[],
): Timeline {
  const last = failures.filter((f) => f.at >= w.from).reduce((a, f) => Math.max(a, f.at), 0)
  const first = firing.filter((a) => a.startsAt >= w.from).sort((a, b) => a.startsAt - b.startsAt)[0]
  return {
    inject: w.from,
    mitigate: w.to,
    ...(first ? { detect: { at: first.startsAt, alert: first.alert } } : {}),
    ...(last ? { recover: last } : {}),
  }
}

/** Failed requests as a share of what the availability SLO allows over the same requests. */
export function errorBudgetSpent(requests: number, failed: number): { allowed: number; failed: number; spent: number } {
  // 1 - 0.999 is not 0.001 in floating point.
  const allowed = (requests * Math.round((1 - SLO.availability) * 1e6)) / 1e6
  return { allowed: Math.round(allowed * 10) / 10, failed, spent: allowed > 0 ? failed / allowed : failed > 0 ? Infinity : 0 }
}
