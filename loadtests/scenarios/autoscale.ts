// Autoscale: a spike of logins (the API's CPU-bound route) for the native autoscaler (npm run stack -- autoscale,
// ops/lib/autoscale.ts) to answer: quiet, a burst that takes the API replicas past the HPA's 70% CPU target, quiet
// again. `npm run load -- autoscale` runs it with the autoscaler and records replicas beside load and latency.
// The login rate limits are raised for the run (ops/lib/capacity.ts). Latency may degrade while new replicas start;
// errors may not.
import type { Options } from 'k6/options'
import { login, register, type Credentials } from '../lib/api.ts'
import { assertReady } from '../lib/setup.ts'
import { profiles } from '../lib/profiles.ts'
import { COMMON } from '../lib/thresholds.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { autoscale: profiles.autoscale() },
  thresholds: { http_req_failed: ['rate<0.01'], checks: ['rate>0.99'] },
}

export function setup(): Credentials {
  assertReady()
  return register()
}

export default function (creds: Credentials): void {
  login(creds)
}
