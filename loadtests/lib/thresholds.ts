// The SLOs as k6 thresholds (see docs/slo.md): requests are tagged `slo:redirect` (GET /:code, the hot path) or
// `slo:api` (the JSON API), and each has its own latency objective.
import type { Options } from 'k6/options'

type Thresholds = NonNullable<Options['thresholds']>

export const SLO = {
  /** Share of failed requests (5xx, network errors, unexpected 4xx). */
  errorRate: 0.01,
  redirectP95Ms: 50,
  redirectP99Ms: 100,
  apiP95Ms: 250,
  apiP99Ms: 500,
}

/**
 * SLO_LATENCY_FACTOR (default 1) widens the latency bounds, never the error bounds: the test suite sets it when the
 * box is busy with other work (load per core > 1), where scheduler delay, not the code, sets the tail latency.
 */
const BOX_FACTOR = Number(__ENV.SLO_LATENCY_FACTOR || '1')

export function sloThresholds(opts: { errorRate?: number; abortOnFail?: boolean; latencyFactor?: number } = {}): Thresholds {
  const f = (opts.latencyFactor ?? 1) * BOX_FACTOR
  const line = (threshold: string) => (opts.abortOnFail ? { threshold, abortOnFail: true, delayAbortEval: '5s' } : threshold)
  return {
    http_req_failed: [line(`rate<${opts.errorRate ?? SLO.errorRate}`)],
    'http_req_duration{slo:redirect}': [`p(95)<${SLO.redirectP95Ms * f}`, line(`p(99)<${SLO.redirectP99Ms * f}`)],
    'http_req_duration{slo:api}': [`p(95)<${SLO.apiP95Ms * f}`, line(`p(99)<${SLO.apiP99Ms * f}`)],
    checks: ['rate>0.99'],
  }
}

/** Options every scenario shares: no redirect following (the 302 is the answer), bounded tag cardinality. */
export const COMMON: Options = {
  maxRedirects: 0,
  discardResponseBodies: true,
  setupTimeout: '180s',
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  // No `url` tag: every short code would be its own time series in Prometheus; `name` groups them.
  systemTags: ['status', 'method', 'name', 'group', 'check', 'error_code', 'scenario', 'expected_response'],
}
