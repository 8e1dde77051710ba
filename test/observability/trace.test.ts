// One trace from the HTTP request, through the enqueue (bullmq-otel carries the context in the job), into the
// worker's processing and its SQL — captured with an in-memory exporter. The SDK starts before the app's modules
// load, as `node --import` does in production, so the app and worker are imported dynamically below.
import t from 'tap'
import { register } from 'node:module'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace'
import { createSdk } from '../../common/telemetry/sdk.ts'

register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
process.env.OTEL_TRACES_SAMPLER = 'always_on'
process.env.OTEL_TRACES_EXPORTER = 'none'
const exporter = new InMemorySpanExporter()
const sdk = createSdk({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
sdk.start()
t.teardown(() => sdk.shutdown())

const { testApp, login } = await import('../helpers/app.ts')
const { workerConfig } = await import('../helpers/env.ts')
const { startWorker } = await import('../../worker/app.ts')
const { registry } = await import('../../common/metrics.ts')
const pg = (await import('pg')).default

const spanId = (s: ReadableSpan) => s.spanContext().spanId
const parentId = (s: ReadableSpan) => s.parentSpanContext?.spanId

void t.test('when an export is requested, then one trace runs from the HTTP request to the worker and its SQL', async (t) => {
  const { app, config, databaseUrl } = await testApp(t)
  const worker = await startWorker(workerConfig(databaseUrl, { REDIS_PREFIX: config.REDIS_PREFIX, LOG_LEVEL: 'silent' }))
  t.teardown(() => worker.close())
  const { auth } = await login(app)
  const link = (
    await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 'https://example.com/t' } })
  ).json() as { id: string }
  exporter.reset()

  const res = await app.inject({ method: 'POST', url: `/api/v1/links/${link.id}/exports`, headers: auth })
  t.equal(res.statusCode, 202, res.body)
  const { exportId } = res.json() as { exportId: string }
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  for (let i = 0; i < 100; i++) {
    const { rows } = await db.query<{ status: string }>('SELECT status FROM exports WHERE id = $1', [exportId])
    if (rows[0]?.status === 'done') break
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
  registry.setContentType('application/openmetrics-text; version=1.0.0; charset=utf-8')
  const text = await registry.metrics()
  t.match(text, /opsdrill_http_request_duration_seconds_bucket\{[^}]*route="\/api\/v1\/links"[^}]*\} \d+ # \{trace_id="[0-9a-f]{32}"\}/)
})

void t.test('when a redirect is traced, then the HTTP server span is named by its route and Fastify hook spans are skipped', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = (
    await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 'https://example.com/r' } })
  ).json() as { code: string }
  // Over a real socket: inject() bypasses Node's HTTP server, whose instrumentation makes the server span.
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  exporter.reset()
  const res = await fetch(`${address}/${link.code}`, { redirect: 'manual' })
  t.equal(res.status, 302)
  await new Promise((r) => setTimeout(r, 50))
  const spans = exporter.getFinishedSpans()
  const server = spans.find((s) => s.attributes['http.route'] === '/:code')
  t.ok(server, `a span carries http.route /:code (spans: ${spans.map((s) => s.name).join(', ')})`)
  t.equal(server?.name, 'GET /:code')
  t.notOk(
    spans.some((s) => s.instrumentationScope.name === '@fastify/otel'),
    'no per-hook Fastify spans on the hot path',
  )
})
