// One ECS line per request worth reading: every sampled request (so each trace in Tempo/Kibana has a log line that
// joins it on trace.id), every 5xx and every slow request, sampled or not. The logger's mixin adds trace.id and
// span.id from the active span (common/logger.ts); http.request.id is nginx's $request_id (X-Request-Id), which the
// nginx access line carries too.
//
// 4xx answers are logged only when sampled or slow: they are the client's mistake (bad input, an unknown code, a
// rate limit), counted per route and status by http-metrics, and on the public redirect anyone can cause any number
// of them, so logging each would let a scanner or a flood drive the log volume.
//
// The redirect's hot path is an unsampled, fast 2xx/3xx. It must not pay for logging it does not do: it gets one
// getActiveSpan() (undefined: the sampling gate started no span, common/telemetry/sampling.ts) and two comparisons,
// and nothing is built for the line unless it is written.
import fp from 'fastify-plugin'
import { TraceFlags, trace } from '@opentelemetry/api'

declare module 'fastify' {
  interface FastifyRequest {
    startedAt: bigint
  }
}

export interface RequestLogOptions {
  /** A request taking at least this long (ms) is logged whether or not it is sampled. */
  slowMs: number
}

export default fp<RequestLogOptions>(
  async (app, { slowMs }) => {
    const slowNs = BigInt(slowMs) * 1_000_000n
    app.decorateRequest('startedAt', 0n)
    // Callback-style hooks: on every request an async hook would allocate a promise for nothing.
    app.addHook('onRequest', (req, _reply, done) => {
      req.startedAt = process.hrtime.bigint()
      done()
    })
    app.addHook('onResponse', (req, reply, done) => {
      const ns = process.hrtime.bigint() - req.startedAt
      const status = reply.statusCode
      const ctx = trace.getActiveSpan()?.spanContext()
      const sampled = ctx !== undefined && (ctx.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED
      if (!sampled && status < 500 && ns < slowNs) return done()
      const route = req.routeOptions.url ?? 'unmatched'
      const q = req.url.indexOf('?')
      const fields = {
        http: { request: { id: req.id, method: req.method }, response: { status_code: status }, route },
        // The path only: a query string may carry what does not belong in logs.
        url: { path: q === -1 ? req.url : req.url.slice(0, q) },
        event: { duration: Number(ns) },
      }
      const message = `${req.method} ${route} ${status}`
      if (status >= 500) req.log.error(fields, message)
      else if (ns >= slowNs) req.log.warn(fields, message)
      else req.log.info(fields, message)
      done()
    })
  },
  { name: 'request-log' },
)
