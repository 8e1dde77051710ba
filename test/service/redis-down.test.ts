import t from 'tap'
import { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import { testApp, BROWSER } from '../helpers/app.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { counterValue, dependencyUp, eventually, ownRedis, sleep } from '../helpers/service.ts'
import { metrics } from '../../common/metrics.ts'

void t.test(
  'when Redis goes down and comes back, then redirects keep working, clicks are spooled and counted, the replica stays ready while opsdrill_dependency_up reports Redis down, and the cache and queue recover',
  async (t) => {
    const server = await ownRedis(t)
    const { app, config, logs } = await testApp(t, {
      REDIS_URL: server.url,
      L1_CACHE_TTL_MS: '300',
      REDIS_CONNECT_TIMEOUT_MS: '500',
    })
    const owner = await createUser(app.db)
    const link = await createLink(app.db, owner.id, { url: 'https://example.com/resilient' })
    const enqueuedWarm = await counterValue(metrics.clicksEnqueued)
    t.equal((await app.inject({ url: `/${link.code}`, headers: BROWSER })).statusCode, 302, 'warm: L1 and Redis')
    await app.clickBuffer.flush()
    t.equal((await counterValue(metrics.clicksEnqueued)) - enqueuedWarm, 1, 'the click is enqueued while Redis is up')
    t.equal((await app.inject('/readyz')).statusCode, 200, 'ready while Redis is up')
    t.equal(await dependencyUp('redis'), 1, 'dependency_up{redis} is 1 while Redis is up')

    await server.stop()
    const spooled0 = await counterValue(metrics.clicksSpooled)
    const fallbacks0 = await counterValue(metrics.cacheFallbacks)
    const started = Date.now()
    const statuses: number[] = []
    for (let i = 0; i < 10; i++) {
      const res = await app.inject({ url: `/${link.code}`, headers: BROWSER })
      statuses.push(res.statusCode)
      if (res.statusCode === 302) t.equal(res.headers.location, 'https://example.com/resilient')
      await sleep(60)
    }
    await app.clickBuffer.flush()
    t.same([...new Set(statuses)], [302], 'every redirect answered 302 (from L1, then Postgres)')
    t.ok(Date.now() - started < 3000, `10 redirects took ${Date.now() - started} ms: Redis is not waited on`)
    t.ok(
      (await counterValue(metrics.cacheFallbacks)) - fallbacks0 > 0,
      'some were served from Postgres after L1 expired (fail-open counted)',
    )
    t.equal((await counterValue(metrics.clicksSpooled)) - spooled0, 10, 'all 10 clicks spooled and counted')
    const warnings = logs.filter((l) => l.message === 'click enqueue failed; clicks spooled until Redis is back')
    t.equal(warnings.length, 1, 'one warning for the burst of spooled clicks, not one per click')
    t.equal(warnings[0]?.['log.level'], 'warn')

    // The replica still serves redirects, so it must stay in the load balancer: store health is the gauge's job.
    const ready = await app.inject('/readyz')
    t.equal(ready.statusCode, 200, 'still ready: a Redis outage does not take the replica out of the Service')
    t.same(ready.json(), { status: 'ready' })
    t.equal(await dependencyUp('redis'), 0, 'dependency_up{redis} is 0')
    t.equal(await dependencyUp('redis_cache'), 0, 'dependency_up{redis_cache} is 0')
    t.equal(await dependencyUp('postgres'), 1, 'dependency_up{postgres} stays 1')

    await server.start()
    const hits0 = await counterValue(metrics.cacheLookups, { result: 'redis_hit' })
    const recovered = await eventually(
      async () => {
        await sleep(320) // past the L1 TTL, so the lookup asks Redis
        t.equal((await app.inject({ url: `/${link.code}`, headers: BROWSER })).statusCode, 302)
        return (await counterValue(metrics.cacheLookups, { result: 'redis_hit' })) > hits0
      },
      8000,
      0,
    )
    t.ok(recovered, 'the Redis cache serves hits again within a few seconds')
    const connection = new Redis(server.url)
    const queue = new Queue('clicks', { connection, prefix: config.REDIS_PREFIX })
    t.teardown(async () => {
      await queue.close()
      await connection.quit()
    })
    // Asked of the queue itself: the enqueued counter also counts the spool's replay, and a click taken while the
    // producer connection is still coming back goes to the spool first.
    const queued = async () =>
      (await queue.getJobs(['waiting'])).some((j) =>
        (j.data as { clicks: { referrer: string | null }[] }).clicks.some((c) => c.referrer === 'https://after.example/'),
      )
    const since = Date.now()
    const enqueuedAgain = await eventually(
      async () => {
        t.equal((await app.inject({ url: `/${link.code}`, headers: { ...BROWSER, referer: 'https://after.example/' } })).statusCode, 302)
        await app.clickBuffer.flush()
        return queued()
      },
      5000,
      200,
    )
    t.ok(enqueuedAgain, `a click taken after the outage is in the queue (after ${Date.now() - since} ms)`)
    t.ok(await eventually(async () => (await dependencyUp('redis')) === 1, 3000), 'dependency_up{redis} is 1 again')
  },
)

void t.test(
  'when Redis is down at startup and comes up later, then the app starts, and clicks are enqueued once Redis is up',
  async (t) => {
    const server = await ownRedis(t)
    await server.stop()
    const { app } = await testApp(t, { REDIS_URL: server.url, REDIS_CONNECT_TIMEOUT_MS: '300' })
    const owner = await createUser(app.db)
    const link = await createLink(app.db, owner.id)
    const spooled0 = await counterValue(metrics.clicksSpooled)
    t.equal((await app.inject({ url: `/${link.code}`, headers: BROWSER })).statusCode, 302, 'redirects work without Redis')
    await app.clickBuffer.flush()
    t.equal((await counterValue(metrics.clicksSpooled)) - spooled0, 1, 'the click is spooled and counted')
    await server.start()
    const enqueued0 = await counterValue(metrics.clicksEnqueued)
    const ok = await eventually(
      async () => {
        await app.inject({ url: `/${link.code}`, headers: BROWSER })
        await app.clickBuffer.flush()
        return (await counterValue(metrics.clicksEnqueued)) > enqueued0
      },
      6000,
      200,
    )
    t.ok(ok, 'clicks reach the queue once Redis is up (the producer queue was not left broken by its failed start)')
  },
)
