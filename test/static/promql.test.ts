// ops/lib/promql.ts: the extractor the live "every panel has data" proof relies on. It must find every expression,
// name its origin precisely, and leave no Grafana variable in what it sends to Prometheus.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  allExpressions,
  dashboardExpressions,
  metricNames,
  recordedNames,
  ruleExpressions,
  substituteVariables,
  variableDefault,
  BUILTIN_VARIABLES,
} from '../../ops/lib/promql.ts'

void t.test('when an expression uses every Grafana variable syntax, then each is replaced and unknown names are kept', async (t) => {
  const out = substituteVariables(
    'rate(x{job=~"$job",i=~"${instance}",r=~"${route:regex}",o=~"[[old]]"}[$__rate_interval]) / $__range_s + $__interval_ms + $unknown',
    { ...BUILTIN_VARIABLES, job: 'api', instance: '.*', route: '/:code', old: 'x' },
  )
  t.equal(out, 'rate(x{job=~"api",i=~".*",r=~"/:code",o=~"x"}[1m]) / 300 + 15000 + $unknown')
})

void t.test('when a template variable defaults to All or has a single value, then the live default follows it', async (t) => {
  t.equal(variableDefault({ name: 'a', includeAll: true, allValue: '.*', current: { value: ['$__all'] } }), '.*')
  t.equal(variableDefault({ name: 'b', includeAll: true, current: { value: '$__all' } }), '.*')
  t.equal(variableDefault({ name: 'c', current: { value: ['opsdrill-api'] } }), 'opsdrill-api')
  t.equal(variableDefault({ name: 'd', type: 'constant', query: 'clicks' }), 'clicks')
})

void t.test(
  'when a dashboard has nested row panels and a non-Prometheus target, then Prometheus targets are named by uid, title and refId',
  async (t) => {
    const dir = t.testdir()
    const path = join(dir, 'd.json')
    writeFileSync(
      path,
      JSON.stringify({
        uid: 'test-dash',
        templating: { list: [{ name: 'job', includeAll: true, allValue: '.*', current: { value: ['$__all'] } }] },
        panels: [
          {
            type: 'timeseries',
            title: 'Top',
            datasource: { type: 'prometheus', uid: 'prometheus' },
            targets: [{ refId: 'A', expr: 'sum(rate(up{job=~"$job"}[$__rate_interval]))' }],
          },
          {
            type: 'row',
            title: 'Row',
            panels: [
              {
                type: 'stat',
                title: 'Inner',
                datasource: { type: 'prometheus', uid: 'prometheus' },
                targets: [{ refId: 'B', expr: 'up' }],
              },
              {
                type: 'logs',
                title: 'Logs',
                datasource: { type: 'elasticsearch', uid: 'elasticsearch' },
                targets: [{ refId: 'A', query: 'x' }],
              },
            ],
          },
        ],
      }),
    )
    const got = dashboardExpressions(path)
    t.same(
      got.map((e) => [e.where, e.expr]),
      [
        ['dashboard test-dash / panel "Top" / refId A', 'sum(rate(up{job=~".*"}[1m]))'],
        ['dashboard test-dash / panel "Inner" / refId B', 'up'],
      ],
    )
    t.equal(got[0]!.kind, 'panel')
  },
)

void t.test('when a rule file has recording and alerting rules, then each is returned with its group and kind', async (t) => {
  const dir = t.testdir()
  mkdirSync(join(dir, 'r'))
  const path = join(dir, 'r/x.yml')
  writeFileSync(
    path,
    'groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: |\n          up == 0\n',
  )
  t.same(
    ruleExpressions(path).map((e) => [e.kind, e.group, e.rule, e.expr]),
    [
      ['record', 'g', 'job:up:sum', 'sum by (job) (up)'],
      ['alert', 'g', 'Down', 'up == 0'],
    ],
  )
})

void t.test('when names are read from an expression, then raw metrics and recording-rule names are told apart', async (t) => {
  const e = 'sum(rate(opsdrill_http_request_duration_seconds_count{route="/:code"}[5m])) / job:opsdrill_http_requests:rate5m offset 5m'
  t.same(metricNames(e, 'opsdrill_'), ['opsdrill_http_request_duration_seconds_count'])
  t.same(recordedNames(e), ['job:opsdrill_http_requests:rate5m'])
  t.same(recordedNames('max_over_time(x[10m:1m])'), [])
})

void t.test('when the repository is scanned, then every dashboard and rule file contributes and no variable is left', async (t) => {
  const all = allExpressions()
  const files = new Set(all.map((e) => e.file))
  for (const f of [
    'grafana/dashboards/opsdrill-overview.json',
    'grafana/dashboards/opsdrill-k6.json',
    'prometheus/rules/recording.yml',
    'prometheus/rules/alerts.yml',
  ]) {
    t.ok(files.has(f), `${f} contributes expressions`)
  }
  const leftovers = all.filter((e) => /\$\w|\$\{|\[\[/.test(e.expr)).map((e) => `${e.where}: ${e.expr}`)
  t.same(leftovers, [], 'no Grafana variable survives substitution')
})
