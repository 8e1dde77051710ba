// RED metrics per route template. Latency observations carry the trace id as an exemplar when a span is active.
import fp from 'fastify-plugin'
import { trace } from '@opentelemetry/api'
import { metrics } from '../../common/metrics.ts'

export default fp(
  async (app) => {
    // Callback-style hooks: on every request an async hook would allocate a promise for nothing. The duration is
    // Fastify's own (reply.elapsedTime), as request-log's is.
    app.addHook('onRequest', (_req, _reply, done) => {
      metrics.httpInFlight.inc()
      done()
    })
    app.addHook('onResponse', (req, reply, done) => {
      metrics.httpInFlight.dec()
      const seconds = reply.elapsedTime / 1e3
      const route = req.routeOptions.url ?? 'unmatched'
      const labels = { method: req.method, route, status_code: String(reply.statusCode) }
      const span = trace.getActiveSpan()
      const ctx = span?.spanContext()
      if (ctx && ctx.traceFlags & 1) metrics.httpDuration.observe({ labels, value: seconds, exemplarLabels: { trace_id: ctx.traceId } })
      else metrics.httpDuration.observe({ labels, value: seconds })
      done()
    })
  },
  { name: 'http-metrics', dependencies: ['request-log'] },
)
