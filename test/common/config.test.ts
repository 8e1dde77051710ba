import t from 'tap'
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { ApiEnv, WorkerEnv, ConfigError, loadConfig } from '../../common/config.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const good = { DATABASE_URL: 'postgres://u@localhost:5432/db', REDIS_URL: 'redis://localhost:6379', JWT_SECRET: 'x'.repeat(32) }

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(ApiEnv, env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  throw new Error('loadConfig accepted a bad environment')
}

void t.test('when the environment is valid, then loadConfig applies defaults and converts types', async (t) => {
  const c = loadConfig(ApiEnv, { ...good, PORT: '8081', CACHE_ENABLED: 'false', MAX_EVENT_LOOP_UTILIZATION: '0.5' })
  t.equal(c.PORT, 8081)
  t.equal(c.CACHE_ENABLED, false)
  t.equal(c.MAX_EVENT_LOOP_UTILIZATION, 0.5)
  t.equal(c.CACHE_TTL_SECONDS, 3600, 'default')
  t.equal(loadConfig(WorkerEnv, good).METRICS_PORT, 9465)
})

void t.test('when a variable is missing or invalid, then the error is one line naming it', async (t) => {
  const cases: [string, Record<string, string>, string][] = [
    ['missing DATABASE_URL', { REDIS_URL: good.REDIS_URL, JWT_SECRET: good.JWT_SECRET }, 'DATABASE_URL'],
    ['JWT_SECRET shorter than 32 bytes', { ...good, JWT_SECRET: 'short-secret' }, 'JWT_SECRET'],
    ['PORT=abc', { ...good, PORT: 'abc' }, 'PORT'],
    ['CACHE_ENABLED=maybe', { ...good, CACHE_ENABLED: 'maybe' }, 'CACHE_ENABLED'],
    ['REDIS_URL not a redis URL', { ...good, REDIS_URL: 'http://x' }, 'REDIS_URL'],
  ]
  for (const [name, env, variable] of cases) {
    await t.test(name, async (t) => {
      const msg = errorOf(env)
      t.notMatch(msg, '\n', 'one line')
      t.match(msg, new RegExp(`^config: ${variable} is invalid`), msg)
    })
  }
  t.notMatch(errorOf({ ...good, JWT_SECRET: 'short-secret' }), 'short-secret', 'a secret value is never echoed')
})

void t.test('when the API starts with a bad environment, then it exits 2 printing exactly one line naming the variable', async (t) => {
  for (const [env, variable] of [
    [{ ...good, PORT: 'abc' }, 'PORT'],
    [{ REDIS_URL: good.REDIS_URL, JWT_SECRET: good.JWT_SECRET }, 'DATABASE_URL'],
  ] as const) {
    const res = spawnSync(process.execPath, ['service/server.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
      timeout: 20000,
    })
    t.equal(res.status, 2, `exit code 2 for a bad ${variable}`)
    const lines = res.stderr.split('\n').filter(Boolean)
    t.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(res.stderr)}`)
    t.match(lines[0], new RegExp(`^config: ${variable} is invalid`))
    t.equal(res.stdout, '', 'nothing on stdout')
  }
})

void t.test('when REDIRECT_REFERRER_POLICY is not a Referrer-Policy value, then one line names it', async (t) => {
  t.match(errorOf({ ...good, REDIRECT_REFERRER_POLICY: 'always' }), /^config: REDIRECT_REFERRER_POLICY is invalid \(got "always"\)[^\n]*$/)
  t.equal(loadConfig(ApiEnv, good).REDIRECT_REFERRER_POLICY, 'strict-origin-when-cross-origin', 'the default')
})

void t.test('when a connection URL is malformed, then the error names it without its password', async (t) => {
  const cases: [string, string][] = [
    ['DATABASE_URL', 'postgres://app:s3cret-pw@db.internal:notaport/app'],
    ['DATABASE_URL', 'postgresql//app:s3cret-pw@db.internal/app'],
    ['DATABASE_URL', 'postgres://app:s3cret@pw@[db/app'],
    ['REDIS_URL', 'redis://default:s3cret-pw@cache:99999'],
    ['REDIS_URL', 'http://:s3cret-pw@cache:6379'],
  ]
  for (const [name, value] of cases) {
    const msg = errorOf({ ...good, [name]: value })
    t.match(msg, new RegExp(`^config: ${name} is invalid \\(got "[^"]*\\*\\*\\*@[^"]*"\\); expected `), msg)
    t.notMatch(msg, /s3cret|pw@/, `no password in: ${msg}`)
  }
  t.match(
    errorOf({ ...good, REDIS_URL: 'redis://cache:99999' }),
    /^config: REDIS_URL is invalid \(got "redis:\/\/cache:99999"\)/,
    'the rest is shown',
  )
})

void t.test('when the API starts with a malformed connection URL, then one line without the password and exit 2', async (t) => {
  for (const env of [
    { ...good, REDIS_URL: 'redis://default:s3cret-pw@cache:99999' },
    { ...good, DATABASE_URL: 'postgres://app:s3cret-pw@db:notaport/app' },
  ]) {
    const res = spawnSync(process.execPath, ['service/server.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, PORT: '0', METRICS_PORT: '0', ...env },
      encoding: 'utf8',
      timeout: 20000,
    })
    t.equal(res.status, 2, res.stderr)
    t.notMatch(res.stderr + res.stdout, 's3cret', 'the password is printed nowhere')
    t.equal(res.stderr.split('\n').filter(Boolean).length, 1, 'one line')
  }
})
