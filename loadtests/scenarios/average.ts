// Average load: the traffic mix at a normal day's rate (200 req/s full form); the SLO holds.
import type { Options } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { mixedTraffic } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { average: profiles.average() },
  thresholds: sloThresholds(),
}

export function setup(): Data {
  return setupData(envInt('LINKS', pick(500, 100)))
}

export default function (data: Data): void {
  mixedTraffic(data)
}
