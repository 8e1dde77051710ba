// Link statistics from the rollup table, cached briefly in Redis (fail-open: a Redis error just skips the cache).
import type { Redis } from 'ioredis'
import type { Db } from '../../common/db.ts'
import { metrics } from '../../common/metrics.ts'
import { dailyClicks, totalClicks } from '../repositories/stats.ts'

export interface Stats {
  linkId: string
  total: number
  days: { day: string; clicks: number }[]
  generatedAt: string
}

export async function linkStats(
  deps: { db: Db; redis: Redis; prefix: string; ttlSeconds: number },
  linkId: string,
  days: number,
): Promise<Stats> {
  const key = `${deps.prefix}:stats:${linkId}:${days}`
  if (deps.ttlSeconds > 0) {
    const cached = await deps.redis.get(key).catch(() => {
      metrics.cacheErrors.inc({ operation: 'stats_get' })
      return null
    })
    if (cached) return JSON.parse(cached) as Stats
  }
  const [total, series] = await Promise.all([totalClicks(deps.db, linkId), dailyClicks(deps.db, linkId, days)])
  const stats: Stats = { linkId, total, days: series, generatedAt: new Date().toISOString() }
  if (deps.ttlSeconds > 0)
    deps.redis.set(key, JSON.stringify(stats), 'EX', deps.ttlSeconds).catch(() => metrics.cacheErrors.inc({ operation: 'stats_set' }))
  return stats
}
