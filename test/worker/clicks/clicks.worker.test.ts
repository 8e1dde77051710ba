import t from 'tap'
import type { ClickBatchJob } from '../../../common/queues.ts'
import { metrics } from '../../../common/metrics.ts'
import { testDatabase } from '../../helpers/env.ts'
import { createLink, createUser } from '../../helpers/factories.ts'
import { clickJob, count, enqueueClicks, metricValue, pgPool, producer, startTestWorker, waitFor } from '../../helpers/worker.ts'

const DAY_MS = 86_400_000
const utcDay = (d: Date) => d.toISOString().slice(0, 10)

async function rollups(pool: ReturnType<typeof pgPool>): Promise<Record<string, number>> {
  const res = await pool.query<{ link_id: string; day: string; clicks: string }>(
    'SELECT link_id, day::text, clicks FROM click_rollups_daily',
  )
  return Object.fromEntries(res.rows.map((r) => [`${r.link_id}|${r.day}`, Number(r.clicks)]))
}

void t.test('when clicks are enqueued, then they are stored in batches and counted per link and UTC day', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const [a, b] = [await createLink(pool, user.id), await createLink(pool, user.id)]
  const { config } = await startTestWorker(t, url, { CLICK_BATCH_SIZE: '10', CLICK_BATCH_MAX_WAIT_MS: '50' })
  const p = producer(t, config)
  const batchesBefore = await metricValue(metrics.workerBatchSize, {}, 'opsdrill_worker_click_batch_size_count')
  const ingestedBefore = await metricValue(metrics.clicksIngested)

  const now = new Date()
  const yesterday = new Date(now.getTime() - DAY_MS)
  const clicks = [
    ...Array.from({ length: 15 }, () => clickJob(a.id, { at: now.toISOString() })),
    ...Array.from({ length: 7 }, () => clickJob(a.id, { at: yesterday.toISOString() })),
    ...Array.from({ length: 3 }, () => clickJob(b.id, { at: now.toISOString(), referrer: 'https://ref.example/', country: null })),
  ]
  await enqueueClicks(p, clicks)
  await waitFor(async () => (await p.clicks.getJobCounts('completed')).completed === 25, { what: '25 completed click jobs' })

  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 25, 'every click stored')
  t.same(await rollups(pool), {
    [`${a.id}|${utcDay(now)}`]: 15,
    [`${a.id}|${utcDay(yesterday)}`]: 7,
    [`${b.id}|${utcDay(now)}`]: 3,
  })
  const stored = await pool.query('SELECT referrer, country FROM clicks WHERE link_id = $1', [b.id])
  t.same(stored.rows[0], { referrer: 'https://ref.example/', country: null }, 'nullable fields stored as sent')
  t.equal((await metricValue(metrics.clicksIngested)) - ingestedBefore, 25)
  const batches = (await metricValue(metrics.workerBatchSize, {}, 'opsdrill_worker_click_batch_size_count')) - batchesBefore
  t.ok(batches >= 3 && batches <= 10, `25 clicks written in a few batches of at most 10 (got ${batches})`)
})

void t.test('when the same click is delivered twice, then it is stored and counted once', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const link = await createLink(pool, (await createUser(pool)).id)
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)
  const click = clickJob(link.id)
  const duplicatesBefore = await metricValue(metrics.clicksDuplicate)

  await enqueueClicks(p, [click])
  const first = await waitFor(
    async () => {
      const job = await p.clicks.getJob(click.clickId)
      return job?.finishedOn ? job : undefined
    },
    { what: 'first delivery' },
  )
  t.same(first.returnvalue, { outcome: 'stored' })
  // BullMQ ignores an add whose job id exists; removing the completed job lets the same id in again, as a replay would.
  await first.remove()
  await enqueueClicks(p, [click])
  const second = await waitFor(
    async () => {
      const job = await p.clicks.getJob(click.clickId)
      return job?.finishedOn ? job : undefined
    },
    { what: 'second delivery' },
  )

  t.same(second.returnvalue, { outcome: 'duplicate' })
  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks WHERE id = $1', [click.clickId]), 1)
  t.equal(await count(pool, 'SELECT clicks AS n FROM click_rollups_daily WHERE link_id = $1', [link.id]), 1)
  t.equal((await metricValue(metrics.clicksDuplicate)) - duplicatesBefore, 1)
})

void t.test("when a click's link was hard-deleted, then that click is dropped and the rest of its batch is stored", async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const live = await createLink(pool, user.id)
  const gone = await createLink(pool, user.id)
  await pool.query('DELETE FROM links WHERE id = $1', [gone.id])
  // One batch for all six: the size is never reached and the wait is long enough for every job to join.
  const { config, logs } = await startTestWorker(t, url, { CLICK_BATCH_SIZE: '100', CLICK_BATCH_MAX_WAIT_MS: '300' })
  const p = producer(t, config)
  const discardedBefore = await metricValue(metrics.clicksDiscarded, { reason: 'link_deleted' })
  const orphan = clickJob(gone.id)

  await enqueueClicks(p, [...Array.from({ length: 5 }, () => clickJob(live.id)), orphan])
  await waitFor(async () => (await p.clicks.getJobCounts('completed')).completed === 6, { what: '6 completed click jobs' })

  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 5)
  t.equal(await count(pool, 'SELECT clicks AS n FROM click_rollups_daily WHERE link_id = $1', [live.id]), 5)
  t.same((await p.clicks.getJob(orphan.clickId))?.returnvalue, { outcome: 'link_deleted' })
  t.equal((await p.clicks.getJobCounts('failed')).failed, 0, 'no job failed or retried')
  t.equal((await metricValue(metrics.clicksDiscarded, { reason: 'link_deleted' })) - discardedBefore, 1)
  t.ok(
    logs.some((l) => l.message === 'click dropped: its link no longer exists'),
    'the drop is logged',
  )
})

void t.test('when a click payload is invalid, then it goes to the dead letters after one attempt', async (t) => {
  const url = await testDatabase(t)
  const { config } = await startTestWorker(t, url, { JOB_ATTEMPTS: '5' })
  const p = producer(t, config)
  const deadBefore = await metricValue(metrics.jobsDeadLettered, { queue: 'clicks' })

  await p.clicks.add('click', { clickId: 'not-a-uuid' } as never, { jobId: 'bad-click-1' })
  const letter = await waitFor(async () => (await p.deadLetters.getWaiting(0, 0))[0], { what: 'a dead letter' })

  t.equal(letter.id, 'clicks.bad-click-1', 'dead letter id is <queue>.<job id>')
  t.match(letter.data, { queue: 'clicks', jobId: 'bad-click-1', attemptsMade: 1, failedReason: /invalid click payload/ })
  const job = await p.clicks.getJob('bad-click-1')
  t.equal(await job?.getState(), 'failed')
  t.equal(job?.attemptsMade, 1, 'not retried although 5 attempts were allowed')
  t.equal((await metricValue(metrics.jobsDeadLettered, { queue: 'clicks' })) - deadBefore, 1)
})

void t.test('when the API enqueues a batch job, then every click in it is stored once, and a replayed batch adds nothing', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const link = await createLink(pool, (await createUser(pool)).id)
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)
  const clicks = Array.from({ length: 40 }, () => clickJob(link.id))
  await p.clicks.add('clicks', { clicks }, { jobId: `b-${clicks[0]!.clickId}` })
  await waitFor(async () => (await p.clicks.getJobCounts('completed')).completed === 1, { what: 'the batch job completed' })
  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 40)
  // The same clicks again under another job id: a delivery after a crash between the write and the ack.
  await p.clicks.add('clicks', { clicks }, { jobId: `b-replay-${clicks[0]!.clickId}` })
  await waitFor(async () => (await p.clicks.getJobCounts('completed')).completed === 2, { what: 'the replayed batch completed' })
  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 40, 'nothing stored twice')
  t.equal(await count(pool, 'SELECT COALESCE(sum(clicks), 0) AS n FROM click_rollups_daily'), 40, 'nothing counted twice')
})

void t.test('when a batch job carries an invalid click, then it fails for good without retries', async (t) => {
  const url = await testDatabase(t)
  const { config } = await startTestWorker(t, url, { JOB_ATTEMPTS: '3', JOB_BACKOFF_MS: '10' })
  const p = producer(t, config)
  await p.clicks.add('clicks', { clicks: [{ clickId: 'nope' }] } as unknown as ClickBatchJob, { attempts: 3 })
  await waitFor(async () => (await p.deadLetters.getWaitingCount()) === 1, { what: 'one dead letter' })
  const [failed] = await p.clicks.getFailed()
  t.equal(failed?.attemptsMade, 1, 'not retried: an invalid payload can never succeed')
})
