// Breakpoint: logins only (one argon2id verification each, the API's CPU-bound route), at an arrival rate that climbs
// until the SLO breaks; thresholds with abortOnFail stop the run there. The highest rate served within the SLO is the
// capacity of the setup under test: `npm run load -- breakpoint` measures it for the running replicas, and
// `npm run load -- scaling` for 1 and then 2 API replicas. Both raise the login rate limits for the run (one client
// address makes every login here) and hold each replica to its k8s CPU request, half a core (ops/lib/capacity.ts).
// k6 itself needs little CPU at these rates, so the replicas, not the load generator, are the bottleneck.
import type { Options } from 'k6/options'
import { login, register, type Credentials } from '../lib/api.ts'
import { assertReady } from '../lib/setup.ts'
import { profiles } from '../lib/profiles.ts'
import { COMMON, SLO } from '../lib/thresholds.ts'

const abort = (threshold: string) => ({ threshold, abortOnFail: true, delayAbortEval: '15s' })

export const options: Options = {
  ...COMMON,
  scenarios: { breakpoint: profiles.breakpoint() },
  thresholds: {
    http_req_failed: [abort(`rate<${SLO.errorRate}`)],
    // The SLO itself, never widened for a busy box (SLO_LATENCY_FACTOR): the capacity is read against it.
    'http_req_duration{slo:api}': [abort(`p(99)<${SLO.apiP99Ms}`)],
  },
}

export function setup(): Credentials {
  assertReady()
  const creds = register()
  // A replica's first logins run unoptimized code: warm every replica up outside the measured ramp.
  for (let i = 0; i < 40; i++) login(creds, false)
  return creds
}

export default function (creds: Credentials): void {
  login(creds)
}
