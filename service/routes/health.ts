// Liveness says the process runs; readiness says this replica can serve: it has started and is not draining. Store
// health is not part of readiness: with Redis or Postgres down every replica would leave the Service at once, cached
// redirects included, defeating fail-open. It is the opsdrill_dependency_up gauge and the DependencyUnreachable alert.
import type { FastifyPluginAsync } from 'fastify'
import { Type } from 'typebox'
import { observeDependencies } from '../../common/metrics.ts'

declare module 'fastify' {
  interface FastifyInstance {
    shuttingDown: boolean
  }
}

const Check = Type.Object({ status: Type.String() })

const health: FastifyPluginAsync = async (app) => {
  // Never rate-limited or shed: an orchestrator must be able to ask while the server is busy.
  const opts = { config: { rateLimit: false as const, pressureHandler: () => undefined }, logLevel: 'warn' as const }
  app.get('/healthz', { ...opts, schema: { hide: true, response: { 200: Check } } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { ...opts, schema: { hide: true, response: { 200: Check, 503: Check } } }, async (_req, reply) => {
    if (app.shuttingDown) return reply.code(503).header('retry-after', '5').send({ status: 'shutting down' })
    return reply.code(200).send({ status: 'ready' })
  })
  observeDependencies(
    { postgres: () => app.db.ping(), redis: () => app.redisProducer.ping(), redis_cache: () => app.redis.ping() },
    app.config.PG_CONNECT_TIMEOUT_MS,
  )
}
export default health
