// The redirect lookup: L1 (in-process LRU) -> Redis (cache-aside, TTL jitter, negative entries) -> Postgres, with
// single flight so a burst for one cold code reaches Postgres once per process. Redis failures fail open to Postgres.
//
// Changes and stale entries (README, "Cache invalidation"): every link row has a version that each change bumps. A
// Redis entry carries the version it was loaded at, and every write goes through a script that refuses to replace a
// newer version or a tombstone. A change writes a tombstone of its new version before its transaction commits
// (fence), so a lookup that read the old row just before the commit cannot put the old target back; when the tombstone
// cannot be written the change is rolled back. After the commit every replica drops its L1 copy through pub/sub, and
// an L1 fill that started before that invalidation is not kept; a replica that misses the message serves its L1 copy
// for at most L1_CACHE_TTL_MS.
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import type { Redis, Result } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { metrics } from '../../common/metrics.ts'
import type { Db } from '../../common/db.ts'
import { findTargetByCode, type LinkTarget } from '../repositories/links.ts'

declare module 'fastify' {
  interface FastifyInstance {
    linkCache: LinkCache
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** SET key value PX ttl unless the entry there has a newer version, or the same version and is not a tombstone. */
    linkCacheSet(key: string, version: number, value: string, ttlMs: number): Result<number, Context>
  }
}

// Entries are `<version>|L|<json>` (a link), `0|N` (no such code) and `<version>|T` (a tombstone: a change of that
// version is committing or committed; read as a miss).
const SET_IF_NEWER = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+)|'))
  local new = tonumber(ARGV[1])
  if v ~= nil and (v > new or (v == new and string.sub(cur, -2) ~= '|T')) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`

const MISSING = Symbol('missing')
type Entry = LinkTarget | typeof MISSING

function decode(raw: string): Entry | 'tombstone' {
  const bar = raw.indexOf('|')
  const kind = raw.slice(bar + 1, bar + 2)
  if (kind === 'T') return 'tombstone'
  if (kind === 'N') return MISSING
  return JSON.parse(raw.slice(bar + 3)) as LinkTarget
}

const encode = (row: LinkTarget | null) => (row ? `${row.version}|L|${JSON.stringify(row)}` : '0|N')

// A tombstone write is retried this many times before the change is refused (the client itself fails fast).
const FENCE_ATTEMPTS = 3

export interface LinkCacheOptions {
  enabled: boolean
  prefix: string
  ttlSeconds: number
  negativeTtlSeconds: number
  l1Max: number
  l1TtlMs: number
}

export interface LinkCache {
  /**
   * The code's in-process (L1) entry, without waiting: the target, null for a cached "no such code", undefined when
   * L1 holds nothing for it (then call resolve). Counted as a lookup when it answers.
   */
  cached(code: string): LinkTarget | null | undefined
  resolve(code: string): Promise<LinkTarget | null>
  /**
   * Marks the code's Redis entry with a tombstone of version, so no lookup can cache an older version again. Call it
   * inside the change's transaction, before the commit. False when Redis could not be written after retries (counted
   * and logged): the caller must not commit the change, or must accept that an old entry may live out its TTL.
   */
  fence(code: string, version: number): Promise<boolean>
  /** Drops the code from every replica's L1 (this one now, the others through pub/sub). Call it after the commit. */
  invalidate(code: string): Promise<void>
  close(): void
}

export const linkCacheKey = (prefix: string, code: string) => `${prefix}:link:v2:${code}`

export function createLinkCache(db: Db, redis: Redis, subscriber: Redis, opts: LinkCacheOptions, log: FastifyBaseLogger): LinkCache {
  const l1 = opts.l1Max > 0 && opts.l1TtlMs > 0 ? new LRUCache<string, Entry>({ max: opts.l1Max, ttl: opts.l1TtlMs }) : null
  const inflight = new Map<string, Promise<LinkTarget | null>>()
  const channel = `${opts.prefix}:link-invalidate`
  const key = (code: string) => linkCacheKey(opts.prefix, code)
  redis.defineCommand('linkCacheSet', { numberOfKeys: 1, lua: SET_IF_NEWER })
  // Bumped by every invalidation: an L1 fill whose lookup started before one may hold the old target, so it is not
  // kept (an invalidation of any code skips the fills in flight; they are rare and the next lookup fills L1).
  let generation = 0

  const dropLocal = (code: string) => {
    generation++
    l1?.delete(code)
    // A request arriving now must not join a load that may have read the old row.
    inflight.delete(code)
  }

  subscriber.subscribe(channel).catch((err: Error) => log.warn({ err }, 'cache invalidation subscribe failed; retried on reconnect'))
  const onMessage = (ch: string, code: string) => {
    if (ch !== channel) return
    dropLocal(code)
    metrics.cacheInvalidations.inc({ origin: 'remote' })
  }
  subscriber.on('message', onMessage)

  function jitter(seconds: number): number {
    // +-10% so keys written together do not expire together.
    return Math.round(seconds * 1000 * (0.9 + Math.random() * 0.2))
  }

  function fillL1(code: string, entry: Entry, since: number) {
    if (generation === since) l1?.set(code, entry)
  }

  async function load(code: string, writeBack: boolean): Promise<LinkTarget | null> {
    const since = generation
    const row = await findTargetByCode(db, code)
    fillL1(code, row ?? MISSING, since)
    if (writeBack) {
      const ttl = jitter(row ? opts.ttlSeconds : opts.negativeTtlSeconds)
      redis
        .linkCacheSet(key(code), row?.version ?? 0, encode(row), ttl)
        .then((written) => {
          if (written === 0) metrics.cacheStaleWritesRefused.inc()
        })
        .catch(() => metrics.cacheErrors.inc({ operation: 'set' }))
    }
    return row
  }

  function singleFlight(code: string, writeBack: boolean): Promise<LinkTarget | null> {
    const pending = inflight.get(code)
    if (pending) {
      metrics.cacheSingleFlightWaits.inc()
      return pending
    }
    const p = load(code, writeBack).finally(() => {
      if (inflight.get(code) === p) inflight.delete(code)
    })
    inflight.set(code, p)
    return p
  }

  function cached(code: string): LinkTarget | null | undefined {
    const local = opts.enabled ? l1?.get(code) : undefined
    if (local === undefined) return undefined
    metrics.cacheLookups.inc({ result: local === MISSING ? 'negative_hit' : 'l1_hit' })
    return local === MISSING ? null : local
  }

  return {
    cached,

    async resolve(code) {
      if (!opts.enabled) {
        metrics.cacheLookups.inc({ result: 'bypass' })
        return findTargetByCode(db, code)
      }
      const local = cached(code)
      if (local !== undefined) return local
      if (inflight.has(code)) return singleFlight(code, true)
      const since = generation
      let raw: string | null = null
      let redisOk = true
      try {
        raw = await redis.get(key(code))
      } catch {
        redisOk = false
        metrics.cacheErrors.inc({ operation: 'get' })
        metrics.cacheFallbacks.inc()
      }
      const entry = raw === null ? undefined : decode(raw)
      if (entry !== undefined && entry !== 'tombstone') {
        fillL1(code, entry, since)
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

    async fence(code, version) {
      if (!opts.enabled) return true
      for (let attempt = 1; ; attempt++) {
        try {
          await redis.linkCacheSet(key(code), version, `${version}|T`, opts.ttlSeconds * 1000)
          return true
        } catch (err) {
          metrics.cacheErrors.inc({ operation: 'fence' })
          if (attempt >= FENCE_ATTEMPTS) {
            log.warn({ err, link: { code, version } }, 'cache tombstone not written: the change is refused')
            return false
          }
          await new Promise((r) => setTimeout(r, 50 * attempt))
        }
      }
    },

    async invalidate(code) {
      dropLocal(code)
      metrics.cacheInvalidations.inc({ origin: 'local' })
      if (!opts.enabled) return
      // Lost only when Redis fails between the fence and here: the other replicas' L1 copies then expire by TTL.
      await redis.publish(channel, code).catch(() => metrics.cacheErrors.inc({ operation: 'publish' }))
    },

    close() {
      subscriber.off('message', onMessage)
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
