// Budgets for password checks, counted in Redis (shared by replicas) before any argon2id work: each check costs a
// libuv thread about 20-50 ms, so a flood that reached it would tie up the threadpool as well as guess passwords.
// Two budgets: per client address (one client guessing many accounts) and per account (many addresses guessing one).
// The per-account budget lets anyone hold an account's logins back for one window; that is the price of stopping a
// distributed guess at one account, and it ends with the window (RATE_LIMIT_WINDOW_MS).
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { HttpProblem } from '../problems.ts'

declare module 'fastify' {
  interface FastifyInstance {
    authLimit: {
      /** Counts a password check from this client address; 429 past RATE_LIMIT_AUTH_MAX. */
      address(req: FastifyRequest): Promise<void>
      /** Counts a password check or registration for this email; 429 past RATE_LIMIT_AUTH_ACCOUNT_MAX. */
      account(req: FastifyRequest, email: string): Promise<void>
    }
  }
}

type Outcome = { isAllowed: true } | { isAllowed: false; isExceeded: boolean; ttlInSeconds: number; max: number }

const limited = (what: string, o: Extract<Outcome, { isAllowed: false }>) =>
  new HttpProblem(
    429,
    'RATE_LIMITED',
    'Too Many Requests',
    `too many sign-in attempts ${what} (at most ${o.max} per window); retry in ${o.ttlInSeconds} s`,
    { headers: { 'retry-after': String(Math.max(1, o.ttlInSeconds)) } },
  )

export default fp(
  async (app) => {
    const c = app.config
    // Without the Redis limiter (RATE_LIMIT_ENABLED=false) nothing is counted.
    if (!app.hasDecorator('createRateLimit')) {
      app.decorate('authLimit', { address: async () => undefined, account: async () => undefined })
      return
    }
    // The email of the attempt in progress, for the per-account key (a limiter's key generator sees only the request).
    const accounts = new WeakMap<FastifyRequest, string>()
    const byAddress = app.createRateLimit({
      max: c.RATE_LIMIT_AUTH_MAX,
      timeWindow: c.RATE_LIMIT_WINDOW_MS,
      keyGenerator: (req: FastifyRequest) => `auth-ip:${req.ip}`,
    })
    const byAccount = app.createRateLimit({
      max: c.RATE_LIMIT_AUTH_ACCOUNT_MAX,
      timeWindow: c.RATE_LIMIT_WINDOW_MS,
      keyGenerator: (req: FastifyRequest) => `auth-account:${accounts.get(req)}`,
    })
    app.decorate('authLimit', {
      async address(req: FastifyRequest) {
        const o = await byAddress(req)
        if (!o.isAllowed && o.isExceeded) throw limited('from this address', o)
      },
      async account(req: FastifyRequest, email: string) {
        accounts.set(req, email.trim().toLowerCase())
        const o = await byAccount(req)
        if (!o.isAllowed && o.isExceeded) throw limited('for this account', o)
      },
    })
  },
  { name: 'auth-limit' },
)
