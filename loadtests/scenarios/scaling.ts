// Scaling, two phases (PHASE):
//   ramp (default)  the arrival rate climbs steadily; npm run load -- scaling runs it against 1 then 2 API replicas
//                   and reports the highest rate served within the SLO.
//   backlog         CLICKS redirects as fast as possible (each one a click job) while the workers are stopped, to
//                   time how fast 1 and 2 workers drain the queue.
import type { Options, Scenario } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { redirect } from '../lib/api.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, SLO, sloThresholds } from '../lib/thresholds.ts'
import { pickLink } from '../lib/traffic.ts'

const backlog = __ENV.PHASE === 'backlog'
const clicks: Scenario = { executor: 'shared-iterations', vus: 20, iterations: envInt('CLICKS', pick(20000, 3000)), maxDuration: '5m' }

export const options: Options = {
  ...COMMON,
  scenarios: { scaling: backlog ? clicks : profiles.scaling() },
  // The ramp goes past the SLO on purpose: its thresholds only guard against outright failure (errors, a p99 of
  // seconds), and the capacity is read from the time series (npm run load -- scaling).
  thresholds: backlog
    ? sloThresholds({ latencyFactor: 5 })
    : { http_req_failed: ['rate<0.05'], 'http_req_duration{slo:redirect}': [`p(99)<${SLO.redirectP99Ms * 50}`] },
}

export function setup(): Data {
  return setupData(envInt('LINKS', 200))
}

export default function (data: Data): void {
  redirect(pickLink(data).code)
}
