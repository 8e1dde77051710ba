// npm run db:migrate: applies pending migrations to DATABASE_URL. It logs ECS JSON like the api and worker, since
// compose and Kubernetes run it as a one-shot container whose logs the log shipper (otelcol, ECS) ships.
import { Type } from 'typebox'
import { loadConfigOrExit, BaseEnv } from '../common/config.ts'
import { createLogger } from '../common/logger.ts'
import { migrate } from '../common/migrate.ts'

const config = loadConfigOrExit(Type.Object({ DATABASE_URL: BaseEnv.DATABASE_URL, LOG_LEVEL: BaseEnv.LOG_LEVEL }))
const log = createLogger({ serviceName: 'opsdrill-migrate', instanceId: `migrate-${process.pid}`, level: config.LOG_LEVEL })
try {
  const done = await migrate(config.DATABASE_URL)
  log.info({ migrations: done }, done.length ? `applied ${done.length} migration(s): ${done.join(', ')}` : 'database is up to date')
} catch (err) {
  log.error(`db:migrate: ${(err as Error).message} (is DATABASE_URL reachable?)`)
  process.exitCode = 1
}
