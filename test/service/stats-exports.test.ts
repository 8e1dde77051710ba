import t from 'tap'
import { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import { testApp, login, createLinkVia } from '../helpers/app.ts'
import { redisUrl } from '../helpers/env.ts'
import { assertProblem, pgQueries, sql } from '../helpers/service.ts'
import { freePort } from '../../ops/lib/net.ts'
import { metrics } from '../../common/metrics.ts'
import type { App } from '../../service/app.ts'

const linkFor = async (app: App, auth: { authorization: string }) => (await createLinkVia(app, auth, 'https://example.com/s')).id
const statsQueries = async () =>
  (await pgQueries(metrics.pgQueryDuration, 'stats_daily')) + (await pgQueries(metrics.pgQueryDuration, 'stats_total'))

void t.test(
  'when rollups exist, then stats give the all-time total and the UTC per-day series within `days`, then are served from Redis',
  async (t) => {
    const { app, databaseUrl } = await testApp(t, { STATS_CACHE_TTL_SECONDS: '30' })
    const { auth } = await login(app)
    const id = await linkFor(app, auth)
    const db = await sql(t, databaseUrl)
    await db.query(
      `INSERT INTO click_rollups_daily (link_id, day, clicks) VALUES
       ($1, (now() AT TIME ZONE 'UTC')::date, 5),
       ($1, (now() AT TIME ZONE 'UTC')::date - 2, 7),
       ($1, (now() AT TIME ZONE 'UTC')::date - 40, 100)`,
      [id],
    )
    const { rows } = await db.query<{ today: string; before: string }>(
      `SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS today, to_char((now() AT TIME ZONE 'UTC')::date - 2, 'YYYY-MM-DD') AS before`,
    )
    const q0 = await statsQueries()
    const res = await app.inject({ method: 'GET', url: `/api/v1/links/${id}/stats?days=7`, headers: auth })
    t.equal(res.statusCode, 200, res.body)
    const body = res.json() as { linkId: string; total: number; days: { day: string; clicks: number }[]; generatedAt: string }
    t.equal(body.linkId, id)
    t.equal(body.total, 112, 'total is all time')
    t.same(
      body.days,
      [
        { day: rows[0]!.before, clicks: 7 },
        { day: rows[0]!.today, clicks: 5 },
      ],
      'only days within the window, oldest first',
    )
    t.equal((await statsQueries()) - q0, 2, 'the first call reads Postgres')
    const again = await app.inject({ method: 'GET', url: `/api/v1/links/${id}/stats?days=7`, headers: auth })
    t.same(again.json(), body, 'same answer (same generatedAt: cached)')
    t.equal((await statsQueries()) - q0, 2, 'the second call within STATS_CACHE_TTL_SECONDS does not query Postgres')
    const wide = (await app.inject({ method: 'GET', url: `/api/v1/links/${id}/stats?days=60`, headers: auth })).json() as {
      days: unknown[]
    }
    t.equal(wide.days.length, 3, 'a wider window is its own cache entry')
  },
)

void t.test('when days is 0, too large or not a number, then 400 naming querystring.days', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const id = await linkFor(app, auth)
  for (const days of ['0', '367', 'abc', '-1']) {
    assertProblem(
      t,
      await app.inject({ method: 'GET', url: `/api/v1/links/${id}/stats?days=${days}`, headers: auth }),
      400,
      'VALIDATION_FAILED',
      'querystring.days',
    )
  }
})

void t.test(
  'when an export is requested, then 202 with Location, a queued row, an exports job with jobId = exportId, and the lifecycle through download',
  async (t) => {
    const { app, config, databaseUrl } = await testApp(t)
    const { auth } = await login(app)
    const other = await login(app)
    const id = await linkFor(app, auth)
    const res = await app.inject({ method: 'POST', url: `/api/v1/links/${id}/exports`, headers: auth })
    t.equal(res.statusCode, 202, res.body)
    const body = res.json() as { exportId: string; status: string; statusUrl: string }
    t.equal(body.status, 'queued')
    t.equal(body.statusUrl, `/api/v1/exports/${body.exportId}`)
    t.equal(res.headers.location, body.statusUrl)

    const connection = new Redis(redisUrl())
    const queue = new Queue('exports', { connection, prefix: config.REDIS_PREFIX })
    t.teardown(async () => {
      await queue.close()
      await connection.quit()
    })
    const job = await queue.getJob(body.exportId)
    t.ok(job, 'the job exists under jobId = exportId')
    t.same(job?.data, { exportId: body.exportId, linkId: id }, 'payload names the export and link, nothing else')

    const status = await app.inject({ method: 'GET', url: body.statusUrl, headers: auth })
    t.equal(status.statusCode, 200)
    t.match(status.json(), { id: body.exportId, linkId: id, status: 'queued', progress: 0, rowCount: null, downloadUrl: null })
    assertProblem(t, await app.inject({ method: 'GET', url: `${body.statusUrl}/download`, headers: auth }), 409, 'EXPORT_NOT_READY')
    assertProblem(t, await app.inject({ method: 'GET', url: body.statusUrl, headers: other.auth }), 404, 'NOT_FOUND')

    // The worker's part, done by hand: it writes the CSV and marks the export done.
    const db = await sql(t, databaseUrl)
    const csv = 'click_id,at,referrer,ua_family,country\n00000000-0000-4000-8000-000000000001,2026-01-01T00:00:00.000Z,,Chrome,DE\n'
    // Two chunks, as the worker writes a CSV larger than one chunk; the download joins them in order.
    const half = Math.floor(csv.length / 2)
    await db.query('INSERT INTO export_chunks (export_id, seq, data) VALUES ($1, 1, $3), ($1, 0, $2)', [
      body.exportId,
      Buffer.from(csv.slice(0, half)),
      Buffer.from(csv.slice(half)),
    ])
    await db.query("UPDATE exports SET status = 'done', progress = 100, row_count = 1, bytes = $2, finished_at = now() WHERE id = $1", [
      body.exportId,
      Buffer.byteLength(csv),
    ])
    const done = (await app.inject({ method: 'GET', url: body.statusUrl, headers: auth })).json()
    t.match(done, { status: 'done', progress: 100, rowCount: 1, downloadUrl: `${body.statusUrl}/download` })
    const reads = await pgQueries(metrics.pgQueryDuration, 'export_chunk_read')
    const dl = await app.inject({ method: 'GET', url: `${body.statusUrl}/download`, headers: auth })
    t.equal(dl.statusCode, 200)
    t.equal((await pgQueries(metrics.pgQueryDuration, 'export_chunk_read')) - reads, 3, 'read one chunk at a time (two, then the end)')
    t.match(dl.headers['content-type'], /^text\/csv/)
    t.match(dl.headers['content-disposition'], `export-${body.exportId}.csv`)
    t.equal(dl.body, csv)
    t.equal(dl.headers['content-length'], String(Buffer.byteLength(csv)))
    assertProblem(t, await app.inject({ method: 'GET', url: `${body.statusUrl}/download`, headers: other.auth }), 404, 'NOT_FOUND')
  },
)

void t.test("when the producer's Redis is down, then an export request answers 503 and its row is marked failed", async (t) => {
  const { app, databaseUrl } = await testApp(t, { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, REDIS_CONNECT_TIMEOUT_MS: '200' })
  const { auth } = await login(app)
  const id = await linkFor(app, auth)
  const started = Date.now()
  const res = await app.inject({ method: 'POST', url: `/api/v1/links/${id}/exports`, headers: auth })
  assertProblem(t, res, 503, 'SERVICE_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '1')
  t.ok(Date.now() - started < 2000, `answered in ${Date.now() - started} ms`)
  const db = await sql(t, databaseUrl)
  const { rows } = await db.query<{ status: string; error: string; finished_at: Date | null }>(
    'SELECT status, error, finished_at FROM exports WHERE link_id = $1',
    [id],
  )
  t.equal(rows.length, 1)
  t.match(rows[0], { status: 'failed', error: String, finished_at: Date })
})
