// Caching: redirects only, links picked with Zipf popularity (s=1), at a fixed arrival rate. Run it twice, with
// the cache on and off (npm run load -- caching does both), and compare latency and Postgres queries per second.
import type { Options } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { redirect } from '../lib/api.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { pickLink } from '../lib/traffic.ts'

// RAMP=1: the arrival rate climbs until the SLO breaks instead (thresholds abort the run there), for the highest
// throughput each side serves within the SLO.
const RAMP = __ENV.RAMP === '1'

export const options: Options = {
  ...COMMON,
  scenarios: { caching: RAMP ? profiles.cachingRamp() : profiles.caching() },
  thresholds: sloThresholds({ abortOnFail: RAMP }),
}

export function setup(): Data {
  const data = setupData(envInt('LINKS', pick(1000, 200)))
  // One unmeasured redirect per link first: the comparison is a warm cache against none, not the cold misses of a
  // cache that has just started (those would set the cache-on p95 of a run this short).
  for (const l of data.links) redirect(l.code, false)
  return data
}

export default function (data: Data): void {
  redirect(pickLink(data).code)
}
