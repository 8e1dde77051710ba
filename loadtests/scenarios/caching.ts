// Caching: redirects only, links picked with Zipf popularity (s=1), at a fixed arrival rate. Run it twice, with
// the cache on and off (npm run load -- caching does both), and compare latency and Postgres queries per second.
import type { Options } from 'k6/options'
import { envInt, pick } from '../lib/config.ts'
import { redirect } from '../lib/api.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { pickLink } from '../lib/traffic.ts'

export const options: Options = {
  ...COMMON,
  scenarios: { caching: profiles.caching() },
  thresholds: sloThresholds(),
}

export function setup(): Data {
  return setupData(envInt('LINKS', pick(1000, 200)))
}

export default function (data: Data): void {
  redirect(pickLink(data).code)
}
