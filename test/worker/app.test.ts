// The running worker's telemetry surface: /metrics with queue depth, age, job counters and histograms.
import t from 'tap'
import { testDatabase } from '../helpers/env.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { clickJob, enqueueClicks, pgPool, producer, startTestWorker, waitFor } from '../helpers/worker.ts'

/** The value of the first sample whose name and labels match; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_]+)\{([^}]*)\} (\S+)/)
    if (!m || m[1] !== name) continue
    const have = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3])
  }
  return undefined
}

void t.test(
  'when the worker has done work, then /metrics shows every queue by state, the oldest waiting age and the job series',
  async (t) => {
    const url = await testDatabase(t)
    const pool = pgPool(t, url)
    const link = await createLink(pool, (await createUser(pool)).id)
    const { config, worker } = await startTestWorker(t, url)
    const p = producer(t, config)

    await enqueueClicks(p, [clickJob(link.id), clickJob(link.id), clickJob(link.id)])
    await p.clicks.add('click', { broken: true } as never, { jobId: 'broken-1' })
    await waitFor(async () => (await p.deadLetters.getWaitingCount()) === 1 && (await p.clicks.getJobCounts('completed')).completed === 3, {
      what: '3 completed jobs and a dead letter',
    })
    await new Promise((r) => setTimeout(r, 1100))

    const res = await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)
    t.equal(res.status, 200)
    const text = await res.text()
    for (const queue of ['clicks', 'exports', 'maintenance', 'dead-letters']) {
      for (const state of ['waiting', 'active', 'delayed', 'failed', 'completed']) {
        t.not(sample(text, 'opsdrill_queue_jobs', { queue, state }), undefined, `queue_jobs{queue="${queue}",state="${state}"}`)
      }
      t.not(sample(text, 'opsdrill_queue_oldest_waiting_age_seconds', { queue }), undefined, `oldest age of ${queue}`)
    }
    t.equal(sample(text, 'opsdrill_queue_jobs', { queue: 'clicks', state: 'completed' }), 3)
    t.equal(sample(text, 'opsdrill_queue_jobs', { queue: 'clicks', state: 'failed' }), 1)
    t.equal(sample(text, 'opsdrill_queue_jobs', { queue: 'dead-letters', state: 'waiting' }), 1, 'the dead-letter backlog')
    t.ok(
      sample(text, 'opsdrill_queue_oldest_waiting_age_seconds', { queue: 'dead-letters' })! >= 1,
      'the dead letter has been waiting a second',
    )
    t.equal(sample(text, 'opsdrill_queue_oldest_waiting_age_seconds', { queue: 'clicks' }), 0, 'no click waits')
    t.ok(sample(text, 'opsdrill_jobs_completed_total', { queue: 'clicks', service: 'opsdrill-worker' })! >= 3)
    t.ok(sample(text, 'opsdrill_jobs_dead_lettered_total', { queue: 'clicks' })! >= 1)
    t.ok(sample(text, 'opsdrill_job_wait_seconds_count', { queue: 'clicks' })! >= 4)
    t.ok(sample(text, 'opsdrill_job_processing_seconds_count', { queue: 'clicks', outcome: 'completed' })! >= 3)
    t.ok(sample(text, 'opsdrill_job_processing_seconds_count', { queue: 'clicks', outcome: 'failed' })! >= 1)
    t.ok(sample(text, 'opsdrill_clicks_ingested_total', {})! >= 3)
    t.match(text, /^opsdrill_worker_click_batch_size_count\{[^}]*\} [1-9]/m)
    t.match(text, /^opsdrill_pg_pool_connections\{[^}]*state="total"[^}]*\} \d/m)
    t.equal(sample(text, 'opsdrill_dependency_up', { dependency: 'postgres' }), 1, 'the worker reports Postgres reachable')
    t.equal(sample(text, 'opsdrill_dependency_up', { dependency: 'redis' }), 1, 'the worker reports Redis reachable')

    t.equal((await fetch(`http://127.0.0.1:${worker.metricsPort}/readyz`)).status, 200, 'ready while running')
  },
)
