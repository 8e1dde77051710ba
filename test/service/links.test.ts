import t from 'tap'
import { testApp, login, uniqueEmail, PASSWORD } from '../helpers/app.ts'
import { assertProblem, sql } from '../helpers/service.ts'
import type { App } from '../../service/app.ts'

interface Link { id: string; code: string; shortUrl: string; url: string; createdAt: string; updatedAt: string; expiresAt: string | null; ownerId: string }
type Auth = { authorization: string }

const create = (app: App, auth: Auth, payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload })
async function newLink(app: App, auth: Auth, payload: Record<string, unknown> = { url: 'https://example.com/a' }): Promise<Link> {
  const res = await create(app, auth, payload)
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res.json() as Link
}

t.test('when a user shortens a URL, then 201 with id, code, shortUrl = PUBLIC_BASE_URL + code, url, expiresAt, and a row', async (t) => {
  const { app, databaseUrl } = await testApp(t, { PUBLIC_BASE_URL: 'https://sho.rt/' })
  const { auth } = await login(app)
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString()
  const res = await create(app, auth, { url: 'https://example.com/path?q=1', expiresAt })
  t.equal(res.statusCode, 201, res.body)
  const link = res.json() as Link
  t.match(link, { id: /^[0-9a-f-]{36}$/, code: /^[A-Za-z0-9]{7}$/, url: 'https://example.com/path?q=1', expiresAt })
  t.equal(link.shortUrl, `https://sho.rt/${link.code}`)
  const db = await sql(t, databaseUrl)
  const { rows } = await db.query<{ code: string; url: string; is_alias: boolean; expires_at: Date }>('SELECT code, url, is_alias, expires_at FROM links WHERE id = $1', [link.id])
  t.match(rows[0], { code: link.code, url: link.url, is_alias: false })
  t.equal(rows[0]!.expires_at.toISOString(), expiresAt)
  const alias = await create(app, auth, { url: 'https://example.com/b', alias: 'my_Alias-1' })
  t.equal(alias.statusCode, 201, alias.body)
  t.match(alias.json(), { code: 'my_Alias-1', shortUrl: 'https://sho.rt/my_Alias-1', expiresAt: null })
})

t.test('when the target is not an absolute http(s) URL or too long, then 400 naming body.url and nothing stored', async (t) => {
  const { app, databaseUrl } = await testApp(t)
  const { auth } = await login(app)
  for (const url of ['javascript:alert(1)', 'ftp://example.com/file', '/relative/path', 'example.com', 'data:text/html,hi', `https://example.com/${'a'.repeat(2100)}`]) {
    await t.test(url.slice(0, 40), async (t) => assertProblem(t, await create(app, auth, { url }), 400, 'VALIDATION_FAILED', 'body.url'))
  }
  const db = await sql(t, databaseUrl)
  t.equal((await db.query('SELECT 1 FROM links')).rows.length, 0)
})

t.test('when an alias has bad characters or length, then 400 naming body.alias', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  for (const alias of ['ab', 'a'.repeat(33), 'has space', 'slash/y', 'dot.ted', 'ümlaut']) {
    await t.test(alias, async (t) => assertProblem(t, await create(app, auth, { url: 'https://example.com', alias }), 400, 'VALIDATION_FAILED', 'body.alias'))
  }
})

t.test('when an alias is taken or reserved, then 409 ALIAS_TAKEN', async (t) => {
  const { app, databaseUrl } = await testApp(t)
  const a = await login(app)
  const b = await login(app)
  await newLink(app, a.auth, { url: 'https://example.com/a', alias: 'taken' })
  assertProblem(t, await create(app, b.auth, { url: 'https://example.com/b', alias: 'taken' }), 409, 'ALIAS_TAKEN')
  for (const alias of ['api', 'docs', 'admin', 'healthz', 'API', 'Docs']) {
    assertProblem(t, await create(app, a.auth, { url: 'https://example.com', alias }), 409, 'ALIAS_TAKEN')
  }
  const db = await sql(t, databaseUrl)
  const { rows } = await db.query<{ url: string }>('SELECT url FROM links')
  t.same(rows.map((r) => r.url), ['https://example.com/a'], 'only the first link is stored')
})

t.test('when expiresAt is in the past or not a date-time, then 400 naming body.expiresAt', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  assertProblem(t, await create(app, auth, { url: 'https://example.com', expiresAt: new Date(Date.now() - 1000).toISOString() }), 400, 'VALIDATION_FAILED', 'body.expiresAt')
  assertProblem(t, await create(app, auth, { url: 'https://example.com', expiresAt: 'tomorrow' }), 400, 'VALIDATION_FAILED', 'body.expiresAt')
})

t.test('when a user lists 5 links by pages of 2, then newest first, each seen once, and nextCursor null at the end', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const other = await login(app)
  await newLink(app, other.auth, { url: 'https://example.com/not-mine' })
  const made: string[] = []
  for (let i = 0; i < 5; i++) made.push((await newLink(app, auth, { url: `https://example.com/${i}` })).id)
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const res = await app.inject({ method: 'GET', url: '/api/v1/links', headers: auth, query: { limit: '2', ...(cursor ? { cursor } : {}) } })
    t.equal(res.statusCode, 200, res.body)
    const body = res.json() as { items: Link[]; nextCursor: string | null }
    seen.push(...body.items.map((l) => l.id))
    cursor = body.nextCursor
    pages++
  } while (cursor && pages < 10)
  t.equal(pages, 3)
  t.same(seen, [...made].reverse(), 'newest first, each once, none of another user')
})

t.test('when links share one created_at (same transaction), then pagination still returns each exactly once', async (t) => {
  // created_at has microseconds; a cursor that keeps only milliseconds would skip rows of the same millisecond.
  const { app, databaseUrl } = await testApp(t)
  const { auth } = await login(app)
  const db = await sql(t, databaseUrl)
  const { rows: users } = await db.query<{ id: string }>('SELECT id FROM users')
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO links (code, owner_id, url, created_at)
     SELECT 'same' || g, $1, 'https://example.com/' || g, '2026-01-02 03:04:05.123456+00' FROM generate_series(1, 5) g RETURNING id`,
    [users[0]!.id],
  )
  const seen: string[] = []
  let cursor: string | null = null
  for (let i = 0; i < 5; i++) {
    const res = await app.inject({ method: 'GET', url: '/api/v1/links', headers: auth, query: { limit: '2', ...(cursor ? { cursor } : {}) } })
    const body = res.json() as { items: Link[]; nextCursor: string | null }
    seen.push(...body.items.map((l) => l.id))
    cursor = body.nextCursor
    if (!cursor) break
  }
  t.same([...seen].sort(), rows.map((r) => r.id).sort(), 'every link once')
  t.equal(new Set(seen).size, seen.length, 'no duplicates')
})

t.test('when the cursor is not one the API returned, then 400 naming querystring.cursor', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  for (const cursor of ['garbage', Buffer.from('["not a date","x"]').toString('base64url'), Buffer.from('{}').toString('base64url'), Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000Z', '-'.repeat(36)])).toString('base64url')]) {
    assertProblem(t, await app.inject({ method: 'GET', url: '/api/v1/links', headers: auth, query: { cursor } }), 400, 'VALIDATION_FAILED', 'querystring.cursor')
  }
})

t.test("when a user touches another user's link, then 404 everywhere and nothing changes", async (t) => {
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

t.test("when an admin reads and changes another user's link, then it works", async (t) => {
  const adminEmail = uniqueEmail()
  const { app } = await testApp(t, { ADMIN_EMAILS: adminEmail })
  const owner = await login(app)
  const admin = await login(app, adminEmail, PASSWORD)
  const link = await newLink(app, owner.auth)
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/links/${link.id}`, headers: admin.auth })).statusCode, 200)
  const listed = (await app.inject({ method: 'GET', url: '/api/v1/links', headers: admin.auth })).json() as { items: Link[] }
  t.ok(listed.items.some((l) => l.id === link.id), 'the admin list includes it')
  const patched = await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: admin.auth, payload: { url: 'https://example.com/moderated' } })
  t.equal(patched.statusCode, 200, patched.body)
  t.match(patched.json(), { url: 'https://example.com/moderated', ownerId: link.ownerId })
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: admin.auth })).statusCode, 204)
})

t.test('when a link is patched with a new url, then its code redirects there at once (cache invalidated)', async (t) => {
  const { app, databaseUrl } = await testApp(t, { L1_CACHE_TTL_MS: '60000' })
  const { auth } = await login(app)
  const link = await newLink(app, auth, { url: 'https://example.com/old' })
  t.equal((await app.inject(`/${link.code}`)).headers.location, 'https://example.com/old', 'warms L1 and Redis')
  const res = await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: { url: 'https://example.com/new' } })
  t.equal(res.statusCode, 200, res.body)
  t.match(res.json(), { url: 'https://example.com/new' })
  t.equal((await app.inject(`/${link.code}`)).headers.location, 'https://example.com/new')
  const db = await sql(t, databaseUrl)
  t.equal((await db.query<{ url: string }>('SELECT url FROM links WHERE id = $1', [link.id])).rows[0]!.url, 'https://example.com/new')
})

t.test('when a patch is empty or has a bad url, then 400 and the link is unchanged', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await newLink(app, auth)
  assertProblem(t, await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: {} }), 400, 'VALIDATION_FAILED', 'body')
  assertProblem(t, await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: { url: 'javascript:x' } }), 400, 'VALIDATION_FAILED', 'body.url')
  assertProblem(t, await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: { code: 'new' } }), 400, 'VALIDATION_FAILED', 'body.code')
  assertProblem(t, await app.inject({ method: 'PATCH', url: '/api/v1/links/not-a-uuid', headers: auth, payload: { url: 'https://x.example' } }), 400, 'VALIDATION_FAILED', 'params.id')
  t.equal((await app.inject({ method: 'GET', url: `/api/v1/links/${link.id}`, headers: auth })).json().url, link.url)
})

t.test('when a link is deleted, then 204, its code answers 410, and it is gone from the API', async (t) => {
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
  t.ok((await db.query<{ deleted_at: Date | null }>('SELECT deleted_at FROM links WHERE id = $1', [link.id])).rows[0]!.deleted_at, 'soft-deleted: the code is never reused')
})

t.test('when a link has expired, then its code answers 410 GONE', async (t) => {
  const { app, databaseUrl } = await testApp(t)
  const { auth } = await login(app)
  const link = await newLink(app, auth, { url: 'https://example.com', expiresAt: new Date(Date.now() + 60_000).toISOString() })
  const db = await sql(t, databaseUrl)
  await db.query("UPDATE links SET expires_at = now() - interval '1 second' WHERE id = $1", [link.id])
  assertProblem(t, await app.inject(`/${link.code}`), 410, 'GONE')
})

t.test('when a code is unknown or has characters a code cannot have, then 404 NOT_FOUND', async (t) => {
  const { app } = await testApp(t)
  for (const path of ['/nosuchcode', '/a.b.c', '/%3Cscript%3E', '/ab', "/x'or'1"]) {
    await t.test(path, async (t) => assertProblem(t, await app.inject(path), 404, 'NOT_FOUND'))
  }
})

t.test('when a links route is called without a token, then 401 UNAUTHORIZED', async (t) => {
  const { app } = await testApp(t)
  for (const [method, url] of [['GET', '/api/v1/links'], ['POST', '/api/v1/links'], ['GET', '/api/v1/exports/00000000-0000-4000-8000-000000000000']] as const) {
    assertProblem(t, await app.inject({ method, url, ...(method === 'POST' ? { payload: { url: 'https://example.com' } } : {}) }), 401, 'UNAUTHORIZED')
  }
})

t.test('when a body is larger than BODY_LIMIT_BYTES, then 413 PAYLOAD_TOO_LARGE', async (t) => {
  const { app, databaseUrl } = await testApp(t, { BODY_LIMIT_BYTES: '1024' })
  const { auth } = await login(app)
  const big = { url: `https://example.com/${'a'.repeat(1100)}` }
  assertProblem(t, await create(app, auth, big), 413, 'PAYLOAD_TOO_LARGE')
  assertProblem(t, await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email: uniqueEmail(), password: 'p'.repeat(2000) } }), 413, 'PAYLOAD_TOO_LARGE')
  const db = await sql(t, databaseUrl)
  t.equal((await db.query('SELECT 1 FROM links')).rows.length, 0)
})
