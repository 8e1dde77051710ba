// The OpenTelemetry SDK as `node --import ./common/telemetry/instrumentation.ts` starts it, with an in-memory exporter:
// call before the app's modules are imported (the test file imports them dynamically afterwards).
import { register } from 'node:module'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import { createSdk } from '../../common/telemetry/sdk.ts'

export function startTracing(t: { teardown(fn: () => unknown): void }, sampler: Record<string, string>): InMemorySpanExporter {
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
  Object.assign(process.env, { ...sampler, OTEL_TRACES_EXPORTER: 'none' })
  const exporter = new InMemorySpanExporter()
  const sdk = createSdk({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  sdk.start()
  t.teardown(() => sdk.shutdown())
  return exporter
}
