// redis-latency: the cache Redis answers 1 s late (above the command timeout): cache reads time out and redirects fall back to
// Postgres within a bound.
import type { Criterion, Traffic } from './criteria.ts'
import { steadyFault, timing as t } from './fault.ts'
import { APP, defineDrill } from './runner.ts'

// A redirect that misses L1 meets Redis once before Postgres, in the cache GET, bounded by the command timeout (the
// redirect's rate limit counts in memory, service/app.ts). 250 ms covers the Postgres lookup; a wait of twice the
// timeout, as ioredis auto-pipelining caused (docs/drills.md, redis-latency), fails it.
export const REDIRECT_BOUND_MS = APP.REDIS_COMMAND_TIMEOUT_MS + 250

export interface Measured {
  /** opsdrill_cache_errors_total + opsdrill_cache_fallbacks_total, increase over the drill. */
  cacheErrorsAndFallbacks: number
  faultRedirects: Traffic
}

export const criteria: Criterion<Measured>[] = [
  {
    text: 'cache reads time out to Postgres: opsdrill_cache_errors_total + opsdrill_cache_fallbacks_total grow',
    judge: (m) => ({ pass: m.cacheErrorsAndFallbacks > 0, detail: `cache errors + fallbacks +${m.cacheErrorsAndFallbacks}` }),
  },
  {
    text: `redirect p99 in the fault window <= command timeout (the cache GET) + 250 ms for the Postgres lookup (${REDIRECT_BOUND_MS} ms)`,
    judge: ({ faultRedirects: r }) => ({
      pass: r.requests > 0 && r.p99 <= REDIRECT_BOUND_MS,
      detail: `p99 ${r.p99.toFixed(0)} ms over ${r.requests} redirects in the fault window (worst second ${r.worstSecondP99.toFixed(0)} ms), max ${r.max.toFixed(0)} ms`,
    }),
  },
]

export const redisLatency = defineDrill<Measured>({
  name: 'redis-latency',
  title: `The cache Redis answers 1 s late (toxiproxy latency, above REDIS_COMMAND_TIMEOUT_MS ${APP.REDIS_COMMAND_TIMEOUT_MS} ms): cache reads time out and redirects fall back to Postgres.`,
  criteria,
  budget: {
    redirect: 0.001,
    api: 0.001,
    settleSec: 2,
    why: 'every Redis call is bounded by the command timeout and fails open: requests get slower, none may fail',
  },
  alerts: ['CacheHitRatioCollapsed (for 10m)', 'RedirectLatencyErrorBudgetBurn (if sustained)'],
  dashboards: ['opsdrill-cache', 'opsdrill-slo'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 30, 20), short: t(100, 4, 10, 4) },
  async run(d) {
    const errs = async () =>
      (await d.metric('api', 'opsdrill_cache_errors_total')) + (await d.metric('api', 'opsdrill_cache_fallbacks_total'))
    const err0 = await errs()
    const w = await steadyFault(
      d,
      'cache Redis +1000 ms latency',
      () => d.platform.toxiproxy.addToxic('redis-cache', { name: 'drill', type: 'latency', attributes: { latency: 1000, jitter: 0 } }),
      () => d.platform.toxiproxy.reset(),
    )
    const api = d.window(w.from, w.to, 'api')
    d.notes.push(
      `API calls meet Redis more often (rate limiter, the route's own limiter, cache invalidation and publish on create), each up to the command timeout: p99 ${api.p99.toFixed(0)} ms in the fault window. Not a criterion of this drill; a reason to bound the rate limiter's Redis wait separately.`,
    )
    const m: Measured = { cacheErrorsAndFallbacks: (await errs()) - err0, faultRedirects: d.window(w.from, w.to, 'redirect') }
    Object.assign(d.measured, { ...m, faultWindowApi: api })
    return m
  },
})
