// ops/cli.ts user promote|demote: the only way to grant admin, run against a real Postgres.
import t from 'tap'
import { cli } from '../helpers/cli.ts'
import { testDatabase } from '../helpers/env.ts'
import { sql } from '../helpers/service.ts'
import { createUser } from '../helpers/factories.ts'

void t.test('when an operator promotes and demotes a user, then its role changes, and the CLI says so in one line', async (t) => {
  const url = await testDatabase(t)
  const db = await sql(t, url)
  const user = await createUser(db, { email: 'Alice@Example.test' })
  const other = await createUser(db)
  const role = async (id: string) => (await db.query<{ role: string }>('SELECT role FROM users WHERE id = $1', [id])).rows[0]!.role

  const promote = cli(['user', 'promote', 'alice@example.TEST'], { DATABASE_URL: url })
  t.equal(promote.code, 0, promote.stderr)
  t.equal(promote.stdout, 'Alice@Example.test is now an admin\n', 'emails match case-insensitively')
  t.equal(await role(user.id), 'admin')
  t.equal(await role(other.id), 'user', 'no other user changes')
  t.equal(cli(['user', 'promote', user.email], { DATABASE_URL: url }).stdout, 'Alice@Example.test is already an admin\n')

  const demote = cli(['user', 'demote', user.email], { DATABASE_URL: url })
  t.equal(demote.code, 0, demote.stderr)
  t.equal(demote.stdout, 'Alice@Example.test is now a user\n')
  t.equal(await role(user.id), 'user')
})

void t.test('when the email has no account, then the CLI says to register it first and exits 1', async (t) => {
  const url = await testDatabase(t)
  const r = cli(['user', 'promote', 'nobody@example.test'], { DATABASE_URL: url })
  t.equal(r.code, 1)
  t.equal(r.stderr, 'no user with email nobody@example.test: register it first\n')
  t.equal(r.stdout, '')
})

void t.test('when the user command or its environment is wrong, then one line and exit 2 (or 1 when Postgres is down)', async (t) => {
  for (const args of [['user'], ['user', 'promote'], ['user', 'promote', 'a@b.test', 'c@d.test'], ['user', 'promote', 'not-an-email']]) {
    const r = cli(args, { DATABASE_URL: 'postgres://127.0.0.1:1/x' })
    t.equal(r.code, 2, `exit 2 for ${JSON.stringify(args)}`)
    t.match(r.stderr, /^[^\n]*usage: node ops\/cli.ts [^\n]*user promote\|demote <email>\n$/)
  }
  const missing = cli(['user', 'promote', 'a@b.test'], {})
  t.equal(missing.code, 2)
  t.equal(missing.stderr, 'config: DATABASE_URL is invalid (it is not set); expected a postgres:// connection URL\n')
  const down = cli(['user', 'promote', 'a@b.test'], {
    DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres',
    PG_CONNECT_TIMEOUT_MS: '500',
  })
  t.equal(down.code, 1)
  t.match(down.stderr, /^user promote failed: [^\n]*ECONNREFUSED[^\n]*\(is DATABASE_URL reachable\?\)\n$/)
})
