// Prometheus and Alertmanager configuration checked offline with the real tools (promtool, amtool), then the facts
// the tools cannot know: every alert has a runbook and is proven firing and silent by a promtool test, every metric a
// rule reads is one the app exports, and the scrape config finds targets the way compose and the native stack expect.
import t from 'tap'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join, resolve } from 'node:path'
import { parse } from 'yaml'
import { metricNames, recordedNames, ruleFiles } from '../../ops/lib/promql.ts'
import client from 'prom-client'
import { collectRuntimeMetrics, registry } from '../../common/metrics.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const TESTS_DIR = 'prometheus/tests'
const RUNBOOK_BASE = 'https://github.com/opsdrill/opsdrill/blob/main/docs/runbooks/'

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const res = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
  return { ok: res.status === 0, out: `${res.stdout ?? ''}${res.stderr ?? ''}${res.error ? String(res.error) : ''}`.trim() }
}

interface Rule {
  record?: string
  alert?: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}
interface RuleGroup {
  name: string
  rules: Rule[]
}
const groups = (file: string): RuleGroup[] => (parse(readFileSync(file, 'utf8')) as { groups: RuleGroup[] }).groups
const RULE_FILES = ruleFiles()
const rules = RULE_FILES.flatMap((f) =>
  groups(f).flatMap((g) => g.rules.map((r) => ({ ...r, file: f.slice(ROOT.length + 1), group: g.name }))),
)
const alerts = rules.filter((r) => r.alert)
const alertNames = [...new Set(alerts.map((a) => a.alert!))]
/** Every opsdrill_ name a query may read: the catalogue with default Node metrics, histograms as _bucket/_sum/_count. */
function catalogue(): Set<string> {
  collectRuntimeMetrics({ service: 'opsdrill-static-check', instance_id: 'static' })
  return new Set(
    registry.getMetricsAsArray().flatMap((m) => {
      const name = (m as unknown as { name: string }).name
      return m instanceof client.Histogram ? ['_bucket', '_sum', '_count'].map((s) => name + s) : [name]
    }),
  )
}
const kebab = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()

interface AlertTest {
  eval_time: string
  alertname: string
  exp_alerts?: { exp_labels?: Record<string, string> }[]
}
const testFiles = readdirSync(join(ROOT, TESTS_DIR))
  .filter((f) => f.endsWith('.test.yml'))
  .sort()
  .map((f) => `${TESTS_DIR}/${f}`)
const alertTests = testFiles.flatMap((f) =>
  ((parse(readFileSync(join(ROOT, f), 'utf8')) as { tests: { name: string; alert_rule_test?: AlertTest[] }[] }).tests ?? []).flatMap((tc) =>
    (tc.alert_rule_test ?? []).map((a) => ({ ...a, file: f, test: tc.name })),
  ),
)

void t.test('when promtool checks prometheus.yml, then the config and the rule files it names are valid', async (t) => {
  const res = run('promtool', ['check', 'config', 'prometheus/prometheus.yml'])
  t.ok(res.ok, `promtool check config prometheus/prometheus.yml:\n${res.out}`)
  // promtool resolves rule_files relative to the config: the rules must be found through the config too.
  t.match(
    res.out,
    `SUCCESS: ${RULE_FILES.length} rule files found`,
    'prometheus.yml: rules/*.yml resolves, relative to the config, to every rule file',
  )
})

void t.test('when promtool checks every rule file, then each is valid', async (t) => {
  t.ok(RULE_FILES.length >= 2, 'prometheus/rules has the recording and alerting rule files')
  const res = run('promtool', ['check', 'rules', ...RULE_FILES])
  t.ok(res.ok, `promtool check rules ${RULE_FILES.join(' ')}:\n${res.out}`)
})

void t.test('when promtool runs the rule unit tests, then every case passes', async (t) => {
  t.ok(testFiles.length > 0, `${TESTS_DIR} has *.test.yml files`)
  const res = run('promtool', ['test', 'rules', ...testFiles])
  t.ok(res.ok, `promtool test rules ${testFiles.join(' ')}:\n${res.out}`)
})

void t.test('when amtool checks alertmanager.yml, then it is valid and routes pages and tickets to the webhook receivers', async (t) => {
  const file = 'alertmanager/alertmanager.yml'
  const res = run('amtool', ['check-config', file])
  t.ok(res.ok, `amtool check-config ${file}:\n${res.out}`)
  for (const [labels, receiver] of [
    [['severity=page', 'alertname=RedisDown'], 'page'],
    [['severity=ticket', 'alertname=ClicksDropped'], 'ticket'],
    [['alertname=Unrouted'], 'null'],
  ] as const) {
    const r = run('amtool', ['config', 'routes', 'test', `--config.file=${file}`, `--verify.receivers=${receiver}`, ...labels])
    t.ok(r.ok, `${file}: an alert with ${labels.join(',')} goes to receiver "${receiver}":\n${r.out}`)
  }
  const am = parse(readFileSync(join(ROOT, file), 'utf8')) as {
    receivers: { name: string; webhook_configs?: { url: string }[] }[]
    inhibit_rules: { source_matchers: string[]; equal?: string[] }[]
  }
  for (const name of ['page', 'ticket']) {
    t.same(
      am.receivers.find((r) => r.name === name)?.webhook_configs?.map((w) => w.url),
      ['http://127.0.0.1:5001/'],
      `${file}: receiver ${name} posts to the local webhook`,
    )
  }
  const instanceDown = am.inhibit_rules.find((r) => r.source_matchers.includes('alertname="InstanceDown"'))
  t.same(instanceDown?.equal, ['job', 'instance'], `${file}: InstanceDown inhibits the other alerts of the same job and instance`)
  const severities = new Set(alerts.map((a) => a.labels?.severity))
  t.same([...severities].sort(), ['page', 'ticket'], 'every alert has severity page or ticket, the two routes Alertmanager knows')
})

void t.test('when alerts are read, then each has a summary, a description and a runbook_url pointing to its own page', async (t) => {
  t.ok(alerts.length > 0, 'there are alerts')
  for (const a of alerts) {
    const where = `${a.file} / group ${a.group} / alert ${a.alert}`
    t.ok(a.annotations?.summary, `${where}: has a summary`)
    t.ok(a.annotations?.description, `${where}: has a description`)
    t.equal(
      a.annotations?.runbook_url,
      `${RUNBOOK_BASE}${kebab(a.alert!)}.md`,
      `${where}: runbook_url names docs/runbooks/${kebab(a.alert!)}.md`,
    )
    t.ok(a.labels?.severity, `${where}: has a severity label`)
  }
})

void t.test('when runbooks are listed, then every alert has a page with every section, and every page has an alert', async (t) => {
  const dir = join(ROOT, 'docs/runbooks')
  const pages = readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md')
  const index = readFileSync(join(dir, 'README.md'), 'utf8')
  for (const name of alertNames) {
    const page = `docs/runbooks/${kebab(name)}.md`
    if (!t.ok(existsSync(join(ROOT, page)), `alert ${name}: ${page} exists`)) continue
    const text = readFileSync(join(ROOT, page), 'utf8')
    for (const section of ['## What it means', '## Where to look', '## Likely causes', '## What to do', '## How to verify recovery']) {
      t.ok(text.includes(section), `${page}: has the section "${section}"`)
    }
    t.ok(index.includes(`(${kebab(name)}.md)`), `docs/runbooks/README.md links ${kebab(name)}.md`)
  }
  const orphans = pages.filter((p) => !alertNames.some((n) => `${kebab(n)}.md` === p))
  t.same(orphans, [], 'every runbook page belongs to an alert')
})

void t.test(
  'when promtool tests are read, then every alert rule is shown firing with its labels and every alert silent at least once',
  async (t) => {
    for (const a of alerts) {
      const labels = a.labels ?? {}
      const fires = alertTests.some(
        (at) =>
          at.alertname === a.alert && (at.exp_alerts ?? []).some((e) => Object.entries(labels).every(([k, v]) => e.exp_labels?.[k] === v)),
      )
      t.ok(fires, `alert ${a.alert} ${JSON.stringify(labels)} (${a.file}): a case in ${TESTS_DIR} expects it firing with these labels`)
    }
    for (const name of alertNames) {
      const silent = alertTests.filter((at) => at.alertname === name && (at.exp_alerts ?? []).length === 0)
      t.ok(silent.length > 0, `alert ${name}: a case in ${TESTS_DIR} expects it silent (exp_alerts: [])`)
    }
  },
)

void t.test('when rules read opsdrill_ metrics, then each is one the app exports (common/metrics.ts)', async (t) => {
  const known = catalogue()
  for (const r of rules) {
    for (const name of metricNames(r.expr, 'opsdrill_')) {
      t.ok(known.has(name), `${r.file} / ${r.record ?? r.alert}: ${name} is in common/metrics.ts`)
    }
  }
})

void t.test('when rules read recorded series, then each is recorded by some rule', async (t) => {
  const recorded = new Set(rules.filter((r) => r.record).map((r) => r.record!))
  for (const r of rules) {
    for (const name of recordedNames(r.expr)) t.ok(recorded.has(name), `${r.file} / ${r.record ?? r.alert}: ${name} is a recording rule`)
  }
  for (const r of rules.filter((x) => x.record)) {
    t.match(r.record!, /^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/, `${r.file} / ${r.record}: named level:metric:operations`)
  }
})

void t.test('when prometheus.yml is read, then every job finds targets through compose DNS and targets/<job>.json', async (t) => {
  const cfg = parse(readFileSync(join(ROOT, 'prometheus/prometheus.yml'), 'utf8')) as {
    rule_files: string[]
    alerting: { alertmanagers: { dns_sd_configs?: unknown[]; file_sd_configs?: { files: string[] }[] }[] }
    scrape_configs: {
      job_name: string
      dns_sd_configs?: { names: string[]; port: number; type: string }[]
      file_sd_configs?: { files: string[] }[]
      relabel_configs?: { target_label?: string }[]
    }[]
  }
  t.same(cfg.rule_files, ['rules/*.yml'], 'prometheus.yml: rule_files is rules/*.yml')
  const expected: Record<string, [string, number]> = {
    'opsdrill-api': ['api', 9464],
    'opsdrill-worker': ['worker', 9465],
    postgres: ['postgres-exporter', 9187],
    redis: ['redis-exporter', 9121],
    prometheus: ['prometheus', 9090],
    alertmanager: ['alertmanager', 9093],
  }
  for (const [job, [dns, port]] of Object.entries(expected)) {
    const sc = cfg.scrape_configs.find((s) => s.job_name === job)
    if (!t.ok(sc, `prometheus.yml: scrape job ${job} exists`)) continue
    t.same(
      sc!.dns_sd_configs?.map((d) => [d.names, d.port, d.type]),
      [[[dns], port, 'A']],
      `prometheus.yml / ${job}: dns_sd ${dns}:${port} (type A)`,
    )
    t.same(
      sc!.file_sd_configs?.map((f) => f.files),
      [[`targets/${job}.json`]],
      `prometheus.yml / ${job}: file_sd targets/${job}.json`,
    )
    const targets = (sc!.relabel_configs ?? []).map((r) => r.target_label)
    t.ok(targets.includes('instance') && targets.includes('replica'), `prometheus.yml / ${job}: relabels instance and replica`)
  }
  const am = cfg.alerting.alertmanagers[0]
  t.ok(
    am?.dns_sd_configs && am.file_sd_configs?.[0]?.files.includes('targets/alertmanager.json'),
    'prometheus.yml: alerts go to Alertmanager found by DNS or targets/alertmanager.json',
  )
  t.match(
    readFileSync(join(ROOT, 'prometheus/targets/.gitignore'), 'utf8'),
    /^\*\.json$/m,
    'prometheus/targets/.gitignore ignores the runtime JSON files',
  )
  t.ok(existsSync(join(ROOT, 'prometheus/targets/README.md')), 'prometheus/targets/README.md documents the file format')
})
