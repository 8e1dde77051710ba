// Retries, the dead-letter queue and replay: worker/lib/build-worker.ts records, common/deadletters.ts lists and replays.
import t from 'tap'
import {
  DeadLetterNotFoundError,
  DeadLetterNotReplayableError,
  addDeadLetter,
  listDeadLetters,
  replayAllDeadLetters,
  replayDeadLetter,
  toDeadLetter,
} from '../../common/deadletters.ts'
import { metrics } from '../../common/metrics.ts'
import { testDatabase } from '../helpers/env.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { clickJob, count, enqueueClicks, metricValue, pgPool, producer, startTestWorker, waitFor } from '../helpers/worker.ts'

void t.test(
  'when an export fails on every attempt, then it is dead-lettered once, marked failed, and a replay runs it to done',
  async (t) => {
    const url = await testDatabase(t)
    const pool = pgPool(t, url)
    const user = await createUser(pool)
    const link = await createLink(pool, user.id)
    const { rows } = await pool.query<{ id: string }>('INSERT INTO exports (link_id, owner_id) VALUES ($1, $2) RETURNING id', [
      link.id,
      user.id,
    ])
    const exportId = rows[0]!.id
    // The fault: any attempt to start the export raises, as a broken dependency would.
    await pool.query(`CREATE FUNCTION fail_start() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.status = 'running' THEN RAISE EXCEPTION 'export storage unavailable'; END IF; RETURN NEW; END $$`)
    await pool.query('CREATE TRIGGER fail_start BEFORE UPDATE ON exports FOR EACH ROW EXECUTE FUNCTION fail_start()')
    const { config } = await startTestWorker(t, url, { JOB_ATTEMPTS: '3', JOB_BACKOFF_MS: '10' })
    const p = producer(t, config)
    const before = {
      failed: await metricValue(metrics.jobsFailed, { queue: 'exports' }),
      retried: await metricValue(metrics.jobsRetried, { queue: 'exports' }),
      dead: await metricValue(metrics.jobsDeadLettered, { queue: 'exports' }),
    }

    await p.exports.add('export', { exportId, linkId: link.id }, { jobId: exportId })
    await waitFor(async () => (await p.exports.getJob(exportId))?.finishedOn, { what: 'the export job to fail for good' })

    const job = await p.exports.getJob(exportId)
    t.equal(await job?.getState(), 'failed')
    t.equal(job?.attemptsMade, 3, 'every attempt was used')
    t.equal((await metricValue(metrics.jobsFailed, { queue: 'exports' })) - before.failed, 3, 'three failed attempts')
    t.equal((await metricValue(metrics.jobsRetried, { queue: 'exports' })) - before.retried, 2, 'two of them retried')
    t.equal((await metricValue(metrics.jobsDeadLettered, { queue: 'exports' })) - before.dead, 1, 'one dead letter')
    const page = await listDeadLetters(p.connection, config.REDIS_PREFIX)
    t.equal(page.total, 1)
    t.match(page.items[0], {
      id: `exports.${exportId}`,
      queue: 'exports',
      jobId: exportId,
      attemptsMade: 3,
      data: { exportId },
      failedReason: /export storage unavailable/,
    })
    const failed = await pool.query('SELECT status, error FROM exports WHERE id = $1', [exportId])
    t.equal(failed.rows[0].status, 'failed', 'the owner sees the export failed')
    t.match(failed.rows[0].error, /^export failed: export storage unavailable/)
    t.ok(failed.rows[0].error.length <= 200, 'the stored error is short')

    await pool.query('DROP TRIGGER fail_start ON exports')
    const replay = await replayDeadLetter(p.connection, config.REDIS_PREFIX, page.items[0]!.id)
    t.match(replay, { queue: 'exports', jobId: new RegExp(`^${exportId}-replay-\\d+$`) })
    await waitFor(async () => (await pool.query('SELECT status FROM exports WHERE id = $1', [exportId])).rows[0].status === 'done', {
      what: 'the replayed export to finish',
    })
    t.equal((await listDeadLetters(p.connection, config.REDIS_PREFIX)).total, 0, 'the dead letter is gone')
    t.equal(await (await p.exports.getJob(replay.jobId))?.getState(), 'completed')
  },
)

void t.test('when a click failed for good and is replayed, then it is stored and counted once, even if it had been stored', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const link = await createLink(pool, (await createUser(pool)).id)
  await pool.query(`CREATE FUNCTION fail_click() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'disk full'; END $$`)
  await pool.query(
    `CREATE TRIGGER fail_click BEFORE INSERT ON clicks FOR EACH ROW WHEN (NEW.referrer = 'https://fail.example/') EXECUTE FUNCTION fail_click()`,
  )
  const { config } = await startTestWorker(t, url, { JOB_ATTEMPTS: '2', JOB_BACKOFF_MS: '10' })
  const p = producer(t, config)
  const failing = clickJob(link.id, { referrer: 'https://fail.example/' })
  const fine = clickJob(link.id)

  await enqueueClicks(p, [failing, fine])
  await waitFor(async () => (await listDeadLetters(p.connection, config.REDIS_PREFIX)).total === 1, {
    what: 'the failing click to be dead-lettered',
  })
  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 1, 'the click sharing its batch was stored regardless')

  await pool.query('DROP TRIGGER fail_click ON clicks')
  // A second dead letter for a click that reached Postgres after all (its job lost its lock after the commit, say).
  await addDeadLetter(p.deadLetters, toDeadLetter('clicks', { id: fine.clickId, name: 'click', data: fine }, new Error('lock lost'), 2))
  const result = await replayAllDeadLetters(p.connection, config.REDIS_PREFIX)
  t.equal(result.replayed.length, 2)
  t.same(result.skipped, [])
  await waitFor(async () => (await p.clicks.getJobCounts('completed')).completed === 3, { what: 'the replayed jobs to complete' })

  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 2, 'each click stored once')
  t.equal(await count(pool, 'SELECT clicks AS n FROM click_rollups_daily WHERE link_id = $1', [link.id]), 2, 'and counted once')
  const outcomes = await Promise.all(result.replayed.map(async (r) => (await p.clicks.getJob(r.jobId))?.returnvalue))
  t.same(outcomes.map((o) => o.outcome).sort(), ['duplicate', 'stored'])
})

void t.test('when a dead letter cannot succeed (invalid payload) or does not exist, then replay refuses and keeps it', async (t) => {
  const url = await testDatabase(t)
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)
  await p.clicks.add('click', { nonsense: true } as never, { jobId: 'junk-1' })
  await waitFor(async () => (await listDeadLetters(p.connection, config.REDIS_PREFIX)).total === 1, { what: 'a dead letter' })

  await t.rejects(replayDeadLetter(p.connection, config.REDIS_PREFIX, 'clicks.junk-1'), DeadLetterNotReplayableError)
  await t.rejects(replayDeadLetter(p.connection, config.REDIS_PREFIX, 'clicks.nope'), DeadLetterNotFoundError)
  const all = await replayAllDeadLetters(p.connection, config.REDIS_PREFIX)
  t.same(all.replayed, [])
  t.match(all.skipped, [{ id: 'clicks.junk-1', reason: /invalid click payload/ }])
  t.equal((await listDeadLetters(p.connection, config.REDIS_PREFIX)).total, 1, 'the dead letter stays for an operator to inspect')
})
