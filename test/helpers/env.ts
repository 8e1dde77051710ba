// Each test makes its own world: a database cloned from the migrated template, a Redis key namespace, a config.
// The test command (ops/test.ts) provides the real servers through OPSDRILL_TEST_* variables.
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiEnv, WorkerEnv, loadConfig, type ApiConfig, type WorkerConfig } from '../../common/config.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

function required(name: string): string {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set: run the tests with \`npm test\` (or ops/test), which starts Postgres and Redis`)
  return v
}

export const redisUrl = (): string => required('OPSDRILL_TEST_REDIS_URL')

/** A fresh database cloned from the migrated template, dropped when the test ends. */
export async function testDatabase(t: Teardown): Promise<string> {
  const admin = required('OPSDRILL_TEST_PG_ADMIN_URL')
  const name = `${process.env.OPSDRILL_TEST_DB_PREFIX ?? 'opsdrill_t_'}${randomBytes(6).toString('hex')}`
  const client = new pg.Client({ connectionString: admin })
  await client.connect()
  await client.query(`CREATE DATABASE ${name} TEMPLATE ${required('OPSDRILL_TEST_PG_TEMPLATE')}`)
  await client.end()
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: admin })
    await c.connect()
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await c.end()
  })
  const url = new URL(admin)
  url.pathname = `/${name}`
  return url.toString()
}

/** A Redis namespace no other test shares (queues, cache keys, rate limits, pub/sub channel). */
export const redisPrefix = (): string => `t${randomBytes(5).toString('hex')}`

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long!'

export function apiConfig(databaseUrl: string, overrides: Record<string, string> = {}): ApiConfig {
  return loadConfig(ApiEnv, {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: redisPrefix(),
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'silent',
    METRICS_PORT: '0',
    PORT: '0',
    // The suite shares 2 cores with parallel test files: the 500 ms production bound would time out spuriously.
    REDIS_COMMAND_TIMEOUT_MS: '3000',
    // Busy parallel test processes would trip load shedding; the shedding tests turn it on explicitly.
    MAX_EVENT_LOOP_DELAY_MS: '0',
    // A spool of the test's own: another test's app must never replay it into its Redis namespace.
    CLICK_SPOOL_DIR: join(tmpdir(), 'opsdrill-test-spool', randomBytes(6).toString('hex')),
    ...overrides,
  })
}

export function workerConfig(databaseUrl: string, overrides: Record<string, string> = {}): WorkerConfig {
  return loadConfig(WorkerEnv, {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl(),
    REDIS_PREFIX: redisPrefix(),
    LOG_LEVEL: 'silent',
    METRICS_PORT: '0',
    ...overrides,
  })
}
