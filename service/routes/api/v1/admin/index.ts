// /api/v1/admin: dead-letter operations for admins (the same functions `npm run ops -- dlq` uses).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { DeadLetterJob } from '../../../../../common/queues.ts'
import {
  DeadLetterNotFoundError,
  DeadLetterNotReplayableError,
  listDeadLetters,
  replayAllDeadLetters,
  replayDeadLetter,
} from '../../../../../common/deadletters.ts'
import { HttpProblem, notFound, unavailable } from '../../../../problems.ts'
import { problemResponses } from '../../../../problems.ts'
import { bearer } from '../../../schemas.ts'

// The queued payload (common/queues.ts) plus the dead letter's own id and time.
const DeadLetter = Type.Object({ ...DeadLetterJob.properties, id: Type.String(), deadLetteredAt: Type.String() })
const Replay = Type.Object({ id: Type.String(), queue: Type.String(), jobId: Type.String() })

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const connection = app.redisProducer
  const prefix = app.config.REDIS_PREFIX
  const opts = { jobOptions: undefined }
  app.addHook('onRequest', app.requireAdmin)

  // Redis errors here mean the queue store is unavailable, not a bug: answer 503.
  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof DeadLetterNotFoundError) throw notFound('dead letter')
      if (err instanceof DeadLetterNotReplayableError) throw new HttpProblem(409, 'NOT_REPLAYABLE', 'Conflict', err.message)
      if (err instanceof HttpProblem) throw err
      throw Object.assign(unavailable('the queue store is unavailable; retry shortly'), { cause: err })
    }
  }

  app.get(
    '/dead-letters',
    {
      schema: {
        summary: 'List dead letters, oldest first',
        tags: ['admin'],
        security: bearer,
        querystring: Type.Object(
          { limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }), offset: Type.Integer({ minimum: 0, default: 0 }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ total: Type.Integer(), items: Type.Array(DeadLetter) }), ...problemResponses(400, 401, 403, 503) },
      },
    },
    async (req) => guard(() => listDeadLetters(connection, prefix, req.query)),
  )

  app.post(
    '/dead-letters/:id/replay',
    {
      schema: {
        summary: 'Re-run one dead letter on its original queue',
        tags: ['admin'],
        security: bearer,
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 300 }) }),
        response: { 200: Replay, ...problemResponses(401, 403, 404, 409, 503) },
      },
    },
    async (req) => guard(() => replayDeadLetter(connection, prefix, req.params.id, opts)),
  )

  app.post(
    '/dead-letters/replay',
    {
      schema: {
        summary: 'Re-run every replayable dead letter',
        tags: ['admin'],
        security: bearer,
        response: {
          200: Type.Object({
            replayed: Type.Array(Replay),
            skipped: Type.Array(Type.Object({ id: Type.String(), reason: Type.String() })),
          }),
          ...problemResponses(401, 403, 503),
        },
      },
    },
    async () => guard(() => replayAllDeadLetters(connection, prefix, opts)),
  )
}
export default routes
