// The alerts drill: the faults of the other drills that have an alert in prometheus/rules/alerts.yml, at once, and
// each alert read where an operator meets it: Alertmanager's API (/api/v2/alerts). An alert counts once Alertmanager
// shows it, with Prometheus's firing time as startsAt, so each rule's `for` is part of what is measured; both forms
// wait for it (short: about 3 minutes, WorkersAbsent's `for` is 2m). Also the source of every drill's time to detect.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parse } from 'yaml'
import { alertmanagerAlerts } from './alertmanager.ts'
import { queryVector } from '../stack/prometheus.ts'
import type { Criterion } from './criteria.ts'
import { defineDrill, ROOT, type DrillRun } from './runner.ts'

interface Rule {
  alert?: string
  expr: string
  for?: string
}

export function alertRules(): Map<string, Rule> {
  const doc = parse(readFileSync(join(ROOT, 'prometheus/rules/alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }
  const out = new Map<string, Rule>()
  for (const g of doc.groups) for (const r of g.rules) if (r.alert && !out.has(r.alert)) out.set(r.alert, r)
  return out
}

export function forSeconds(f: string | undefined): number {
  if (!f) return 0
  const m = f.match(/^(\d+)([smh])$/)
  if (!m) throw new Error(`cannot read for: ${f}`)
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h']
}

/** Grace past a rule's `for`: scrape (15 s for the exporters), rule evaluation (15 s) and the send to Alertmanager. */
const FIRE_GRACE_SEC = 90
/**
 * How much sooner than its `for` an alert may start: one evaluation interval (prometheus/prometheus.yml). Runs here
 * saw WorkersAbsent (for 2m) start 112 and 117 s after the injection, and 143 s in another; the cause of the early
 * ones is not established. An alert with no `for` at all would still start within seconds and fail.
 */
const FOR_SLACK_SEC = 15
const RESOLVE_LIMIT_SEC = 180
/** How long the baseline may wait for the alerts of an earlier disturbance to clear before the fault. */
const STEADY_LIMIT_SEC = 150

/** The alerts this drill raises, and which series of each count (InstanceDown: only the killed replica). */
const EXPECTED: { alert: string; fault: string; match: (labels: Record<string, string>) => boolean }[] = [
  { alert: 'InstanceDown', fault: 'api-2 SIGKILLed', match: (l) => l.replica === 'api-2' },
  { alert: 'WorkersAbsent', fault: 'workers scaled to 0', match: () => true },
  { alert: 'RedisDown', fault: 'Redis stopped', match: () => true },
  { alert: 'ClicksSpooled', fault: 'Redis stopped under load', match: () => true },
  { alert: 'PostgresDown', fault: 'Postgres stopped', match: () => true },
]

interface Seen {
  forSec: number
  /** Pending in Prometheus or held by Alertmanager before the fault (after waiting for a steady state). */
  before: boolean
  /** startsAt - inject, seconds. */
  detectSec?: number
  /** Seconds from the start of the restore until Alertmanager no longer held it. */
  resolvedSec?: number
}

export interface AlertsMeasured {
  alerts: Record<string, Seen>
  /** Clicks api-1 spooled during the fault (Redis stopped under load): what ClicksSpooled reports. */
  spooledInFault: number
}

export const criteria: Criterion<AlertsMeasured>[] = EXPECTED.flatMap((e): Criterion<AlertsMeasured>[] => [
  {
    text: `${e.alert} neither pending in Prometheus nor in Alertmanager before the fault`,
    judge: (m) => ({ pass: !m.alerts[e.alert]!.before, detail: m.alerts[e.alert]!.before ? 'already pending or firing' : 'absent' }),
  },
  {
    text: `${e.alert} fires in Alertmanager for "${e.fault}": startsAt no sooner than its \`for\` (less one ${FOR_SLACK_SEC} s evaluation interval) after the injection, and within \`for\` + ${FIRE_GRACE_SEC} s`,
    judge: (m) => {
      const s = m.alerts[e.alert]!
      const d = s.detectSec
      const spooled = e.alert === 'ClicksSpooled' ? `; ${m.spooledInFault} clicks spooled by api-1 during the fault` : ''
      if (d === undefined) return { pass: false, detail: `not within ${s.forSec + FIRE_GRACE_SEC} s${spooled}` }
      return {
        pass: !s.before && d >= s.forSec - FOR_SLACK_SEC && d <= s.forSec + FIRE_GRACE_SEC,
        detail: `startsAt ${d.toFixed(0)} s after the injection (for: ${s.forSec} s)${spooled}`,
      }
    },
  },
  {
    text: `${e.alert} leaves Alertmanager within ${RESOLVE_LIMIT_SEC} s of the restore's start`,
    judge: (m) => {
      const r = m.alerts[e.alert]!.resolvedSec
      return { pass: r !== undefined, detail: r === undefined ? 'still held' : `after ${r.toFixed(0)} s` }
    },
  },
])

export const alertDrill = defineDrill<AlertsMeasured>({
  name: 'alerts',
  title:
    'The faults that have an alert (instance down, workers absent, Redis down, clicks spooled, Postgres down) at once: each alert reaches Alertmanager after its `for`, then leaves it after the restore.',
  criteria,
  alerts: EXPECTED.map((e) => e.alert),
  dashboards: ['opsdrill-overview', 'opsdrill-datastores', 'opsdrill-queues'],
  shape: { api: 2, worker: 1 },
  timing: {
    full: { rate: 50, baselineSec: 10, faultSec: 0, recoverSec: 0 },
    short: { rate: 50, baselineSec: 3, faultSec: 0, recoverSec: 0 },
  },
  targets: ['native', 'compose', 'k8s'],
  async run(d: DrillRun) {
    const rules = alertRules()
    for (const e of EXPECTED) if (!rules.has(e.alert)) throw new Error(`prometheus/rules/alerts.yml has no alert ${e.alert}`)
    const am = d.alertmanagerUrl
    const held = async (e: (typeof EXPECTED)[number]) =>
      (await alertmanagerAlerts(am)).find((a) => a.alert === e.alert && e.match(a.labels))
    const alerts: Record<string, Seen> = Object.fromEntries(
      EXPECTED.map((e) => [e.alert, { forSec: forSeconds(rules.get(e.alert)!.for), before: false }]),
    )

    await d.startLoad()
    d.phase('baseline')
    await d.watch(d.timing.baselineSec)
    // Steady state first: an alert already pending in Prometheus (a replica the stack had just restarted, say) would
    // fire sooner than its `for` after the injection and say nothing about this fault.
    const names = EXPECTED.map((e) => e.alert).join('|')
    const settleUntil = Date.now() + STEADY_LIMIT_SEC * 1000
    while ((await queryVector(d.platform.prometheusUrl, `ALERTS{alertname=~"${names}"}`)).length > 0 && Date.now() < settleUntil)
      await sleep(2000)
    for (const e of EXPECTED) {
      const pending = await queryVector(d.platform.prometheusUrl, `ALERTS{alertname="${e.alert}"}`)
      alerts[e.alert]!.before = (await held(e)) !== undefined || pending.some((x) => e.match(x.metric))
    }
    // Only api-1 is read: api-2 is killed during the fault, and a replica that does not answer has no count.
    const spooled0 = await d.metric('api', 'opsdrill_clicks_spooled_total', {}, ['api-1'])
    d.phase('fault')
    const inject = d.faultStart('workers 0, api-2 SIGKILL, Redis and Postgres stopped')
    await d.platform.scale({ worker: 0 })
    // Held down: the native stack's supervisor would otherwise restart it before InstanceDown's `for` ran out.
    await d.platform.kill('api-2', 'SIGKILL', { stayDown: true })
    await d.platform.stopStore('redis')
    await d.platform.stopStore('postgres')
    const waiting = new Set(EXPECTED.map((e) => e.alert))
    const limit = Math.max(...EXPECTED.map((e) => alerts[e.alert]!.forSec)) + FIRE_GRACE_SEC
    while (waiting.size > 0 && Date.now() - inject < limit * 1000) {
      for (const e of EXPECTED.filter((x) => waiting.has(x.alert))) {
        const a = await held(e)
        if (a && (a.startsAt >= inject || alerts[e.alert]!.before)) {
          alerts[e.alert]!.detectSec = (a.startsAt - inject) / 1000
          waiting.delete(e.alert)
          d.log(`${e.alert}: in Alertmanager (${a.state}), startsAt ${alerts[e.alert]!.detectSec!.toFixed(0)} s after the injection`)
        }
      }
      await d.progress(async () => `waiting for ${[...waiting].join(', ') || 'nothing'} in Alertmanager`)
      await sleep(2000)
    }
    const spooledInFault = (await d.metric('api', 'opsdrill_clicks_spooled_total', {}, ['api-1'])) - spooled0
    d.phase('restore')
    // Resolution is timed from the first restore: an alert can clear while the others are still being restored.
    const restoring = Date.now()
    await d.platform.startStore('postgres')
    await d.platform.startStore('redis')
    await d.platform.restart('api-2')
    await d.platform.scale({ worker: 1 })
    d.faultEnd()
    d.phase('recovery')
    const open = new Set(EXPECTED.filter((e) => alerts[e.alert]!.detectSec !== undefined))
    while (open.size > 0 && Date.now() - restoring < RESOLVE_LIMIT_SEC * 1000) {
      for (const e of [...open]) {
        if ((await held(e)) === undefined) {
          alerts[e.alert]!.resolvedSec = (Date.now() - restoring) / 1000
          open.delete(e)
          d.log(`${e.alert}: left Alertmanager ${alerts[e.alert]!.resolvedSec!.toFixed(0)} s after the restore`)
        }
      }
      await d.progress(async () => `waiting for ${[...open].map((e) => e.alert).join(', ') || 'nothing'} to resolve`)
      await sleep(2000)
    }
    await d.stopLoad()
    return { alerts, spooledInFault }
  },
})
