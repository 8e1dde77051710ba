// One trace from the HTTP request, through the enqueue (bullmq-otel carries the context in the job), into the
// worker's processing and its SQL — captured with an in-memory exporter. The SDK starts before the app's modules
// load, as `node --import` does in production, so the app and worker are imported dynamically below.
import t from 'tap'
import { connect, type AddressInfo } from 'node:net'
import { SpanKind } from '@opentelemetry/api'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import { startTracing } from '../helpers/tracing.ts'

const exporter = startTracing(t, { OTEL_TRACES_SAMPLER: 'always_on' })

const { testApp, login, createLinkVia } = await import('../helpers/app.ts')
const { workerConfig } = await import('../helpers/env.ts')
const { startWorker } = await import('../../worker/app.ts')
const { renderMetrics } = await import('../../common/metrics.ts')
const pg = (await import('pg')).default

/** GET over a plain socket: returns the response head. */
async function rawGet(app: { server: { address(): unknown } }, path: string, headers: Record<string, string>): Promise<string> {
  const { port } = app.server.address() as AddressInfo
  const socket = connect(port, '127.0.0.1')
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`)
  socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n${extra.join('')}\r\n`)
  let text = ''
  for await (const chunk of socket) text += String(chunk)
  return text.split('\r\n\r\n')[0] ?? ''
}

const spanId = (s: ReadableSpan) => s.spanContext().spanId
const parentId = (s: ReadableSpan) => s.parentSpanContext?.spanId

void t.test('when an export is requested, then one trace runs from the HTTP request to the worker and its SQL', async (t) => {
  const { app, config, databaseUrl } = await testApp(t)
  const worker = await startWorker(workerConfig(databaseUrl, { REDIS_PREFIX: config.REDIS_PREFIX, LOG_LEVEL: 'silent' }))
  t.teardown(() => worker.close())
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/t')
  exporter.reset()

  const res = await app.inject({ method: 'POST', url: `/api/v1/links/${link.id}/exports`, headers: auth })
  t.equal(res.statusCode, 202, res.body)
  const { exportId } = res.json() as { exportId: string }
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  // The job writes status 'done' inside its processing span, which ends only once the processor returns: wait for both.
  const processed = () => exporter.getFinishedSpans().some((s) => /process/i.test(s.name) && /exports/.test(s.name))
  for (let i = 0; i < 100; i++) {
    const { rows } = await db.query<{ status: string }>('SELECT status FROM exports WHERE id = $1', [exportId])
    if (rows[0]?.status === 'done' && processed()) break
    await new Promise((r) => setTimeout(r, 100))
  }

  const spans = exporter.getFinishedSpans()
  const root = spans.find(
    (s) => s.attributes['http.route'] === '/api/v1/links/:id/exports' || /POST \/api\/v1\/links\/:id\/exports/.test(s.name),
  )
  t.ok(root, `an HTTP span for the export route (spans: ${[...new Set(spans.map((s) => s.name))].join(', ')})`)
  if (!root) return
  const traceId = root.spanContext().traceId
  const inTrace = spans.filter((s) => s.spanContext().traceId === traceId)
  const byId = new Map(inTrace.map((s) => [spanId(s), s]))
  const ancestors = (s: ReadableSpan): ReadableSpan[] => {
    const chain: ReadableSpan[] = []
    for (let p = parentId(s); p && byId.has(p); p = parentId(byId.get(p)!)) chain.push(byId.get(p)!)
    return chain
  }
  const names = inTrace.map((s) => s.name)
  t.ok(
    inTrace.some(
      (s) => /pg\.query/.test(s.name) && /INSERT/.test(String(s.attributes['db.statement'] ?? s.attributes['db.query.text'] ?? s.name)),
    ),
    `the API's INSERT into exports is in the trace: ${names.join(', ')}`,
  )
  const producer = inTrace.find((s) => /add/i.test(s.name) && /exports/.test(s.name))
  t.ok(producer, `a producer span for the enqueue is in the trace: ${names.join(', ')}`)
  const consumer = inTrace.find((s) => /process/i.test(s.name) && /exports/.test(s.name))
  t.ok(consumer, `the worker's processing span is in the same trace: ${names.join(', ')}`)
  const workerSql = inTrace.filter((s) => /pg\.query/.test(s.name) && consumer && ancestors(s).includes(consumer))
  t.ok(workerSql.length > 0, 'the worker SQL spans descend from the processing span')
  for (const s of workerSql)
    t.ok(ancestors(s).some((a) => spanId(a) === spanId(root)) || !parentId(root), 'and, through it, from the HTTP request')
})

void t.test('when a sampled request is measured, then the latency histogram carries its trace id as an exemplar', async (t) => {
  const { app } = await testApp(t)
  await app.inject({ method: 'GET', url: '/api/v1/links' })
  const { body: text } = await renderMetrics('openmetrics')
  t.match(text, /opsdrill_http_request_duration_seconds_bucket\{[^}]*route="\/api\/v1\/links"[^}]*\} \d+ # \{trace_id="[0-9a-f]{32}"\}/)
})

void t.test("when a redirect is traced, then it has one SERVER span named by its route, in the caller's trace", async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/r')
  // Over a raw socket, as a traced proxy would call it (fetch and http.request are instrumented in this process
  // and would put their own client span's traceparent on the request).
  await app.listen({ host: '127.0.0.1', port: 0 })
  exporter.reset()
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const head = await rawGet(app, `/${link.code}`, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })
  t.match(head, /^HTTP\/1\.1 302 /)
  await new Promise((r) => setTimeout(r, 50))
  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId)
  const fastify = spans.filter((s) => s.instrumentationScope.name === '@fastify/otel')
  t.same(
    fastify.map((s) => ({
      name: s.name,
      kind: s.kind,
      route: s.attributes['http.route'],
      status: s.attributes['http.response.status_code'],
    })),
    [{ name: 'GET /:code', kind: SpanKind.SERVER, route: '/:code', status: 302 }],
    'one SERVER span, no per-hook spans on the hot path',
  )
  const server = fastify[0]
  t.equal(server?.parentSpanContext?.spanId, '00f067aa0ba902b7', "the caller's span is its parent (W3C traceparent)")
  const others = spans.filter((s) => s !== server)
  t.ok(
    others.length > 0,
    `the first lookup misses the cache, so its Redis and SQL spans are in the trace (${others.map((s) => s.name).join(', ')})`,
  )
  t.ok(
    others.every((s) => parentId(s) === server?.spanContext().spanId),
    'and they are children of the server span',
  )
})

void t.test('when an API route is traced, then its SERVER span is named {method} {route} with the handler span below it', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  exporter.reset()
  t.equal((await fetch(`${address}/api/v1/links`, { headers: auth })).status, 200)
  await new Promise((r) => setTimeout(r, 50))
  const fastify = exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === '@fastify/otel')
  const server = fastify.find((s) => s.kind === SpanKind.SERVER)
  t.equal(server?.name, 'GET /api/v1/links')
  const children = fastify.filter((s) => s !== server)
  t.ok(
    children.length > 0 && children.every((s) => parentId(s) === server?.spanContext().spanId && /^handler/.test(s.name)),
    `the route handler's span is its child, and no lifecycle hook has one (${children.map((s) => s.name).join(', ')})`,
  )
})
