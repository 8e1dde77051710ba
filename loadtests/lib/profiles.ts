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
  /**
   * Logins at a rising rate until the SLO breaks (thresholds abort the run there). One login costs about 18 ms of CPU
   * here, so a replica held to half a core breaks near 27/s and two near 54/s: the ramps pass both.
   */
  breakpoint: (): Scenario => pick(ramping(5, [rate(150, '3m')], 400), ramping(5, [rate(100, '40s')], 400)),
  /** Redirects only, Zipf-popular links, at a rate both cache-on and cache-off can serve. */
  caching: (): Scenario => pick(constant(300, '1m'), constant(150, '10s')),
  /** The same redirects at a rate that climbs past what either side serves (thresholds abort the run there). */
  cachingRamp: (): Scenario => pick(ramping(50, [rate(4000, '2m')], 800), ramping(50, [rate(2500, '25s')], 800)),
  /** Redirects only, long enough to kill a replica in the middle. */
  balancing: (): Scenario => pick(constant(200, '1m'), constant(150, '12s')),
  /**
   * Logins: quiet, a burst of about 1.3 cores of argon2id (twice what 2 replicas hold at the HPA's 70% of 500m), quiet
   * again, long enough for the autoscaler's scale-down window to pass.
   */
  autoscale: (): Scenario =>
    pick(
      ramping(2, [rate(2, '1m'), rate(80, '15s'), rate(80, '3m'), rate(2, '15s'), rate(2, '4m')], 400),
      ramping(2, [rate(2, '5s'), rate(80, '5s'), rate(80, '40s'), rate(2, '5s'), rate(2, '45s')], 400),
    ),
}
