// SVG line charts for the load report, rendered in Node: a Vega-Lite spec compiled to Vega, drawn headless.
import { writeFileSync } from 'node:fs'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

export interface Row {
  x: number
  y: number
  series: string
}

/** A multi-line chart of y over x (seconds since the start of each run), one line per series. */
export async function lineChart(
  file: string,
  opts: { title: string; xTitle: string; yTitle: string; rows: Row[]; logY?: boolean },
): Promise<void> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title,
    width: 640,
    height: 240,
    background: 'white',
    data: { values: opts.rows },
    mark: { type: 'line', interpolate: 'monotone', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.xTitle },
      y: { field: 'y', type: 'quantitative', title: opts.yTitle, ...(opts.logY ? { scale: { type: 'symlog' } } : {}) },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top' } },
    },
  }
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  writeFileSync(file, await view.toSVG())
  view.finalize()
}
