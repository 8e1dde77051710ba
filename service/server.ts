// Runs the API: config, logger, metrics listener, listen, and graceful shutdown.
// SIGTERM: readiness turns 503 for SHUTDOWN_READINESS_DELAY_MS, then the listener closes while the open keep-alive
// connections stay: each response on them now carries `Connection: close`, and the proxy gets SHUTDOWN_IDLE_GRACE_MS to
// retire its idle ones; then the rest close when idle, in-flight requests finish, pools close, exit 0;
// past SHUTDOWN_GRACE_MS close-with-grace exits 1.
import closeWithGrace from 'close-with-grace'
import { Server } from 'node:net'
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
  // Two races lose a request nginx must not resend (a POST that reached the replica), and the order below avoids both:
  // - a connection nginx opens in the instant the listener closes sits accepted by the kernel, not yet by Node, and is
  //   reset; so while readiness fails, responses keep their connections alive, and nginx opens no new ones here;
  // - a request nginx writes on an idle connection in the instant the server closes it is lost too; so the listener
  //   closes alone (net.Server's close: http.Server's would close the idle connections with it), responses from then
  //   on carry `Connection: close` (app.ts), nginx gets SHUTDOWN_IDLE_GRACE_MS to close its idle ones (its upstream
  //   keepalive_timeout is shorter), and its new connections are refused, which it retries on another replica.
  if (config.SHUTDOWN_READINESS_DELAY_MS > 0) await sleep(config.SHUTDOWN_READINESS_DELAY_MS)
  Server.prototype.close.call(app.server)
  if (config.SHUTDOWN_IDLE_GRACE_MS > 0) await sleep(config.SHUTDOWN_IDLE_GRACE_MS)
  await app.close()
  await metricsServer.close()
  await flushTelemetry()
  logger.info('shutdown complete')
})

const address = await app.listen({ host: config.HOST, port: config.PORT })
logger.info({ url: address, metrics_port: metricsServer.port }, 'opsdrill-api listening')
