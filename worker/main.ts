// The worker process: validate the environment, start, and shut down gracefully on SIGTERM/SIGINT within
// SHUTDOWN_GRACE_MS (exit 0), or exit 1 when that runs out. Run: node worker/main.ts (npm run start:worker).
import closeWithGrace from 'close-with-grace'
import { WorkerEnv, loadConfigOrExit } from '../common/config.ts'
import { createLogger } from '../common/logger.ts'
import { flushTelemetry } from '../common/telemetry/flush.ts'
import { SERVICE_NAME, startWorker } from './app.ts'

const config = loadConfigOrExit(WorkerEnv)
const log = createLogger({ serviceName: SERVICE_NAME, instanceId: config.INSTANCE_ID, level: config.LOG_LEVEL })
const running = startWorker(config, log)

closeWithGrace(
  { delay: config.SHUTDOWN_GRACE_MS, logger: { error: (msg: unknown) => log.error(String(msg)) } },
  async ({ signal, err }) => {
    if (err) log.error({ err }, 'shutting down after an uncaught error')
    else log.info({ signal }, 'shutting down: finishing active jobs')
    await (await running).close()
    await flushTelemetry()
  },
)

running.catch((err: unknown) => {
  log.fatal({ err }, 'worker failed to start')
  process.exit(1)
})
