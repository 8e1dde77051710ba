// Stress: the traffic mix at twice the average rate (400 req/s); the SLO should still hold.
import type { Options } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { mixedTraffic } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { stress: profiles.stress() },
  thresholds: sloThresholds(),
}

export function setup(): Data {
  return setupData(envInt('LINKS', pick(500, 100)))
}

export default function (data: Data): void {
  mixedTraffic(data)
}
