// The dead-letter queue: jobs that exhausted their attempts (or failed for good) wait here, in the `waiting` state of
// the `dead-letters` queue that no worker consumes, until an operator replays or drops them. The worker records them;
// the admin API route and ops/cli.ts list and replay them through the functions below.
import type { Job, JobsOptions, Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { pino, type Logger } from 'pino'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { BaseEnv } from './config.ts'
import { createQueue } from './queue-factory.ts'
import {
  QUEUES,
  WORK_QUEUES,
  defaultJobOptions,
  parseClicksQueueJob,
  parseDeadLetterJob,
  parseExportJob,
  parseMaintenanceQueueJob,
  type DeadLetterJob,
} from './queues.ts'

type WorkQueue = (typeof WORK_QUEUES)[number]

/** What each queue's worker accepts, by job name: a letter is replayable when its worker would take it. */
const PARSERS: Record<WorkQueue, (name: string, data: unknown) => unknown> = {
  [QUEUES.clicks]: parseClicksQueueJob,
  [QUEUES.exports]: (_name, data) => parseExportJob(data),
  [QUEUES.maintenance]: parseMaintenanceQueueJob,
}

/**
 * The dead letter's job id: one per original job, so recording it twice (a retried hook, two workers) stores it once.
 * BullMQ refuses custom ids containing ':' ("Custom Id cannot contain :"), so `<queue>:<id>` is written `<queue>.<id>`.
 */
export function deadLetterId(queue: string, jobId: string): string {
  return `${queue}.${safeId(jobId)}`
}

const safeId = (id: string) => id.replaceAll(':', '.')

/** The dead letter for a job whose last attempt failed with err. */
export function toDeadLetter(queue: string, job: Pick<Job, 'id' | 'name' | 'data'>, err: Error, attemptsMade: number): DeadLetterJob {
  return {
    queue,
    jobId: String(job.id),
    name: job.name,
    data: job.data,
    failedReason: (err.message || err.name).slice(0, 1000),
    attemptsMade,
    failedAt: new Date().toISOString(),
  }
}

/** Adds the dead letter once (by id); returns its id. */
export async function addDeadLetter(deadLetters: Queue, entry: DeadLetterJob): Promise<string> {
  const id = deadLetterId(entry.queue, entry.jobId)
  await deadLetters.add(`${entry.queue}:${entry.name}`, entry, { jobId: id })
  return id
}

export interface DeadLetterEntry extends DeadLetterJob {
  /** Id of the dead letter itself: what replay takes. */
  id: string
  deadLetteredAt: string
}

export interface DeadLetterPage {
  total: number
  items: DeadLetterEntry[]
}

export class DeadLetterNotFoundError extends Error {
  override name = 'DeadLetterNotFoundError'
}
/** The dead letter names a queue that does not exist or a payload its queue would reject: replaying cannot help. */
export class DeadLetterNotReplayableError extends Error {
  override name = 'DeadLetterNotReplayableError'
}

export interface DeadLetterOptions {
  log?: Logger
  /** Options of the re-added job; by default the producers' defaults (JOB_ATTEMPTS, JOB_BACKOFF_MS). */
  jobOptions?: JobsOptions
}

export interface ReplayResult {
  id: string
  queue: string
  /** Id of the job re-added to the original queue. */
  jobId: string
}

const silent = pino({ level: 'silent' })

async function withDeadLetterQueue<T>(connection: Redis, prefix: string, log: Logger, fn: (q: Queue) => Promise<T>): Promise<T> {
  const queue = createQueue(QUEUES.deadLetters, { connection, prefix, log })
  try {
    return await fn(queue)
  } finally {
    await queue.close()
  }
}

/** Oldest first. */
export async function listDeadLetters(
  connection: Redis,
  prefix: string,
  { limit = 50, offset = 0 }: { limit?: number; offset?: number } = {},
  opts: DeadLetterOptions = {},
): Promise<DeadLetterPage> {
  return withDeadLetterQueue(connection, prefix, opts.log ?? silent, async (queue) => {
    const [total, jobs] = await Promise.all([queue.getWaitingCount(), limit > 0 ? queue.getWaiting(offset, offset + limit - 1) : []])
    return { total, items: jobs.filter(Boolean).map(toEntry) }
  })
}

function toEntry(job: Job): DeadLetterEntry {
  const d = job.data as DeadLetterJob
  return {
    id: String(job.id),
    deadLetteredAt: new Date(job.timestamp).toISOString(),
    queue: d.queue,
    jobId: d.jobId,
    name: d.name,
    data: d.data,
    failedReason: d.failedReason,
    attemptsMade: d.attemptsMade,
    failedAt: d.failedAt,
  }
}

/**
 * Re-adds the dead letter's payload to its original queue, then removes the dead letter. The new job id is derived
 * from the dead letter (`<original id>-replay-<dead-lettered-at ms>`), so a replay retried after a crash between the
 * add and the remove adds nothing twice. Clicks keep their clickId in the payload: it is the Postgres key, so a
 * replayed click that had been stored after all is not counted again.
 */
export async function replayDeadLetter(connection: Redis, prefix: string, id: string, opts: DeadLetterOptions = {}): Promise<ReplayResult> {
  const log = opts.log ?? silent
  return withDeadLetterQueue(connection, prefix, log, (dlq) => replayOne(connection, prefix, dlq, id, opts, log))
}

export interface ReplayAllResult {
  replayed: ReplayResult[]
  skipped: { id: string; reason: string }[]
}

/** Replays every dead letter that can be replayed; the others stay where they are and are reported. */
export async function replayAllDeadLetters(connection: Redis, prefix: string, opts: DeadLetterOptions = {}): Promise<ReplayAllResult> {
  const log = opts.log ?? silent
  return withDeadLetterQueue(connection, prefix, log, async (dlq) => {
    const out: ReplayAllResult = { replayed: [], skipped: [] }
    // Replayed letters leave the list; skipped ones stay, so the next page starts after them.
    for (;;) {
      const page = await dlq.getWaiting(out.skipped.length, out.skipped.length + 99)
      if (page.length === 0) return out
      for (const job of page) {
        try {
          out.replayed.push(await replayOne(connection, prefix, dlq, String(job.id), opts, log))
        } catch (err) {
          if (!(err instanceof DeadLetterNotReplayableError || err instanceof DeadLetterNotFoundError)) throw err
          out.skipped.push({ id: String(job.id), reason: err.message })
        }
      }
    }
  })
}

async function replayOne(
  connection: Redis,
  prefix: string,
  dlq: Queue,
  id: string,
  opts: DeadLetterOptions,
  log: Logger,
): Promise<ReplayResult> {
  const job = await dlq.getJob(id)
  if (!job) throw new DeadLetterNotFoundError(`dead letter ${id} not found`)
  let letter: DeadLetterJob
  try {
    letter = parseDeadLetterJob(job.data)
  } catch (err) {
    throw new DeadLetterNotReplayableError(`dead letter ${id}: ${(err as Error).message}`)
  }
  const parse = Object.hasOwn(PARSERS, letter.queue) ? PARSERS[letter.queue as WorkQueue] : undefined
  if (!parse) throw new DeadLetterNotReplayableError(`dead letter ${id}: unknown queue ${JSON.stringify(letter.queue)}`)
  try {
    parse(letter.name, letter.data)
  } catch (err) {
    throw new DeadLetterNotReplayableError(`dead letter ${id}: ${(err as Error).message}`)
  }
  const jobId = `${safeId(letter.jobId).replace(/-replay-\d+$/, '')}-replay-${job.timestamp}`
  const target = createQueue(letter.queue, { connection, prefix, log })
  try {
    await target.add(letter.name, letter.data, { ...(opts.jobOptions ?? producerDefaults()), jobId })
  } finally {
    await target.close()
  }
  await job.remove()
  log.info({ deadLetter: { id }, queue: { name: letter.queue }, job: { id: jobId } }, 'dead letter replayed')
  return { id, queue: letter.queue, jobId }
}

function producerDefaults(): JobsOptions {
  const d = Value.Create(Type.Object({ JOB_ATTEMPTS: BaseEnv.JOB_ATTEMPTS, JOB_BACKOFF_MS: BaseEnv.JOB_BACKOFF_MS }))
  return defaultJobOptions(d.JOB_ATTEMPTS, d.JOB_BACKOFF_MS)
}
