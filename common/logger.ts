// ECS JSON logs on stdout (https://www.elastic.co/guide/en/ecs-logging/nodejs/current/pino.html).
// The ECS formatter adds trace.id/span.id from the active OpenTelemetry span. Secrets are redacted by path.
import { pino, type Logger, type DestinationStream } from 'pino'
import { ecsFormat } from '@elastic/ecs-pino-format'
import { isSpanContextValid, trace } from '@opentelemetry/api'
import { redactCredentials } from './redact.ts'

export const REDACT_PATHS = [
  'password',
  '*.password',
  'accessToken',
  '*.accessToken',
  'token',
  '*.token',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'http.request.headers.authorization',
  'http.request.headers.cookie',
  'client.address',
  'client.ip',
  'source.address',
  'source.ip',
]

export interface LoggerOptions {
  serviceName: string
  instanceId: string
  level: string
}

export function createLogger(opts: LoggerOptions, destination?: DestinationStream): Logger {
  const ecs = ecsFormat({ serviceName: opts.serviceName, convertReqRes: true, apmIntegration: false })
  return pino(
    {
      ...ecs,
      level: opts.level,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      // Paths cannot reach a password inside a text, such as a connection URL a client library put in its error:
      // each finished line has the userinfo of any URL in it replaced.
      hooks: { streamWrite: redactCredentials },
      // service.name comes from ecsFormat (as a dotted key): naming it here too would put it in each line twice.
      base: { service: { node: { name: opts.instanceId } } },
      // ECS trace fields from the active OpenTelemetry span, so Kibana and Grafana join logs to traces by trace.id.
      mixin() {
        const ctx = trace.getActiveSpan()?.spanContext()
        // A request the sampling gate dropped has no span, so no trace fields (common/telemetry/sampling.ts).
        return ctx && isSpanContextValid(ctx) ? { trace: { id: ctx.traceId }, span: { id: ctx.spanId } } : {}
      },
    },
    destination,
  )
}

export type { Logger }
/** What shared code needs of a logger: satisfied by pino and by Fastify's request/app loggers. */
export type Log = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>
