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

/** GET /:code, the hot path: expects 302 and does not follow it. `measured: false` leaves out the `slo` tag (a warm-up). */
export function redirect(code: string, measured = true): http.RefinedResponse<'none'> {
  const res = http.get(`${BASE_URL}/${code}`, {
    headers: { 'user-agent': BROWSER_USER_AGENT },
    redirects: 0,
    responseType: 'none',
    tags: { endpoint: 'redirect', ...(measured ? { slo: 'redirect' } : {}), name: 'GET /:code' },
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

export interface Credentials {
  email: string
  password: string
}

/** Registers a fresh user (one argon2id hash on the server). */
export function register(): Credentials {
  const creds = { email: `load-${Date.now()}-${Math.floor(Math.random() * 1e9)}@example.com`, password: 'correct-horse-battery-staple' }
  const reg = http.post(`${BASE_URL}/api/v1/auth/register`, JSON.stringify(creds), {
    headers: json(),
    responseType: 'text',
    tags: { endpoint: 'register', slo: 'api', name: 'POST /api/v1/auth/register' },
  })
  if (reg.status !== 202) throw new Error(`register answered ${reg.status}: ${String(reg.body).slice(0, 200)}`)
  return creds
}

/**
 * POST /api/v1/auth/login: one argon2id verification on the server, the API's CPU-bound route. `measured: false`
 * leaves out the `slo` tag, so the request counts in no threshold and no figure (a warm-up).
 */
export function login(creds: Credentials, measured = true): http.RefinedResponse<'text'> {
  const res = http.post(`${BASE_URL}/api/v1/auth/login`, JSON.stringify(creds), {
    headers: json(),
    responseType: 'text',
    tags: { endpoint: 'login', ...(measured ? { slo: 'api' } : {}), name: 'POST /api/v1/auth/login' },
  })
  check(res, { 'login answers 200': (r) => r.status === 200 })
  return res
}

/** A user's credentials and access token, with when the token expires (Unix ms). */
export interface Session {
  creds: Credentials
  token: string
  expiresAt: number
}

function sessionOf(creds: Credentials, res: http.RefinedResponse<'text'>): Session {
  if (res.status !== 200) throw new Error(`login answered ${res.status}: ${String(res.body).slice(0, 200)}`)
  const body = res.json() as { accessToken: string; expiresIn: number }
  return { creds, token: body.accessToken, expiresAt: Date.now() + body.expiresIn * 1000 }
}

/** Registers a fresh user and logs it in. */
export function registerAndLogin(): Session {
  const creds = register()
  return sessionOf(creds, login(creds))
}

let current: Session | undefined

/**
 * This VU's access token for the session: logged in again a minute before it expires, as a client does. The full soak
 * (30 min) outlives the API's 15-minute token, and without this every authenticated request after minute 15 got 401:
 * 5% of the soak's requests failed. The login is not measured (it is no part of the scenario's mix).
 */
export function tokenFor(session: Session): string {
  if (current === undefined || current.creds.email !== session.creds.email) current = session
  if (Date.now() > current.expiresAt - 60_000) current = sessionOf(current.creds, login(current.creds, false))
  return current.token
}

export function targetUrl(i: number): string {
  return `https://example.com/opsdrill/load/${i}?utm_source=k6`
}
