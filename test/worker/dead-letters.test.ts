// Retries, the dead-letter queue and replay: worker/lib/build-worker.ts records, common/deadletters.ts lists and replays.
import t from 'tap'
import { spawnSync } from 'node:child_process'
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
import { CLICK_JOBS, MAINTENANCE_JOBS } from '../../common/queues.ts'
import { testDatabase } from '../helpers/env.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { ROOT, clickJob, count, enqueueClicks, metricValue, pgPool, producer, startTestWorker, waitFor } from '../helpers/worker.ts'

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

void t.test(
  'when click batches are dead-lettered by a Postgres stall, then `npm run ops -- dlq replay --all` replays them and each click is stored once',
  async (t) => {
    const url = await testDatabase(t)
    const pool = pgPool(t, url)
    const link = await createLink(pool, (await createUser(pool)).id)
    // The fault: a session holds the clicks table, so every insert runs into the statement timeout, as it does while
    // Postgres is unreachable; the batches exhaust their attempts and are dead-lettered.
    const holder = await pool.connect()
    t.teardown(() => holder.release())
    await holder.query('BEGIN')
    await holder.query('LOCK TABLE clicks IN ACCESS EXCLUSIVE MODE')
    const { config } = await startTestWorker(t, url, { JOB_ATTEMPTS: '2', JOB_BACKOFF_MS: '10', PG_STATEMENT_TIMEOUT_MS: '300' })
    const p = producer(t, config)
    const batches = [
      [clickJob(link.id), clickJob(link.id)],
      [clickJob(link.id), clickJob(link.id), clickJob(link.id)],
    ]
    for (const clicks of batches) await p.clicks.add('clicks', { clicks }, { jobId: `b-${clicks[0]!.clickId}` })
    await waitFor(async () => (await p.deadLetters.getWaitingCount()) === 2, { what: 'both batches to be dead-lettered' })
    await holder.query('ROLLBACK')
    const env = { REDIS_URL: config.REDIS_URL, REDIS_PREFIX: config.REDIS_PREFIX }

    const listed = npmOps(['dlq', 'list', '--json'], env)
    t.equal(listed.code, 0, listed.stderr)
    const page = JSON.parse(listed.stdout) as { total: number; items: { name: string; failedReason: string }[] }
    t.equal(page.total, 2)
    t.same(
      page.items.map((i) => i.name),
      ['clicks', 'clicks'],
      'the letters are batches',
    )
    t.match(page.items[0]!.failedReason, /statement timeout/)

    const replayed = npmOps(['dlq', 'replay', '--all', '--json'], env)
    t.equal(replayed.code, 0, replayed.stderr)
    const result = JSON.parse(replayed.stdout) as { replayed: unknown[]; skipped: unknown[] }
    t.equal(result.replayed.length, 2, 'every batch replayed')
    t.same(result.skipped, [], 'none skipped as not replayable')
    const total = batches.flat().length
    await waitFor(async () => (await count(pool, 'SELECT count(*) AS n FROM clicks')) === total, { what: 'the replayed clicks' })
    // Replaying the same letters again (an operator's second run) finds nothing and stores nothing more.
    t.same(JSON.parse(npmOps(['dlq', 'replay', '--all', '--json'], env).stdout), { replayed: [], skipped: [] })
    await waitFor(async () => (await p.clicks.getJobCounts('completed')).completed === 2, { what: 'the replayed jobs to complete' })
    t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), total, 'each click stored once')
    t.equal(await count(pool, 'SELECT clicks AS n FROM click_rollups_daily WHERE link_id = $1', [link.id]), total, 'and counted once')
  },
)

void t.test('when letters of every job shape the system produces are replayed, then each goes back to its queue', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const link = await createLink(pool, (await createUser(pool)).id)
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)
  const click = clickJob(link.id)
  // What the producers add: the API's batch and export, an earlier API's single click, each scheduled maintenance job.
  const shapes: [string, string, unknown][] = [
    ['clicks', CLICK_JOBS.batch, { clicks: [clickJob(link.id), clickJob(link.id)] }],
    ['clicks', CLICK_JOBS.single, click],
    ['exports', 'export', { exportId: crypto.randomUUID(), linkId: link.id }],
    ...Object.values(MAINTENANCE_JOBS).map((name): [string, string, unknown] => ['maintenance', name, {}]),
  ]
  // Paused, so the replayed jobs stay where replay put them for the check below.
  await Promise.all([p.clicks.pause(), p.exports.pause(), p.maintenance.pause()])
  for (const [i, [queue, name, data]] of shapes.entries()) {
    await addDeadLetter(p.deadLetters, toDeadLetter(queue, { id: `shape-${i}`, name, data }, new Error('outage'), 5))
  }
  // And one no worker would take: a maintenance job this release does not have.
  await addDeadLetter(p.deadLetters, toDeadLetter('maintenance', { id: 'retired', name: 'rollup', data: {} }, new Error('x'), 5))

  const result = await replayAllDeadLetters(p.connection, config.REDIS_PREFIX)

  t.equal(result.replayed.length, shapes.length, 'every shape replayed')
  t.match(result.skipped, [{ id: 'maintenance.retired', reason: /unknown maintenance job "rollup"/ }])
  for (const r of result.replayed) {
    const queue = { clicks: p.clicks, exports: p.exports, maintenance: p.maintenance }[r.queue as 'clicks' | 'exports' | 'maintenance']
    t.ok(await queue.getJob(r.jobId), `${r.id} is back on ${r.queue}`)
  }
})

/** The operator's command exactly as the runbook gives it. */
function npmOps(args: string[], env: Record<string, string>) {
  const res = spawnSync('npm', ['run', '--silent', 'ops', '--', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  })
  return { code: res.status, stdout: res.stdout, stderr: res.stderr }
}
