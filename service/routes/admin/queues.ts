// bull-board at /admin/queues: every queue, including the dead letters, for admins only. A browser logs in with
// HTTP Basic (an admin's email and password); scripts send the Bearer token.
import type { FastifyError, FastifyPluginAsync, FastifyRequest } from 'fastify'
import { sendProblem, toProblem } from '../../plugins/errors.ts'
import { createHash } from 'node:crypto'
import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import { LRUCache } from 'lru-cache'
import { createQueue } from '../../../common/queue-factory.ts'
import { QUEUES } from '../../../common/queues.ts'
import { authenticate as checkPassword } from '../../usecases/auth.ts'
import { HttpProblem } from '../../problems.ts'

export const BASE_PATH = '/admin/queues'

const basicChallenge = () =>
  new HttpProblem(401, 'UNAUTHORIZED', 'Unauthorized', 'admin credentials are required', {
    headers: { 'www-authenticate': 'Basic realm="opsdrill admin", charset="UTF-8"' },
  })

const routes: FastifyPluginAsync = async (app) => {
  // The UI polls every few seconds: remember verified Basic credentials briefly instead of hashing each time.
  const verified = new LRUCache<string, true>({ max: 100, ttl: 60_000 })
  async function requireAdmin(req: FastifyRequest): Promise<void> {
    const header = req.headers.authorization ?? ''
    if (header.startsWith('Bearer ')) return app.requireAdmin(req, undefined as never)
    if (!header.startsWith('Basic ')) throw basicChallenge()
    const key = createHash('sha256').update(header).digest('hex')
    if (verified.has(key)) return
    const decoded = Buffer.from(header.slice(6), 'base64').toString()
    const sep = decoded.indexOf(':')
    const user = await checkPassword(app.db, { email: decoded.slice(0, sep), password: decoded.slice(sep + 1) }).catch(() => null)
    if (!user) throw basicChallenge()
    if (user.role !== 'admin') throw new HttpProblem(403, 'FORBIDDEN', 'Forbidden', 'this page is for admins')
    verified.set(key, true)
  }

  const connection = app.redisProducer
  const prefix = app.config.REDIS_PREFIX
  // Not skipWaitingForReady: with it, a Queue built while Redis is down fails its one-time initialisation and answers
  // every later call with that error, even once Redis is back.
  const extra = [QUEUES.maintenance, QUEUES.deadLetters].map((name) => createQueue(name, { connection, prefix, log: app.log }))
  const queues = [app.queues.clicks, app.queues.exports, ...extra]

  const serverAdapter = new FastifyAdapter()
  serverAdapter.setBasePath(BASE_PATH)
  createBullBoard({
    queues: queues.map(
      (q) =>
        new BullMQAdapter(q, {
          readOnlyMode: false,
          description:
            q.name === QUEUES.deadLetters ? 'jobs that exhausted their attempts; replay with npm run ops -- dlq replay' : undefined,
        }),
    ),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'opsdrill queues' } },
  })
  // The answer is sent here, not thrown: bull-board's plugin has its own error handler, which would turn it into a 500.
  app.addHook('onRequest', async (req, reply) => {
    try {
      await requireAdmin(req)
    } catch (err) {
      const { problem, headers } = toProblem(err as FastifyError, req)
      return sendProblem(reply, problem, headers)
    }
  })
  // bull-board serves its own UI assets and inline scripts: relax the CSP for this prefix only.
  app.addHook('onSend', async (_req, reply) => {
    reply.removeHeader('content-security-policy')
  })
  await app.register(serverAdapter.registerPlugin(), { prefix: '/' })
  app.addHook('onClose', async () => {
    await Promise.allSettled(extra.map((q) => q.close()))
  })
}
export default routes
