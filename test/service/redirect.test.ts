import t from 'tap'
import { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import { testApp, login, createLinkVia, BROWSER } from '../helpers/app.ts'
import { redisPrefix, redisUrl } from '../helpers/env.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { assertProblem, counterValue, eventually, pgQueries, sleep } from '../helpers/service.ts'
import { metrics } from '../../common/metrics.ts'
import { parseClickBatchJob, type ClickBatchJob, type ClickJob } from '../../common/queues.ts'
import type { App } from '../../service/app.ts'

const linkQueries = () => pgQueries(metrics.pgQueryDuration, 'link_by_code')

function redis(t: { teardown(fn: () => unknown): void }): Redis {
  const r = new Redis(redisUrl())
  t.teardown(() => r.quit())
  return r
}

void t.test('when a link is followed, then 302 and the click reaches the clicks queue with referrer, UA family and country', async (t) => {
  // The test's own address (127.0.0.1) is the trusted proxy that sets the country header.
  const { app, config } = await testApp(t, { COUNTRY_HEADER: 'CF-IPCountry', TRUSTED_PROXIES: '127.0.0.1' })
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id, { url: 'https://example.com/target' })
  const chrome = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
  const enqueuedBefore = await counterValue(metrics.clicksEnqueued)
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({
      url: `/${link.code}`,
      headers: { referer: `https://news.example/${i}`, 'user-agent': chrome, 'cf-ipcountry': 'de' },
    })
    t.equal(res.statusCode, 302)
    t.equal(res.headers.location, 'https://example.com/target')
  }
  await app.clickBuffer.flush()
  const queue = new Queue<ClickBatchJob>('clicks', { connection: redis(t), prefix: config.REDIS_PREFIX })
  t.teardown(() => queue.close())
  const jobs = await queue.getJobs(['waiting', 'prioritized', 'delayed'])
  // The buffer flushes every 50 ms, so three redirects make one or two batch jobs.
  t.ok(jobs.length >= 1 && jobs.length <= 3, `the clicks travel in batch jobs (${jobs.length})`)
  for (const job of jobs) {
    t.equal(job.name, 'clicks')
    t.equal(job.id, `b-${job.data.clicks[0]!.clickId}`, 'named by its first click: a retried add is deduplicated')
  }
  const clicks = jobs.flatMap((j) => j.data.clicks)
  t.equal(clicks.length, 3)
  for (const click of clicks) {
    t.match(click, { linkId: link.id, referrer: /^https:\/\/news\.example\/\d$/, uaFamily: 'Chrome', country: 'DE' })
  }
  t.equal(new Set(clicks.map((c) => c.clickId)).size, 3, 'each click has its own id (the Postgres key)')
  t.same(clicks.map((c) => c.referrer).sort(), ['https://news.example/0', 'https://news.example/1', 'https://news.example/2'])
  t.equal((await counterValue(metrics.clicksEnqueued)) - enqueuedBefore, 3, 'opsdrill_clicks_enqueued_total grew by 3')
})

void t.test('when a link is followed with odd headers, then every click queued still meets the schema the worker checks', async (t) => {
  // The API adds its batches without checking them (service/plugins/queues.ts): the redirect must build each click to
  // the schema, whatever a client or the proxy sends.
  const { app, config } = await testApp(t, { COUNTRY_HEADER: 'x-country', TRUSTED_PROXIES: '127.0.0.1' })
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id, { url: 'https://example.com/odd' })
  const chrome = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
  // Browsers' user agents (a crawler's records no click), made odd: 5000 characters long, or not ASCII.
  const odd: Record<string, string>[] = [
    { referer: `https://r.example/${'é'.repeat(3000)}`, 'user-agent': `${chrome} ${'x'.repeat(5000)}`, 'x-country': 'deu' },
    // A UTF-8 emoji as the bytes a client sends (header values arrive as latin1).
    {
      referer: `https://r.example/${Buffer.from('\u{1F600}').toString('latin1').repeat(1500)}`,
      'user-agent': `Mozilla/5.0 (X11; Linux x86_64; ${'é'.repeat(300)})`,
      'x-country': 'fr',
    },
    { referer: '', 'user-agent': '', 'x-country': '' },
    // No referrer (inject's own user agent is a crawler's).
    { 'user-agent': chrome, 'x-country': '1A' },
    { referer: 'not a url at all', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64)', 'x-country': 'u s' },
  ]
  for (const headers of odd) {
    const res = await app.inject({ url: `/${link.code}`, headers })
    t.equal(res.statusCode, 302)
  }
  const clicks = await queuedClicks(t, app, config.REDIS_PREFIX)
  t.equal(clicks.length, odd.length, 'one click per redirect')
  t.doesNotThrow(() => parseClickBatchJob({ clicks }), 'the batch passes parseClickBatchJob, as the worker runs it')
  t.same(clicks.map((c) => c.country).sort(), ['FR', null, null, null, null], 'a country is kept only when it is two letters')
  t.ok(
    clicks.every((c) => c.referrer === null || [...c.referrer].length <= 2048),
    "referrers are cut to the schema's 2048 characters",
  )
})

async function queuedClicks(t: Parameters<typeof redis>[0], app: App, prefix: string): Promise<ClickJob[]> {
  await app.clickBuffer.flush()
  const queue = new Queue<ClickBatchJob>('clicks', { connection: redis(t), prefix })
  t.teardown(() => queue.close())
  return (await queue.getJobs(['waiting', 'prioritized', 'delayed'])).flatMap((j) => j.data.clicks)
}

const CHROME = BROWSER['user-agent']

void t.test('when a link is fetched with HEAD, prefetched or crawled, then it answers like GET but records no click', async (t) => {
  const { app, config } = await testApp(t)
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id, { url: 'https://example.com/target' })
  const uncounted = (reason: string) => counterValue(metrics.clicksUncounted, { reason })
  const before = { head: await uncounted('head'), prefetch: await uncounted('prefetch'), bot: await uncounted('bot') }
  const requests: [string, 'GET' | 'HEAD', Record<string, string>][] = [
    ['head', 'HEAD', { 'user-agent': CHROME }],
    ['prefetch', 'GET', { 'user-agent': CHROME, 'sec-purpose': 'prefetch' }],
    ['prefetch', 'GET', { 'user-agent': CHROME, 'sec-purpose': 'prefetch;prerender' }],
    ['prefetch', 'GET', { 'user-agent': CHROME, purpose: 'prefetch' }],
    ['prefetch', 'GET', { 'user-agent': CHROME, 'x-moz': 'prefetch' }],
    ['bot', 'GET', { 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' }],
    ['bot', 'GET', { 'user-agent': 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)' }],
    ['bot', 'GET', { 'user-agent': 'curl/8.5.0' }],
  ]
  for (const [reason, method, headers] of requests) {
    const res = await app.inject({ method, url: `/${link.code}`, headers })
    t.equal(res.statusCode, 302, `${reason}: 302`)
    t.equal(res.headers.location, 'https://example.com/target', `${reason}: same Location`)
  }
  t.same(await queuedClicks(t, app, config.REDIS_PREFIX), [], 'no click was queued')
  t.equal((await uncounted('head')) - before.head, 1)
  t.equal((await uncounted('prefetch')) - before.prefetch, 4)
  t.equal((await uncounted('bot')) - before.bot, 3)
  // The control: a person's GET is a click.
  t.equal((await app.inject({ url: `/${link.code}`, headers: { 'user-agent': CHROME } })).statusCode, 302)
  t.equal((await queuedClicks(t, app, config.REDIS_PREFIX)).length, 1, 'a GET from a browser is recorded')
})

void t.test('when a client sends a country header itself, then no country is recorded; only the trusted proxy sets it', async (t) => {
  const owner = async (app: App) => createLink(app.db, (await createUser(app.db)).id)
  const send = (app: App, code: string, remoteAddress: string, headers: Record<string, string>) =>
    app.inject({ url: `/${code}`, remoteAddress, headers: { 'user-agent': CHROME, ...headers } })

  // Default: no header is trusted, whoever sends it.
  const plain = await testApp(t)
  const a = await owner(plain.app)
  await send(plain.app, a.code, '127.0.0.1', { 'cf-ipcountry': 'DE', 'x-country-code': 'FR' })
  t.same(
    (await queuedClicks(t, plain.app, plain.config.REDIS_PREFIX)).map((c) => c.country),
    [null],
  )

  const behindProxy = await testApp(t, { COUNTRY_HEADER: 'x-country-code', TRUSTED_PROXIES: '10.0.0.0/8' })
  const b = await owner(behindProxy.app)
  await send(behindProxy.app, b.code, '203.0.113.5', { 'x-country-code': 'DE' })
  await send(behindProxy.app, b.code, '203.0.113.5', { 'x-country-code': 'FR', 'x-forwarded-for': '10.0.0.1' })
  await send(behindProxy.app, b.code, '10.1.2.3', { 'cf-ipcountry': 'IT' })
  await send(behindProxy.app, b.code, '10.1.2.3', { 'x-country-code': 'nl', 'x-forwarded-for': '198.51.100.1' })
  const countries = (await queuedClicks(t, behindProxy.app, behindProxy.config.REDIS_PREFIX)).map((c) => c.country).sort()
  t.same(countries, ['NL', null, null, null], 'only the configured header, only from the trusted proxy')
})

void t.test('when a link is followed, then the 302 carries REDIRECT_REFERRER_POLICY and the API keeps no-referrer', async (t) => {
  const { app } = await testApp(t)
  const link = await createLink(app.db, (await createUser(app.db)).id)
  for (const method of ['GET', 'HEAD'] as const) {
    const res = await app.inject({ method, url: `/${link.code}`, headers: BROWSER })
    t.equal(res.statusCode, 302)
    t.equal(res.headers['referrer-policy'], 'strict-origin-when-cross-origin', `${method}: the default on the redirect`)
  }
  t.equal((await app.inject({ url: '/healthz' })).headers['referrer-policy'], 'no-referrer', 'the API keeps no-referrer')
  t.equal((await app.inject({ url: '/nosuchcode' })).headers['referrer-policy'], 'no-referrer', 'so does a 404 on the redirect path')
  const strict = await testApp(t, { REDIRECT_REFERRER_POLICY: 'no-referrer' })
  const other = await createLink(strict.app.db, (await createUser(strict.app.db)).id)
  t.equal((await strict.app.inject({ url: `/${other.code}`, headers: BROWSER })).headers['referrer-policy'], 'no-referrer', 'configurable')
})

void t.test('when a code is followed twice, then Postgres is queried once and another instance hits Redis', async (t) => {
  const prefix = redisPrefix()
  const a = await testApp(t, { REDIS_PREFIX: prefix })
  const owner = await createUser(a.app.db)
  const link = await createLink(a.app.db, owner.id)
  const q0 = await linkQueries()
  t.equal((await a.app.inject(`/${link.code}`)).statusCode, 302)
  t.equal((await linkQueries()) - q0, 1, 'the cold lookup queries Postgres')
  t.equal((await a.app.inject(`/${link.code}`)).statusCode, 302)
  t.equal((await linkQueries()) - q0, 1, 'the second is served from L1')
  const r = redis(t)
  t.ok(await eventually(async () => (await r.exists(`${prefix}:link:v2:${link.code}`)) === 1, 2000), 'written back to Redis')
  const b = await testApp(t, { REDIS_PREFIX: prefix }, a.databaseUrl)
  const hits = await counterValue(metrics.cacheLookups, { result: 'redis_hit' })
  t.equal((await b.app.inject(`/${link.code}`)).statusCode, 302)
  t.equal((await linkQueries()) - q0, 1, 'a fresh instance (cold L1) is served by Redis')
  t.equal((await counterValue(metrics.cacheLookups, { result: 'redis_hit' })) - hits, 1, 'counted as a redis hit')
})

void t.test('when an unknown code is asked twice, then Postgres is queried once (negative caching)', async (t) => {
  const prefix = redisPrefix()
  const a = await testApp(t, { REDIS_PREFIX: prefix })
  const q0 = await linkQueries()
  assertProblem(t, await a.app.inject('/nosuch1'), 404, 'NOT_FOUND')
  assertProblem(t, await a.app.inject('/nosuch1'), 404, 'NOT_FOUND')
  t.equal((await linkQueries()) - q0, 1)
  const r = redis(t)
  t.ok(await eventually(async () => (await r.get(`${prefix}:link:v2:nosuch1`)) === '0|N', 2000), 'a negative entry is stored in Redis')
  const b = await testApp(t, { REDIS_PREFIX: prefix }, a.databaseUrl)
  assertProblem(t, await b.app.inject('/nosuch1'), 404, 'NOT_FOUND')
  t.equal((await linkQueries()) - q0, 1, 'another instance uses the negative entry too')
})

void t.test('when a link is created for a code that was cached as missing, then it redirects at once', async (t) => {
  const { app } = await testApp(t, { L1_CACHE_TTL_MS: '60000' })
  const { auth } = await login(app)
  assertProblem(t, await app.inject('/later-alias'), 404, 'NOT_FOUND')
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/links',
    headers: auth,
    payload: { url: 'https://example.com/now', alias: 'later-alias' },
  })
  t.equal(res.statusCode, 201)
  t.equal((await app.inject('/later-alias')).headers.location, 'https://example.com/now')
})

void t.test('when 50 redirects for one cold code arrive at once, then Postgres is queried exactly once (single flight)', async (t) => {
  const { app } = await testApp(t)
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id, { url: 'https://example.com/burst' })
  const waits = await counterValue(metrics.cacheSingleFlightWaits)
  const q0 = await linkQueries()
  const all = await Promise.all(Array.from({ length: 50 }, () => app.inject(`/${link.code}`)))
  t.same([...new Set(all.map((r) => `${r.statusCode} ${r.headers.location}`))], ['302 https://example.com/burst'])
  t.equal((await linkQueries()) - q0, 1)
  t.ok((await counterValue(metrics.cacheSingleFlightWaits)) - waits > 0, 'some lookups joined the in-flight load')
})

void t.test('when CACHE_ENABLED=false, then every redirect queries Postgres', async (t) => {
  const { app } = await testApp(t, { CACHE_ENABLED: 'false' })
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id)
  const q0 = await linkQueries()
  for (let i = 0; i < 5; i++) t.equal((await app.inject(`/${link.code}`)).statusCode, 302)
  t.equal((await linkQueries()) - q0, 5)
})

void t.test('when instance A changes or deletes a link, then instance B (warm L1) follows within a moment via pub/sub', async (t) => {
  // L1 lives 60 s here: only the invalidation message can make B see the change quickly.
  const shared = { REDIS_PREFIX: redisPrefix(), L1_CACHE_TTL_MS: '60000' }
  const a = await testApp(t, shared)
  const b = await testApp(t, shared, a.databaseUrl)
  const { auth } = await login(a.app)
  const link = await createLinkVia(a.app, auth, 'https://example.com/v1')
  t.equal((await a.app.inject(`/${link.code}`)).headers.location, 'https://example.com/v1')
  t.equal((await b.app.inject(`/${link.code}`)).headers.location, 'https://example.com/v1')
  const q0 = await linkQueries()
  t.equal((await b.app.inject(`/${link.code}`)).headers.location, 'https://example.com/v1')
  t.equal((await linkQueries()) - q0, 0, 'B serves from its warm L1')

  const remote = await counterValue(metrics.cacheInvalidations, { origin: 'remote' })
  t.equal(
    (await a.app.inject({ method: 'PATCH', url: `/api/v1/links/${link.id}`, headers: auth, payload: { url: 'https://example.com/v2' } }))
      .statusCode,
    200,
  )
  const start = Date.now()
  t.ok(
    await eventually(async () => (await b.app.inject(`/${link.code}`)).headers.location === 'https://example.com/v2', 1000, 20),
    'B redirects to the new URL',
  )
  t.ok(Date.now() - start < 1000, `within ${Date.now() - start} ms`)
  t.ok((await counterValue(metrics.cacheInvalidations, { origin: 'remote' })) > remote, 'a remote invalidation was counted')

  t.equal((await a.app.inject({ method: 'DELETE', url: `/api/v1/links/${link.id}`, headers: auth })).statusCode, 204)
  t.ok(await eventually(async () => (await b.app.inject(`/${link.code}`)).statusCode === 410, 1000, 20), 'B answers 410 after the delete')
  assertProblem(t, await b.app.inject(`/${link.code}`), 410, 'GONE')
})

void t.test('when links are cached, then their Redis TTLs are CACHE_TTL_SECONDS within +-10% and not all equal (jitter)', async (t) => {
  const { app, config } = await testApp(t, { CACHE_TTL_SECONDS: '1000', CACHE_NEGATIVE_TTL_SECONDS: '100' })
  const owner = await createUser(app.db)
  const codes: string[] = []
  for (let i = 0; i < 8; i++) {
    const link = await createLink(app.db, owner.id)
    codes.push(link.code)
    t.equal((await app.inject(`/${link.code}`)).statusCode, 302)
  }
  await app.inject('/nosuch2')
  const r = redis(t)
  await sleep(100)
  const ttls = await Promise.all(codes.map((c) => r.pttl(`${config.REDIS_PREFIX}:link:v2:${c}`)))
  for (const ttl of ttls) t.ok(ttl >= 895_000 && ttl <= 1_100_000, `PTTL ${ttl} within 900..1100 s`)
  t.ok(new Set(ttls.map((v) => Math.round(v / 1000))).size > 1, `TTLs differ: ${ttls.join(', ')}`)
  const neg = await r.pttl(`${config.REDIS_PREFIX}:link:v2:nosuch2`)
  t.ok(neg >= 89_500 && neg <= 110_000, `negative PTTL ${neg} within 90..110 s`)
})
