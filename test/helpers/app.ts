// Builds a real API instance (real Postgres and Redis) for a test, closed at teardown.
import { randomBytes } from 'node:crypto'
import { appendFileSync, rmSync } from 'node:fs'
import pg from 'pg'
import { Writable } from 'node:stream'
import { buildApp, type App } from '../../service/app.ts'
import { createLogger } from '../../common/logger.ts'
import type { ApiConfig } from '../../common/config.ts'
import type { LinkView } from '../../service/usecases/links.ts'
import { apiConfig, testDatabase } from './env.ts'
import { BROWSER_USER_AGENT } from '../../loadtests/lib/browser.ts'

interface T {
  teardown(fn: () => unknown): void
}

export interface TestApp {
  app: App
  config: ApiConfig
  databaseUrl: string
  logs: Record<string, unknown>[]
}

/**
 * A real app on a fresh database. Logs are captured as parsed ECS lines in `logs`, and appended as written to
 * `logFile` when one is given (what a log shipper tails).
 */
export async function testApp(t: T, overrides: Record<string, string> = {}, databaseUrl?: string, logFile?: string): Promise<TestApp> {
  const url = databaseUrl ?? (await testDatabase(t))
  const config = apiConfig(url, { LOG_LEVEL: 'info', ...overrides })
  const logs: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
      if (logFile) appendFileSync(logFile, chunk)
      done()
    },
  })
  const logger = createLogger({ serviceName: 'opsdrill-api', instanceId: 'test', level: config.LOG_LEVEL }, sink)
  const app = await buildApp({ config, logger })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    rmSync(config.CLICK_SPOOL_DIR, { recursive: true, force: true })
  })
  return { app, config, databaseUrl: url, logs }
}

/** Headers of a person's browser: the redirect records no click for a bot, and inject's own user agent is one. */
export const BROWSER = { 'user-agent': BROWSER_USER_AGENT }

export const uniqueEmail = () => `u${randomBytes(5).toString('hex')}@example.test`
export const PASSWORD = 'correct horse battery staple'

type Session = { token: string; email: string; auth: { authorization: string } }

/** Registers a user and returns a bearer token for it. */
export async function login(app: App, email = uniqueEmail(), password = PASSWORD): Promise<Session> {
  const reg = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password } })
  if (reg.statusCode !== 202) throw new Error(`register failed: ${reg.statusCode} ${reg.body}`)
  return logIn(app, email, password)
}

/** Sets a user's role in the database, as `npm run ops -- user promote|demote` does (tested in test/ops/cli.test.ts). */
export async function setRole(databaseUrl: string, email: string, role: 'user' | 'admin'): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query('UPDATE users SET role = $2 WHERE lower(email) = lower($1)', [email, role])
  } finally {
    await client.end()
  }
}

/** Registers a user, has the operator promote it, and returns an admin's bearer token. */
export async function loginAdmin(ctx: Pick<TestApp, 'app' | 'databaseUrl'>, email = uniqueEmail()): Promise<Session> {
  await login(ctx.app, email)
  await setRole(ctx.databaseUrl, email, 'admin')
  return logIn(ctx.app, email)
}

export async function logIn(app: App, email: string, password = PASSWORD): Promise<Session> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  const token = (res.json() as { accessToken: string }).accessToken
  return { token, email, auth: { authorization: `Bearer ${token}` } }
}

/** Creates a link through the API (POST /api/v1/links) and returns its view; throws unless the answer is 201. */
export async function createLinkVia(app: App, auth: { authorization: string }, url = 'https://example.com/'): Promise<LinkView> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url } })
  if (res.statusCode !== 201) throw new Error(`create link failed: ${res.statusCode} ${res.body}`)
  return res.json() as LinkView
}
