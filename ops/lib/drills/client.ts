// What the drill itself asks of the stack over HTTP: a user and links of its own (so its clicks are countable),
// each replica's /metrics summed by metric name (exact counters, no scrape delay; a failed read throws), and
// readiness per replica.
import { randomBytes } from 'node:crypto'

export interface Link {
  id: string
  code: string
}

export interface DrillData {
  token: string
  links: Link[]
}

async function json<T>(res: Response, what: string, want: number): Promise<T> {
  if (res.status !== want) throw new Error(`${what} answered ${res.status} (wanted ${want}): ${(await res.text()).slice(0, 200)}`)
  return (await res.json()) as T
}

/** Registers a fresh user and creates n links through nginx, 20 requests at a time. */
export async function makeData(baseUrl: string, n: number): Promise<DrillData> {
  const email = `drill-${Date.now()}-${randomBytes(4).toString('hex')}@example.com`
  const body = JSON.stringify({ email, password: 'correct-horse-battery-staple' })
  const headers = { 'content-type': 'application/json' }
  await json(await fetch(`${baseUrl}/api/v1/auth/register`, { method: 'POST', body, headers }), 'register', 202)
  const { accessToken } = await json<{ accessToken: string }>(
    await fetch(`${baseUrl}/api/v1/auth/login`, { method: 'POST', body, headers }),
    'login',
    200,
  )
  const links: Link[] = []
  for (let start = 0; start < n; start += 20) {
    const batch = Array.from({ length: Math.min(20, n - start) }, async (_, i) => {
      const res = await fetch(`${baseUrl}/api/v1/links`, {
        method: 'POST',
        body: JSON.stringify({ url: `https://example.com/drill/${start + i}` }),
        headers: { ...headers, authorization: `Bearer ${accessToken}` },
      })
      const { id, code } = await json<Link>(res, 'POST /api/v1/links', 201)
      return { id, code }
    })
    links.push(...(await Promise.all(batch)))
  }
  return { token: accessToken, links }
}

/** One GET per link, so every link is in the redirect cache before a fault (what "cached redirects" means). */
export async function warm(baseUrl: string, links: Link[]): Promise<void> {
  for (let i = 0; i < links.length; i += 20) {
    await Promise.all(links.slice(i, i + 20).map(async (l) => (await fetch(`${baseUrl}/${l.code}`, { redirect: 'manual' })).arrayBuffer()))
  }
}

/** Sums the samples of a /metrics page by series name plus an optional label filter, e.g. `opsdrill_clicks_dropped_total`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue
    const m = line.match(/^[^{\s]+(\{[^}]*\})?\s+(\S+)/)
    if (!m) continue
    const labelText = m[1] ?? ''
    if (Object.entries(labels).some(([k, v]) => !labelText.includes(`${k}="${v}"`))) continue
    sum += Number(m[2])
  }
  return sum
}

/**
 * The /metrics pages at the given host:port addresses. A page that cannot be read throws: read as empty it would sum
 * to 0, which looks healthy ("no stalled jobs" while stress-ng starved the worker of CPU).
 */
export async function scrape(addrs: string[]): Promise<string[]> {
  return Promise.all(
    addrs.map(async (a) => {
      // OpenMetrics, as Prometheus asks for it: counters carry their _total suffix only in that format.
      const res = await fetch(`http://${a}/metrics`, {
        headers: { accept: 'application/openmetrics-text; version=1.0.0' },
        signal: AbortSignal.timeout(3000),
      }).catch((err: Error) => {
        throw new Error(`scrape of ${a}/metrics failed: ${err.message}`)
      })
      if (!res.ok) throw new Error(`scrape of ${a}/metrics answered ${res.status}`)
      return res.text()
    }),
  )
}

export async function readyz(addr: string): Promise<number> {
  try {
    const res = await fetch(`http://${addr}/readyz`, { signal: AbortSignal.timeout(3000) })
    await res.arrayBuffer()
    return res.status
  } catch {
    return 0
  }
}
