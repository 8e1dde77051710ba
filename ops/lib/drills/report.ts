// The drill report: report.json (everything measured), report.md (the verdict first, then each criterion with its
// numbers) and chart.svg (throughput, errors and latency per second, with the fault windows shaded).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import type { Timeline } from './criteria.ts'
import type { Second } from './load.ts'

export interface Check {
  name: string
  pass: boolean
  detail: string
}

export interface Window {
  label: string
  /** Unix ms. */
  from: number
  to: number
}

export interface Report {
  drill: string
  title: string
  target: string
  form: 'short' | 'full'
  startedAt: string
  durationSec: number
  load: string
  passed: boolean
  checks: Check[]
  windows: Window[]
  /** One per fault window: inject, detect (Alertmanager), mitigate, recover. */
  timeline: Timeline[]
  /** The alerts whose firing counts as detection. */
  alerts: string[]
  /** Failed requests against what the availability SLO allows over the run's requests. */
  errorBudget?: { allowed: number; failed: number; spent: number }
  measured: Record<string, unknown>
  /** The error lines the log store holds for each fault window, counted per service (absent: no log store). */
  errorLines?: ErrorLines[]
  notes: string[]
  seconds: Second[]
}

export interface ErrorLines {
  window: string
  /** The LogsQL query, its time window included, and a link that opens it in the store's UI. */
  query: string
  link: string
  perService: Record<string, number>
}

export async function writeReport(dir: string, r: Report): Promise<void> {
  writeFileSync(join(dir, 'report.json'), JSON.stringify(r, null, 2) + '\n')
  writeFileSync(join(dir, 'chart.svg'), await chart(r))
  writeFileSync(join(dir, 'report.md'), markdown(r))
}

function markdown(r: Report): string {
  const t0 = r.seconds[0]?.t ?? Math.floor(Date.parse(r.startedAt) / 1000)
  const rel = (ms: number) => `${(ms / 1000 - t0).toFixed(1)} s`
  const lines = [
    `# Drill ${r.drill}: ${r.passed ? 'PASSED' : 'FAILED'}`,
    '',
    `${r.title}`,
    '',
    `- target: ${r.target}, ${r.form} form, started ${r.startedAt}, ${r.durationSec.toFixed(0)} s`,
    `- load: ${r.load}`,
    ...r.windows.map(
      (w) => `- ${w.label}: ${rel(w.from)} to ${rel(w.to)} after the load started (${((w.to - w.from) / 1000).toFixed(1)} s)`,
    ),
    '',
    '## Timeline',
    '',
    ...r.timeline.flatMap((t) => timelineLines(t, r.alerts, rel)),
    ...(r.errorBudget
      ? [
          `- error budget spent: ${r.errorBudget.failed} failed requests of the ${r.errorBudget.allowed} the availability SLO allows over the run's requests (${(r.errorBudget.spent * 100).toFixed(0)}%)`,
        ]
      : []),
    '',
    '## Criteria',
    '',
    '| | criterion | measured |',
    '| --- | --- | --- |',
    ...r.checks.map((c) => `| ${c.pass ? 'pass' : '**FAIL**'} | ${c.name} | ${c.detail.replace(/\|/g, '\\|')} |`),
    '',
    '![throughput, errors and latency](chart.svg)',
    '',
    ...(r.errorLines ?? []).flatMap((e) => [
      `## Error lines in ${e.window}`,
      '',
      '| service | lines |',
      '| --- | ---: |',
      ...Object.entries(e.perService)
        .sort(([, a], [, b]) => b - a)
        .map(([service, n]) => `| ${service} | ${n} |`),
      ...(Object.keys(e.perService).length === 0 ? ['| (none) | 0 |'] : []),
      '',
      `[\`${e.query.replace(/\|/g, '\\|')}\`](${e.link})`,
      '',
    ]),
    '## Measured',
    '',
    '```json',
    JSON.stringify(r.measured, null, 2),
    '```',
    '',
  ]
  if (r.notes.length) lines.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '')
  return lines.join('\n')
}

function timelineLines(t: Timeline, alerts: string[], rel: (ms: number) => string): string[] {
  const after = (ms: number) => `${((ms - t.inject) / 1000).toFixed(1)} s after inject`
  return [
    `- inject: ${rel(t.inject)}`,
    t.detect
      ? `- detect: ${rel(t.detect.at)}, ${t.detect.alert} firing in Alertmanager (time to detect ${after(t.detect.at)})`
      : `- detect: no alert of this fault fired during the drill${alerts.length ? ` (${alerts.join(', ')})` : ' (it has none)'}`,
    `- mitigate: ${rel(t.mitigate)}, fault removed (${after(t.mitigate)})`,
    t.recover
      ? `- recover: ${rel(t.recover)}, the last failed request (time to recover ${after(t.recover)})`
      : '- recover: no request failed after the injection',
  ]
}

async function chart(r: Report): Promise<string> {
  const t0 = r.seconds[0]?.t ?? 0
  const rows = r.seconds.flatMap((s) => [
    { x: s.t - t0, y: s.reqs - s.failed, series: 'ok req/s', panel: 'throughput' },
    { x: s.t - t0, y: s.failed, series: 'failed req/s', panel: 'throughput' },
    { x: s.t - t0, y: s.reqs ? (100 * s.failed) / s.reqs : 0, series: 'error %', panel: 'errors' },
    { x: s.t - t0, y: s.p50, series: 'p50 ms', panel: 'latency' },
    { x: s.t - t0, y: s.p99, series: 'p99 ms', panel: 'latency' },
    { x: s.t - t0, y: s.max, series: 'max ms', panel: 'latency' },
  ])
  const windows = r.windows.map((w) => ({ from: w.from / 1000 - t0, to: w.to / 1000 - t0, label: w.label }))
  const panel = (name: string, title: string, yTitle: string, logY = false): NonNullable<TopLevelSpec> =>
    ({
      width: 680,
      height: 150,
      title,
      layer: [
        {
          data: { values: windows },
          mark: { type: 'rect', opacity: 0.15, color: '#d62728' },
          encoding: { x: { field: 'from', type: 'quantitative' }, x2: { field: 'to' } },
        },
        {
          data: { values: windows },
          mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, dy: 3, fontSize: 10, color: '#a00' },
          encoding: { x: { field: 'from', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } },
        },
        {
          data: { values: rows.filter((x) => x.panel === name) },
          mark: { type: 'line', strokeWidth: 1.5 },
          encoding: {
            x: { field: 'x', type: 'quantitative', title: 'seconds since the load started' },
            y: { field: 'y', type: 'quantitative', title: yTitle, ...(logY ? { scale: { type: 'symlog' } } : {}) },
            color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top' } },
          },
        },
      ],
    }) as unknown as TopLevelSpec
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${r.drill} (${r.form}): ${r.passed ? 'passed' : 'FAILED'}`,
    background: 'white',
    vconcat: [panel('throughput', 'Throughput', 'req/s'), panel('errors', 'Errors', '% failed'), panel('latency', 'Latency', 'ms', true)],
    resolve: { scale: { color: 'independent' } },
  } as unknown as TopLevelSpec
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return svg
}
