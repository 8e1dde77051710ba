// Soak: the traffic mix at a moderate rate for 30 minutes (full form): leaks, pool exhaustion and slow drifts show
// up as a latency or error trend that a short run cannot see.
import type { Options } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { mixedTraffic } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { soak: profiles.soak() },
  thresholds: sloThresholds(),
}

export function setup(): Data {
  return setupData(envInt('LINKS', pick(500, 100)))
}

export default function (data: Data): void {
  mixedTraffic(data)
}
