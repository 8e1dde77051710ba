// The request gate (common/telemetry/sampling.ts) under the default kind of sampler, parent-based with a ratio (here
// 0.5, so both outcomes are frequent): it keeps its share of new requests, follows a caller's traceparent either way,
// and a request it drops gets no span at all. The SDK starts before the app loads, as `node --import` does.
import t from 'tap'
import { SpanKind, trace } from '@opentelemetry/api'
import { startTracing } from '../helpers/tracing.ts'
import { RequestGate, fastifyTracing, samplingRuleFromEnv } from '../../common/telemetry/sampling.ts'

const exporter = startTracing(t, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' })

const { testApp, login, createLinkVia } = await import('../helpers/app.ts')

const serverSpans = () => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER)

void t.test('when the SDK starts with a ratio sampler, then the gate mirrors it', async (t) => {
  const gate = fastifyTracing()?.gate
  t.ok(gate, 'createSdk installed a gate')
  t.same(gate?.rule, { ratio: 0.5, parentBased: true })
})

void t.test('when new requests arrive, then about half are traced and the dropped ones get no span at all', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/s')
  const gate = fastifyTracing()!.gate!
  const before = { ...gate.decided }
  exporter.reset()
  const N = 400
  for (let i = 0; i < N; i++) {
    const res = await app.inject({ method: 'GET', url: `/${link.code}` })
    t.equal(res.statusCode, 302)
  }
  const kept = gate.decided.kept - before.kept
  const dropped = gate.decided.dropped - before.dropped
  t.equal(kept + dropped, N, 'the gate decided every request')
  // Binomial(400, 0.5): outside 120..280 with a probability below 1e-15.
  t.ok(kept > 120 && kept < 280, `about half kept (${kept} of ${N})`)
  t.equal(serverSpans().length, kept, 'each kept request has one sampled SERVER span, each dropped one none')
})

void t.test("when a request carries a traceparent, then the caller's decision holds, whatever the ratio", async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/p')
  exporter.reset()
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  for (let i = 0; i < 30; i++) {
    await app.inject({ method: 'GET', url: `/${link.code}`, headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } })
    await app.inject({ method: 'GET', url: `/${link.code}`, headers: { traceparent: `00-${'1'.repeat(32)}-00f067aa0ba902b7-00` } })
  }
  const spans = serverSpans()
  t.equal(spans.length, 30, 'every request the caller sampled is traced, none it did not')
  t.ok(
    spans.every((s) => s.spanContext().traceId === traceId),
    "in the caller's trace",
  )
})

void t.test('when a span starts outside a request, then the configured sampler alone decides it', async (t) => {
  exporter.reset()
  const tracer = trace.getTracer('sampling-test')
  for (let i = 0; i < 400; i++) tracer.startSpan('job').end()
  const n = exporter.getFinishedSpans().length
  t.ok(n > 120 && n < 280, `about half of 400 root spans sampled by trace id (${n})`)
})

void t.test('when the decision is not for the request @fastify/otel asks about, then nothing is skipped', async (t) => {
  const gate = new RequestGate({ ratio: 0, parentBased: true })
  t.equal(gate.ignore('/abc'), false, 'no decision yet: not skipped')
  gate.hook({ url: '/abc', headers: {} }, undefined, () => undefined)
  t.equal(gate.ignore('/other'), false, 'a decision for another URL: not skipped')
  gate.hook({ url: '/abc', headers: {} }, undefined, () => undefined)
  t.equal(gate.ignore('/abc'), true, 'its own decision: skipped at ratio 0')
  t.equal(gate.ignore('/abc'), false, 'a decision is used once')
})

void t.test('when OTEL_TRACES_SAMPLER names a sampler, then the gate takes the same rule, or stays out', async (t) => {
  const rule = (sampler?: string, arg?: string) =>
    samplingRuleFromEnv({ ...(sampler ? { OTEL_TRACES_SAMPLER: sampler } : {}), ...(arg ? { OTEL_TRACES_SAMPLER_ARG: arg } : {}) })
  t.same(rule(), { ratio: 1, parentBased: true }, 'unset: parentbased_always_on, the spec default')
  t.same(rule('always_off'), { ratio: 0, parentBased: false })
  t.same(rule('traceidratio', '0.25'), { ratio: 0.25, parentBased: false })
  t.same(rule('parentbased_traceidratio', '2'), { ratio: 1, parentBased: true }, 'an invalid ratio is 1, as in the SDK')
  t.same(rule('parentbased_always_off'), { ratio: 0, parentBased: true })
  t.equal(rule('jaeger_remote'), undefined, 'a sampler it does not mirror is left to the SDK')
})
