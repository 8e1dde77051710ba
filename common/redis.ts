// ioredis clients by role. Each has an error listener and counts reconnects and errors by role.
//  - cache / producer: fail fast (no offline queue, one retry, command timeout): the hot path never waits on Redis.
//    commandTimeoutMs bounds a caller's whole wait. Auto-pipelining (one write per batch: +19% here on a Redis-limited
//    route) sends a command only once the batch in flight has settled, which with a slow Redis takes up to one command
//    timeout; so each command gets half the budget, queued plus on the wire (the redis-latency drill measured 2x).
//  - bullmq (worker side): maxRetriesPerRequest null, as BullMQ requires for blocking commands.
//  - subscriber: pub/sub for cross-replica cache invalidation.
import { Redis, type RedisOptions } from 'ioredis'
import type { Log } from './logger.ts'
import { metrics } from './metrics.ts'

export type RedisRole = 'cache' | 'producer' | 'bullmq' | 'subscriber' | 'ratelimit'

export interface RedisClientOptions {
  url: string
  commandTimeoutMs: number
  connectTimeoutMs: number
}

export function createRedis(role: RedisRole, opts: RedisClientOptions, log: Log): Redis {
  const failFast = role === 'cache' || role === 'producer' || role === 'ratelimit'
  const options: RedisOptions = {
    connectionName: `opsdrill-${role}`,
    connectTimeout: opts.connectTimeoutMs,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000) + Math.floor(Math.random() * 100),
    ...(failFast
      ? {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          enableAutoPipelining: true,
          commandTimeout: Math.max(1, Math.floor(opts.commandTimeoutMs / 2)),
        }
      : { maxRetriesPerRequest: null, enableReadyCheck: true }),
  }
  const client = new Redis(opts.url, options)
  let warned = false
  client.on('error', (err: Error) => {
    metrics.redisErrors.inc({ client: role })
    // One warning per outage, not one per reconnect attempt.
    if (!warned) log.warn({ err, redis: { client: role } }, 'redis connection error')
    warned = true
  })
  client.on('reconnecting', () => metrics.redisReconnects.inc({ client: role }))
  client.on('ready', () => {
    if (warned) log.info({ redis: { client: role } }, 'redis connection ready again')
    warned = false
  })
  return client
}

/** Quits politely, or disconnects when the server is gone. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return
  try {
    await Promise.race([client.quit(), new Promise((_, rej) => setTimeout(() => rej(new Error('quit timeout')), 1000))])
  } catch {
    client.disconnect()
  }
}
