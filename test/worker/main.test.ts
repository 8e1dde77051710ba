// The worker as a process: `node worker/main.ts`, stopped by SIGTERM or killed by SIGKILL.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { testDatabase, workerConfig } from '../helpers/env.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { ROOT, clickJob, count, enqueueClicks, pgPool, producer, spawnWorker, waitFor } from '../helpers/worker.ts'

void t.test('when a variable is missing, then the worker prints one line naming it and exits 2', async (t) => {
  const res = spawnSync(process.execPath, [resolve(ROOT, 'worker/main.ts')], {
    env: { PATH: process.env.PATH, REDIS_URL: 'redis://127.0.0.1:1' },
    encoding: 'utf8',
    timeout: 20_000,
  })
  t.equal(res.status, 2)
  t.equal(res.stdout, '')
  t.match(res.stderr, /^config: DATABASE_URL is invalid \(it is not set\); expected a postgres:\/\/ connection URL\n$/)
})

void t.test(
  'when SIGTERM arrives with jobs active, then each finishes exactly once, no new one starts, and the exit code is 0',
  async (t) => {
    const url = await testDatabase(t)
    const pool = pgPool(t, url)
    const link = await createLink(pool, (await createUser(pool)).id)
    // 20 jobs run at once and wait together for one slow batch; 10 more wait their turn.
    const config = workerConfig(url, {
      CLICK_CONCURRENCY: '20',
      CLICK_BATCH_SIZE: '1000',
      CLICK_BATCH_MAX_WAIT_MS: '2000',
      LOG_LEVEL: 'info',
    })
    const p = producer(t, config)
    await enqueueClicks(
      p,
      Array.from({ length: 30 }, () => clickJob(link.id)),
    )

    const w = spawnWorker(t, config)
    await waitFor(async () => (await p.clicks.getActiveCount()) === 20, { what: '20 active jobs', timeoutMs: 20_000 })
    t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 0, 'nothing written yet: the batch is still open')
    w.child.kill('SIGTERM')
    const exit = await w.exit

    t.same(exit, { code: 0, signal: null }, 'exit code 0')
    if (exit.code !== 0) t.comment(w.output().slice(-3000))
    t.same(await p.clicks.getJobCounts('active', 'completed', 'failed', 'waiting'), { active: 0, completed: 20, failed: 0, waiting: 10 })
    t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 20, 'the 20 active clicks were written')
    t.equal(await count(pool, 'SELECT clicks AS n FROM click_rollups_daily WHERE link_id = $1', [link.id]), 20, 'and counted once')
    t.match(w.output(), /shutting down: finishing active jobs/)
    t.match(w.output(), /worker stopped/)
  },
)

void t.test(
  'when a worker is SIGKILLed mid-way, then another picks up its stalled jobs and every click is stored and counted once',
  async (t) => {
    const url = await testDatabase(t)
    const pool = pgPool(t, url)
    const link = await createLink(pool, (await createUser(pool)).id)
    const config = workerConfig(url, {
      CLICK_CONCURRENCY: '10',
      CLICK_BATCH_SIZE: '1000',
      CLICK_BATCH_MAX_WAIT_MS: '100',
      STALLED_INTERVAL_MS: '1000',
      JOB_LOCK_MS: '2000',
      LOG_LEVEL: 'info',
    })
    const p = producer(t, config)
    const clicks = Array.from({ length: 300 }, () => clickJob(link.id))
    await enqueueClicks(p, clicks)

    const first = spawnWorker(t, config)
    await waitFor(async () => (await count(pool, 'SELECT count(*) AS n FROM clicks')) >= 50, {
      what: '50 stored clicks',
      timeoutMs: 20_000,
    })
    first.child.kill('SIGKILL')
    t.same(await first.exit, { code: null, signal: 'SIGKILL' })
    const orphaned = await p.clicks.getActiveCount()
    const storedAtKill = await count(pool, 'SELECT count(*) AS n FROM clicks')
    t.ok(orphaned > 0, `the killed worker left ${orphaned} jobs active`)
    t.ok(storedAtKill < 300, `it was killed mid-way (${storedAtKill} of 300 stored)`)

    const second = spawnWorker(t, config)
    await waitFor(async () => (await p.clicks.getJobCounts('completed')).completed === 300, {
      what: '300 completed jobs',
      timeoutMs: 30_000,
    })

    t.equal(await count(pool, 'SELECT count(*) AS n FROM clicks'), 300, 'every click stored')
    t.equal(
      await count(pool, 'SELECT count(DISTINCT id) AS n FROM clicks WHERE id = ANY($1::uuid[])', [clicks.map((c) => c.clickId)]),
      300,
      'each exactly once',
    )
    t.equal(
      await count(pool, 'SELECT sum(clicks) AS n FROM click_rollups_daily WHERE link_id = $1', [link.id]),
      300,
      'rollups equal the clicks',
    )
    t.equal((await p.clicks.getJobCounts('failed')).failed, 0, 'no job failed')
    t.match(second.output(), /job stalled/, 'the second worker recovered the stalled jobs')
    second.child.kill('SIGTERM')
    t.same(await second.exit, { code: 0, signal: null })
  },
)
