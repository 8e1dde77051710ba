// Builds a real API instance (real Postgres and Redis) for a test, closed at teardown.
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { Writable } from 'node:stream'
import { buildApp, type App } from '../../service/app.ts'
import { createLogger } from '../../common/logger.ts'
import type { ApiConfig } from '../../common/config.ts'
import type { LinkView } from '../../service/usecases/links.ts'
import { apiConfig, testDatabase } from './env.ts'

interface T {
  teardown(fn: () => unknown): void
}

export interface TestApp {
  app: App
  config: ApiConfig
  databaseUrl: string
  logs: Record<string, unknown>[]
}

/** A real app on a fresh database. Logs are captured as parsed ECS lines in `logs`. */
export async function testApp(t: T, overrides: Record<string, string> = {}, databaseUrl?: string): Promise<TestApp> {
  const url = databaseUrl ?? (await testDatabase(t))
  const config = apiConfig(url, { LOG_LEVEL: 'info', ...overrides })
  const logs: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>)
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

export const uniqueEmail = () => `u${randomBytes(5).toString('hex')}@example.test`
export const PASSWORD = 'correct horse battery staple'

/** Registers a user and returns a bearer token for it. */
export async function login(
  app: App,
  email = uniqueEmail(),
  password = PASSWORD,
): Promise<{ token: string; email: string; auth: { authorization: string } }> {
  const reg = await app.inject({ method: 'POST', url: '/api/v1/auth/register', payload: { email, password } })
  if (reg.statusCode !== 201) throw new Error(`register failed: ${reg.statusCode} ${reg.body}`)
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
