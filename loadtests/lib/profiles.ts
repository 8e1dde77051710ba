// Load profiles, in requests (iterations) per second: open-model executors, so a slow server does not slow the
// load down (a closed model would hide latency by sending less). Full forms are sized for a 2-core box that also
// runs k6 (about 2k req/s per busy k6 core, and the app, nginx, Postgres and Redis share the same cores).
import type { Scenario } from 'k6/options'
import { pick } from './config.ts'

const rate = (target: number, duration: string) => ({ target, duration })

function constant(ratePerSec: number, duration: string): Scenario {
  return { executor: 'constant-arrival-rate', rate: ratePerSec, timeUnit: '1s', duration, preAllocatedVUs: 20, maxVUs: 200 }
}

function ramping(startRate: number, stages: { target: number; duration: string }[], maxVUs = 300): Scenario {
  return { executor: 'ramping-arrival-rate', startRate, timeUnit: '1s', stages, preAllocatedVUs: 30, maxVUs }
}

export const profiles = {
  /** Does it work at all: two users, a few seconds. */
  smoke: (): Scenario => ({ executor: 'constant-vus', vus: 2, duration: pick('30s', '5s') }),
  /** A normal day: ramp to 200 req/s and hold. */
  average: (): Scenario => pick(ramping(10, [rate(200, '30s'), rate(200, '3m'), rate(0, '15s')]), constant(100, '8s')),
  /** Above normal: ramp to 400 req/s and hold; the SLO should still hold. */
  stress: (): Scenario => pick(ramping(10, [rate(400, '1m'), rate(400, '3m'), rate(0, '15s')]), constant(150, '8s')),
  /** A sudden burst: 50 req/s, jump to 600 in 10 s, hold, drop back. */
  spike: (): Scenario =>
    pick(
      ramping(50, [rate(50, '30s'), rate(600, '10s'), rate(600, '1m'), rate(50, '10s'), rate(50, '30s')], 400),
      ramping(50, [rate(50, '2s'), rate(300, '2s'), rate(300, '3s'), rate(50, '2s')]),
    ),
  /** Hours at a moderate rate find leaks and slow drifts; the full form is 30 minutes. */
  soak: (): Scenario => pick(constant(150, '30m'), constant(100, '8s')),
  /** Raise the rate until the SLO breaks (thresholds abort the run there). */
  breakpoint: (): Scenario => pick(ramping(50, [rate(3000, '5m')], 1000), ramping(50, [rate(300, '8s')])),
  /** Redirects only, Zipf-popular links, at a rate both cache-on and cache-off can serve. */
  caching: (): Scenario => pick(constant(300, '1m'), constant(150, '10s')),
  /** Redirects only, long enough to kill a replica in the middle. */
  balancing: (): Scenario => pick(constant(200, '1m'), constant(150, '12s')),
  /** A steady climb in arrival rate: the highest rate served within the SLO is the capacity. */
  scaling: (): Scenario => pick(ramping(50, [rate(1200, '2m')], 600), ramping(50, [rate(400, '10s')])),
}
