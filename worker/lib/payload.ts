import { UnrecoverableError } from 'bullmq'
import { InvalidPayloadError } from '../../common/queues.ts'

/** Validates a job payload; an invalid one can never succeed, so it fails for good (straight to the dead letters). */
export function parsePayload<T>(parse: (data: unknown) => T, data: unknown): T {
  try {
    return parse(data)
  } catch (err) {
    if (err instanceof InvalidPayloadError) throw new UnrecoverableError(err.message)
    throw err
  }
}
