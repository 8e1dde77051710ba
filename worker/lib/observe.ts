import { trace } from '@opentelemetry/api'
import type { Histogram } from 'prom-client'

/**
 * Observes a value on an exemplar-enabled histogram (every opsdrill histogram is one; they accept only the object
 * form of observe), with the sampled trace of the current job as exemplar when there is one.
 */
export function observe<T extends string>(h: Histogram<T>, labels: Partial<Record<T, string>>, value: number): void {
  const ctx = trace.getActiveSpan()?.spanContext()
  h.observe({ labels, value, exemplarLabels: ctx && ctx.traceFlags & 1 ? ({ trace_id: ctx.traceId } as Partial<Record<T, string>>) : {} })
}
