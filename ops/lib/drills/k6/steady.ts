// The drills' load: an open model (constant arrival rate), so a fault shows as errors and latency, never as less
// offered load. Mostly redirects over the drill's own links (their clicks are the ledger), some API calls that
// need Postgres (create a link, read its stats). The drill stops it through k6's REST API when recovery is over.
//   DATA      JSON file written by the drill: { token, links: [{ id, code }] }
//   RATE      requests per second (default 200)
//   API_SHARE share of API calls (default 0.1: half creates, half stats; 0: redirects only)
//   MODE      steady (default) | saturate: VUs ramp 1 -> VUS and hold, to measure the most the stack serves
//   MARK      a run id: each redirect then carries its own Referer (<MARK_BASE><MARK>/<iteration>), stored with its
//             click, and <MARK>/<iteration> as sample metadata (not a tag: no series per request), so the ledger matches
//             the 302s served with the clicks stored one by one
import http from 'k6/http'
import { check } from 'k6'
import exec from 'k6/execution'
import { Counter } from 'k6/metrics'
import type { Options } from 'k6/options'
import { BROWSER_USER_AGENT } from '../../../../loadtests/lib/browser.ts'

/** The ledger's Referer prefix; ops/lib/drills/api-ledger.ts reads the stored clicks back by it. */
const MARK_BASE = 'https://ledger.opsdrill.test/'
declare const __ENV: Record<string, string | undefined>
declare function open(path: string): string

interface Link {
  id: string
  code: string
}
interface Data {
  token: string
  links: Link[]
}

const BASE_URL = (__ENV.BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '')
const RATE = Number(__ENV.RATE ?? 200)
const API_SHARE = Number(__ENV.API_SHARE ?? 0.1)
const DURATION = __ENV.DURATION ?? '30m'
const VUS = Number(__ENV.VUS ?? 64)
const data = JSON.parse(open(__ENV.DATA ?? '')) as Data
const MARK = __ENV.MARK

// 503s with and without Retry-After: the shedding criterion reads these.
const shedWithRetryAfter = new Counter('drill_503_with_retry_after')
const shedWithoutRetryAfter = new Counter('drill_503_without_retry_after')

export const options: Options = {
  discardResponseBodies: true,
  scenarios:
    __ENV.MODE === 'saturate'
      ? {
          saturate: {
            executor: 'ramping-vus',
            startVUs: 1,
            stages: [
              { duration: '2s', target: VUS },
              { duration: DURATION, target: VUS },
            ],
            gracefulRampDown: '0s',
          },
        }
      : {
          steady: {
            executor: 'constant-arrival-rate',
            rate: RATE,
            timeUnit: '1s',
            duration: DURATION,
            preAllocatedVUs: Math.max(20, Math.ceil(RATE / 4)),
            maxVUs: Math.max(100, RATE * 2),
          },
        },
  // Submetrics so the summary carries per-class figures; they never fail the run (the drill judges).
  thresholds: { 'http_req_duration{slo:redirect}': ['max>=0'], 'http_req_duration{slo:api}': ['max>=0'] },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
}

function note503(res: http.RefinedResponse<http.ResponseType | undefined>): void {
  if (res.status !== 503) return
  if (res.headers['Retry-After']) shedWithRetryAfter.add(1)
  else shedWithoutRetryAfter.add(1)
}

export default function (): void {
  const link = data.links[Math.floor(Math.random() * data.links.length)]!
  // A fixed share by iteration number, not by chance, so two windows of one run offer Postgres the same work.
  const every = API_SHARE > 0 ? Math.round(1 / API_SHARE) : 0
  const slot = every ? exec.scenario.iterationInTest % every : -1
  if (slot !== 0 && slot !== 1) {
    const click = `${MARK}/${exec.scenario.iterationInTest}`
    if (MARK) exec.vu.metrics.metadata.click = click
    const res = http.get(`${BASE_URL}/${link.code}`, {
      headers: { 'user-agent': BROWSER_USER_AGENT, ...(MARK ? { referer: `${MARK_BASE}${click}` } : {}) },
      redirects: 0,
      timeout: '30s',
      tags: { slo: 'redirect', name: 'GET /:code', link: link.code },
    })
    if (MARK) delete exec.vu.metrics.metadata.click
    check(res, { 'redirect answers 302': (x) => x.status === 302 })
    note503(res)
  } else if (slot === 0) {
    const res = http.post(
      `${BASE_URL}/api/v1/links`,
      JSON.stringify({ url: `https://example.com/drill/${Math.floor(Math.random() * 1e9)}` }),
      {
        headers: { 'content-type': 'application/json', authorization: `Bearer ${data.token}` },
        timeout: '30s',
        tags: { slo: 'api', name: 'POST /api/v1/links' },
      },
    )
    check(res, { 'link created (201)': (x) => x.status === 201 })
    note503(res)
  } else {
    const res = http.get(`${BASE_URL}/api/v1/links/${link.id}/stats`, {
      headers: { authorization: `Bearer ${data.token}` },
      timeout: '30s',
      tags: { slo: 'api', name: 'GET /api/v1/links/:id/stats' },
    })
    check(res, { 'stats answer 200': (x) => x.status === 200 })
    note503(res)
  }
}
