import t from 'tap'
import { testApp, login, loginAdmin, uniqueEmail } from '../helpers/app.ts'
import { assertProblem, sql } from '../helpers/service.ts'
import type { App } from '../../service/app.ts'
import type { LinkView } from '../../service/usecases/links.ts'

type Link = LinkView
type Auth = { authorization: string }

const create = (app: App, auth: Auth, payload: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload })
async function newLink(app: App, auth: Auth, payload: Record<string, unknown> = { url: 'https://example.com/a' }): Promise<Link> {
  const res = await create(app, auth, payload)
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res.json() as Link
}

void t.test("when a user touches another user's link, then 404 everywhere and nothing changes", async (t) => {
  const { app, databaseUrl } = await testApp(t)
  const owner = await login(app)
  const intruder = await login(app)
  const link = await newLink(app, owner.auth)
  const h = intruder.auth
  const calls = [
    { method: 'GET', url: `/api/v1/links/${link.id}`, headers: h },
    { method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: h, payload: { url: 'https://evil.example' } },
    { method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: h },
    { method: 'GET', url: `/api/v1/links/${link.id}/stats`, headers: h },
    { method: 'POST', url: `/api/v1/links/${link.id}/exports`, headers: h },
  ] as const
  for (const c of calls) {
    const res = await app.inject(c)
    assertProblem(t, res, 404, 'NOT_FOUND')
    t.notMatch(res.body, link.url, `${c.method} ${c.url} leaks nothing`)
  }
  const list = (await app.inject({ method: 'GET', url: '/api/v1/links', headers: h })).json() as { items: Link[] }
  t.same(list.items, [])
  const db = await sql(t, databaseUrl)
  const { rows } = await db.query<{ url: string; deleted_at: Date | null }>('SELECT url, deleted_at FROM links WHERE id = $1', [link.id])
  t.match(rows[0], { url: link.url, deleted_at: null })
  t.equal((await db.query('SELECT 1 FROM exports')).rows.length, 0, 'no export was recorded')
})

void t.test("when an admin reads and changes another user's link, then it works", async (t) => {
  const ctx = await testApp(t)
  const { app } = ctx
  const owner = await login(app)
  const admin = await loginAdmin(ctx)
  const link = await newLink(app, owner.auth)
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/links/${link.id}`, headers: admin.auth })).statusCode, 200)
  const listed = (await app.inject({ method: 'GET', url: '/api/v1/links', headers: admin.auth })).json() as { items: Link[] }
  t.ok(
    listed.items.some((l) => l.id === link.id),
    'the admin list includes it',
  )
  const patched = await app.inject({
    method: 'PATCH',
    url: `/api/v1/links/${link.id}`,
    headers: admin.auth,
    payload: { url: 'https://example.com/moderated' },
  })
  t.equal(patched.statusCode, 200, patched.body)
  t.match(patched.json(), { url: 'https://example.com/moderated', ownerId: link.ownerId })
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: admin.auth })).statusCode, 204)
})

void t.test('when a link is patched with a new url, then its code redirects there at once (cache invalidated)', async (t) => {
  const { app, databaseUrl } = await testApp(t, { L1_CACHE_TTL_MS: '60000' })
  const { auth } = await login(app)
  const link = await newLink(app, auth, { url: 'https://example.com/old' })
  t.equal((await app.inject(`/${link.code}`)).headers.location, 'https://example.com/old', 'warms L1 and Redis')
  const res = await app.inject({
    method: 'PATCH',
    url: `/api/v1/links/${link.id}`,
    headers: auth,
    payload: { url: 'https://example.com/new' },
  })
  t.equal(res.statusCode, 200, res.body)
  t.match(res.json(), { url: 'https://example.com/new' })
  t.equal((await app.inject(`/${link.code}`)).headers.location, 'https://example.com/new')
  const db = await sql(t, databaseUrl)
  t.equal((await db.query<{ url: string }>('SELECT url FROM links WHERE id = $1', [link.id])).rows[0]!.url, 'https://example.com/new')
})

void t.test('when a patch is empty or has a bad url, then 400 and the link is unchanged', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await newLink(app, auth)
  assertProblem(
    t,
    await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: {} }),
    400,
    'VALIDATION_FAILED',
    'body',
  )
  assertProblem(
    t,
    await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: { url: 'javascript:x' } }),
    400,
    'VALIDATION_FAILED',
    'body.url',
  )
  assertProblem(
    t,
    await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: { code: 'new' } }),
    400,
    'VALIDATION_FAILED',
    'body.code',
  )
  assertProblem(
    t,
    await app.inject({ method: 'PATCH', url: '/api/v1/links/not-a-uuid', headers: auth, payload: { url: 'https://x.example' } }),
    400,
    'VALIDATION_FAILED',
    'params.id',
  )
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/links/${link.id}`, headers: auth })).json().url, link.url)
})

void t.test('when a link is deleted, then 204, its code answers 410, and it is gone from the API', async (t) => {
  const { app, databaseUrl } = await testApp(t, { L1_CACHE_TTL_MS: '60000' })
  const { auth } = await login(app)
  const link = await newLink(app, auth)
  t.equal((await app.inject(`/${link.code}`)).statusCode, 302, 'warms the cache')
  const del = await app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: auth })
  t.equal(del.statusCode, 204)
  t.equal(del.body, '')
  assertProblem(t, await app.inject(`/${link.code}`), 410, 'GONE')
  assertProblem(t, await app.inject({ method: 'GET', url: `/api/v1/links/${link.id}`, headers: auth }), 404, 'NOT_FOUND')
  assertProblem(t, await app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: auth }), 404, 'NOT_FOUND')
  const db = await sql(t, databaseUrl)
  t.ok(
    (await db.query<{ deleted_at: Date | null }>('SELECT deleted_at FROM links WHERE id = $1', [link.id])).rows[0]!.deleted_at,
    'soft-deleted: the code is never reused',
  )
})

void t.test('when a link has expired, then its code answers 410 GONE', async (t) => {
  const { app, databaseUrl } = await testApp(t)
  const { auth } = await login(app)
  const link = await newLink(app, auth, { url: 'https://example.com', expiresAt: new Date(Date.now() + 60_000).toISOString() })
  const db = await sql(t, databaseUrl)
  await db.query("UPDATE links SET expires_at = now() - interval '1 second' WHERE id = $1", [link.id])
  assertProblem(t, await app.inject(`/${link.code}`), 410, 'GONE')
})

void t.test('when a code is unknown or has characters a code cannot have, then 404 NOT_FOUND', async (t) => {
  const { app } = await testApp(t)
  for (const path of ['/nosuchcode', '/a.b.c', '/%3Cscript%3E', '/ab', "/x'or'1"]) {
    await t.test(path, async (t) => assertProblem(t, await app.inject(path), 404, 'NOT_FOUND'))
  }
})

void t.test('when a links route is called without a token, then 401 UNAUTHORIZED', async (t) => {
  const { app } = await testApp(t)
  for (const [method, url] of [
    ['GET', '/api/v1/links'],
    ['POST', '/api/v1/links'],
    ['GET', '/api/v1/exports/00000000-0000-4000-8000-000000000000'],
  ] as const) {
    assertProblem(
      t,
      await app.inject({ method, url, ...(method === 'POST' ? { payload: { url: 'https://example.com' } } : {}) }),
      401,
      'UNAUTHORIZED',
    )
  }
})

void t.test('when a body is larger than BODY_LIMIT_BYTES, then 413 PAYLOAD_TOO_LARGE', async (t) => {
  const { app, databaseUrl } = await testApp(t, { BODY_LIMIT_BYTES: '1024' })
  const { auth } = await login(app)
  const big = { url: `https://example.com/${'a'.repeat(1100)}` }
  assertProblem(t, await create(app, auth, big), 413, 'PAYLOAD_TOO_LARGE')
  assertProblem(
    t,
    await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email: uniqueEmail(), password: 'p'.repeat(2000) } }),
    413,
    'PAYLOAD_TOO_LARGE',
  )
  const db = await sql(t, databaseUrl)
  t.equal((await db.query('SELECT 1 FROM links')).rows.length, 0)
})

void t.test('when the user behind a token was deleted, then creating a link answers 401 problem, not 500', async (t) => {
  const { app, databaseUrl } = await testApp(t)
  const { auth, email } = await login(app)
  const db = await sql(t, databaseUrl)
  await db.query('DELETE FROM users WHERE email = $1', [email])
  const res = await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 'https://example.com/orphan' } })
  assertProblem(t, res, 401, 'UNAUTHORIZED')
  t.equal(res.headers['www-authenticate'], 'Bearer')
  t.equal((await db.query('SELECT 1 FROM links')).rows.length, 0)
})
