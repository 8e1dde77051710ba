// Loaded before the app: `node --import ./common/telemetry/instrumentation.ts service/server.ts`.
// Application code imports only @opentelemetry/api. OTEL_SDK_DISABLED=true turns all of it off.
import { register } from 'node:module'
import { createSdk } from './sdk.ts'

if (process.env.OTEL_SDK_DISABLED !== 'true') {
  // ESM modules (bullmq and others) are patched through import-in-the-middle's loader hook; CommonJS ones (pg,
  // ioredis, fastify) through require-in-the-middle, which needs nothing more.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
  const sdk = createSdk()
  sdk.start()
  const shutdown = () => {
    sdk.shutdown().catch(() => undefined)
  }
  process.once('beforeExit', shutdown)
}
