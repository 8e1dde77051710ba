// Queries of the log store (VictoriaLogs' LogsQL HTTP API, https://docs.victoriametrics.com/victorialogs/querying/),
// for the tests that prove a line arrived and for the drill reports' error lines per service.

/** One stored line: its fields by their dotted ECS names, with VictoriaLogs' _time (the line's @timestamp) and _msg. */
export type LogRow = Record<string, string>

export class LogsQueryError extends Error {}

/**
 * The lines matching a LogsQL query, newest first. `start`/`end` bound the search (ms since the epoch); without them
 * VictoriaLogs searches everything it holds.
 */
export async function logsQuery(
  baseUrl: string,
  query: string,
  opts: { start?: number; end?: number; limit?: number } = {},
): Promise<LogRow[]> {
  const form = new URLSearchParams({ query, limit: String(opts.limit ?? 1000) })
  if (opts.start !== undefined) form.set('start', new Date(opts.start).toISOString())
  if (opts.end !== undefined) form.set('end', new Date(opts.end).toISOString())
  const res = await fetch(`${baseUrl}/select/logsql/query`, { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  if (!res.ok) throw new LogsQueryError(`LogsQL query ${JSON.stringify(query)} failed: ${res.status} ${text.trim().slice(0, 300)}`)
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogRow)
}

/** Error lines (log.level:error) between two instants, counted per service.name. */
export async function errorLinesPerService(baseUrl: string, start: number, end: number): Promise<Record<string, number>> {
  const rows = await logsQuery(baseUrl, `${ERROR_LINES} | stats by (service.name) count() as lines`, { start, end })
  return Object.fromEntries(rows.map((r) => [r['service.name'] || '(none)', Number(r.lines)]))
}

export const ERROR_LINES = 'log.level:error'

/** A LogsQL filter for a time window: in the query itself, so a link carries it whatever the UI's own range. */
export function timeWindow(start: number, end: number): string {
  return `_time:[${new Date(start).toISOString()}, ${new Date(end).toISOString()}]`
}

/** A link that opens VictoriaLogs' web UI (vmui) on a query. */
export function logsUiLink(uiUrl: string, query: string): string {
  return `${uiUrl}#/?${new URLSearchParams({ query }).toString()}`
}
