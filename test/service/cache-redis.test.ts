// One Redis for cache and queues (issue 11): a full cache must evict, never refuse the queues' writes.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { testApp, login, BROWSER } from '../helpers/app.ts'
import { createUser } from '../helpers/factories.ts'
import { counterValue, ownRedis } from '../helpers/service.ts'
import { metrics } from '../../common/metrics.ts'

const MAXMEMORY = 3 * 1024 * 1024

void t.test(
  'when hot links fill the cache Redis past its maxmemory, then it evicts and keeps serving, and every click still reaches the queue Redis',
  async (t) => {
    // Both capped, as in production: the queues' Redis refuses writes when full (noeviction), the cache's evicts.
    const queues = await ownRedis(t, { role: 'queues', maxmemory: String(MAXMEMORY) })
    const cache = await ownRedis(t, { role: 'cache', maxmemory: String(MAXMEMORY) })
    const { app, config, databaseUrl } = await testApp(t, { REDIS_URL: queues.url, CACHE_REDIS_URL: cache.url, L1_CACHE_MAX: '100' })
    const owner = await createUser(app.db)
    // 1,000 links with 8 kB targets: about 8 MB of cache entries, well past the 3 MB cap.
    const tag = randomBytes(3).toString('hex')
    const { rows } = await app.db.pool.query<{ code: string }>(
      `INSERT INTO links (code, owner_id, url) SELECT 'f' || $2 || g, $1, 'https://example.com/' || repeat('x', 8000) || g
         FROM generate_series(1, 1000) g RETURNING code`,
      [owner.id, tag],
    )
    const enqueued0 = await counterValue(metrics.clicksEnqueued)
    const dropped0 = await counterValue(metrics.clicksDropped, { reason: 'redis_unavailable' })
    const setErrors0 = await counterValue(metrics.cacheErrors, { operation: 'set' })
    const statuses = new Set<number>()
    for (const { code } of rows) statuses.add((await app.inject({ url: `/${code}`, headers: BROWSER })).statusCode)
    t.same([...statuses], [302], 'every redirect answered 302')
    await app.clickBuffer.flush()

    const c = new Redis(cache.url)
    const q = new Redis(queues.url)
    t.teardown(() => {
      c.disconnect()
      q.disconnect()
    })
    const evicted = Number(/evicted_keys:(\d+)/.exec(await c.info('stats'))![1])
    t.ok(evicted > 0, `the cache Redis evicted ${evicted} keys`)
    t.equal((await counterValue(metrics.cacheErrors, { operation: 'set' })) - setErrors0, 0, 'no cache write failed: it evicts instead')
    t.equal((await counterValue(metrics.clicksEnqueued)) - enqueued0, rows.length, 'every click was enqueued')
    t.equal((await counterValue(metrics.clicksDropped, { reason: 'redis_unavailable' })) - dropped0, 0, 'no click was dropped')
    t.equal((await q.keys(`${config.REDIS_PREFIX}:link:*`)).length, 0, 'no cache entry in the queue Redis')

    // The recently used entries survive (LRU): a replica with a cold L1 is served from the cache Redis.
    const other = await testApp(t, { REDIS_URL: queues.url, CACHE_REDIS_URL: cache.url, REDIS_PREFIX: config.REDIS_PREFIX }, databaseUrl)
    const hits0 = await counterValue(metrics.cacheLookups, { result: 'redis_hit' })
    for (const { code } of rows.slice(-20)) t.equal((await other.app.inject(`/${code}`)).statusCode, 302)
    t.ok((await counterValue(metrics.cacheLookups, { result: 'redis_hit' })) - hits0 >= 15, 'recent links are Redis hits')
    // And the full cache still takes a change's tombstone.
    const { auth } = await login(app)
    const created = await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 'https://example.com/a' } })
    t.equal(created.statusCode, 201, created.body)
    const id = (created.json() as { id: string }).id
    const patched = await app.inject({
      method: 'PATCH',
      url: `/api/v1/links/${id}`,
      headers: auth,
      payload: { url: 'https://example.com/b' },
    })
    t.equal(patched.statusCode, 200, patched.body)
  },
)
