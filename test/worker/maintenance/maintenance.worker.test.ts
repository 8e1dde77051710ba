import t from 'tap'
import { createDb } from '../../../common/db.ts'
import { pino } from 'pino'
import { testDatabase, workerConfig } from '../../helpers/env.ts'
import { createLink, createUser } from '../../helpers/factories.ts'
import { clickJob, count, pgPool, producer, startTestWorker, waitFor } from '../../helpers/worker.ts'
import { enforceRetention } from '../../../worker/maintenance/maintenance.ts'
import type { Queue } from 'bullmq'

async function runJob(queue: Queue, name: string, data: object = {}, timeoutMs = 15_000) {
  const job = await queue.add(name, data)
  return waitFor(
    async () => {
      const j = await queue.getJob(job.id!)
      return j?.finishedOn ? j : undefined
    },
    { what: `the ${name} job`, timeoutMs },
  )
}

void t.test('when retention runs, then clicks older than CLICK_RETENTION_DAYS are deleted and newer ones kept', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const link = await createLink(pool, (await createUser(pool)).id)
  for (const [offset, n] of [
    [-40, 5],
    [-31, 3],
    [-29, 2],
    [0, 1],
  ] as const) {
    await pool.query(
      `INSERT INTO clicks (id, link_id, at, ua_family) SELECT gen_random_uuid(), $1, now() + $2::int * interval '1 day', 'Chrome' FROM generate_series(1, $3::int)`,
      [link.id, offset, n],
    )
  }
  const { config } = await startTestWorker(t, url, { CLICK_RETENTION_DAYS: '30', MAINTENANCE_EVERY_MS: '3600000' })
  const p = producer(t, config)
  // The scheduler's first run at boot already applies the 30 days; wait for it so the job below has its own work.
  await waitFor(async () => (await count(pool, 'SELECT count(*) AS n FROM clicks')) === 3, { what: 'the scheduled retention run' })
  await pool.query(
    `INSERT INTO clicks (id, link_id, at, ua_family) SELECT gen_random_uuid(), $1, now() - interval '20 days', 'Chrome' FROM generate_series(1, 4)`,
    [link.id],
  )

  const job = await runJob(p.maintenance, 'retention', { retentionDays: 10 })

  t.match(job.returnvalue, { deleted: 6, complete: true }, 'a payload can narrow the retention for one run')
  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 1)
  t.equal(await count(pool, `SELECT count(*) AS n FROM clicks WHERE at < now() - interval '10 days'`), 0)
})

void t.test('when retention has more to delete than one run allows, then it deletes in chunks and says it is not done', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const link = await createLink(pool, (await createUser(pool)).id)
  await pool.query(
    `INSERT INTO clicks (id, link_id, at, ua_family) SELECT gen_random_uuid(), $1, now() - interval '100 days', 'Chrome' FROM generate_series(1, 25)`,
    [link.id],
  )
  const db = createDb(
    { url, max: 2, connectTimeoutMs: 2000, statementTimeoutMs: 2000, queryTimeoutMs: 2500, idleTimeoutMs: 1000, applicationName: 'test' },
    pino({ level: 'silent' }),
  )
  t.teardown(() => db.close())

  t.match(await enforceRetention(db, 90, { chunk: 10, maxChunks: 2 }), { deleted: 20, complete: false })
  t.match(await enforceRetention(db, 90, { chunk: 10, maxChunks: 2 }), { deleted: 5, complete: true })
  t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 0)
})

void t.test(
  'when the worker starts, then the maintenance jobs are scheduled every MAINTENANCE_EVERY_MS, and retired ones removed',
  async (t) => {
    const url = await testDatabase(t)
    const config = workerConfig(url)
    const p = producer(t, config)
    // What an earlier release left in Redis: the scheduler of the rollup reconcile it no longer has.
    await p.maintenance.upsertJobScheduler('rollup', { every: 300000 }, { name: 'rollup', data: {} })
    await startTestWorker(t, url, { REDIS_PREFIX: config.REDIS_PREFIX, MAINTENANCE_EVERY_MS: '120000' })
    const schedulers = await p.maintenance.getJobSchedulers()
    t.same(schedulers.map((s) => [s.key, s.every]).sort(), [
      ['exports', 120000],
      ['retention', 120000],
    ])
  },
)

void t.test(
  'when a maintenance job needs more statement time than an API request gets, then it runs under the worker batch limit',
  async (t) => {
    const url = await testDatabase(t)
    const pool = pgPool(t, url)
    const link = await createLink(pool, (await createUser(pool)).id)
    await pool.query(
      `INSERT INTO clicks (id, link_id, at, ua_family) SELECT gen_random_uuid(), $1, now() - interval '100 days', 'Chrome' FROM generate_series(1, 3)`,
      [link.id],
    )
    // The delete takes 2.5 s of statement time, past the 2 s PG_STATEMENT_TIMEOUT_MS the API and click ingestion keep.
    await pool.query(
      `CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2.5); RETURN NULL; END $$`,
    )
    await pool.query('CREATE TRIGGER slow_delete AFTER DELETE ON clicks FOR EACH STATEMENT EXECUTE FUNCTION slow_delete()')
    const { config } = await startTestWorker(t, url, {
      PG_STATEMENT_TIMEOUT_MS: '2000',
      JOB_ATTEMPTS: '1',
      MAINTENANCE_EVERY_MS: '3600000',
    })
    t.equal(config.BATCH_PG_STATEMENT_TIMEOUT_MS, 300000, 'the batch default')
    const p = producer(t, config)

    const job = await runJob(p.maintenance, 'retention', { retentionDays: 30 }, 30_000)

    t.equal(await job.getState(), 'completed', job.failedReason)
    t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 0)
  },
)

void t.test('when maintenance runs while a rollup row is held, then click ingestion for other links goes on', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const [held, other] = [await createLink(pool, user.id), await createLink(pool, user.id)]
  // Another transaction holds today's rollup row of one link, as a long ingestion batch or an operator's query
  // would. Maintenance that waits on it must not hold up every other link's clicks.
  await pool.query("INSERT INTO clicks (id, link_id, at, ua_family) VALUES (gen_random_uuid(), $1, now(), 'Chrome')", [held.id])
  await pool.query('INSERT INTO click_rollups_daily (link_id, day, clicks) VALUES ($1, (now() AT TIME ZONE $2)::date, 5)', [held.id, 'UTC'])
  const holder = await pool.connect()
  t.teardown(() => holder.release())
  await holder.query('BEGIN')
  await holder.query('SELECT * FROM click_rollups_daily WHERE link_id = $1 FOR UPDATE', [held.id])

  // Timeouts long enough that a wait on the held row would show, not be cut short by a statement timeout.
  const { config } = await startTestWorker(t, url, {
    JOB_ATTEMPTS: '1',
    MAINTENANCE_EVERY_MS: '3600000',
    PG_STATEMENT_TIMEOUT_MS: '20000',
    PG_QUERY_TIMEOUT_MS: '21000',
  })
  const p = producer(t, config)
  // Every maintenance job this worker schedules, run now.
  const names = (await p.maintenance.getJobSchedulers()).map((s) => s.name)
  t.ok(names.length > 0, `maintenance jobs: ${names.join(', ')}`)
  for (const name of names) await p.maintenance.add(name, {})
  await waitFor(
    async () => {
      const c = await p.maintenance.getJobCounts('active', 'completed', 'failed')
      return (c.active ?? 0) + (c.completed ?? 0) + (c.failed ?? 0) > 0
    },
    { what: 'maintenance to start' },
  )

  const clicks = [clickJob(other.id), clickJob(other.id)]
  const started = Date.now()
  await p.clicks.add('clicks', { clicks }, { jobId: `b-${clicks[0]!.clickId}` })
  await waitFor(async () => (await count(pool, 'SELECT count(*) AS n FROM clicks WHERE link_id = $1', [other.id])) === 2, {
    what: "the other link's clicks to be stored",
    timeoutMs: 5000,
  })
  t.ok(Date.now() - started < 5000, `stored in ${Date.now() - started} ms while maintenance ran`)
  await holder.query('ROLLBACK')
})

void t.test(
  'when exports are older than EXPORT_RETENTION_HOURS, then the sweep deletes them with their chunks and keeps newer ones',
  async (t) => {
    const url = await testDatabase(t)
    const pool = pgPool(t, url)
    const user = await createUser(pool)
    const link = await createLink(pool, user.id)
    const finished = async (hoursAgo: number, status: 'done' | 'failed') => {
      const { rows } = await pool.query<{ id: string }>(
        `INSERT INTO exports (link_id, owner_id, status, finished_at) VALUES ($1, $2, $3, now() - $4 * interval '1 hour') RETURNING id`,
        [link.id, user.id, status, hoursAgo],
      )
      await pool.query("INSERT INTO export_chunks (export_id, seq, data) VALUES ($1, 0, 'a,b\n')", [rows[0]!.id])
      return rows[0]!.id
    }
    const [oldDone, oldFailed, recent] = [await finished(49, 'done'), await finished(49, 'failed'), await finished(47, 'done')]
    const { config } = await startTestWorker(t, url, { EXPORT_RETENTION_HOURS: '48', MAINTENANCE_EVERY_MS: '3600000' })
    const p = producer(t, config)

    const job = await runJob(p.maintenance, 'exports')

    t.equal(await job.getState(), 'completed', job.failedReason)
    const left = (await pool.query<{ id: string }>('SELECT id FROM exports')).rows.map((r) => r.id)
    t.same(left, [recent], 'only the export within retention is left')
    t.notOk([oldDone, oldFailed].some((id) => left.includes(id)))
    t.equal(await count(pool, 'SELECT count(*) AS n FROM export_chunks'), 1, "the expired exports' chunks went with them")
  },
)

void t.test('when an export row stayed queued with no job (a crash between insert and enqueue), then the sweep runs it', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const link = await createLink(pool, user.id)
  await pool.query("INSERT INTO clicks (id, link_id, at, ua_family) VALUES (gen_random_uuid(), $1, now(), 'Chrome')", [link.id])
  const insert = async (ageMs: number) =>
    (
      await pool.query<{ id: string }>(
        `INSERT INTO exports (link_id, owner_id, created_at) VALUES ($1, $2, now() - $3 * interval '1 millisecond') RETURNING id`,
        [link.id, user.id, ageMs],
      )
    ).rows[0]!.id
  const stale = await insert(120_000)
  const fresh = await insert(0)
  const { config } = await startTestWorker(t, url, { EXPORT_REQUEUE_AFTER_MS: '60000', MAINTENANCE_EVERY_MS: '3600000' })
  const p = producer(t, config)

  await runJob(p.maintenance, 'exports')

  await waitFor(async () => (await pool.query('SELECT status FROM exports WHERE id = $1', [stale])).rows[0].status === 'done', {
    what: 'the stranded export to be run',
  })
  t.equal((await p.exports.getJob(stale))?.id, stale, 'under the job id the API would have used')
  t.equal(
    (await pool.query('SELECT status FROM exports WHERE id = $1', [fresh])).rows[0].status,
    'queued',
    'a just-inserted row is left to its own enqueue',
  )
  t.equal(await p.exports.getJob(fresh), undefined)
  // Another sweep while the job is kept does not add it again.
  await runJob(p.maintenance, 'exports')
  t.equal((await p.exports.getJobCounts('completed')).completed, 1)
})
