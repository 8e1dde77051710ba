// ECS JSON logs on stdout (https://www.elastic.co/guide/en/ecs-logging/nodejs/current/pino.html).
// The ECS formatter adds trace.id/span.id from the active OpenTelemetry span. Secrets are redacted by path.
import { pino, type ChildLoggerOptions, type Logger, type DestinationStream } from 'pino'
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

type Bindings = Record<string, unknown>
type ChildOptions = ChildLoggerOptions | undefined

/**
 * Fastify's childLoggerFactory: a request's logger, made into a pino child only when the request first logs. Fastify
 * makes a child for every request (to bind its id), and pino's child() serialises and redacts the bindings at once:
 * 2.4% of the redirect's CPU in a profile, on a path that logs one request in ten (the sampled ones) or none.
 */
export function lazyChildLogger(parent: Logger, bindings: Bindings, opts: ChildOptions): Logger {
  return new LazyChild(parent, bindings, opts) as unknown as Logger
}

class LazyChild {
  #real: Logger | undefined
  readonly #parent: Logger
  readonly #bindings: Bindings
  readonly #opts: ChildOptions
  constructor(parent: Logger, bindings: Bindings, opts: ChildOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#opts = opts
  }
  get #logger(): Logger {
    return (this.#real ??= this.#parent.child(this.#bindings, this.#opts) as Logger)
  }
  get level(): string {
    return this.#real?.level ?? this.#opts?.level ?? this.#parent.level
  }
  set level(level: string) {
    this.#logger.level = level
  }
  isLevelEnabled(level: string): boolean {
    // A route's own level (Fastify's logLevel) is the child's: asked of the child itself.
    return this.#real || this.#opts?.level ? this.#logger.isLevelEnabled(level) : this.#parent.isLevelEnabled(level)
  }
  bindings(): Bindings {
    return this.#logger.bindings()
  }
  child(bindings: Bindings, opts?: ChildOptions): Logger {
    return this.#logger.child(bindings, opts) as Logger
  }
  // A level the logger does not write returns before the child is made.
  #write(level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace', args: unknown[]): void {
    if (this.isLevelEnabled(level)) (this.#logger[level] as (...a: unknown[]) => void)(...args)
  }
  fatal(...args: unknown[]): void {
    this.#write('fatal', args)
  }
  error(...args: unknown[]): void {
    this.#write('error', args)
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args)
  }
  info(...args: unknown[]): void {
    this.#write('info', args)
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args)
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args)
  }
  silent(): void {}
}
