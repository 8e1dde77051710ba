// Spike: a jump from 50 to 600 req/s in 10 s. No errors allowed (< 1%); latency may degrade to 10x its SLO while
// the burst lasts (the SLO is judged over 30 days, a spike is minutes), but never into timeouts.
import type { Options } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { mixedTraffic } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { spike: profiles.spike() },
  thresholds: sloThresholds({ latencyFactor: 10 }),
}

export function setup(): Data {
  return setupData(envInt('LINKS', pick(500, 100)))
}

export default function (data: Data): void {
  mixedTraffic(data)
}
