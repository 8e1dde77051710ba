import t from 'tap'
import { readdirSync } from 'node:fs'
import { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import { testApp, BROWSER } from '../helpers/app.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { counterValue, eventually, ownRedis, sql } from '../helpers/service.ts'
import { startTestWorker } from '../helpers/worker.ts'
import { metrics } from '../../common/metrics.ts'
import type { ClickBatchJob } from '../../common/queues.ts'

const mark = (i: number) => `https://ledger.example/${i}`

void t.test('when Redis is stopped, then N redirects are served and, once Redis is back, all N clicks are stored', async (t) => {
  const server = await ownRedis(t)
  const { app, config, databaseUrl } = await testApp(t, { REDIS_URL: server.url, REDIS_CONNECT_TIMEOUT_MS: '500' })
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id)
  await server.stop()
  const spooled0 = await counterValue(metrics.clicksSpooled)
  const n = 40
  const statuses = new Set<number>()
  for (let i = 0; i < n; i++)
    statuses.add((await app.inject({ url: `/${link.code}`, headers: { ...BROWSER, referer: mark(i) } })).statusCode)
  await app.clickBuffer.flush()
  t.same([...statuses], [302], `all ${n} redirects served while Redis is down`)
  t.equal((await counterValue(metrics.clicksSpooled)) - spooled0, n, 'their clicks went to the spool')
  t.ok(readdirSync(config.CLICK_SPOOL_DIR).length > 0, 'the spool is a file on disk')

  await server.start()
  await startTestWorker(t, databaseUrl, { REDIS_URL: server.url, REDIS_PREFIX: config.REDIS_PREFIX })
  const db = await sql(t, databaseUrl)
  const stored = async () =>
    Number((await db.query<{ n: string }>('SELECT count(DISTINCT referrer) AS n FROM clicks WHERE link_id = $1', [link.id])).rows[0]!.n)
  t.ok(await eventually(async () => (await stored()) === n, 15_000, 200), `all ${n} clicks stored (stored ${await stored()})`)
  t.same(readdirSync(config.CLICK_SPOOL_DIR), [], 'the replayed spool is deleted')
})

void t.test('when an enqueue times out, then it is retried and the batch is queued once, not spooled', async (t) => {
  const server = await ownRedis(t)
  const { app, config } = await testApp(t, {
    REDIS_URL: server.url,
    // The producer's command timeout is half of this: 100 ms.
    REDIS_QUEUE_COMMAND_TIMEOUT_MS: '200',
    CLICK_ENQUEUE_ATTEMPTS: '8',
    CLICK_ENQUEUE_BACKOFF_MS: '100',
  })
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id)
  // The first add loads BullMQ's scripts: do it before the pause.
  t.equal((await app.inject({ url: `/${link.code}`, headers: BROWSER })).statusCode, 302)
  await app.clickBuffer.flush()
  const admin = new Redis(server.url)
  t.teardown(() => admin.quit())
  const [retries0, spooled0, enqueued0] = await Promise.all([
    counterValue(metrics.clickEnqueueRetries),
    counterValue(metrics.clicksSpooled),
    counterValue(metrics.clicksEnqueued),
  ])
  // Redis holds every client's commands for 1.5 s (long enough to outlast a busy box's scheduling delays): the
  // first tries time out, a later one gets through (the fifth try starts about 1.9 s in). Paused before the redirect,
  // so that the flush timer cannot enqueue its click first; the redirect itself is answered from L1.
  const paused = Date.now()
  await admin.client('PAUSE', 1500, 'ALL')
  t.equal((await app.inject({ url: `/${link.code}`, headers: { ...BROWSER, referer: mark(1) } })).statusCode, 302)
  const answered = Date.now() - paused
  await app.clickBuffer.flush()
  const flushed = Date.now() - paused
  t.ok((await counterValue(metrics.clickEnqueueRetries)) - retries0 > 0, 'the add was tried again')
  t.equal((await counterValue(metrics.clicksSpooled)) - spooled0, 0, 'nothing was spooled')
  const enqueued = async () => (await counterValue(metrics.clicksEnqueued)) - enqueued0
  // What a failure needs to say (it failed once in the parallel phase of a full run, the file taking 68 s instead of
  // 8): when the redirect was answered and the flush returned, and whether the click was enqueued later or never.
  const atFlush = await enqueued()
  let where = ''
  if (atFlush !== 1) {
    const late = await eventually(async () => (await enqueued()) === 1, 15_000, 100)
    const dropped = (await metrics.clicksDropped.get()).values.map((v) => `${v.labels.reason}=${v.value}`).join(' ')
    where = `: redirect answered ${answered} ms after the pause, flush returned at ${flushed} ms; the click was ${late ? `enqueued by ${Date.now() - paused} ms` : 'not enqueued within 15 s more'}; buffer ${app.clickBuffer.size}; drops ${dropped}`
  }
  t.equal(atFlush, 1, `the click was enqueued by the time the flush returned${where}`)
  const queue = new Queue<ClickBatchJob>('clicks', { connection: admin, prefix: config.REDIS_PREFIX })
  t.teardown(() => queue.close())
  // The timed-out tries still ran once Redis resumed: the deterministic job id made them one job.
  await new Promise((r) => setTimeout(r, 500))
  const jobs = (await queue.getJobs(['waiting'])).filter((j) => j.data.clicks.some((c) => c.referrer === mark(1)))
  t.equal(jobs.length, 1, 'one job holds the click')
})

void t.test('when the spool reaches CLICK_SPOOL_MAX_BYTES, then further clicks are dropped, counted and logged', async (t) => {
  const server = await ownRedis(t)
  const { app, logs } = await testApp(t, { REDIS_URL: server.url, REDIS_CONNECT_TIMEOUT_MS: '500', CLICK_SPOOL_MAX_BYTES: '4096' })
  const owner = await createUser(app.db)
  const link = await createLink(app.db, owner.id)
  await server.stop()
  const [spooled0, full0] = await Promise.all([
    counterValue(metrics.clicksSpooled),
    counterValue(metrics.clicksDropped, { reason: 'spool_full' }),
  ])
  const n = 30
  // One flush per redirect: one small batch (about 300 bytes) per append.
  for (let i = 0; i < n; i++) {
    t.equal((await app.inject({ url: `/${link.code}`, headers: { ...BROWSER, referer: mark(i) } })).statusCode, 302)
    await app.clickBuffer.flush()
  }
  const spooled = (await counterValue(metrics.clicksSpooled)) - spooled0
  const full = (await counterValue(metrics.clicksDropped, { reason: 'spool_full' })) - full0
  t.ok(spooled > 0 && full > 0, `${spooled} spooled, then ${full} dropped`)
  t.equal(spooled + full, n, 'every click is either spooled or counted as dropped')
  const bytes = (await metrics.clickSpoolBytes.get()).values[0]?.value ?? 0
  t.ok(bytes > 0 && bytes <= 4096, `the spool holds ${bytes} bytes, within its bound`)
  const errors = logs.filter((l) => String(l.message).startsWith('click spool full'))
  t.equal(errors.length, 1, 'one error line for the burst, not one per click')
  t.equal(errors[0]?.['log.level'], 'error')
})
