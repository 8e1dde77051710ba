import t from 'tap'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { testApp, login, loginAdmin, setRole, PASSWORD } from '../helpers/app.ts'
import { BOARD_CSP } from '../../service/routes/admin/queues.ts'
import { addDeadLetter, toDeadLetter } from '../../common/deadletters.ts'
import { QUEUES } from '../../common/queues.ts'
import { redisUrl } from '../helpers/env.ts'
import { assertProblem, eventually, ownRedis, sleep } from '../helpers/service.ts'

const basic = (email: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${email}:${password}`).toString('base64')}` })

async function adminApp(t: { teardown(fn: () => unknown): void }, overrides: Record<string, string> = {}) {
  const ctx = await testApp(t, overrides)
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

void t.test('when Basic auth is tried past the per-address budget, then 429 before any password check, even a right one', async (t) => {
  const ctx = await testApp(t, { RATE_LIMIT_AUTH_MAX: '3' })
  const admin = await loginAdmin(ctx)
  const board = (headers: Record<string, string>, remoteAddress: string) =>
    ctx.app.inject({ method: 'GET', url: '/admin/queues', headers, remoteAddress })
  for (let i = 0; i < 3; i++) t.equal((await board(basic(`guess${i}@example.test`, 'wrong password!!'), '198.51.100.1')).statusCode, 401)
  const limited = await board(basic(admin.email, PASSWORD), '198.51.100.1')
  assertProblem(t, limited, 429, 'RATE_LIMITED')
  t.match(limited.json().detail, /from this address/)
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After is set')
  t.equal((await board(basic(admin.email, PASSWORD), '198.51.100.2')).statusCode, 200, 'another address has its own budget')
  // Verified credentials are remembered, so the UI's polling spends no budget.
  for (let i = 0; i < 5; i++) t.equal((await board(basic(admin.email, PASSWORD), '198.51.100.2')).statusCode, 200)
})

void t.test('when Basic auth guesses one account from many addresses, then the per-account budget refuses it', async (t) => {
  const ctx = await testApp(t, { RATE_LIMIT_AUTH_ACCOUNT_MAX: '5' })
  // loginAdmin registers (1), logs in (2), is promoted and logs in again (3).
  const admin = await loginAdmin(ctx)
  const board = (password: string, i: number) =>
    ctx.app.inject({ method: 'GET', url: '/admin/queues', headers: basic(admin.email, password), remoteAddress: `198.51.100.${i}` })
  t.equal((await board('wrong password!!', 1)).statusCode, 401)
  t.equal((await board('wrong password!!', 2)).statusCode, 401)
  const limited = await board(PASSWORD, 3)
  assertProblem(t, limited, 429, 'RATE_LIMITED')
  t.match(limited.json().detail, /for this account/)
})

void t.test('when an admin uses the board, then it is read-only: actions answer 405 and change nothing', async (t) => {
  const { app, admin } = await adminApp(t)
  const pause = await app.inject({ method: 'PUT', url: '/admin/queues/api/queues/clicks/pause', headers: admin.auth })
  t.equal(pause.statusCode, 405, pause.body)
  const add = await app.inject({
    method: 'POST',
    url: '/admin/queues/api/queues/clicks/add',
    headers: admin.auth,
    payload: { name: 'click', data: {} },
  })
  t.equal(add.statusCode, 405, add.body)
  await app.inject({ method: 'PUT', url: '/admin/queues/api/queues/pause', headers: admin.auth })
  t.equal(await app.queues.clicks.isPaused(), false, 'pause-all skips read-only queues')
  t.equal(await app.queues.clicks.count(), 0, 'no job was added')
  const queues = (await app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: admin.auth })).json() as {
    queues: { readOnlyMode: boolean }[]
  }
  t.ok(
    queues.queues.every((q) => q.readOnlyMode),
    'every queue is shown read-only',
  )
})

void t.test('when the board is served, then it carries a CSP that allows only its own origin (no inline script)', async (t) => {
  const { app, admin } = await adminApp(t)
  const page = await app.inject({ method: 'GET', url: '/admin/queues', headers: admin.auth })
  t.equal(page.statusCode, 200)
  const csp = String(page.headers['content-security-policy'])
  t.equal(csp, BOARD_CSP)
  t.match(csp, /script-src 'self'(;|$)/)
  t.notMatch(csp, /unsafe-eval|script-src[^;]*unsafe-inline|\*/)
  t.match(csp, /frame-ancestors 'none'/)
  const asset = /src="(static\/js\/main[^"]+)"/.exec(page.body)?.[1]
  const js = await app.inject({ method: 'GET', url: `/admin/queues/${asset}`, headers: admin.auth })
  t.equal(js.statusCode, 200, `the page's own script ${asset} is served from the prefix`)
  t.equal(js.headers['content-security-policy'], BOARD_CSP)
})

void t.test('when an admin is demoted, then the next Basic or Bearer request to the board is refused', async (t) => {
  const { app, admin, email, databaseUrl } = await adminApp(t)
  const board = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers })
  t.equal((await board(basic(email, PASSWORD))).statusCode, 200)
  t.equal((await board(admin.auth)).statusCode, 200)
  await setRole(databaseUrl, email, 'user')
  assertProblem(t, await board(basic(email, PASSWORD)), 403, 'FORBIDDEN')
  assertProblem(t, await board(admin.auth), 403, 'FORBIDDEN')
  await setRole(databaseUrl, email, 'admin')
  t.equal((await board(basic(email, PASSWORD))).statusCode, 200, 'promoted again')
})

void t.test('when Postgres is down, then the board answers 503 problem, not a 401 challenge', async (t) => {
  const { admin, email } = await adminApp(t)
  const down = await testApp(t, { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres', PG_CONNECT_TIMEOUT_MS: '500' })
  for (const headers of [basic(email, PASSWORD), admin.auth]) {
    const res = await down.app.inject({ method: 'GET', url: '/admin/queues', headers })
    assertProblem(t, res, 503, 'SERVICE_UNAVAILABLE')
    t.notOk(res.headers['www-authenticate'], 'no credentials prompt')
  }
})
