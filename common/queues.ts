// Queue names and job payload schemas, defined once for producer (API) and consumer (worker).
// The worker validates every payload it takes. The API builds its clicks to the schema (service/usecases/redirect.ts,
// checked against it in test/service/redirect.test.ts) and validates its other jobs before adding them.
import { Type, type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'

export const QUEUES = {
  clicks: 'clicks',
  exports: 'exports',
  maintenance: 'maintenance',
  deadLetters: 'dead-letters',
} as const
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES]
/** Queues whose exhausted jobs are moved to the dead-letter queue. */
export const WORK_QUEUES = [QUEUES.clicks, QUEUES.exports, QUEUES.maintenance] as const

const Uuid = Type.String({ format: 'uuid', pattern: '^[0-9a-fA-F-]{36}$' })

export const ClickJob = Type.Object(
  {
    clickId: Uuid,
    linkId: Uuid,
    at: Type.String({ format: 'date-time', minLength: 20, maxLength: 40 }),
    referrer: Type.Union([Type.String({ maxLength: 2048 }), Type.Null()]),
    uaFamily: Type.String({ maxLength: 64 }),
    country: Type.Union([Type.String({ pattern: '^[A-Z]{2}$' }), Type.Null()]),
  },
  { additionalProperties: false },
)
export type ClickJob = Static<typeof ClickJob>

/** What the API enqueues: one job per flush of its click buffer (one Redis round trip for many clicks). */
export const MAX_CLICKS_PER_JOB = 500
export const ClickBatchJob = Type.Object(
  { clicks: Type.Array(ClickJob, { minItems: 1, maxItems: MAX_CLICKS_PER_JOB }) },
  { additionalProperties: false },
)
export type ClickBatchJob = Static<typeof ClickBatchJob>

export const ExportJob = Type.Object({ exportId: Uuid, linkId: Uuid }, { additionalProperties: false })
export type ExportJob = Static<typeof ExportJob>

/** Job names on the maintenance queue (each scheduled by the worker). */
export const MAINTENANCE_JOBS = { retention: 'retention', exports: 'exports' } as const

export const MaintenanceJob = Type.Object({ retentionDays: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false })
export type MaintenanceJob = Static<typeof MaintenanceJob>

export const DeadLetterJob = Type.Object(
  {
    queue: Type.String(),
    jobId: Type.String(),
    name: Type.String(),
    data: Type.Unknown(),
    failedReason: Type.String(),
    attemptsMade: Type.Integer(),
    failedAt: Type.String(),
  },
  { additionalProperties: false },
)
export type DeadLetterJob = Static<typeof DeadLetterJob>

export class InvalidPayloadError extends Error {}

function validator<T extends TSchema>(name: string, schema: T) {
  const check = Compile(schema)
  return (data: unknown): Static<T> => {
    if (check.Check(data)) return data as Static<T>
    const first = check.Errors(data)[0]
    throw new InvalidPayloadError(`invalid ${name} payload: ${first?.instancePath || '/'} ${first?.message ?? ''}`.trim())
  }
}

export const parseClickJob = validator('click', ClickJob)
export const parseClickBatchJob = validator('click batch', ClickBatchJob)
export const parseExportJob = validator('export', ExportJob)
export const parseMaintenanceJob = validator('maintenance', MaintenanceJob)
export const parseDeadLetterJob = validator('dead-letter', DeadLetterJob)

/** Job names on the clicks queue: a batch (what the API adds) and one click (what an API of the previous release adds). */
export const CLICK_JOBS = { batch: 'clicks', single: 'click' } as const

/** Validates a maintenance payload and its job name, which the worker dispatches on. */
export function parseMaintenanceQueueJob(name: string, data: unknown): MaintenanceJob {
  if (!(Object.values(MAINTENANCE_JOBS) as string[]).includes(name))
    throw new InvalidPayloadError(`unknown maintenance job ${JSON.stringify(name)}`)
  return parseMaintenanceJob(data)
}

/** Validates a clicks-queue payload by its job name, as the worker reads it (and as replay must, to accept both). */
export function parseClicksQueueJob(name: string, data: unknown): ClickJob | ClickBatchJob {
  return name === CLICK_JOBS.batch ? parseClickBatchJob(data) : parseClickJob(data)
}

/** Retries with exponential backoff; BullMQ adds jitter through the `jitter` option (0..1). */
export function defaultJobOptions(attempts: number, backoffMs: number) {
  return {
    attempts,
    backoff: { type: 'exponential' as const, delay: backoffMs, jitter: 0.5 },
    removeOnComplete: { age: 3600, count: 10000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  }
}
