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

export interface RequestLogOptions {
  /** A request taking at least this long (ms) is logged whether or not it is sampled. */
  slowMs: number
}

export default fp<RequestLogOptions>(
  async (app, { slowMs }) => {
    // A callback-style hook: on every request an async hook would allocate a promise for nothing. The duration is
    // Fastify's own (reply.elapsedTime, from routing to the response's end): a clock read in an onRequest hook of
    // our own cost the redirect 3% of its CPU in a profile, for the same figure.
    app.addHook('onResponse', (req, reply, done) => {
      const ms = reply.elapsedTime
      const status = reply.statusCode
      const ctx = trace.getActiveSpan()?.spanContext()
      const sampled = ctx !== undefined && (ctx.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED
      if (!sampled && status < 500 && ms < slowMs) return done()
      const route = req.routeOptions.url ?? 'unmatched'
      const q = req.url.indexOf('?')
      const fields = {
        http: { request: { id: req.id, method: req.method }, response: { status_code: status }, route },
        // The path only: a query string may carry what does not belong in logs.
        url: { path: q === -1 ? req.url : req.url.slice(0, q) },
        event: { duration: Math.round(ms * 1e6) },
      }
      const message = `${req.method} ${route} ${status}`
      if (status >= 500) req.log.error(fields, message)
      else if (ms >= slowMs) req.log.warn(fields, message)
      else req.log.info(fields, message)
      done()
    })
  },
  { name: 'request-log' },
)
