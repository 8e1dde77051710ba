// Breakpoint: the arrival rate climbs until the SLO breaks; thresholds with abortOnFail stop the run there
// (5 s after the first breach), so the rate at the end is this box's capacity for the traffic mix.
import type { Options } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { mixedTraffic } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { breakpoint: profiles.breakpoint() },
  thresholds: sloThresholds({ abortOnFail: true }),
}

export function setup(): Data {
  return setupData(envInt('LINKS', pick(500, 100)))
}

export default function (data: Data): void {
  mixedTraffic(data)
}
