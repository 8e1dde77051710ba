// ops/cli.ts, the operator's dead-letter tool (tested here with the worker that records the dead letters).
import t from 'tap'
import { cli } from '../helpers/cli.ts'
import { redisPrefix, redisUrl, testDatabase } from '../helpers/env.ts'
import { producer, startTestWorker, waitFor } from '../helpers/worker.ts'

void t.test('when the command or the environment is wrong, then the CLI prints one line and exits 2', async (t) => {
  const env = { REDIS_URL: redisUrl(), REDIS_PREFIX: redisPrefix() }
  for (const args of [[], ['dlq', 'purge'], ['dlq', 'replay'], ['dlq', 'list', '--limit', 'x']]) {
    const r = cli(args, env)
    t.equal(r.code, 2, `exit 2 for ${JSON.stringify(args)}`)
    t.match(r.stderr, /^[^\n]*usage: node ops\/cli.ts dlq list[^\n]*\n$/, 'one line with the usage')
    t.equal(r.stdout, '')
  }
  const missing = cli(['dlq', 'list'], {})
  t.equal(missing.code, 2)
  t.equal(missing.stderr, 'config: REDIS_URL is invalid (it is not set); expected a redis:// URL of the queue Redis (BullMQ; noeviction)\n')
  const bad = cli(['dlq', 'list'], { REDIS_URL: 'http://localhost:6379' })
  t.equal(bad.code, 2)
  t.equal(
    bad.stderr,
    'config: REDIS_URL is invalid (got "http://localhost:6379"); expected a redis:// URL of the queue Redis (BullMQ; noeviction)\n',
  )
  const badPrefix = cli(['dlq', 'list'], { REDIS_URL: redisUrl(), REDIS_PREFIX: 'a b' })
  t.equal(badPrefix.code, 2)
  t.match(badPrefix.stderr, /^config: REDIS_PREFIX is invalid \(got "a b"\)[^\n]*\n$/)
})

void t.test('when Redis does not answer, then the CLI says so in one line and exits 1', async (t) => {
  const r = cli(['dlq', 'list'], { REDIS_URL: 'redis://127.0.0.1:1', REDIS_CONNECT_TIMEOUT_MS: '500' })
  t.equal(r.code, 1)
  t.match(r.stderr, /^dlq list failed: [^\n]*ECONNREFUSED[^\n]*\n$/)
})

void t.test('when dead letters exist, then the CLI lists them (table and JSON) and replays one and then all', async (t) => {
  const url = await testDatabase(t)
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)
  await p.clicks.add('click', { junk: 1 } as never, { jobId: 'junk-a' })
  await p.clicks.add('click', { junk: 2 } as never, { jobId: 'junk-b' })
  await waitFor(async () => (await p.deadLetters.getWaitingCount()) === 2, { what: 'two dead letters' })
  const env = { REDIS_URL: config.REDIS_URL, REDIS_PREFIX: config.REDIS_PREFIX }

  const table = cli(['dlq', 'list'], env)
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, /^ID\s+QUEUE\s+JOB\s+ATTEMPTS\s+FAILED AT\s+REASON\n/)
  t.match(table.stdout, /clicks\.junk-a\s+clicks\s+click\s+1\s+\S+\s+invalid click payload/)
  t.match(table.stdout, /2 of 2 dead letters\n$/)

  const json = cli(['dlq', 'list', '--json', '--limit', '1'], env)
  const page = JSON.parse(json.stdout) as { total: number; items: { id: string; queue: string }[] }
  t.equal(page.total, 2)
  t.same(
    page.items.map((i) => i.id),
    ['clicks.junk-a'],
    'oldest first, limited',
  )

  // Invalid payloads cannot be replayed: the CLI says why and leaves them.
  const one = cli(['dlq', 'replay', 'clicks.junk-a'], env)
  t.equal(one.code, 1)
  t.match(one.stderr, /^dead letter clicks\.junk-a: invalid click payload/)
  const all = cli(['dlq', 'replay', '--all', '--json'], env)
  t.equal(all.code, 1, 'not everything could be replayed')
  t.match(JSON.parse(all.stdout), { replayed: [], skipped: [{ id: 'clicks.junk-a' }, { id: 'clicks.junk-b' }] })
  const missing = cli(['dlq', 'replay', 'clicks.nope'], env)
  t.equal(missing.code, 1)
  t.equal(missing.stderr, 'dead letter clicks.nope not found\n')
})
