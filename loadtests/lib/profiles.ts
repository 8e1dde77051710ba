// Load profiles, in requests (iterations) per second: open-model executors, so a slow server does not slow the
// load down (a closed model would hide latency by sending less). Full forms are sized for a 2-core box that also
// runs k6 (about 2k req/s per busy k6 core, and the app, nginx, Postgres and Redis share the same cores).
import type { Scenario } from 'k6/options'
import { pick } from './config.ts'

const rate = (target: number, duration: string) => ({ target, duration })

/**
 * The top rate of a login ramp or spike: PEAK_RATE when the caller sized it from what a login costs on this box
 * (ops/lib/capacity.ts loginCpuSeconds), else the figure sized for the 2-core box here (full form, short form).
 */
function peakRate(full: number, short: number): number {
  const given = Number(__ENV.PEAK_RATE || 0)
  return given > 0 ? Math.ceil(given) : pick(full, short)
}

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
   * Logins at a rising rate until the SLO breaks (thresholds abort the run there). One login costs about 11.5 ms of CPU
   * here; with queueing and the quota's throttling a replica held to half a core breaks near 25-40/s and two near
   * 50-90/s: the ramps pass both. The capacity runs size the ramp from the login cost they measure (PEAK_RATE,
   * ops/lib/capacity.ts rampPeak).
   */
  breakpoint: (): Scenario => {
    // Up to the peak, then on at the same slope to twice it: the SLO breaks on the way (2 replicas once held the whole
    // ramp to a peak 15% past their ideal, where the quota had more to give than the measured login cost said).
    const peak = peakRate(150, 100)
    return pick(ramping(5, [rate(peak, '3m'), rate(2 * peak, '3m')], 400), ramping(5, [rate(peak, '40s'), rate(2 * peak, '40s')], 400))
  },
  /** Redirects only, Zipf-popular links, at a rate both cache-on and cache-off can serve. */
  caching: (): Scenario => pick(constant(300, '1m'), constant(150, '10s')),
  /** The same redirects at a rate that climbs past what either side serves (thresholds abort the run there). */
  cachingRamp: (): Scenario => pick(ramping(50, [rate(4000, '2m')], 800), ramping(50, [rate(2500, '25s')], 800)),
  /** Redirects only, long enough to kill a replica in the middle (DURATION sets another length). */
  balancing: (): Scenario => constant(600, __ENV.DURATION || pick('1m', '12s')),
  /**
   * Logins: quiet, a burst of 1.3x the CPU 2 replicas hold at the HPA's 70% of 500m (sized from the measured login
   * cost as PEAK_RATE by `npm run load -- autoscale`), quiet again, long enough for the autoscaler's scale-down window
   * to pass.
   */
  autoscale: (): Scenario => {
    const peak = peakRate(80, 80)
    return pick(
      ramping(2, [rate(2, '1m'), rate(peak, '15s'), rate(peak, '3m'), rate(2, '15s'), rate(2, '4m')], 400),
      ramping(2, [rate(2, '5s'), rate(peak, '5s'), rate(peak, '40s'), rate(2, '5s'), rate(2, '45s')], 400),
    )
  },
}
