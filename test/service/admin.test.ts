import t from 'tap'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { testApp, login, uniqueEmail, PASSWORD } from '../helpers/app.ts'
import { addDeadLetter, toDeadLetter } from '../../common/deadletters.ts'
import { QUEUES } from '../../common/queues.ts'
import { redisUrl } from '../helpers/env.ts'
import { eventually, ownRedis, sleep } from '../helpers/service.ts'

async function adminApp(t: { teardown(fn: () => unknown): void }, overrides: Record<string, string> = {}) {
  const email = uniqueEmail()
  const ctx = await testApp(t, { ADMIN_EMAILS: email, ...overrides })
  const admin = await login(ctx.app, email)
  const user = await login(ctx.app)
  return { ...ctx, admin, user, email }
}

async function seedDeadLetter(prefix: string, linkId: string): Promise<string> {
  const connection = new Redis(redisUrl(), { maxRetriesPerRequest: null })
  const dlq = new Queue(QUEUES.deadLetters, { connection, prefix })
  const click = { clickId: crypto.randomUUID(), linkId, at: new Date().toISOString(), referrer: null, uaFamily: 'Chrome', country: null }
  const id = await addDeadLetter(dlq, toDeadLetter(QUEUES.clicks, { id: click.clickId, name: 'click', data: click }, new Error('boom'), 5))
  await dlq.close()
  await connection.quit()
  return id
}

void t.test('when an admin lists and replays a dead letter, then it moves back to its queue', async (t) => {
  const { app, config, admin } = await adminApp(t)
  const id = await seedDeadLetter(config.REDIS_PREFIX, crypto.randomUUID())
  const list = await app.inject({ method: 'GET', url: '/api/v1/admin/dead-letters', headers: admin.auth })
  t.equal(list.statusCode, 200, list.body)
  const body = list.json() as { total: number; items: { id: string; queue: string; failedReason: string }[] }
  t.equal(body.total, 1)
  t.match(body.items[0], { id, queue: 'clicks', failedReason: 'boom' })
  const replay = await app.inject({
    method: 'POST',
    url: `/api/v1/admin/dead-letters/${encodeURIComponent(id)}/replay`,
    headers: admin.auth,
  })
  t.equal(replay.statusCode, 200, replay.body)
  t.equal(await app.queues.clicks.getWaitingCount(), 1, 'the click is waiting on its queue again')
  const after = await app.inject({ method: 'GET', url: '/api/v1/admin/dead-letters', headers: admin.auth })
  t.equal((after.json() as { total: number }).total, 0)
  const missing = await app.inject({
    method: 'POST',
    url: `/api/v1/admin/dead-letters/${encodeURIComponent(id)}/replay`,
    headers: admin.auth,
  })
  t.equal(missing.statusCode, 404)
  t.equal((missing.json() as { code: string }).code, 'NOT_FOUND')
})

void t.test('when a non-admin calls the admin API, then it answers 403, and 401 without a token', async (t) => {
  const { app, user } = await adminApp(t)
  const res = await app.inject({ method: 'GET', url: '/api/v1/admin/dead-letters', headers: user.auth })
  t.equal(res.statusCode, 403)
  t.equal((res.json() as { code: string }).code, 'FORBIDDEN')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/admin/dead-letters' })).statusCode, 401)
})

void t.test('when the queue UI is opened, then only an admin gets it, by Basic or Bearer, and it lists every queue', async (t) => {
  const { app, admin, user, email } = await adminApp(t)
  const anon = await app.inject({ method: 'GET', url: '/admin/queues' })
  t.equal(anon.statusCode, 401)
  t.match(anon.headers['www-authenticate'], /^Basic /)
  const basic = (e: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${e}:${p}`).toString('base64')}` })
  t.equal((await app.inject({ method: 'GET', url: '/admin/queues', headers: basic(email, 'wrong password!!') })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/admin/queues', headers: basic(user.email, PASSWORD) })).statusCode, 403)
  const page = await app.inject({ method: 'GET', url: '/admin/queues', headers: basic(email, PASSWORD) })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  const api = await app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: admin.auth })
  t.equal(api.statusCode, 200, api.body)
  const names = (api.json() as { queues: { name: string }[] }).queues.map((q) => q.name).sort()
  t.same(names, ['clicks', 'dead-letters', 'exports', 'maintenance'])
})

void t.test(
  'when Redis is down while the API starts, then its queues warn once each, and once Redis is back the queue UI shows every queue',
  async (t) => {
    const redis = await ownRedis(t)
    await redis.stop()
    const { app, admin, config, logs } = await adminApp(t, { REDIS_URL: redis.url, REDIS_CONNECT_TIMEOUT_MS: '300' })
    // The UI polls while Redis is still down (the request waits for Redis); reconnect attempts go on meanwhile, each an
    // error on every queue.
    const during = app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: admin.auth })
    await sleep(1000)
    const queueErrors = logs.filter((l) => l.message === 'queue error')
    const perQueue = new Map<string, number>()
    for (const l of queueErrors) {
      const name = (l.queue as { name: string }).name
      perQueue.set(name, (perQueue.get(name) ?? 0) + 1)
    }
    t.same([...perQueue.keys()].sort(), ['clicks', 'dead-letters', 'exports', 'maintenance'], 'every queue reports the outage')
    t.same([...new Set(queueErrors.map((l) => l['log.level']))], ['warn'], 'as a warning')
    t.same([...new Set(perQueue.values())], [1], 'once per queue, not once per reconnect attempt')

    await redis.start()
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null })
    t.teardown(() => connection.quit())
    const dlq = new Queue(QUEUES.deadLetters, { connection, prefix: config.REDIS_PREFIX })
    t.teardown(() => dlq.close())
    await dlq.add('clicks:click', { seeded: true }, { jobId: 'seeded-1' })
    let last = ''
    const shown = await eventually(
      async () => {
        const res = await app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: admin.auth })
        last = `${res.statusCode} ${res.body.slice(0, 300)}`
        if (res.statusCode !== 200) return false
        const queues = (res.json() as { queues: { name: string; counts: Record<string, number> }[] }).queues
        return queues.find((q) => q.name === QUEUES.deadLetters)?.counts.waiting === 1
      },
      10_000,
      200,
    )
    t.ok(shown, `the dead-letters queue answers once Redis is back (last: ${last})`)
    t.equal((await during).statusCode, 200, 'the request made during the outage is answered once Redis is back')
  },
)
