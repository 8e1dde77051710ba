// Liveness says the process runs; readiness says it can serve: Postgres and Redis answer and it is not shutting down.
import type { FastifyPluginAsync } from 'fastify'
import { Type } from 'typebox'

declare module 'fastify' {
  interface FastifyInstance {
    shuttingDown: boolean
  }
}

const Check = Type.Object({ status: Type.String(), checks: Type.Optional(Type.Record(Type.String(), Type.String())) })

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms).unref())])

const health: FastifyPluginAsync = async (app) => {
  // Never rate-limited or shed: an orchestrator must be able to ask while the server is busy.
  const opts = { config: { rateLimit: false as const, pressureHandler: () => undefined }, logLevel: 'warn' as const }
  app.get('/healthz', { ...opts, schema: { hide: true, response: { 200: Check } } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { ...opts, schema: { hide: true, response: { 200: Check, 503: Check } } }, async (_req, reply) => {
    if (app.shuttingDown) return reply.code(503).header('retry-after', '5').send({ status: 'shutting down' })
    const timeout = app.config.PG_CONNECT_TIMEOUT_MS
    const [pg, redis] = await Promise.allSettled([withTimeout(app.db.ping(), timeout), withTimeout(app.redis.ping(), timeout)])
    const checks = { postgres: pg.status === 'fulfilled' ? 'ok' : 'down', redis: redis.status === 'fulfilled' ? 'ok' : 'down' }
    const ready = pg.status === 'fulfilled' && redis.status === 'fulfilled'
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks })
  })
}
export default health
