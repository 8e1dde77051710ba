// The OpenTelemetry SDK set-up, shared by the --import entry (instrumentation.ts) and the trace tests.
// Everything is configured by the standard OTEL_* variables (exporter, endpoint, sampler, resource); the defaults
// below are opsdrill's choices where the spec leaves them to the application, each with its reason.
import { basename, dirname } from 'node:path'
import { NodeSDK, type NodeSDKConfiguration } from '@opentelemetry/sdk-node'
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { RequestGate, samplerFor, samplingRuleFromEnv, setFastifyTracing } from './sampling.ts'

/** By the entry's folder only: a checkout whose own path says "worker" still names its API opsdrill-api. */
export function defaultServiceName(entry = process.argv[1] ?? ''): string {
  return basename(dirname(entry)) === 'worker' ? 'opsdrill-worker' : 'opsdrill-api'
}

const HEALTH = /^\/(healthz|readyz)$/

/** Instrumentations: http, pg, ioredis and Fastify (via @fastify/otel); the noisy or redundant ones off. */
export function instrumentations(gate?: RequestGate) {
  const fastify = fastifyInstrumentation(gate)
  setFastifyTracing({ instrumentation: fastify, gate })
  return [
    getNodeAutoInstrumentations({
      // Off: per-call spans with no diagnostic value here that cost throughput on the hot path.
      '@opentelemetry/instrumentation-fs': { enabled: false },
      '@opentelemetry/instrumentation-dns': { enabled: false },
      '@opentelemetry/instrumentation-net': { enabled: false },
      // Logs get trace.id/span.id from common/logger.ts's mixin, in ECS field names.
      '@opentelemetry/instrumentation-pino': { enabled: false },
      // Outgoing calls only. The server span comes from @fastify/otel below: the incoming side of the http
      // instrumentation cost 45% of the redirect's throughput, sampled or not (docs/benchmarks.md).
      '@opentelemetry/instrumentation-http': { disableIncomingRequestInstrumentation: true },
      // Only spans inside a request or job: BullMQ's own polling (blocking pops, lock renewals) would otherwise
      // produce a root span per Redis command.
      '@opentelemetry/instrumentation-ioredis': { requireParentSpan: true },
      // No span per pool checkout: the queue for a connection is a metric (opsdrill_pg_pool_connections{state="waiting"}), and a span per
      // checkout doubled the spans of a one-query route.
      '@opentelemetry/instrumentation-pg': { requireParentSpan: true, enhancedDatabaseReporting: false, ignoreConnectSpans: true },
    }),
    fastify,
  ]
}

/**
 * The HTTP server span (W3C context extracted from the request headers) and the route handler's span, from the
 * Fastify team's own instrumentation. The server span is named `{method} {route}` as the HTTP semantic conventions
 * ask. No span per lifecycle hook: a request runs eight hooks, whose spans cost a third of the Postgres-backed route's
 * throughput when exported and tell little the handler's Redis and SQL spans do not. The redirect keeps the server
 * span alone (`config.otel` in service/routes/redirect.ts). The app registers its plugin (service/app.ts) after the
 * sampling gate's hook, which must run first.
 */
function fastifyInstrumentation(gate?: RequestGate): FastifyOtelInstrumentation {
  return new FastifyOtelInstrumentation({
    instrumentHooks: false,
    // Health probes are never traced; other requests the sampling gate dropped get no span (sampling.ts).
    ignorePaths: (opts) => HEALTH.test(opts.url) || (gate?.ignore(opts.url) ?? false),
    requestHook: (span, request) => {
      const route = request.routeOptions.url
      span.updateName(route ? `${request.method} ${route}` : request.method)
    },
  })
}

export function createSdk(overrides: Partial<NodeSDKConfiguration> = {}): NodeSDK {
  process.env.OTEL_SERVICE_NAME ??= defaultServiceName()
  // Parent-based ratio sampling by default: 10% of new traces, and always what the caller sampled.
  process.env.OTEL_TRACES_SAMPLER ??= 'parentbased_traceidratio'
  process.env.OTEL_TRACES_SAMPLER_ARG ??= '0.1'
  // No metrics through OTel: Prometheus scrapes prom-client's /metrics.
  process.env.OTEL_METRICS_EXPORTER ??= 'none'
  process.env.OTEL_LOGS_EXPORTER ??= 'none'
  if (process.env.INSTANCE_ID) {
    const attrs = process.env.OTEL_RESOURCE_ATTRIBUTES ? `${process.env.OTEL_RESOURCE_ATTRIBUTES},` : ''
    process.env.OTEL_RESOURCE_ATTRIBUTES = `${attrs}service.instance.id=${process.env.INSTANCE_ID}`
  }
  // The sampler the OTEL_TRACES_SAMPLER variables name, behind the request gate that takes its decision for HTTP
  // requests before a span exists (sampling.ts).
  const rule = samplingRuleFromEnv()
  const gate = rule && !overrides.sampler ? new RequestGate(rule) : undefined
  return new NodeSDK({
    instrumentations: instrumentations(gate),
    ...(gate && rule ? { sampler: gate.sampler(samplerFor(rule)) } : {}),
    ...overrides,
  })
}
