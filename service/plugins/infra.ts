// Postgres pool and Redis clients as named plugins, each closed in onClose.
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { createDb, dbOptions, type Db } from '../../common/db.ts'
import { closeRedis, createRedis } from '../../common/redis.ts'
import { observePgPool } from '../../common/metrics.ts'
import type { ApiConfig } from '../../common/config.ts'

declare module 'fastify' {
  interface FastifyInstance {
    config: ApiConfig
    db: Db
    /** Fail-fast client of the cache Redis (CACHE_REDIS_URL): redirect cache, stats cache and rate limits. */
    redis: Redis
    /** Fail-fast client of the queue Redis (REDIS_URL) for BullMQ producers. */
    redisProducer: Redis
    /** Pub/sub subscriber on the cache Redis for cross-replica cache invalidation. */
    redisSubscriber: Redis
  }
}

export const dbPlugin = fp<{ config: ApiConfig }>(
  async (app, { config }) => {
    const db = createDb(dbOptions(config, `opsdrill-api:${config.INSTANCE_ID}`), app.log)
    observePgPool(db.pool)
    app.decorate('db', db)
    app.addHook('onClose', async () => db.close())
  },
  { name: 'db' },
)

export const redisPlugin = fp<{ config: ApiConfig }>(
  async (app, { config }) => {
    // Two servers: queues need a Redis that never evicts (a lost job is a lost click), and a cache needs one that does
    // (a flood of negative lookups or hot links must not fill the queues' memory and make BullMQ writes fail). Rate-limit
    // counters go with the cache: an evicted counter only restarts a client's window, as a Redis failure already does
    // (skipOnError), while a flood of distinct clients must not fill the queue Redis either.
    const timeouts = { commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS, connectTimeoutMs: config.REDIS_CONNECT_TIMEOUT_MS }
    const cacheOpts = { ...timeouts, url: config.CACHE_REDIS_URL ?? config.REDIS_URL }
    const redis = createRedis('cache', cacheOpts, app.log)
    const producer = createRedis(
      'producer',
      { url: config.REDIS_URL, connectTimeoutMs: config.REDIS_CONNECT_TIMEOUT_MS, commandTimeoutMs: config.REDIS_QUEUE_COMMAND_TIMEOUT_MS },
      app.log,
    )
    const subscriber = createRedis('subscriber', cacheOpts, app.log)
    app.decorate('redis', redis)
    app.decorate('redisProducer', producer)
    app.decorate('redisSubscriber', subscriber)
    // The fail-fast clients have no offline queue: until connected, every cache lookup would go to Postgres and the
    // rate limiter (skipOnError) would let everything through. So start serving once they are ready, or after the
    // connect timeout when Redis is down (the app then fails open, as it does during an outage).
    app.addHook('onReady', async () => {
      await Promise.all([redis, producer, subscriber].map((c) => whenReady(c, config.REDIS_CONNECT_TIMEOUT_MS)))
    })
    // Closed last (after the cache and queue plugins' own onClose hooks, which run in reverse order).
    app.addHook('onClose', async () => {
      await Promise.all([closeRedis(redis), closeRedis(producer), closeRedis(subscriber)])
    })
  },
  { name: 'redis' },
)

function whenReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      client.off('ready', done)
      resolve()
    }
    const timer = setTimeout(done, timeoutMs)
    client.once('ready', done)
  })
}
