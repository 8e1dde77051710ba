// ops/migrate.ts runs as a one-shot container labelled for the ECS log pipeline: its output must be ECS JSON lines.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { testDatabase } from '../helpers/env.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const migrate = (databaseUrl: string) =>
  spawnSync(process.execPath, ['ops/migrate.ts'], { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, encoding: 'utf8' })

const ecsLines = (out: string) =>
  out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { 'ecs.version'?: string; 'log.level'?: string; message?: string; 'service.name'?: string })

void t.test('when migrate runs on a migrated database, then it prints one ECS JSON line and exits 0', async (t) => {
  const res = migrate(await testDatabase(t))
  t.equal(res.status, 0, res.stderr)
  const lines = ecsLines(res.stdout)
  t.equal(lines.length, 1)
  t.ok(lines[0]!['ecs.version'], 'an ECS document (ecs.version)')
  t.equal(lines[0]!['log.level'], 'info')
  t.equal(lines[0]!.message, 'database is up to date')
  t.equal(lines[0]!['service.name'], 'opsdrill-migrate')
})

void t.test('when migrate cannot reach Postgres, then it logs the error as ECS JSON and exits 1', async (t) => {
  const res = migrate('postgres://nobody@127.0.0.1:1/none')
  t.equal(res.status, 1)
  const lines = ecsLines(res.stdout)
  t.equal(lines.at(-1)!['log.level'], 'error')
  t.match(lines.at(-1)!.message ?? '', /^db:migrate: .*\(is DATABASE_URL reachable\?\)$/)
})
