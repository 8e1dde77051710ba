import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeReport, type Report } from '../../../ops/lib/drills/report.ts'

void t.test('when a report has error lines per fault window, then report.md lists them by count and links the query', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-report-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const from = Date.parse('2026-12-05T06:00:10Z')
  const report: Report = {
    drill: 'postgres-down',
    title: 'Postgres stopped',
    target: 'native',
    form: 'short',
    startedAt: '2026-12-05T06:00:00.000Z',
    durationSec: 60,
    load: 'k6',
    passed: true,
    checks: [{ name: 'held', pass: true, detail: 'ok' }],
    windows: [{ label: 'Postgres down', from, to: from + 15_000 }],
    timeline: [{ inject: from, mitigate: from + 15_000 }],
    alerts: [],
    measured: {},
    errorLines: [
      {
        window: 'Postgres down',
        query: '_time:[2026-12-05T06:00:10.000Z, 2026-12-05T06:00:25.000Z] log.level:error',
        link: 'http://127.0.0.1:9428/select/vmui/#/?query=x',
        perService: { 'opsdrill-worker': 3, 'opsdrill-api': 41 },
      },
    ],
    notes: [],
    seconds: [],
  }
  await writeReport(dir, report)
  const md = readFileSync(join(dir, 'report.md'), 'utf8')
  t.match(md, '## Error lines in Postgres down\n\n| service | lines |\n| --- | ---: |\n| opsdrill-api | 41 |\n| opsdrill-worker | 3 |\n')
  t.match(
    md,
    '[`_time:[2026-12-05T06:00:10.000Z, 2026-12-05T06:00:25.000Z] log.level:error`](http://127.0.0.1:9428/select/vmui/#/?query=x)',
  )
  t.same(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')).errorLines, report.errorLines, 'report.json keeps them')
})
