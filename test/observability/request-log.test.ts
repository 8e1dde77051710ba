// Logs that join traces (service/plugins/request-log.ts), with every request sampled (always_on, ratio 1.0): each
// request has exactly one log line, carrying its server span's trace.id and span.id, nginx's request id, method,
// route, path, status and duration. The SDK starts before the app loads, as `node --import` does.
import t from 'tap'
import { SpanKind } from '@opentelemetry/api'
import { startTracing } from '../helpers/tracing.ts'

const exporter = startTracing(t, { OTEL_TRACES_SAMPLER: 'always_on' })

const { testApp, login, createLinkVia, BROWSER } = await import('../helpers/app.ts')

interface Line {
  message: string
  'log.level': string
  trace?: { id: string }
  span?: { id: string }
  http?: { request?: { id: string; method: string }; response?: { status_code: number }; route?: string }
  url?: { path: string }
  event?: { duration: number }
}

void t.test('when every request is sampled, then each has exactly one log line joining its trace', async (t) => {
  const { app, logs } = await testApp(t)
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/logged')
  exporter.reset()
  logs.length = 0
  const requests = [
    { method: 'GET', url: `/${link.code}?utm=secret`, headers: BROWSER, route: '/:code', status: 302 },
    { method: 'GET', url: '/nosuchcode', headers: BROWSER, route: '/:code', status: 404 },
    { method: 'GET', url: `/api/v1/links/${link.id}`, headers: auth, route: '/api/v1/links/:id', status: 200 },
    { method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 'not a url' }, route: '/api/v1/links', status: 400 },
  ] as const
  for (const [i, r] of requests.entries()) {
    const requestId = `nginx-request-${i}`
    const res = await app.inject({ ...r, headers: { ...r.headers, 'x-request-id': requestId } })
    t.equal(res.statusCode, r.status, `${r.method} ${r.url}: ${res.body}`)
    const span = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER && s.attributes['http.route'] === r.route)
    t.ok(span, `${r.method} ${r.url} has a server span`)
    const traceId = span!.spanContext().traceId
    exporter.reset()
    const lines = (logs as unknown as Line[]).filter((l) => l.trace?.id === traceId && l.event?.duration !== undefined)
    t.equal(lines.length, 1, `${r.method} ${r.url}: one request line with trace.id ${traceId}: ${JSON.stringify(logs)}`)
    const line = lines[0]!
    t.equal(line.span?.id, span!.spanContext().spanId, 'span.id of the server span')
    t.same(line.http, { request: { id: requestId, method: r.method }, response: { status_code: r.status }, route: r.route })
    t.equal(line.url?.path, r.url.split('?')[0], 'url.path without the query string')
    t.ok(Number.isInteger(line.event?.duration) && line.event!.duration > 0, `event.duration in ns: ${line.event?.duration}`)
    t.equal(line.message, `${r.method} ${r.route} ${r.status}`)
    t.equal(line['log.level'], 'info', 'a fast sampled request is logged at info')
    logs.length = 0
  }
})
