// setup() for every scenario: refuse to load a stack that is not ready, then make a user and N links.
import http from 'k6/http'
import exec from 'k6/execution'
import { BASE_URL } from './config.ts'
import { registerAndLogin, targetUrl, type Link, type Session } from './api.ts'

export interface Data {
  /** The user the links belong to; tokenFor(session) is a current token for it. */
  session: Session
  links: Link[]
}

export function assertReady(): void {
  const res = http.get(`${BASE_URL}/readyz`, { responseType: 'text', tags: { endpoint: 'readyz', name: 'GET /readyz' } })
  if (res.status !== 200) {
    exec.test.abort(`${BASE_URL}/readyz answered ${res.status || res.error}: start the stack (npm run stack -- up) or set BASE_URL`)
  }
}

/** Registers a user and creates n links, 50 per batch request. */
export function setupData(n: number): Data {
  assertReady()
  const session = registerAndLogin()
  const token = session.token
  const links: Link[] = []
  for (let start = 0; start < n; start += 50) {
    const reqs = []
    for (let i = start; i < Math.min(n, start + 50); i++) {
      reqs.push({
        method: 'POST',
        url: `${BASE_URL}/api/v1/links`,
        body: JSON.stringify({ url: targetUrl(i) }),
        params: {
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          responseType: 'text' as const,
          tags: { endpoint: 'setup', name: 'POST /api/v1/links (setup)' },
        },
      })
    }
    for (const res of http.batch(reqs)) {
      if (res.status !== 201)
        exec.test.abort(`setup could not create links: POST /api/v1/links answered ${res.status}: ${String(res.body).slice(0, 200)}`)
      const body = res.json() as { id: string; code: string }
      links.push({ id: body.id, code: body.code })
    }
  }
  return { session, links }
}
