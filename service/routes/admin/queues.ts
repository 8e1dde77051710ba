// bull-board at /admin/queues: every queue, including the dead letters, read-only, for admins only. A browser logs in
// with HTTP Basic (an admin's email and password); scripts send the Bearer token. Changes to jobs go through the
// admin API and `npm run ops -- dlq`, which validate what they replay; the board only shows.
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
import { findUserRole } from '../../repositories/users.ts'
import { HttpProblem } from '../../problems.ts'

export const BASE_PATH = '/admin/queues'

const basicChallenge = () =>
  new HttpProblem(401, 'UNAUTHORIZED', 'Unauthorized', 'admin credentials are required', {
    headers: { 'www-authenticate': 'Basic realm="opsdrill admin", charset="UTF-8"' },
  })

// bull-board's page loads its own scripts, styles and a web worker from this prefix and sets inline styles; it
// fetches nothing from elsewhere except Google Fonts, which stay blocked (the page falls back to system fonts, and an
// admin page does not tell a third party when it is open).
export const BOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

const routes: FastifyPluginAsync = async (app) => {
  // The UI polls every few seconds: a verified Basic header is remembered (as the user it proved) for a minute so it
  // is not hashed again, but the role is read from Postgres on every request, so a demotion applies to the next one.
  const verified = new LRUCache<string, string>({ max: 100, ttl: 60_000 })
  async function userOf(req: FastifyRequest, header: string): Promise<string> {
    const key = createHash('sha256').update(header).digest('hex')
    const known = verified.get(key)
    if (known !== undefined) return known
    const decoded = Buffer.from(header.slice(6), 'base64').toString()
    const sep = decoded.indexOf(':')
    if (sep < 0) throw basicChallenge()
    const email = decoded.slice(0, sep)
    // Both budgets are spent before argon2id runs, so a flood is refused without tying up the threadpool.
    await app.authLimit.address(req)
    await app.authLimit.account(req, email)
    // Wrong credentials are a challenge; anything else (Postgres down) goes to the error handler, which answers 503.
    const user = await checkPassword(app.db, { email, password: decoded.slice(sep + 1) }).catch((err: unknown) => {
      if (err instanceof HttpProblem && err.status === 401) return null
      throw err
    })
    if (!user) throw basicChallenge()
    verified.set(key, user.id)
    return user.id
  }
  async function requireAdmin(req: FastifyRequest): Promise<void> {
    const header = req.headers.authorization ?? ''
    if (header.startsWith('Bearer ')) return app.requireAdmin(req, undefined as never)
    if (!header.startsWith('Basic ')) throw basicChallenge()
    const role = await findUserRole(app.db, await userOf(req, header))
    if (role === null) throw basicChallenge()
    if (role !== 'admin') throw new HttpProblem(403, 'FORBIDDEN', 'Forbidden', 'this page is for admins')
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
          readOnlyMode: true,
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
  // The API's CSP (default-src 'none') would stop the page: this prefix gets one the board works under.
  app.addHook('onSend', async (_req, reply) => {
    reply.header('content-security-policy', BOARD_CSP)
  })
  await app.register(serverAdapter.registerPlugin(), { prefix: '/' })
  app.addHook('onClose', async () => {
    await Promise.allSettled(extra.map((q) => q.close()))
  })
}
export default routes
