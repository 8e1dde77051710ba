// The redirect lookup: L1 (in-process LRU) -> Redis (cache-aside, TTL jitter, negative entries) -> Postgres, with
// single flight so a burst for one cold code reaches Postgres once per process. Redis failures fail open to Postgres.
// Changes are invalidated on every replica through Redis pub/sub; a second delayed delete covers a load that read
// the old row just before the change committed (see docs/architecture.md, "cache invalidation").
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { metrics } from '../../common/metrics.ts'
import type { Db } from '../../common/db.ts'
import { findTargetByCode, type LinkTarget } from '../repositories/links.ts'

declare module 'fastify' {
  interface FastifyInstance {
    linkCache: LinkCache
  }
}

const MISSING = Symbol('missing')
type Entry = LinkTarget | typeof MISSING

export interface LinkCacheOptions {
  enabled: boolean
  prefix: string
  ttlSeconds: number
  negativeTtlSeconds: number
  l1Max: number
  l1TtlMs: number
}

export interface LinkCache {
  resolve(code: string): Promise<LinkTarget | null>
  invalidate(code: string): Promise<void>
  close(): void
}

export function createLinkCache(db: Db, redis: Redis, subscriber: Redis, opts: LinkCacheOptions, log: FastifyBaseLogger): LinkCache {
  const l1 = opts.l1Max > 0 && opts.l1TtlMs > 0 ? new LRUCache<string, Entry>({ max: opts.l1Max, ttl: opts.l1TtlMs }) : null
  const inflight = new Map<string, Promise<LinkTarget | null>>()
  const channel = `${opts.prefix}:link-invalidate`
  const key = (code: string) => `${opts.prefix}:link:${code}`
  const timers = new Set<NodeJS.Timeout>()

  subscriber.subscribe(channel).catch((err: Error) => log.warn({ err }, 'cache invalidation subscribe failed; retried on reconnect'))
  const onMessage = (ch: string, code: string) => {
    if (ch !== channel) return
    l1?.delete(code)
    metrics.cacheInvalidations.inc({ origin: 'remote' })
  }
  subscriber.on('message', onMessage)

  function jitter(seconds: number): number {
    // +-10% so keys written together do not expire together.
    return Math.round(seconds * 1000 * (0.9 + Math.random() * 0.2))
  }

  async function load(code: string, writeBack: boolean): Promise<LinkTarget | null> {
    const row = await findTargetByCode(db, code)
    l1?.set(code, row ?? MISSING)
    if (writeBack) {
      const value = row ? JSON.stringify(row) : '0'
      const ttl = jitter(row ? opts.ttlSeconds : opts.negativeTtlSeconds)
      redis.set(key(code), value, 'PX', ttl).catch(() => metrics.cacheErrors.inc({ operation: 'set' }))
    }
    return row
  }

  function singleFlight(code: string, writeBack: boolean): Promise<LinkTarget | null> {
    const pending = inflight.get(code)
    if (pending) {
      metrics.cacheSingleFlightWaits.inc()
      return pending
    }
    const p = load(code, writeBack).finally(() => inflight.delete(code))
    inflight.set(code, p)
    return p
  }

  return {
    async resolve(code) {
      if (!opts.enabled) {
        metrics.cacheLookups.inc({ result: 'bypass' })
        return findTargetByCode(db, code)
      }
      const local = l1?.get(code)
      if (local !== undefined) {
        metrics.cacheLookups.inc({ result: local === MISSING ? 'negative_hit' : 'l1_hit' })
        return local === MISSING ? null : local
      }
      if (inflight.has(code)) return singleFlight(code, true)
      let raw: string | null = null
      let redisOk = true
      try {
        raw = await redis.get(key(code))
      } catch {
        redisOk = false
        metrics.cacheErrors.inc({ operation: 'get' })
        metrics.cacheFallbacks.inc()
      }
      if (raw !== null) {
        const entry: Entry = raw === '0' ? MISSING : (JSON.parse(raw) as LinkTarget)
        l1?.set(code, entry)
        metrics.cacheLookups.inc({ result: entry === MISSING ? 'negative_hit' : 'redis_hit' })
        return entry === MISSING ? null : entry
      }
      // A load for this code may have finished while our GET was on the wire: use its result, do not load again.
      const loaded = l1?.get(code)
      if (loaded !== undefined) {
        metrics.cacheLookups.inc({ result: loaded === MISSING ? 'negative_hit' : 'l1_hit' })
        return loaded === MISSING ? null : loaded
      }
      metrics.cacheLookups.inc({ result: 'miss' })
      return singleFlight(code, redisOk)
    },

    async invalidate(code) {
      l1?.delete(code)
      metrics.cacheInvalidations.inc({ origin: 'local' })
      if (!opts.enabled) return
      await redis.del(key(code)).catch(() => metrics.cacheErrors.inc({ operation: 'del' }))
      await redis.publish(channel, code).catch(() => metrics.cacheErrors.inc({ operation: 'publish' }))
      const t = setTimeout(() => {
        timers.delete(t)
        redis.del(key(code)).catch(() => metrics.cacheErrors.inc({ operation: 'del' }))
      }, 500)
      t.unref()
      timers.add(t)
    },

    close() {
      subscriber.off('message', onMessage)
      for (const t of timers) clearTimeout(t)
    },
  }
}

export default fp(
  async (app) => {
    const c = app.config
    const cache = createLinkCache(
      app.db,
      app.redis,
      app.redisSubscriber,
      {
        enabled: c.CACHE_ENABLED,
        prefix: c.REDIS_PREFIX,
        ttlSeconds: c.CACHE_TTL_SECONDS,
        negativeTtlSeconds: c.CACHE_NEGATIVE_TTL_SECONDS,
        l1Max: c.L1_CACHE_MAX,
        l1TtlMs: c.L1_CACHE_TTL_MS,
      },
      app.log,
    )
    app.decorate('linkCache', cache)
    app.addHook('onClose', async () => cache.close())
  },
  { name: 'link-cache', dependencies: ['db', 'redis'] },
)
