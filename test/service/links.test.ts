import t from 'tap'
import { testApp, login } from '../helpers/app.ts'
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

void t.test(
  'when a user shortens a URL, then 201 with id, code, shortUrl = PUBLIC_BASE_URL + code, url, expiresAt, and a row',
  async (t) => {
    const { app, databaseUrl } = await testApp(t, { PUBLIC_BASE_URL: 'https://sho.rt/' })
    const { auth } = await login(app)
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString()
    const res = await create(app, auth, { url: 'https://example.com/path?q=1', expiresAt })
    t.equal(res.statusCode, 201, res.body)
    const link = res.json() as Link
    t.match(link, { id: /^[0-9a-f-]{36}$/, code: /^[A-Za-z0-9]{7}$/, url: 'https://example.com/path?q=1', expiresAt })
    t.equal(link.shortUrl, `https://sho.rt/${link.code}`)
    const db = await sql(t, databaseUrl)
    const { rows } = await db.query<{ code: string; url: string; is_alias: boolean; expires_at: Date }>(
      'SELECT code, url, is_alias, expires_at FROM links WHERE id = $1',
      [link.id],
    )
    t.match(rows[0], { code: link.code, url: link.url, is_alias: false })
    t.equal(rows[0]!.expires_at.toISOString(), expiresAt)
    const alias = await create(app, auth, { url: 'https://example.com/b', alias: 'my_Alias-1' })
    t.equal(alias.statusCode, 201, alias.body)
    t.match(alias.json(), { code: 'my_Alias-1', shortUrl: 'https://sho.rt/my_Alias-1', expiresAt: null })
  },
)

void t.test('when the target is not an absolute http(s) URL or too long, then 400 naming body.url and nothing stored', async (t) => {
  const { app, databaseUrl } = await testApp(t)
  const { auth } = await login(app)
  for (const url of [
    'javascript:alert(1)',
    'ftp://example.com/file',
    '/relative/path',
    'example.com',
    'data:text/html,hi',
    `https://example.com/${'a'.repeat(2100)}`,
  ]) {
    await t.test(url.slice(0, 40), async (t) => assertProblem(t, await create(app, auth, { url }), 400, 'VALIDATION_FAILED', 'body.url'))
  }
  const db = await sql(t, databaseUrl)
  t.equal((await db.query('SELECT 1 FROM links')).rows.length, 0)
})

void t.test(
  'when the target carries credentials or points at a local, private, metadata or own host, then 400 naming body.url on create and PATCH',
  async (t) => {
    const { app, databaseUrl } = await testApp(t, { PUBLIC_BASE_URL: 'https://Sho.rt:8443/' })
    const { auth } = await login(app)
    const link = await newLink(app, auth)
    const refused = [
      'https://bank.example@evil.example/',
      'https://user:pass@example.com/',
      'https://:pass@example.com/',
      'http://127.0.0.1/',
      'http://127.1.2.3:8080/admin',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://0177.0.0.1/',
      'http://0/',
      'http://0.0.0.0/',
      'http://10.1.2.3/',
      'http://172.16.0.1/',
      'http://192.168.1.1/',
      'http://100.64.0.1/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]/',
      'http://[::]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:a9fe:a9fe]/',
      'http://[fd00::1]/',
      'http://[fc00::1]/',
      'http://[fe80::1]/',
      'http://[64:ff9b::7f00:1]/',
      'http://[2002:7f00:1::]/',
      'http://localhost:3000/',
      'http://LOCALHOST./',
      'http://api.localhost/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://printer.local/',
      'http://intranet/',
      'https://sho.rt/abc',
      'http://SHO.RT./x',
    ]
    for (const url of refused) {
      await t.test(url, async (t) => {
        assertProblem(t, await create(app, auth, { url }), 400, 'VALIDATION_FAILED', 'body.url')
        const patched = await app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: { url } })
        assertProblem(t, patched, 400, 'VALIDATION_FAILED', 'body.url')
      })
    }
    // The controls: public hosts, including public IPv4 and IPv6 literals and a subdomain of the shortener's domain.
    for (const url of [
      'https://example.com/',
      'http://93.184.215.14/',
      'http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/',
      'https://www.sho.rt/',
    ]) {
      t.equal((await create(app, auth, { url })).statusCode, 201, `${url} is accepted`)
    }
    const db = await sql(t, databaseUrl)
    t.same((await db.query<{ url: string }>('SELECT url FROM links WHERE id = $1', [link.id])).rows[0], { url: 'https://example.com/a' })
    t.equal((await db.query('SELECT 1 FROM links')).rows.length, 5, 'only the first link and the four controls were stored')
  },
)

void t.test('when an alias has bad characters or length, then 400 naming body.alias', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  for (const alias of ['ab', 'a'.repeat(33), 'has space', 'slash/y', 'dot.ted', 'ümlaut']) {
    await t.test(alias, async (t) =>
      assertProblem(t, await create(app, auth, { url: 'https://example.com', alias }), 400, 'VALIDATION_FAILED', 'body.alias'),
    )
  }
})

void t.test('when an alias is taken or reserved, then 409 ALIAS_TAKEN', async (t) => {
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
  t.same(
    rows.map((r) => r.url),
    ['https://example.com/a'],
    'only the first link is stored',
  )
})

void t.test('when expiresAt is in the past or not a date-time, then 400 naming body.expiresAt', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  assertProblem(
    t,
    await create(app, auth, { url: 'https://example.com', expiresAt: new Date(Date.now() - 1000).toISOString() }),
    400,
    'VALIDATION_FAILED',
    'body.expiresAt',
  )
  assertProblem(
    t,
    await create(app, auth, { url: 'https://example.com', expiresAt: 'tomorrow' }),
    400,
    'VALIDATION_FAILED',
    'body.expiresAt',
  )
})

void t.test('when a user lists 5 links by pages of 2, then newest first, each seen once, and nextCursor null at the end', async (t) => {
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
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/links',
      headers: auth,
      query: { limit: '2', ...(cursor ? { cursor } : {}) },
    })
    t.equal(res.statusCode, 200, res.body)
    const body = res.json() as { items: Link[]; nextCursor: string | null }
    seen.push(...body.items.map((l) => l.id))
    cursor = body.nextCursor
    pages++
  } while (cursor && pages < 10)
  t.equal(pages, 3)
  t.same(seen, [...made].reverse(), 'newest first, each once, none of another user')
})

void t.test('when links share one created_at (same transaction), then pagination still returns each exactly once', async (t) => {
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
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/links',
      headers: auth,
      query: { limit: '2', ...(cursor ? { cursor } : {}) },
    })
    const body = res.json() as { items: Link[]; nextCursor: string | null }
    seen.push(...body.items.map((l) => l.id))
    cursor = body.nextCursor
    if (!cursor) break
  }
  t.same([...seen].sort(), rows.map((r) => r.id).sort(), 'every link once')
  t.equal(new Set(seen).size, seen.length, 'no duplicates')
})

void t.test('when the cursor is not one the API returned, then 400 naming querystring.cursor', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  for (const cursor of [
    'garbage',
    Buffer.from('["not a date","x"]').toString('base64url'),
    Buffer.from('{}').toString('base64url'),
    Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000Z', '-'.repeat(36)])).toString('base64url'),
  ]) {
    assertProblem(
      t,
      await app.inject({ method: 'GET', url: '/api/v1/links', headers: auth, query: { cursor } }),
      400,
      'VALIDATION_FAILED',
      'querystring.cursor',
    )
  }
})
