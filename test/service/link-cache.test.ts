// Stale links after an edit (issue 11): the bound stated in the README ("Cache invalidation") is measured here on real
// Postgres and Redis, with several API instances in one process standing in for replicas.
import t from 'tap'
import { createLinkCache } from '../../service/plugins/link-cache.ts'
import type { Db } from '../../common/db.ts'
import { createLinkVia, login, testApp } from '../helpers/app.ts'
import { assertProblem, ownRedis, sleep, sql } from '../helpers/service.ts'
import type { App } from '../../service/app.ts'

void t.test(
  'when a lookup reads the old row just before an edit commits and writes back after it, then the old target does not return to the cache',
  async (t) => {
    const a = await testApp(t)
    const { auth } = await login(a.app)
    const link = await createLinkVia(a.app, auth, 'https://example.com/old')
    // A replica's lookup that has read the row (the real query ran) and is held before its cache write-back.
    let readDone!: () => void
    const read = new Promise<void>((r) => (readDone = r))
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const slowDb: Db = {
      ...a.app.db,
      query: (async (...args: Parameters<Db['query']>) => {
        const res = await a.app.db.query(...args)
        if (args[0] === 'link_by_code') {
          readDone()
          await held
        }
        return res
      }) as Db['query'],
    }
    const c = a.config
    const racer = createLinkCache(
      slowDb,
      a.app.redis,
      a.app.redisSubscriber,
      {
        enabled: true,
        prefix: c.REDIS_PREFIX,
        ttlSeconds: c.CACHE_TTL_SECONDS,
        negativeTtlSeconds: c.CACHE_NEGATIVE_TTL_SECONDS,
        l1Max: 0,
        l1TtlMs: 0,
      },
      a.app.log,
    )
    t.teardown(() => racer.close())
    const lookup = racer.resolve(link.code)
    await read
    const patched = await a.app.inject({
      method: 'PATCH',
      url: `/api/v1/links/${link.id}`,
      headers: auth,
      payload: { url: 'https://example.com/new' },
    })
    t.equal(patched.statusCode, 200, patched.body)
    // Well past any delayed second delete, as a slow lookup (GC pause, busy event loop) would be.
    await sleep(800)
    release()
    t.equal((await lookup)?.url, 'https://example.com/old', 'the held lookup read the row from before the edit')
    await sleep(300)
    // A replica with an empty L1 asks Redis first: it must not get the old target from there.
    const b = await testApp(t, { REDIS_PREFIX: c.REDIS_PREFIX }, a.databaseUrl)
    const res = await b.app.inject(`/${link.code}`)
    t.equal(res.statusCode, 302)
    t.equal(res.headers.location, 'https://example.com/new', 'a fresh replica redirects to the new target')
  },
)

void t.test(
  'when the cache Redis cannot be written, then PATCH and DELETE answer 503, change nothing, and succeed once it is back',
  async (t) => {
    const server = await ownRedis(t)
    const { app, databaseUrl } = await testApp(t, { CACHE_REDIS_URL: server.url, REDIS_CONNECT_TIMEOUT_MS: '300' })
    const { auth } = await login(app)
    const link = await createLinkVia(app, auth, 'https://example.com/abuse')
    t.equal((await app.inject(`/${link.code}`)).headers.location, 'https://example.com/abuse', 'cached before the outage')
    await server.stop()
    const patch = { method: 'PATCH' as const, url: `/api/v1/links/${link.id}`, headers: auth, payload: { url: 'https://example.com/safe' } }
    const patched = await app.inject(patch)
    assertProblem(t, patched, 503, 'SERVICE_UNAVAILABLE')
    t.ok(patched.headers['retry-after'], 'with Retry-After')
    const deleted = await app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: auth })
    assertProblem(t, deleted, 503, 'SERVICE_UNAVAILABLE')
    const db = await sql(t, databaseUrl)
    const row = async () =>
      (await db.query<{ url: string; deleted_at: Date | null }>('SELECT url, deleted_at FROM links WHERE id = $1', [link.id])).rows[0]!
    t.match(await row(), { url: 'https://example.com/abuse', deleted_at: null }, 'the link is unchanged: the client knows to retry')
    await server.start()
    let ok = 0
    for (let i = 0; i < 50 && ok !== 200; i++) {
      ok = (await app.inject(patch)).statusCode
      if (ok !== 200) await sleep(100)
    }
    t.equal(ok, 200, 'the retried PATCH succeeds once Redis is back')
    t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: auth })).statusCode, 204)
    t.match(await row(), { url: 'https://example.com/safe', deleted_at: Date })
  },
)

interface Answer {
  replica: number
  start: number
  end: number
  location: string | undefined
  status: number
}

void t.test(
  'when a hot link is edited and then deleted under load on three replicas, then every replica serves the change within the stated bound',
  async (t) => {
    const first = await testApp(t)
    const prefix = first.config.REDIS_PREFIX
    const replicas: App[] = [first.app]
    for (let i = 0; i < 2; i++) replicas.push((await testApp(t, { REDIS_PREFIX: prefix }, first.databaseUrl)).app)
    // The bound the README states: a replica that misses the pub/sub message keeps its L1 copy this long.
    const bound = first.config.L1_CACHE_TTL_MS
    const { auth } = await login(first.app)
    const link = await createLinkVia(first.app, auth, 'https://example.com/v1')
    const answers: Answer[] = []
    let running = true
    const hammer = async (replica: number) => {
      while (running) {
        const start = performance.now()
        const res = await replicas[replica]!.inject(`/${link.code}`)
        answers.push({
          replica,
          start,
          end: performance.now(),
          location: res.headers.location as string | undefined,
          status: res.statusCode,
        })
        // An L1 hit resolves in microtasks only: yield so timers (and the test's clock) run.
        await new Promise((r) => setImmediate(r))
      }
    }
    const loops = replicas.flatMap((_, i) => [hammer(i), hammer(i), hammer(i)])
    // Phases last a second and at least 300 redirects, however busy the machine is.
    const phase = async () => {
      const until = answers.length + 300
      await sleep(1000)
      while (answers.length < until) await sleep(20)
    }
    await phase()
    const editSent = performance.now()
    const patched = await first.app.inject({
      method: 'PATCH',
      url: `/api/v1/links/${link.id}`,
      headers: auth,
      payload: { url: 'https://example.com/v2' },
    })
    t.equal(patched.statusCode, 200, patched.body)
    const editedAt = performance.now()
    await phase()
    t.equal((await first.app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: auth })).statusCode, 204)
    const deletedAt = performance.now()
    await phase()
    running = false
    await Promise.all(loops)

    const before = answers.filter((a) => a.end < editSent)
    t.ok(before.length >= 250, `${before.length} redirects before the edit`)
    t.ok(
      before.every((a) => a.location === 'https://example.com/v1'),
      'before the edit every replica served the old target (the cache was hot)',
    )
    // Staleness: the latest request, started after the change answered, that still got the previous answer.
    const staleness = (from: number, to: number, isOld: (a: Answer) => boolean) =>
      replicas.map((_, r) => {
        const stale = answers.filter((a) => a.replica === r && a.start >= from && a.start < to && isOld(a))
        return stale.length === 0 ? 0 : Math.max(...stale.map((a) => a.start)) - from
      })
    const afterEdit = staleness(editedAt, deletedAt, (a) => a.location === 'https://example.com/v1')
    const afterDelete = staleness(deletedAt, Infinity, (a) => a.status !== 410)
    const counted = answers.filter((a) => a.start >= editedAt).length
    // From the PATCH being sent, the window includes the PATCH itself (its transaction, the tombstone, the publish).
    const fromSent = Math.max(...staleness(editSent, deletedAt, (a) => a.location === 'https://example.com/v1'))
    // On stderr, which the test command shows (tap comments it does not).
    process.stderr.write(
      `link-cache: measured over ${counted} redirects on ${replicas.length} replicas after the edit: edit seen everywhere ${Math.max(...afterEdit).toFixed(1)} ms ` +
        `after PATCH answered (per replica ${afterEdit.map((ms) => ms.toFixed(1)).join(', ')}; old target last served ` +
        `${fromSent.toFixed(1)} ms after the PATCH was sent, which took ${(editedAt - editSent).toFixed(1)} ms), deletion (410) ` +
        `${Math.max(...afterDelete).toFixed(1)} ms after DELETE answered; stated bound ${bound} ms\n`,
    )
    t.ok(Math.max(...afterEdit) <= bound, `the edit is served by every replica within ${bound} ms`)
    t.ok(Math.max(...afterDelete) <= bound, `the deletion is served by every replica within ${bound} ms`)
    t.ok(
      answers.filter((a) => a.start >= deletedAt + bound).every((a) => a.status === 410),
      'after the bound, no replica serves the deleted link',
    )
  },
)

void t.test('when a code is in the in-process cache, then cached() answers it without waiting, and an edit takes it out', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const link = await createLinkVia(app, auth, 'https://example.com/l1')
  t.equal(app.linkCache.cached(link.code), undefined, 'nothing in L1 before the first lookup')
  // The creation's own invalidation travels by Redis pub/sub and may land after the first lookup filled L1 (it did
  // once in .ci/run on a busy box), dropping it again: look up until it has arrived, then L1 must hold the code.
  let inL1: string | undefined
  for (let i = 0; i < 20 && inL1 === undefined; i++) {
    t.equal((await app.inject(`/${link.code}`)).headers.location, 'https://example.com/l1')
    inL1 = app.linkCache.cached(link.code)?.url
    if (inL1 === undefined) await new Promise((ok) => setTimeout(ok, 50))
  }
  t.equal(inL1, 'https://example.com/l1', 'the hot path reads it synchronously')
  t.equal((await app.inject('/no-such-code')).statusCode, 404)
  t.equal(app.linkCache.cached('no-such-code'), null, 'a cached "no such code" is null, not undefined')
  const patched = await app.inject({
    method: 'PATCH',
    url: `/api/v1/links/${link.id}`,
    headers: auth,
    payload: { url: 'https://example.com/l1b' },
  })
  t.equal(patched.statusCode, 200, patched.body)
  t.equal(app.linkCache.cached(link.code), undefined, 'the edit dropped it from L1')
  t.equal((await app.inject(`/${link.code}`)).headers.location, 'https://example.com/l1b')
})
