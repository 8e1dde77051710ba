import t, { type Test } from 'tap'
import { testApp, login, uniqueEmail, createLinkVia } from '../helpers/app.ts'
import { redisPrefix } from '../helpers/env.ts'
import { assertProblem, sql } from '../helpers/service.ts'
import type { App } from '../../service/app.ts'

const loginAttempt = (app: App, remoteAddress?: string, xff?: string) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    payload: { email: 'nobody@example.test', password: 'whatever-password' },
    ...(remoteAddress ? { remoteAddress } : {}),
    headers: xff ? { 'x-forwarded-for': xff } : {},
  })

function assertLimited(t: Test, res: Awaited<ReturnType<App['inject']>>): void {
  assertProblem(t, res, 429, 'RATE_LIMITED')
  const retryAfter = Number(res.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After is a number of seconds within the window (${res.headers['retry-after']})`)
}

void t.test(
  'when a user creates links past RATE_LIMIT_LINK_CREATE_MAX, then 429 RATE_LIMITED with Retry-After and no extra rows',
  async (t) => {
    const { app, databaseUrl } = await testApp(t, { RATE_LIMIT_LINK_CREATE_MAX: '3' })
    const { auth } = await login(app)
    for (let i = 0; i < 3; i++)
      t.equal(
        (await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: `https://example.com/${i}` } }))
          .statusCode,
        201,
      )
    assertLimited(t, await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 'https://example.com/4' } }))
    t.equal(
      (await app.inject({ method: 'GET', url: '/api/v1/links', headers: auth })).statusCode,
      200,
      'other routes keep their own budget',
    )
    const db = await sql(t, databaseUrl)
    t.equal((await db.query('SELECT 1 FROM links')).rows.length, 3)
  },
)

void t.test('when a client logs in past RATE_LIMIT_AUTH_MAX, then 429 even with the right password', async (t) => {
  const { app } = await testApp(t, { RATE_LIMIT_AUTH_MAX: '3' })
  const email = uniqueEmail()
  // login() registers (1) and logs in (1): the auth routes each have their own budget of 3.
  const { auth } = await login(app, email)
  t.ok(auth.authorization)
  for (let i = 0; i < 2; i++) t.equal((await loginAttempt(app)).statusCode, 401)
  assertLimited(t, await loginAttempt(app))
  assertLimited(
    t,
    await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: 'correct horse battery staple' } }),
  )
})

void t.test('when two instances share REDIS_PREFIX, then they share one rate-limit budget', async (t) => {
  const shared = { RATE_LIMIT_AUTH_MAX: '4', REDIS_PREFIX: redisPrefix() }
  const a = await testApp(t, shared)
  const b = await testApp(t, shared, a.databaseUrl)
  t.equal((await loginAttempt(a.app)).statusCode, 401)
  t.equal((await loginAttempt(b.app)).statusCode, 401)
  t.equal((await loginAttempt(a.app)).statusCode, 401)
  t.equal((await loginAttempt(b.app)).statusCode, 401)
  assertLimited(t, await loginAttempt(a.app))
  assertLimited(t, await loginAttempt(b.app))
  const c = await testApp(t, { RATE_LIMIT_AUTH_MAX: '4' }, a.databaseUrl)
  t.equal((await loginAttempt(c.app)).statusCode, 401, 'an instance with another prefix has its own budget (the control)')
})

void t.test('when an untrusted peer sends a new X-Forwarded-For each time, then it is still limited by its own address', async (t) => {
  const { app } = await testApp(t, { RATE_LIMIT_AUTH_MAX: '3', TRUSTED_PROXIES: '10.0.0.1' })
  for (let i = 0; i < 3; i++) t.equal((await loginAttempt(app, '198.51.100.7', `203.0.113.${i}`)).statusCode, 401)
  assertLimited(t, await loginAttempt(app, '198.51.100.7', '203.0.113.99'))
  t.equal((await loginAttempt(app, '198.51.100.8')).statusCode, 401, 'another peer has its own budget')
})

void t.test('when a trusted proxy forwards two clients, then each client is limited separately', async (t) => {
  const { app } = await testApp(t, { RATE_LIMIT_AUTH_MAX: '2', TRUSTED_PROXIES: '10.0.0.1' })
  for (let i = 0; i < 2; i++) t.equal((await loginAttempt(app, '10.0.0.1', '203.0.113.1')).statusCode, 401)
  assertLimited(t, await loginAttempt(app, '10.0.0.1', '203.0.113.1'))
  t.equal((await loginAttempt(app, '10.0.0.1', '203.0.113.2')).statusCode, 401, 'the second client still has its budget')
  // A client cannot prepend a fake hop: the proxy appends the real address, which is what counts.
  assertLimited(t, await loginAttempt(app, '10.0.0.1', '192.0.2.55, 203.0.113.1'))
})

void t.test(
  'when a client follows links past RATE_LIMIT_REDIRECT_MAX, then 429 from the replica, with no Redis key and the API budget untouched',
  async (t) => {
    const { app, config } = await testApp(t, { RATE_LIMIT_REDIRECT_MAX: '3', RATE_LIMIT_GLOBAL_MAX: '5' })
    const { auth } = await login(app)
    const { code } = await createLinkVia(app, auth, 'https://example.com/rl')
    const follow = (remoteAddress = '198.51.100.9') => app.inject({ method: 'GET', url: `/${code}`, remoteAddress })
    for (let i = 0; i < 3; i++) {
      const res = await follow()
      t.equal(res.statusCode, 302)
      t.notOk(res.headers['x-ratelimit-remaining'], 'a redirect carries no X-RateLimit-* headers (no browser reads them)')
    }
    const limited = await follow()
    assertLimited(t, limited)
    t.equal(limited.headers['x-ratelimit-limit'], '3', 'the 429 says the limit')
    t.equal((await follow('198.51.100.10')).statusCode, 302, 'another client has its own budget')
    const keys = await app.redis.keys(`${config.REDIS_PREFIX}:rl:*`)
    t.ok(keys.length > 0, `the API routes count in Redis (${keys.join(', ')})`)
    t.same(
      keys.filter((k) => k.includes('198.51.100.9')),
      [],
      'redirects are counted in memory, not in Redis',
    )
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/links', headers: auth, remoteAddress: '198.51.100.9' })).statusCode, 200)
  },
)
