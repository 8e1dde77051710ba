import t from 'tap'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { testApp, login, loginAdmin, PASSWORD } from '../helpers/app.ts'
import { addDeadLetter, toDeadLetter } from '../../common/deadletters.ts'
import { QUEUES } from '../../common/queues.ts'
import { redisUrl } from '../helpers/env.ts'

async function adminApp(t: { teardown(fn: () => unknown): void }) {
  const ctx = await testApp(t)
  const admin = await loginAdmin(ctx)
  const user = await login(ctx.app)
  return { ...ctx, admin, user, email: admin.email }
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
