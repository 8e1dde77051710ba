// Spans wait in the SDK's batch processor (OTEL_BSP_SCHEDULE_DELAY, 5 s by default) before they are exported. A
// process that ends with process.exit(), as close-with-grace does, never reaches beforeExit, so each entry point's
// shutdown path flushes them itself. Only @opentelemetry/api is used: the SDK is whatever --import registered.
import { trace, type TracerProvider } from '@opentelemetry/api'
import { setTimeout as sleep } from 'node:timers/promises'

type Flushable = TracerProvider & { forceFlush?: () => Promise<void>; getDelegate?: () => Flushable }

/** Exports the spans still waiting; gives up after timeoutMs (a collector that is down must not hold up the exit). */
export async function flushTelemetry(timeoutMs = 2000): Promise<void> {
  const global = trace.getTracerProvider() as Flushable
  const provider = global.getDelegate?.() ?? global
  if (typeof provider.forceFlush !== 'function') return
  await Promise.race([provider.forceFlush().catch(() => undefined), sleep(timeoutMs, undefined, { ref: false })])
}
