// npm run db:migrate: applies pending migrations to DATABASE_URL.
import { Type } from 'typebox'
import { loadConfigOrExit, BaseEnv } from '../common/config.ts'
import { migrate } from '../common/migrate.ts'

const config = loadConfigOrExit(Type.Object({ DATABASE_URL: BaseEnv.DATABASE_URL }))
try {
  const done = await migrate(config.DATABASE_URL)
  process.stdout.write(done.length ? `applied ${done.length} migration(s): ${done.join(', ')}\n` : 'database is up to date\n')
} catch (err) {
  process.stderr.write(`db:migrate: ${(err as Error).message} (is DATABASE_URL reachable?)\n`)
  process.exit(1)
}
