// Click ingestion in the bench: how fast one worker stores clicks, what Postgres and Redis spend on them, and
// whether any is lost. Clicks are counted in Postgres, in click_rollups_daily (one small row per link and day,
// written in the same transaction as the clicks), so watching the count does not load the server being measured;
// the final figure is a count of the clicks table itself.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { CLICK_JOBS, MAX_CLICKS_PER_JOB, defaultJobOptions, type ClickBatchJob, type ClickJob } from '../../common/queues.ts'
import { clicksQueue } from '../lib/backlog.ts'
import { serverCpuSeconds } from '../lib/cpu.ts'

export interface Servers {
  dbUrl: string
  redisUrl: string
  postgresPid: number
  redisPid: number
}

export interface Ingestion {
  /** Clicks that had to be stored: queued (worker-only) or redirected (end-to-end). */
  expected: number
  stored: number
  lost: number
  /** From the first click stored to the last (worker-only), or from the first redirect to the last click stored. */
  seconds: number
  perSecond: number
  /** Cores each spent over the same window (CPU seconds per second), and CPU microseconds per stored click. */
  cpu: Record<'postgres' | 'redis' | 'worker', { cores: number; usPerClick: number }>
}

/** Empties the click tables, so each run counts only its own clicks. */
export async function resetClicks(dbUrl: string): Promise<void> {
  const db = new pg.Client({ connectionString: dbUrl })
  await db.connect()
  await db.query('TRUNCATE clicks, click_rollups_daily')
  await db.end()
}

/** Clicks of a batch job as the API builds them (service/usecases/redirect.ts). */
function clickBatches(linkIds: string[], n: number): ClickBatchJob[] {
  const jobs: ClickBatchJob[] = []
  for (let done = 0; done < n;) {
    const clicks: ClickJob[] = []
    for (; clicks.length < MAX_CLICKS_PER_JOB && done < n; done++) {
      clicks.push({
        clickId: randomUUID(),
        linkId: linkIds[done % linkIds.length]!,
        at: new Date().toISOString(),
        referrer: done % 3 ? null : 'https://news.example/item',
        uaFamily: 'Chrome',
        country: done % 2 ? 'DE' : null,
      })
    }
    jobs.push({ clicks })
  }
  return jobs
}

/** Queues n clicks in batch jobs of MAX_CLICKS_PER_JOB under prefix, as the API's click buffer adds them. */
export async function queueClicks(redisUrl: string, prefix: string, linkIds: string[], n: number): Promise<void> {
  const queue = clicksQueue(redisUrl, prefix)
  const opts = defaultJobOptions(5, 1000)
  const jobs = clickBatches(linkIds, n)
  for (let i = 0; i < jobs.length; i += 100) {
    await queue.addBulk(
      jobs.slice(i, i + 100).map((data) => ({ name: CLICK_JOBS.batch, data, opts: { ...opts, jobId: `b-${data.clicks[0]!.clickId}` } })),
    )
  }
  await queue.close()
}

/**
 * Watches Postgres until `expected` clicks are stored, or until nothing new is stored for stallMs (then the rest are
 * lost). `since` is when the clock starts; when null it starts at the first click stored (worker-only: the worker's
 * own start-up is not ingestion).
 */
export async function watchStored(
  servers: Servers,
  workerPid: number,
  expected: number | (() => number),
  since: number | null,
  stallMs = 20_000,
): Promise<Ingestion> {
  const db = new pg.Client({ connectionString: servers.dbUrl })
  await db.connect()
  const stored = async () =>
    Number((await db.query<{ n: string }>('SELECT coalesce(sum(clicks), 0) AS n FROM click_rollups_daily')).rows[0]!.n)
  const cpu = () => ({
    postgres: serverCpuSeconds(servers.postgresPid),
    redis: serverCpuSeconds(servers.redisPid),
    worker: serverCpuSeconds(workerPid),
  })
  let start = since
  let cpu0 = since === null ? null : cpu()
  // Clicks already stored when the clock started (the first batch, worker-only): not counted in the rate.
  let before = 0
  let last = 0
  let lastAt = Date.now()
  let cpuEnd = cpu()
  const want = () => (typeof expected === 'number' ? expected : expected())
  for (;;) {
    const n = await stored()
    const now = performance.timeOrigin + performance.now()
    if (start === null && n > 0) {
      start = now
      cpu0 = cpu()
      before = n
    }
    if (n > last) {
      last = n
      lastAt = now
      cpuEnd = cpu()
    }
    if (n >= want() || Date.now() - lastAt > stallMs) break
    await sleep(20)
  }
  const total = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM clicks')).rows[0]!.n)
  await db.end()
  const seconds = Math.max(0.001, (lastAt - (start ?? lastAt)) / 1000)
  const c0 = cpu0 ?? cpuEnd
  const per = (k: 'postgres' | 'redis' | 'worker') => ({
    cores: Math.round(((cpuEnd[k] - c0[k]) / seconds) * 100) / 100,
    usPerClick: total > before ? Math.round(((cpuEnd[k] - c0[k]) * 1e6) / (total - before)) : 0,
  })
  const exp = want()
  return {
    expected: exp,
    stored: total,
    lost: exp - total,
    seconds: Math.round(seconds * 100) / 100,
    perSecond: Math.round((total - before) / seconds),
    cpu: { postgres: per('postgres'), redis: per('redis'), worker: per('worker') },
  }
}
