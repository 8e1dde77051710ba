// Every PromQL expression the project ships, with where it came from: dashboard panels and annotation queries
// (grafana/dashboards/*.json) and recording/alerting rules (prometheus/rules/*.yml). Grafana variables are replaced so each expression can be sent
// as is to a real Prometheus: the live proof that no panel shows "No data" and the offline parse check both use this.
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parse } from 'yaml'

export const ROOT = resolve(import.meta.dirname, '../..')

export interface PromQLExpression {
  /**
   * `panel` for a dashboard target, `annotation` for a dashboard's annotation query; `record` or `alert` for a rule.
   * Alert and annotation expressions are empty while nothing happens (no alert, no drill).
   */
  kind: 'panel' | 'annotation' | 'record' | 'alert'
  /** Repository-relative file the expression lives in. */
  file: string
  /** One line naming the place, for failure messages: dashboard uid + panel title + refId (or annotation), or group + rule. */
  where: string
  dashboardUid?: string
  panelTitle?: string
  refId?: string
  group?: string
  rule?: string
  /** The expression as written. */
  raw: string
  /** The expression ready to run: Grafana variables substituted. */
  expr: string
}

/** What Grafana's built-in interval variables stand for in a live query (scrapes every 5-15 s, a 5-minute view). */
export const BUILTIN_VARIABLES: Readonly<Record<string, string>> = {
  __rate_interval: '1m',
  __rate_interval_ms: '60000',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
}

// $name, ${name}, ${name:format} and the deprecated [[name]] (https://grafana.com/docs/grafana/latest/dashboards/variables/variable-syntax/).
const VARIABLE = /\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]/g

/** Replaces Grafana variables; a name missing from `values` is left in place so the caller sees it fail. */
export function substituteVariables(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(VARIABLE, (whole, a?: string, b?: string, c?: string) => values[(a ?? b ?? c)!] ?? whole)
}

interface GrafanaVariable {
  name: string
  type?: string
  query?: unknown
  includeAll?: boolean
  allValue?: string | null
  current?: { value?: string | string[] }
}

/** The value a template variable takes in a live query: its single default if it has one, else all (`.*`). */
export function variableDefault(v: GrafanaVariable): string {
  const cur = v.current?.value
  const single = Array.isArray(cur) ? (cur.length === 1 ? cur[0] : undefined) : cur
  if (single !== undefined && single !== '$__all' && single !== '') return single
  if (v.type === 'constant' || v.type === 'textbox') return typeof v.query === 'string' ? v.query : ''
  return v.allValue || '.*'
}

interface Target {
  expr?: string
  refId?: string
  datasource?: { type?: string; uid?: string } | string | null
}
interface Panel {
  title?: string
  type?: string
  datasource?: { type?: string; uid?: string } | string | null
  targets?: Target[]
  panels?: Panel[]
}
interface Annotation {
  name?: string
  expr?: string
  datasource?: { type?: string; uid?: string } | string | null
}
interface Dashboard {
  uid?: string
  title?: string
  panels?: Panel[]
  templating?: { list?: GrafanaVariable[] }
  annotations?: { list?: Annotation[] }
}

const isPrometheus = (ds: Target['datasource']): boolean =>
  ds == null || (typeof ds === 'object' && (ds.type === 'prometheus' || ds.uid === 'prometheus'))

/** Panels in display order, including the ones inside collapsed rows. */
export function flattenPanels(panels: Panel[] = []): Panel[] {
  return panels.flatMap((p) => [p, ...flattenPanels(p.panels)])
}

export function dashboardExpressions(path: string): PromQLExpression[] {
  const file = relative(ROOT, path)
  const dash = JSON.parse(readFileSync(path, 'utf8')) as Dashboard
  const values: Record<string, string> = { ...BUILTIN_VARIABLES }
  for (const v of dash.templating?.list ?? []) values[v.name] = variableDefault(v)
  const uid = dash.uid ?? file
  const out: PromQLExpression[] = []
  for (const panel of flattenPanels(dash.panels)) {
    for (const t of panel.targets ?? []) {
      if (!t.expr || !isPrometheus(t.datasource ?? panel.datasource)) continue
      const title = panel.title ?? '(untitled)'
      out.push({
        kind: 'panel',
        file,
        dashboardUid: uid,
        panelTitle: title,
        refId: t.refId,
        where: `dashboard ${uid} / panel "${title}" / refId ${t.refId ?? '?'}`,
        raw: t.expr,
        expr: substituteVariables(t.expr, values),
      })
    }
  }
  for (const a of dash.annotations?.list ?? []) {
    if (!a.expr || a.datasource == null || !isPrometheus(a.datasource)) continue
    out.push({
      kind: 'annotation',
      file,
      dashboardUid: uid,
      where: `dashboard ${uid} / annotation "${a.name ?? '(unnamed)'}"`,
      raw: a.expr,
      expr: substituteVariables(a.expr, values),
    })
  }
  return out
}

interface RuleFile {
  groups?: { name: string; rules?: { record?: string; alert?: string; expr: string | number }[] }[]
}

export function ruleExpressions(path: string): PromQLExpression[] {
  const file = relative(ROOT, path)
  const doc = parse(readFileSync(path, 'utf8')) as RuleFile | null
  const out: PromQLExpression[] = []
  for (const g of doc?.groups ?? []) {
    for (const r of g.rules ?? []) {
      const rule = r.record ?? r.alert ?? '(unnamed)'
      const raw = String(r.expr).trim()
      out.push({
        kind: r.record ? 'record' : 'alert',
        file,
        group: g.name,
        rule,
        where: `${file} / group ${g.name} / ${r.record ? 'record' : 'alert'} ${rule}`,
        raw,
        expr: raw,
      })
    }
  }
  return out
}

const filesIn = (dir: string, ext: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => join(dir, f))

export const dashboardFiles = (root = ROOT): string[] => filesIn(join(root, 'grafana/dashboards'), '.json')
export const ruleFiles = (root = ROOT): string[] => filesIn(join(root, 'prometheus/rules'), '.yml')

/** Every expression in every dashboard and rule file of the repository at `root`. */
export function allExpressions(root = ROOT): PromQLExpression[] {
  return [...dashboardFiles(root).flatMap(dashboardExpressions), ...ruleFiles(root).flatMap(ruleExpressions)]
}

/** Metric names with the given prefix that an expression reads (recording-rule names like `job:x:rate5m` excluded). */
export function metricNames(expr: string, prefix: string): string[] {
  const re = new RegExp(`(?<![\\w:])${prefix}[a-zA-Z0-9_]*(?![\\w:])`, 'g')
  return [...new Set(expr.match(re) ?? [])]
}

/** Recording-rule names (level:metric:operations) an expression reads. */
export function recordedNames(expr: string): string[] {
  return [...new Set(expr.match(/(?<![\w:"])[a-zA-Z_]\w*:[\w:]*\w(?![\w:"])/g) ?? [])]
}
