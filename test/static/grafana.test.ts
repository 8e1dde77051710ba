// Grafana provisioning and dashboards checked offline: the JSON is a valid dashboard with a fixed uid, every panel
// reads a provisioned datasource, every metric exists in the catalogue, the recording rules or the drills' series,
// every expression (annotation queries included) parses in a real Prometheus, the drill annotations find what a
// drill pushes, and the runbooks only point at panels that exist.
import t from 'tap'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parse } from 'yaml'
import client from 'prom-client'
import { collectRuntimeMetrics, registry } from '../../common/metrics.ts'
import { dashboardExpressions, dashboardFiles, flattenPanels, metricNames, recordedNames, ruleFiles } from '../../ops/lib/promql.ts'
import { freePort } from '../../ops/lib/net.ts'
import { ANNOTATION_QUERIES, DRILL_SERIES, publish } from '../../ops/lib/drills/annotations.ts'
import type { Report } from '../../ops/lib/drills/report.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const rel = (p: string) => p.slice(ROOT.length + 1)

interface Ds {
  type?: string
  uid?: string
}
interface Target {
  refId?: string
  expr?: string
  exemplar?: boolean
  datasource?: Ds
}
interface Panel {
  id?: number
  type: string
  title?: string
  datasource?: Ds
  gridPos?: { h: number; w: number; x: number; y: number }
  targets?: Target[]
  panels?: Panel[]
  fieldConfig?: { defaults?: { unit?: string } }
}
interface Dashboard {
  uid?: string
  title?: string
  schemaVersion?: number
  annotations?: { list: { name?: string; expr?: string; enable?: boolean; datasource?: Ds }[] }
  panels?: Panel[]
  templating?: { list: { name: string; allValue?: string; includeAll?: boolean }[] }
}

const dashboards = dashboardFiles().map((file) => ({ file: rel(file), path: file, text: readFileSync(file, 'utf8') }))
const parsed = dashboards.map((d) => {
  try {
    return { ...d, json: JSON.parse(d.text) as Dashboard }
  } catch {
    return { ...d, json: undefined }
  }
})
const datasourcesFile = 'grafana/provisioning/datasources/datasources.yml'
interface ProvisionedDs {
  name: string
  uid: string
  type: string
  url: string
  jsonData?: Record<string, unknown>
}
const provisioned = (parse(readFileSync(join(ROOT, datasourcesFile), 'utf8')) as { datasources: ProvisionedDs[] }).datasources
const dsUids = new Set(provisioned.map((d) => d.uid))

function catalogue(): Set<string> {
  collectRuntimeMetrics({ service: 'opsdrill-static-check', instance_id: 'static' })
  return new Set(
    registry.getMetricsAsArray().flatMap((m) => {
      const name = (m as unknown as { name: string }).name
      return m instanceof client.Histogram ? ['_bucket', '_sum', '_count'].map((s) => name + s) : [name]
    }),
  )
}

const EXPECTED_UIDS = [
  'opsdrill-cache',
  'opsdrill-datastores',
  'opsdrill-k6',
  'opsdrill-overview',
  'opsdrill-queues',
  'opsdrill-runtime',
  'opsdrill-slo',
]

void t.test('when dashboards are parsed, then each is valid JSON with a fixed unique uid matching its file name', async (t) => {
  const uids = new Map<string, string>()
  for (const d of parsed) {
    if (!t.ok(d.json, `${d.file}: parses as JSON`)) continue
    const uid = d.json!.uid
    t.match(uid, /^[a-z0-9-]{1,40}$/, `${d.file}: has a fixed uid`)
    t.equal(`grafana/dashboards/${uid}.json`, d.file, `${d.file}: file is named after its uid`)
    t.notOk(uids.has(uid!), `${d.file}: uid ${uid} is not also used by ${uids.get(uid!)}`)
    uids.set(uid!, d.file)
    t.ok((d.json!.schemaVersion ?? 0) >= 39, `${d.file}: schemaVersion ${d.json!.schemaVersion} >= 39`)
    t.ok(d.json!.title, `${d.file}: has a title`)
  }
  t.same([...uids.keys()].sort(), EXPECTED_UIDS, 'the seven opsdrill dashboards are all there')
})

void t.test(
  'when panels are read, then each has a known type, a grid position and a provisioned datasource on panel and target',
  async (t) => {
    for (const d of parsed) {
      if (!d.json) continue
      const panels = flattenPanels(d.json.panels as never) as Panel[]
      t.ok(panels.length > 0, `${d.file}: has panels`)
      const ids = new Set<number>()
      for (const p of panels) {
        const where = `${d.file} / panel "${p.title}"`
        t.ok(
          ['timeseries', 'stat', 'gauge', 'table', 'row', 'bargauge', 'text'].includes(p.type),
          `${where}: type ${p.type} is a current Grafana panel`,
        )
        t.ok(
          p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24,
          `${where}: has a gridPos inside the 24-column grid`,
        )
        t.notOk(ids.has(p.id!), `${where}: panel id ${p.id} is unique`)
        ids.add(p.id!)
        if (p.type === 'row' || p.type === 'text') continue
        t.ok(
          p.datasource?.uid && dsUids.has(p.datasource.uid),
          `${where}: datasource uid "${p.datasource?.uid}" is provisioned in ${datasourcesFile}`,
        )
        t.same(p.datasource, { type: 'prometheus', uid: 'prometheus' }, `${where}: reads the Prometheus datasource`)
        t.ok((p.targets ?? []).length > 0, `${where}: has at least one query`)
        for (const q of p.targets ?? []) {
          t.ok(
            q.datasource?.uid && dsUids.has(q.datasource.uid),
            `${where} / refId ${q.refId}: datasource uid "${q.datasource?.uid}" is provisioned`,
          )
          t.ok(q.expr?.trim(), `${where} / refId ${q.refId}: has an expression`)
        }
      }
    }
  },
)

void t.test(
  'when queries read opsdrill_ metrics or recorded series, then each exists in common/metrics.ts or a recording rule',
  async (t) => {
    // The drills' own series are written by the drill runner (ops/lib/drills/annotations.ts), not by the app.
    const known = new Set([...catalogue(), ...Object.values(DRILL_SERIES)])
    const recorded = new Set(
      ruleFiles().flatMap((f) =>
        (parse(readFileSync(f, 'utf8')) as { groups: { rules: { record?: string }[] }[] }).groups.flatMap((g) =>
          g.rules.map((r) => r.record).filter(Boolean),
        ),
      ),
    )
    for (const d of dashboards) {
      for (const e of dashboardExpressions(d.path)) {
        for (const name of metricNames(e.expr, 'opsdrill_')) t.ok(known.has(name), `${e.where}: ${name} is in common/metrics.ts`)
        for (const name of recordedNames(e.expr)) t.ok(recorded.has(name), `${e.where}: ${name} is recorded in prometheus/rules`)
      }
    }
  },
)

void t.test(
  'when range functions are used in dashboards, then their window is $__rate_interval and latency panels show exemplars',
  async (t) => {
    for (const d of parsed) {
      if (!d.json) continue
      for (const p of flattenPanels(d.json.panels as never) as Panel[]) {
        for (const q of p.targets ?? []) {
          const where = `${d.file} / panel "${p.title}" / refId ${q.refId}`
          const windows = [...(q.expr ?? '').matchAll(/\b(?:rate|irate|increase)\(\s*[^[]*\[([^\]]+)\]/g)].map((m) => m[1])
          t.ok(
            windows.every((w) => w === '$__rate_interval'),
            `${where}: rate windows ${JSON.stringify(windows)} are $__rate_interval`,
          )
          if (/histogram_quantile/.test(q.expr ?? '') && p.fieldConfig?.defaults?.unit === 's')
            t.equal(q.exemplar, true, `${where}: latency query shows exemplars`)
        }
      }
    }
  },
)

void t.test('when a dashboard is opened, then it shows drill fault windows and verdicts as annotations', async (t) => {
  for (const d of parsed) {
    if (!d.json) continue
    const list = d.json.annotations?.list ?? []
    for (const [name, expr] of [
      ['Drill faults', ANNOTATION_QUERIES.fault],
      ['Drill verdicts', ANNOTATION_QUERIES.verdict],
    ] as const) {
      const a = list.find((x) => x.name === name)
      t.match(
        a,
        { expr, enable: true, datasource: { type: 'prometheus', uid: 'prometheus' } },
        `${d.file}: annotation "${name}" reads ${expr}`,
      )
    }
  }
})

void t.test('when datasources are provisioned, then Prometheus, Jaeger and the logs stores are linked by fixed uids', async (t) => {
  const by = (uid: string) => provisioned.find((d) => d.uid === uid)
  const prom = by('prometheus')
  const jaeger = by('jaeger')
  const es = by('elasticsearch')
  t.match(
    prom,
    { type: 'prometheus', url: 'http://prometheus:9090' },
    `${datasourcesFile}: Prometheus uid prometheus at http://prometheus:9090`,
  )
  t.same(
    prom?.jsonData?.exemplarTraceIdDestinations,
    [{ name: 'trace_id', datasourceUid: 'jaeger', urlDisplayLabel: 'Trace in Jaeger' }],
    `${datasourcesFile}: exemplars' trace_id opens Jaeger`,
  )
  t.match(jaeger, { type: 'jaeger', url: 'http://jaeger:16686' }, `${datasourcesFile}: Jaeger uid jaeger at http://jaeger:16686`)
  t.match(
    jaeger?.jsonData?.tracesToLogsV2,
    { datasourceUid: '$LOGS_DATASOURCE', filterByTraceID: true, query: 'trace.id:"$${__trace.traceId}"' },
    `${datasourcesFile}: a span opens its logs by trace.id, in the store LOGS_DATASOURCE names`,
  )
  // docker-compose.yml gives Grafana LOGS_DATASOURCE (elasticsearch unless set) and the VictoriaLogs plugin; each
  // store a profile runs is a provisioned datasource at that service's address.
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { image?: string; environment?: Record<string, string>; profiles?: string[]; command?: string[] }>
  }
  const grafana = compose.services.grafana!
  t.equal(
    grafana.environment?.LOGS_DATASOURCE,
    '${LOGS_DATASOURCE:-elasticsearch}',
    'docker-compose.yml: LOGS_DATASOURCE defaults to elasticsearch',
  )
  for (const [uid, service, port] of [
    ['elasticsearch', 'elasticsearch', 9200],
    ['victorialogs', 'victorialogs', 9428],
  ] as const) {
    t.equal(
      by(uid)?.url,
      `http://${service}:${port}`,
      `${datasourcesFile}: LOGS_DATASOURCE=${uid} is a datasource at http://${service}:${port}`,
    )
    t.ok(
      compose.services[service]?.profiles?.length,
      `docker-compose.yml: ${service} runs under a profile (${compose.services[service]?.profiles?.join(', ')})`,
    )
  }
  const vl = by('victorialogs')
  t.equal(vl?.type, 'victoriametrics-logs-datasource', `${datasourcesFile}: VictoriaLogs through its Grafana plugin`)
  t.match(
    grafana.environment?.GF_PLUGINS_PREINSTALL ?? '',
    /(^|,)victoriametrics-logs-datasource@\d+\.\d+\.\d+(,|$)/,
    'docker-compose.yml: Grafana preinstalls that plugin at a pinned version',
  )
  // Grafana links traces to VictoriaLogs from 12.2.0 on (grafana/grafana#105703); older ones offer no link.
  const [major, minor] = (grafana.image?.split(':')[1] ?? '0.0').split('.').map(Number)
  t.ok(major! > 12 || (major === 12 && minor! >= 2), `docker-compose.yml: Grafana ${grafana.image} is 12.2 or later`)
  t.match(
    es,
    {
      type: 'elasticsearch',
      url: 'http://elasticsearch:9200',
      jsonData: { index: 'opsdrill-logs-*', timeField: '@timestamp', logMessageField: 'message' },
    },
    `${datasourcesFile}: Elasticsearch uid elasticsearch on opsdrill-logs-*`,
  )
  const providers = (
    parse(readFileSync(join(ROOT, 'grafana/provisioning/dashboards/dashboards.yml'), 'utf8')) as {
      providers: { type: string; options: { path: string } }[]
    }
  ).providers
  t.same(
    providers.map((p) => [p.type, p.options.path]),
    [['file', '/var/lib/grafana/dashboards']],
    'dashboards.yml: one file provider reading /var/lib/grafana/dashboards',
  )
})

void t.test('when runbooks name dashboard panels, then each panel exists in that dashboard', async (t) => {
  const titles = new Map(
    parsed
      .filter((d) => d.json)
      .map((d) => [d.json!.uid!, new Set((flattenPanels(d.json!.panels as never) as Panel[]).map((p) => p.title))]),
  )
  const dir = join(ROOT, 'docs/runbooks')
  let refs = 0
  for (const page of readdirSync(dir).filter((f) => f.endsWith('.md'))) {
    for (const line of readFileSync(join(dir, page), 'utf8').split('\n')) {
      const m = line.match(/Grafana \*\*([a-z0-9-]+)\*\* → panel (.*)$/)
      if (!m) continue
      const panels = titles.get(m[1]!)
      if (!t.ok(panels, `docs/runbooks/${page}: dashboard ${m[1]} exists`)) continue
      for (const [, title] of m[2]!.matchAll(/“([^”]+)”/g)) {
        refs++
        t.ok(panels!.has(title), `docs/runbooks/${page}: panel "${title}" exists in ${m[1]}`)
      }
    }
  }
  t.ok(refs > 16, `runbooks point at dashboard panels (${refs} references)`)
})

void t.test('when every dashboard expression is sent to a real Prometheus, then each parses and evaluates', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-promql-'))
  const port = await freePort()
  writeFileSync(join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 15s\n')
  const prom = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // As the stack runs it: k6 and the drills write through it.
      '--web.enable-remote-write-receiver',
    ],
    { stdio: 'ignore' },
  )
  t.teardown(() => {
    prom.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  })
  const base = `http://127.0.0.1:${port}`
  const until = Date.now() + 30_000
  while (Date.now() < until) {
    if (
      await fetch(`${base}/-/ready`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break
    await new Promise((r) => setTimeout(r, 200))
  }
  const expressions = dashboards.flatMap((d) => dashboardExpressions(d.path))
  t.ok(expressions.length > 50, `${expressions.length} dashboard expressions found`)
  for (const e of expressions) {
    const res = await fetch(`${base}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: e.expr }) })
    const body = (await res.json()) as { status: string; error?: string }
    t.equal(body.status, 'success', `${e.where}: ${body.error ?? 'ok'}\n  ${e.expr}`)
  }
  t.ok(
    expressions.some((e) => e.kind === 'annotation'),
    'annotation queries are among the expressions checked',
  )

  // A drill's report as the runner pushes it; the annotation queries must find its fault window and its verdict.
  const from = Date.now() - 60_000
  const report = {
    drill: 'grafana-test',
    form: 'short',
    target: 'native',
    startedAt: new Date(from - 10_000).toISOString(),
    durationSec: 50,
    passed: false,
    windows: [{ label: 'Redis stopped', from, to: from + 12_000 }],
  } as Report
  await publish(base, report)
  const at = async (query: string, time: number) => {
    const res = await fetch(`${base}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query, time: String(time / 1000) }) })
    const body = (await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }
    return body.data.result.map((r) => ({ ...r.metric, value: r.value[1] }))
  }
  const fault = { drill: 'grafana-test', fault: 'Redis stopped' }
  t.same(await at(ANNOTATION_QUERIES.fault, from + 6000), [{ ...fault, value: '1' }], 'the fault window is there while it lasted')
  t.same(await at(ANNOTATION_QUERIES.fault, from - 30_000), [], 'not before it')
  t.same(await at(ANNOTATION_QUERIES.fault, from + 20_000), [{ ...fault, value: '0' }], 'and ends with it (no annotation on 0)')
  t.same(
    await at(ANNOTATION_QUERIES.verdict, from + 40_000),
    [{ drill: 'grafana-test', verdict: 'failed', value: '1' }],
    'the verdict is there at the end',
  )
})
