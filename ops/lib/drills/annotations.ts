// Chaos on the dashboards: a drill's fault windows and verdict go to Prometheus through its remote-write receiver
// (the one k6 already writes to), and every dashboard shows them as Grafana annotations queried from these series.
import { pushTimeseries } from 'prometheus-remote-write'
import type { Report } from './report.ts'

/** The series the drills write, and the annotation queries the dashboards read them with. */
export const DRILL_SERIES = {
  /** 1 every STEP_MS while a fault is in place, 0 once it is gone. Labels: drill, fault, form, target. */
  fault: 'opsdrill_drill_fault',
  /** 1 at the end of a drill (0 one step later). Labels: drill, verdict (passed|failed), form, target. */
  verdict: 'opsdrill_drill_verdict',
}

export const ANNOTATION_QUERIES = {
  fault: `max by (drill, fault) (${DRILL_SERIES.fault})`,
  verdict: `max by (drill, verdict) (${DRILL_SERIES.verdict})`,
}

const STEP_MS = 5000

interface Timeseries {
  labels: { __name__: string; [label: string]: string }
  samples: { value: number; timestamp: number }[]
}

export function drillSeries(r: Report): Timeseries[] {
  const common = { drill: r.drill, form: r.form, target: r.target }
  const faults = r.windows.map((w) => {
    const samples = []
    for (let t = w.from; t < w.to; t += STEP_MS) samples.push({ value: 1, timestamp: t })
    // A 0 after the window ends the annotation's region: Prometheus would otherwise repeat the last 1 for its
    // 5-minute lookback, and Grafana draws a region over every non-zero step.
    samples.push({ value: 1, timestamp: w.to }, { value: 0, timestamp: w.to + 1000 })
    return { labels: { __name__: DRILL_SERIES.fault, ...common, fault: w.label }, samples }
  })
  const end = Date.parse(r.startedAt) + r.durationSec * 1000
  return [
    ...faults,
    {
      labels: { __name__: DRILL_SERIES.verdict, ...common, verdict: r.passed ? 'passed' : 'failed' },
      samples: [
        { value: 1, timestamp: Math.round(end) },
        { value: 0, timestamp: Math.round(end) + STEP_MS },
      ],
    },
  ]
}

/** Pushes the report's fault windows and verdict to Prometheus (its /api/v1/write receiver). */
export async function publish(prometheusUrl: string, r: Report): Promise<void> {
  const res = await pushTimeseries(drillSeries(r), {
    url: `${prometheusUrl}/api/v1/write`,
    // Node's own fetch; the library would load node-fetch otherwise.
    fetch: (url, init) => fetch(url, { ...init, body: init?.body as ArrayBuffer, signal: AbortSignal.timeout(5000) }),
  })
  if (res.status !== 204 && res.status !== 200) throw new Error(`remote write answered ${res.status}: ${res.errorMessage ?? ''}`)
}
