// Scaling: the arrival rate climbs steadily; npm run load -- scaling runs it against 1 then 2 API replicas and reports
// the highest rate served within the SLO. (Its backlog-drain comparison queues jobs directly: ops/load.ts.)
import type { Options } from 'k6/options'
import { envInt } from '../lib/config.ts'
import { redirect } from '../lib/api.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, SLO } from '../lib/thresholds.ts'
import { pickLink } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { scaling: profiles.scaling() },
  // The ramp goes past the SLO on purpose: its thresholds only guard against outright failure (errors, a p99 of
  // seconds), and the capacity is read from the time series (npm run load -- scaling).
  thresholds: { http_req_failed: ['rate<0.05'], 'http_req_duration{slo:redirect}': [`p(99)<${SLO.redirectP99Ms * 50}`] },
}

export function setup(): Data {
  return setupData(envInt('LINKS', 200))
}

export default function (data: Data): void {
  redirect(pickLink(data).code)
}
