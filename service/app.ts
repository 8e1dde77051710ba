// Builds the API as a plugin tree and never listens (server.ts does). Tests build it and call inject().
// Load order: ecosystem plugins, the app's own plugins (db, redis, cache, queues, metrics, auth), then routes.
import { randomUUID } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import underPressure from '@fastify/under-pressure'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import type { Logger } from 'pino'
import type { ApiConfig } from '../common/config.ts'
import { lazyChildLogger } from '../common/logger.ts'
import { metrics } from '../common/metrics.ts'
import { fastifyTracing } from '../common/telemetry/sampling.ts'
import errors, { frameworkErrors, MAX_PARAM_LENGTH } from './plugins/errors.ts'
import { dbPlugin, redisPlugin } from './plugins/infra.ts'
import linkCache from './plugins/link-cache.ts'
import queues from './plugins/queues.ts'
import auth from './plugins/auth.ts'
import authLimit from './plugins/auth-limit.ts'
import httpMetrics from './plugins/http-metrics.ts'
import requestLog from './plugins/request-log.ts'
import securityHeaders from './plugins/security-headers.ts'
import { LinkSchema, ExportSchema } from './routes/schemas.ts'
import health from './routes/health.ts'
import authRoutes from './routes/api/v1/auth/index.ts'
import linkRoutes from './routes/api/v1/links/index.ts'
import exportRoutes from './routes/api/v1/exports/index.ts'
import adminRoutes from './routes/api/v1/admin/index.ts'
import queuesUi, { BASE_PATH as QUEUES_UI } from './routes/admin/queues.ts'
import redirectRoute from './routes/redirect.ts'
import { HttpProblem } from './problems.ts'
import { Type } from 'typebox'

const overloaded = () =>
  new HttpProblem(503, 'OVERLOADED', 'Service Unavailable', 'the server is overloaded; retry shortly', { headers: { 'retry-after': '1' } })

export type App = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>

export interface BuildOptions {
  config: ApiConfig
  logger: Logger
}

function validators() {
  // Bodies are validated strictly: no type coercion, unknown fields rejected (not silently removed).
  // Params and query strings arrive as text, so those are coerced.
  const base = { removeAdditional: false, useDefaults: true, allErrors: false, strict: false } as const
  const body = new Ajv({ ...base, coerceTypes: false })
  const text = new Ajv({ ...base, coerceTypes: 'array' })
  addFormats.default(body)
  addFormats.default(text)
  return { body, text }
}

export async function buildApp({ config, logger }: BuildOptions): Promise<App> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Fastify's two lines per request are off: request-log writes one, for the requests worth a line.
    logController: new LogController({ disableRequestLogging: true }),
    // A request's child logger is made when it first logs, not for every request (common/logger.ts).
    childLoggerFactory: (parent, bindings, opts) => lazyChildLogger(parent as Logger, bindings, opts) as FastifyBaseLogger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    trustProxy: config.TRUSTED_PROXIES.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    forceCloseConnections: 'idle',
    // A request that reaches the router after close() began (the next one on a keep-alive connection that was busy
    // when the listener closed) is served with `Connection: close`, not refused: nginx does not retry a 503, and the
    // pools stay open until the last connection ends (a 503 here failed a request in the deploy test).
    return503OnClosing: false,
    // /admin/queues and /admin/queues/ are the same page (bull-board mounts its index at the slash).
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors,
  }).withTypeProvider<TypeBoxTypeProvider>()
  // Tracing first, so the server span covers every other hook: the sampling gate's hook decides whether a request is
  // traced, then @fastify/otel's starts the span, or none for a dropped request (common/telemetry/sampling.ts).
  const tracing = fastifyTracing()
  if (tracing?.gate) app.addHook('onRequest', tracing.gate.hook)
  if (tracing) await app.register(tracing.instrumentation.plugin())

  const ajv = validators()
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? ajv.body : ajv.text).compile(schema))
  app.decorate('config', config)
  app.decorate('shuttingDown', false)
  app.addSchema(LinkSchema)
  app.addSchema(ExportSchema)
  // Callback style: an async hook allocates a promise and a microtask on every response.
  app.addHook('onSend', (req, reply, payload, done) => {
    reply.header('x-request-id', req.id)
    // Once the listener has closed in a shutdown (service/server.ts), end each keep-alive connection after its
    // response: closing only the idle ones would leave the busy ones holding the shutdown until the grace timeout.
    if (app.shuttingDown && !app.server.listening) reply.header('connection', 'close')
    done(null, payload)
  })

  await app.register(errors)
  await app.register(requestLog, { slowMs: config.LOG_SLOW_REQUEST_MS })
  if (config.METRICS_ENABLED) await app.register(httpMetrics)
  // An API that answers JSON and redirects needs only the minimal CSP OWASP gives for REST services
  // (https://cheatsheetseries.owasp.org/cheatsheets/REST_Security_Cheat_Sheet.html#security-headers); the Swagger UI
  // sets its own (staticCSP) and bull-board's pages relax it. Helmet's other headers stay at their defaults.
  await app.register(securityHeaders, {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  })
  // Start-up (module loading, schema compilation) stalls the event loop, and under-pressure's first samples cover
  // it: nothing is shed until two sample intervals after the app is ready, when every sample is of real traffic.
  const sampleInterval = 1000
  let shedFrom = Infinity
  app.addHook('onReady', async () => {
    shedFrom = Date.now() + 2 * sampleInterval
  })
  await app.register(underPressure, {
    maxEventLoopDelay: config.MAX_EVENT_LOOP_DELAY_MS,
    maxEventLoopUtilization: config.MAX_EVENT_LOOP_UTILIZATION,
    sampleInterval,
    // A rejected promise ends the request through the error handler (one problem format); a resolved one lets it
    // through (see handlePressure in @fastify/under-pressure). Health routes override this to pass (routes/health.ts).
    pressureHandler: async (_req, _reply, type) => {
      if (Date.now() < shedFrom) return
      metrics.httpShed.inc({ reason: type })
      throw overloaded()
    },
  })
  await app.register(dbPlugin, { config })
  await app.register(redisPlugin, { config })
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'opsdrill API',
        version: '1.0.0',
        description: 'Link shortener with click analytics. Errors are RFC 9457 problem+json.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
    // The router answers any route with a path parameter 414 before the route runs (frameworkErrors above).
    transform: ({ schema, url }) =>
      schema && url.includes(':')
        ? { schema: { ...schema, response: { ...(schema.response as object), 414: Type.Ref('Problem') } }, url }
        : { schema, url },
  })
  await app.register(auth)
  await app.register(linkCache)
  await app.register(queues)

  await app.register(health)
  // Rate limits, one limiter per scope. The API routes count in Redis, so every replica shares one budget per
  // client. The redirect counts in each replica's memory: a Redis round trip on every redirect cost 37% of its
  // throughput (docs/benchmarks.md), and a public hot path is limited at the edge as well (nginx, the ingress).
  const limits = (max: number) => ({
    global: true,
    max,
    timeWindow: config.RATE_LIMIT_WINDOW_MS,
    errorResponseBuilder: (_req: unknown, ctx: { max: number; after: string; ttl: number }) =>
      Object.assign(new Error(`rate limit of ${ctx.max} requests per ${ctx.after} exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`), {
        statusCode: 429,
      }),
  })
  await app.register(async (api) => {
    if (config.RATE_LIMIT_ENABLED) {
      await api.register(rateLimit, {
        ...limits(config.RATE_LIMIT_GLOBAL_MAX),
        redis: app.redis,
        nameSpace: `${config.REDIS_PREFIX}:rl:`,
        // With Redis down the limiter lets requests through rather than failing them.
        skipOnError: true,
      })
    }
    await api.register(authLimit)
    await api.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
    await api.register(authRoutes, { prefix: '/api/v1/auth' })
    await api.register(linkRoutes, { prefix: '/api/v1/links' })
    await api.register(exportRoutes, { prefix: '/api/v1/exports' })
    await api.register(adminRoutes, { prefix: '/api/v1/admin' })
    await api.register(queuesUi, { prefix: QUEUES_UI })
  })
  await app.register(async (hot) => {
    // A browser following a redirect never reads X-RateLimit-*: they are sent on the 429 alone.
    const quiet = { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false }
    if (config.RATE_LIMIT_ENABLED)
      await hot.register(rateLimit, { ...limits(config.RATE_LIMIT_REDIRECT_MAX), addHeadersOnExceeding: quiet })
    await hot.register(redirectRoute)
  })
  return app
}
