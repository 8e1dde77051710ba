// Balancing: redirects at a fixed rate, each response counted by the replica nginx sent it to (X-Upstream). With
// UPSTREAMS=127.0.0.1:3001,127.0.0.1:3002 the summary lists each replica's count (a threshold per upstream makes
// k6 keep that sub-metric). npm run load -- balancing also kills a replica mid-run to show nginx routing around it.
import { Counter } from 'k6/metrics'
import type { Options } from 'k6/options'
import { envInt } from '../lib/config.ts'
import { redirect } from '../lib/api.ts'
import { profiles } from '../lib/profiles.ts'
import { setupData, type Data } from '../lib/setup.ts'
import { COMMON, sloThresholds } from '../lib/thresholds.ts'
import { pickLink } from '../lib/traffic.ts'

const byUpstream = new Counter('upstream_requests')
const upstreams = (__ENV.UPSTREAMS || '').split(',').filter(Boolean)

export const options: Options = {
  ...COMMON,
  scenarios: { balancing: profiles.balancing() },
  thresholds: {
    ...sloThresholds(),
    ...Object.fromEntries(upstreams.map((u) => [`upstream_requests{upstream:${u}}`, ['count>=0']])),
  },
}

export function setup(): Data {
  return setupData(envInt('LINKS', 200))
}

export default function (data: Data): void {
  const res = redirect(pickLink(data).code)
  // On a retry nginx lists every replica it tried ("a, b"): the last one answered.
  const tried = (res.headers['X-Upstream'] || 'none').split(',')
  byUpstream.add(1, { upstream: tried[tried.length - 1]!.trim() })
}
