// RED metrics per route template. Latency observations carry the trace id as an exemplar when a span is active.
import fp from 'fastify-plugin'
import { trace } from '@opentelemetry/api'
import { metrics } from '../../common/metrics.ts'

declare module 'fastify' {
  interface FastifyRequest {
    startedAt: bigint
  }
}

export default fp(
  async (app) => {
    app.decorateRequest('startedAt', 0n)
    // Callback-style hooks: on every request an async hook would allocate a promise for nothing.
    app.addHook('onRequest', (req, _reply, done) => {
      req.startedAt = process.hrtime.bigint()
      metrics.httpInFlight.inc()
      done()
    })
    app.addHook('onResponse', (req, reply, done) => {
      metrics.httpInFlight.dec()
      const seconds = Number(process.hrtime.bigint() - req.startedAt) / 1e9
      const route = req.routeOptions.url ?? 'unmatched'
      const labels = { method: req.method, route, status_code: String(reply.statusCode) }
      const span = trace.getActiveSpan()
      const ctx = span?.spanContext()
      if (ctx && ctx.traceFlags & 1) metrics.httpDuration.observe({ labels, value: seconds, exemplarLabels: { trace_id: ctx.traceId } })
      else metrics.httpDuration.observe({ labels, value: seconds })
      if (reply.statusCode >= 500)
        req.log.warn({ http: { response: { status_code: reply.statusCode } }, route, duration_s: seconds }, 'request answered 5xx')
      else req.log.debug({ route, status: reply.statusCode, duration_s: seconds }, 'request completed')
      done()
    })
  },
  { name: 'http-metrics' },
)
