import t from 'tap'
import { createDb } from '../../../common/db.ts'
import { pino } from 'pino'
import { testDatabase } from '../../helpers/env.ts'
import { createLink, createUser } from '../../helpers/factories.ts'
import { count, pgPool, producer, startTestWorker, waitFor } from '../../helpers/worker.ts'
import { enforceRetention } from '../../../worker/maintenance/maintenance.ts'
import type { Queue } from 'bullmq'

const DAY_MS = 86_400_000
const day = (offsetDays: number) => new Date(Date.now() + offsetDays * DAY_MS).toISOString().slice(0, 10)

async function runJob(queue: Queue, name: string, data: object = {}) {
  const job = await queue.add(name, data)
  return waitFor(
    async () => {
      const j = await queue.getJob(job.id!)
      return j?.finishedOn ? j : undefined
    },
    { what: `the ${name} job` },
  )
}

void t.test('when the rollup runs, then the last two UTC days are recounted from the clicks and older days are left alone', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const [a, b, c] = [await createLink(pool, user.id), await createLink(pool, user.id), await createLink(pool, user.id)]
  const insert = (linkId: string, n: number, offsetDays: number) =>
    pool.query(
      `INSERT INTO clicks (id, link_id, at, ua_family)
       SELECT gen_random_uuid(), $1, ($3::date)::timestamp AT TIME ZONE 'UTC' + interval '12 hours', 'Chrome' FROM generate_series(1, $2::int)`,
      [linkId, n, day(offsetDays)],
    )
  await insert(a.id, 3, 0)
  await insert(a.id, 2, -1)
  await insert(b.id, 4, -1)
  await insert(a.id, 1, -5)
  // Drifted rollups: too high today, missing for b yesterday, a row for c with no clicks, and an old day that is
  // outside the window (its clicks may be gone to retention, so it must stay as it is).
  await pool.query('INSERT INTO click_rollups_daily (link_id, day, clicks) VALUES ($1, $3, 10), ($1, $4, 2), ($2, $4, 7), ($1, $5, 99)', [
    a.id,
    c.id,
    day(0),
    day(-1),
    day(-5),
  ])
  const { config } = await startTestWorker(t, url, { ROLLUP_EVERY_MS: '3600000' })
  const p = producer(t, config)

  const job = await runJob(p.maintenance, 'rollup')

  t.equal(await job.getState(), 'completed')
  t.match(job.returnvalue, { days: [day(-1), day(0)] })
  const res = await pool.query<{ link_id: string; day: string; clicks: string }>(
    'SELECT link_id, day::text, clicks FROM click_rollups_daily',
  )
  const rollups = Object.fromEntries(res.rows.map((r) => [`${r.link_id}|${r.day}`, Number(r.clicks)]))
  t.same(rollups, {
    [`${a.id}|${day(0)}`]: 3,
    [`${a.id}|${day(-1)}`]: 2,
    [`${b.id}|${day(-1)}`]: 4,
    [`${a.id}|${day(-5)}`]: 99,
  })
})

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
  const { config } = await startTestWorker(t, url, { CLICK_RETENTION_DAYS: '30', ROLLUP_EVERY_MS: '3600000' })
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

void t.test('when the worker starts, then the rollup and retention jobs are scheduled every ROLLUP_EVERY_MS', async (t) => {
  const url = await testDatabase(t)
  const { config } = await startTestWorker(t, url, { ROLLUP_EVERY_MS: '120000' })
  const p = producer(t, config)
  const schedulers = await p.maintenance.getJobSchedulers()
  t.same(schedulers.map((s) => [s.key, s.every]).sort(), [
    ['retention', 120000],
    ['rollup', 120000],
  ])
})
