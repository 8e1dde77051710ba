// Runs the API: config, logger, metrics listener, listen, and graceful shutdown.
// SIGTERM: readiness turns 503 and responses close their connections for SHUTDOWN_READINESS_DELAY_MS, then the listener
// closes, in-flight requests finish, idle keep-alive connections close, pools close, exit 0;
// past SHUTDOWN_GRACE_MS close-with-grace exits 1.
import closeWithGrace from 'close-with-grace'
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiEnv, loadConfigOrExit } from '../common/config.ts'
import { createLogger } from '../common/logger.ts'
import { collectRuntimeMetrics } from '../common/metrics.ts'
import { startMetricsServer } from '../common/metrics-server.ts'
import { migrate } from '../common/migrate.ts'
import { flushTelemetry } from '../common/telemetry/flush.ts'
import { buildApp } from './app.ts'

const config = loadConfigOrExit(ApiEnv)
const logger = createLogger({ serviceName: 'opsdrill-api', instanceId: config.INSTANCE_ID, level: config.LOG_LEVEL })
collectRuntimeMetrics({ service: 'opsdrill-api', instance_id: config.INSTANCE_ID })

if (config.MIGRATE_ON_START) {
  const done = await migrate(config.DATABASE_URL)
  logger.info({ migrations: done }, `migrations applied: ${done.length}`)
}

const app = await buildApp({ config, logger })
const metricsServer = await startMetricsServer(config.METRICS_HOST, config.METRICS_PORT, () => !app.shuttingDown)

closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS, logger }, async ({ signal, err }) => {
  if (err) logger.error({ err }, 'shutting down after an uncaught error')
  else logger.info({ signal }, 'shutting down: draining')
  app.shuttingDown = true
  // Give load balancers time to see readiness fail before the listener closes. Meanwhile each response carries
  // `Connection: close` (app.ts), so the proxy retires the connections it reuses; closing an idle one it might be
  // sending a POST on at that very moment is what loses a request (the rolling-restart drill saw a 502 that way).
  if (config.SHUTDOWN_READINESS_DELAY_MS > 0) await sleep(config.SHUTDOWN_READINESS_DELAY_MS)
  await app.close()
  await metricsServer.close()
  await flushTelemetry()
  logger.info('shutdown complete')
})

const address = await app.listen({ host: config.HOST, port: config.PORT })
logger.info({ url: address, metrics_port: metricsServer.port }, 'opsdrill-api listening')
