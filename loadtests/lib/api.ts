// The API calls the scenarios make, each tagged with its endpoint and SLO class.
import http from 'k6/http'
import { check } from 'k6'
import { BASE_URL } from './config.ts'
import { BROWSER_USER_AGENT } from './browser.ts'

export interface Link {
  id: string
  code: string
}

const json = (token?: string) => ({
  'content-type': 'application/json',
  ...(token ? { authorization: `Bearer ${token}` } : {}),
})

/** GET /:code, the hot path: expects 302 and does not follow it. */
export function redirect(code: string): http.RefinedResponse<'none'> {
  const res = http.get(`${BASE_URL}/${code}`, {
    headers: { 'user-agent': BROWSER_USER_AGENT },
    redirects: 0,
    responseType: 'none',
    tags: { endpoint: 'redirect', slo: 'redirect', name: 'GET /:code' },
  })
  check(res, { 'redirect answers 302': (r) => r.status === 302 })
  return res
}

export function createLink(token: string, url: string): Link | undefined {
  const res = http.post(`${BASE_URL}/api/v1/links`, JSON.stringify({ url }), {
    headers: json(token),
    responseType: 'text',
    tags: { endpoint: 'create_link', slo: 'api', name: 'POST /api/v1/links' },
  })
  if (!check(res, { 'link created (201)': (r) => r.status === 201 })) return undefined
  const body = res.json() as { id: string; code: string }
  return { id: body.id, code: body.code }
}

export function stats(token: string, id: string): void {
  const res = http.get(`${BASE_URL}/api/v1/links/${id}/stats`, {
    headers: json(token),
    responseType: 'none',
    tags: { endpoint: 'stats', slo: 'api', name: 'GET /api/v1/links/:id/stats' },
  })
  check(res, { 'stats answer 200': (r) => r.status === 200 })
}

/** Registers a fresh user and returns an access token. */
export function registerAndLogin(): string {
  const email = `load-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`
  const password = 'correct-horse-battery-staple'
  const body = JSON.stringify({ email, password })
  const reg = http.post(`${BASE_URL}/api/v1/auth/register`, body, {
    headers: json(),
    responseType: 'text',
    tags: { endpoint: 'register', slo: 'api', name: 'POST /api/v1/auth/register' },
  })
  if (reg.status !== 202) throw new Error(`register answered ${reg.status}: ${String(reg.body).slice(0, 200)}`)
  const login = http.post(`${BASE_URL}/api/v1/auth/login`, body, {
    headers: json(),
    responseType: 'text',
    tags: { endpoint: 'login', slo: 'api', name: 'POST /api/v1/auth/login' },
  })
  if (login.status !== 200) throw new Error(`login answered ${login.status}: ${String(login.body).slice(0, 200)}`)
  return (login.json() as { accessToken: string }).accessToken
}

export function targetUrl(i: number): string {
  return `https://example.com/opsdrill/load/${i}?utm_source=k6`
}
