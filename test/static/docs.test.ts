// The docs the repository points to exist, and docs/slo.md states the objectives and burn-rate alerts the Prometheus
// rules really hold: a page that restates numbers must change when they do.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse } from 'yaml'

const ROOT = resolve(import.meta.dirname, '../..')
const read = (f: string) => readFileSync(resolve(ROOT, f), 'utf8')

interface Rule {
  record?: string
  alert?: string
  expr: string
  labels?: Record<string, string>
}
const rules = (f: string) => (parse(read(f)) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules)

void t.test('when a tracked file names a docs/*.md page, then that page exists', async (t) => {
  const files = spawnSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' })
    .stdout.split('\n')
    .filter((f) => /\.(ts|md|ya?ml|json|sh)$/.test(f) && existsSync(resolve(ROOT, f)))
  const missing = files.flatMap((f) =>
    [...read(f).matchAll(/\bdocs\/[\w./-]+?\.md\b/g)]
      .map((m) => m[0])
      .filter((p) => !existsSync(resolve(ROOT, p)))
      .map((p) => `${f}: ${p}`),
  )
  t.same(missing, [], 'references to missing docs pages')
})

void t.test('when docs/slo.md lists the objectives, then they are the recorded ones', async (t) => {
  const slo = read('docs/slo.md')
  const objectives = rules('prometheus/rules/recording.yml').filter((r) => r.record === 'slo:opsdrill_objective:ratio')
  t.equal(objectives.length, 3)
  for (const r of objectives) {
    const pct = `${Number((Number(/vector\(([\d.]+)\)/.exec(r.expr)?.[1]) * 100).toFixed(2))}%`
    t.ok(slo.includes(`| \`${r.labels?.slo}\` | ${pct} |`), `docs/slo.md: ${r.labels?.slo} objective ${pct}`)
  }
})

void t.test('when docs/slo.md lists the burn-rate alerts, then each alert of every SLO is a row of its table', async (t) => {
  const slo = read('docs/slo.md')
  const burns = rules('prometheus/rules/alerts.yml').filter((r) => r.labels?.long_window)
  t.equal(burns.length, 9)
  for (const r of burns) {
    const rate = /> \(([\d.]+) \* /.exec(r.expr)?.[1]
    const row = new RegExp(
      `\\| ${rate}x \\| ${r.labels!.long_window} \\| ${r.labels!.short_window} \\| [^|]+ \\| ${r.labels!.severity} \\|`,
    )
    t.match(slo, row, `docs/slo.md: ${r.alert} ${rate}x over ${r.labels!.long_window}/${r.labels!.short_window}`)
    t.ok(slo.includes(`\`${r.alert}\``), `docs/slo.md names ${r.alert}`)
  }
})
