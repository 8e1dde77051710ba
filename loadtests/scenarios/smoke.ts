// Smoke: two users for a few seconds; every endpoint answers and the SLO holds with no errors to speak of (< 0.1%).
import type { Options } from 'k6/options'
import { envInt } from '../lib/config.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { mixedTraffic } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { smoke: profiles.smoke() },
  thresholds: sloThresholds({ errorRate: 0.001 }),
}

export function setup(): Data {
  return setupData(envInt('LINKS', 20))
}

export default function (data: Data): void {
  mixedTraffic(data)
}
