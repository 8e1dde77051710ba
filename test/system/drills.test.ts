// Every drill's short form against one native stack on offset ports (started once for the file): the verdict
// passes, and the report files exist. Budget: about 10 minutes on a 2-core box; the system suites run one at a time.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { stackAt } from '../../ops/lib/stack/index.ts'
import { DRILLS } from '../../ops/lib/drills/catalogue.ts'
import { NativePlatform } from '../../ops/lib/drills/platform.ts'
import { runDrill } from '../../ops/lib/drills/runner.ts'

const ROOT = resolve(import.meta.dirname, '../..')
// Its own ports, away from a stack a user has up (offset 0) and from the stack suite's.
const OFFSET = Number(process.env.OPSDRILL_DRILLS_PORT_OFFSET ?? 1300)
const lines: string[] = []
const stack = stackAt({ offset: OFFSET, log: (l) => lines.push(l) })
const platform = new NativePlatform(stack)
const outDir = join(ROOT, '.run/drills-test')
// The SLO latency bound is widened on a box busy with other work, as the load suite does (never the error bounds).
const loadPerCore = loadavg()[0]! / cpus().length
const latencyFactor = loadPerCore > 1 ? Math.min(10, Math.ceil(loadPerCore * 2)) : 1
t.comment(`load per core ${loadPerCore.toFixed(2)}: SLO latency factor ${latencyFactor}`)
const only = process.env.OPSDRILL_DRILLS ? process.env.OPSDRILL_DRILLS.split(',') : undefined

t.setTimeout(20 * 60_000)

t.before(async () => {
  await stack.down()
  await stack.up({ api: 2, worker: 1 })
})

t.teardown(async () => {
  await stack.down()
})

for (const drill of DRILLS.filter((d) => !only || only.includes(d.name))) {
  void t.test(`when the ${drill.name} drill runs (short form), then it passes and writes its report`, async (t) => {
    const log: string[] = []
    const out = await runDrill(drill, { short: true, platform, outDir, latencyFactor, log: (l) => log.push(l) })
    t.same(
      out.report.checks.filter((c) => !c.pass),
      [],
      `${drill.name} passed`,
      { notes: out.report.notes, logTail: log.slice(-15) },
    )
    for (const f of ['report.md', 'report.json', 'chart.svg']) t.ok(existsSync(join(out.dir, f)), `${f} written`)
    t.match(readFileSync(join(out.dir, 'chart.svg'), 'utf8'), /^<svg/, 'chart.svg is an SVG')
    t.match(readFileSync(join(out.dir, 'report.md'), 'utf8'), out.passed ? /: PASSED/ : /: FAILED/, 'report.md states the verdict')
    t.ok(out.report.checks.length > 0, 'the drill judged at least one criterion')
    t.equal(out.report.timeline.length, out.report.windows.length, 'a timeline for each fault window')
    if (out.report.windows.length > 0)
      t.match(readFileSync(join(out.dir, 'report.md'), 'utf8'), /## Timeline\n\n- inject: /, 'report.md gives the timeline')
    // The stack runs VictoriaLogs: each fault window's error lines, per service, with the query's link.
    t.equal(out.report.errorLines?.length, out.report.windows.length, 'error lines counted for each fault window', {
      notes: out.report.notes,
    })
    if (out.report.windows.length > 0)
      t.match(
        readFileSync(join(out.dir, 'report.md'), 'utf8'),
        /## Error lines in .+\n\n\| service \| lines \|[^]*\]\(http:\/\/127\.0\.0\.1:\d+\/select\/vmui\/#\/\?query=/,
        'report.md lists them and links the query',
      )
    // With Postgres stopped the API answers 503 and logs each at level error (request-log): they must be counted.
    if (drill.name === 'postgres-down')
      t.ok(
        (out.report.errorLines?.[0]?.perService['opsdrill-api'] ?? 0) > 0,
        `the API's error lines in the outage: ${JSON.stringify(out.report.errorLines?.[0]?.perService)}`,
      )
  })
}
