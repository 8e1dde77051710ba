// Reading the stack's Prometheus: instant and range queries, and waiting until a fresh scrape has happened.
import { setTimeout as sleep } from 'node:timers/promises'

export interface Sample {
  metric: Record<string, string>
  value: number
}
export interface Series {
  metric: Record<string, string>
  values: [number, number][]
}

async function api<T>(base: string, path: string, params: Record<string, string>): Promise<T> {
  const url = `${base}/api/v1/${path}?${new URLSearchParams(params)}`
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  const body = (await res.json()) as { status: string; data: { result: T }; error?: string }
  if (body.status !== 'success')
    throw new Error(`Prometheus query failed (${res.status}): ${body.error ?? 'unknown error'}: ${params.query}`)
  return body.data.result
}

export async function queryVector(base: string, query: string, time?: number): Promise<Sample[]> {
  const result = await api<{ metric: Record<string, string>; value: [number, string] }[]>(base, 'query', {
    query,
    ...(time ? { time: String(time) } : {}),
  })
  return result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
}

/** The single value of a query that aggregates to one series (0 when it has none). */
export async function queryScalar(base: string, query: string, time?: number): Promise<number> {
  const v = await queryVector(base, query, time)
  return v[0]?.value ?? 0
}

export async function queryRange(base: string, query: string, start: number, end: number, stepSec: number): Promise<Series[]> {
  const result = await api<{ metric: Record<string, string>; values: [number, string][] }[]>(base, 'query_range', {
    query,
    start: String(start),
    end: String(end),
    step: String(stepSec),
  })
  return result.map((r) => ({ metric: r.metric, values: r.values.map(([t, v]) => [t, Number(v)] as [number, number]) }))
}

/** Waits until every target of job has been scraped after `since` (unix seconds), so counters include all up to then. */
export async function waitForScrape(base: string, job: string, since: number, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    const res = await fetch(`${base}/api/v1/targets?state=active`, { signal: AbortSignal.timeout(5000) })
    const body = (await res.json()) as { data: { activeTargets: { labels: Record<string, string>; lastScrape: string; health: string }[] } }
    const targets = body.data.activeTargets.filter((t) => t.labels.job === job && t.health === 'up')
    if (targets.length > 0 && targets.every((t) => Date.parse(t.lastScrape) / 1000 > since)) return
    await sleep(500)
  }
  throw new Error(`Prometheus did not scrape every ${job} target within ${timeoutMs / 1000} s`)
}
