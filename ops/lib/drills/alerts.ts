// The alerts drill: the faults of the other drills that have an alert in prometheus/rules/alerts.yml, at once,
// and the alerts checked in the stack's Prometheus. The full form waits for real firing (each rule's `for`) and
// for resolution; the short form evaluates each alert's expression (without `for`) during the fault and after.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parse } from 'yaml'
import { queryVector, type Sample } from '../stack/prometheus.ts'
import { ROOT, type Drill, type DrillRun } from './runner.ts'

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

/** The alerts this drill raises, and which series of each count (InstanceDown: only the killed replica). */
const EXPECTED: { alert: string; fault: string; match: (s: Sample) => boolean; resolvesInShort: boolean }[] = [
  { alert: 'InstanceDown', fault: 'api-2 SIGKILLed', match: (s) => s.metric.replica === 'api-2', resolvesInShort: true },
  { alert: 'WorkersAbsent', fault: 'workers scaled to 0', match: () => true, resolvesInShort: true },
  { alert: 'RedisDown', fault: 'Redis stopped', match: () => true, resolvesInShort: true },
  { alert: 'ClicksSpooled', fault: 'Redis stopped under load', match: () => true, resolvesInShort: true },
  { alert: 'PostgresDown', fault: 'Postgres stopped', match: () => true, resolvesInShort: true },
]

export const alertDrill: Drill = {
  name: 'alerts',
  title:
    'The faults that have an alert (instance down, workers absent, Redis down, clicks spooled, Postgres down) at once: each alert goes pending/firing, then resolves.',
  criteria: EXPECTED.map((e) => `${e.alert} fires for "${e.fault}" and resolves after`),
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
    const prom = d.platform.prometheusUrl
    for (const e of EXPECTED) if (!rules.has(e.alert)) throw new Error(`prometheus/rules/alerts.yml has no alert ${e.alert}`)
    if (d.short)
      d.notes.push(
        "Short form: each alert's expression is evaluated in Prometheus without its `for` (minutes), during the fault and after recovery. ClicksDropped looks back 5 minutes (increase[5m]), so its resolution is only awaited in the full form.",
      )
    else
      d.notes.push(
        'Full form: waits for ALERTS{alertstate="firing"} of each alert (its `for` plus rule evaluation), then for the alert to leave ALERTS after the restore.',
      )

    const active = async (alert: string): Promise<{ on: boolean; state: string }> => {
      const e = EXPECTED.find((x) => x.alert === alert)!
      if (d.short) {
        const v = await queryVector(prom, rules.get(alert)!.expr)
        return { on: v.some(e.match), state: v.some(e.match) ? 'expr true' : 'expr false' }
      }
      const v = await queryVector(prom, `ALERTS{alertname="${alert}"}`)
      const mine = v.filter(e.match)
      const firing = mine.some((s) => s.metric.alertstate === 'firing')
      return { on: firing, state: firing ? 'firing' : mine.length ? 'pending' : 'inactive' }
    }

    await d.startLoad()
    d.phase('baseline')
    await d.watch(d.timing.baselineSec)
    // An alert already active before the fault proves nothing about this fault: say which were.
    const before: Record<string, string> = {}
    for (const e of EXPECTED) before[e.alert] = (await active(e.alert)).state
    const spooled0 = await d.metric('api', 'opsdrill_clicks_spooled_total')
    d.phase('fault')
    d.faultStart('workers 0, api-2 SIGKILL, Redis and Postgres stopped')
    await d.platform.scale({ worker: 0 })
    await d.platform.kill('api-2', 'SIGKILL')
    await d.platform.stopStore('redis')
    await d.platform.stopStore('postgres')
    const firedAfter: Record<string, number | undefined> = {}
    const seenPending = new Set<string>()
    const t0 = Date.now()
    const limit = (alert: string) => (d.short ? 60 : forSeconds(rules.get(alert)!.for) + 90)
    const pendingAlerts = new Set(EXPECTED.map((e) => e.alert))
    while (pendingAlerts.size > 0 && Date.now() - t0 < Math.max(...EXPECTED.map((e) => limit(e.alert))) * 1000) {
      for (const a of [...pendingAlerts]) {
        const s = await active(a)
        if (s.state === 'pending') seenPending.add(a)
        if (s.on) {
          firedAfter[a] = (Date.now() - t0) / 1000
          pendingAlerts.delete(a)
          d.log(`${a}: ${s.state} after ${firedAfter[a]!.toFixed(0)} s`)
        } else if (Date.now() - t0 > limit(a) * 1000) pendingAlerts.delete(a)
      }
      await d.progress(async () => `waiting for ${[...pendingAlerts].join(', ') || 'nothing'}`)
      await sleep(2000)
    }
    const spooledInFault = (await d.metric('api', 'opsdrill_clicks_spooled_total')) - spooled0
    d.phase('restore')
    await d.platform.startStore('postgres')
    await d.platform.startStore('redis')
    await d.platform.restart('api-2')
    await d.platform.scale({ worker: 1 })
    d.faultEnd()
    d.phase('recovery')
    const resolvedAfter: Record<string, number | undefined> = {}
    const t1 = Date.now()
    const waitResolve = EXPECTED.filter((e) => firedAfter[e.alert] !== undefined && (!d.short || e.resolvesInShort))
    const open = new Set(waitResolve.map((e) => e.alert))
    const rlimit = d.short ? 60 : 180
    while (open.size > 0 && Date.now() - t1 < rlimit * 1000) {
      for (const a of [...open]) {
        if (
          !(await active(a)).on &&
          (await queryVector(prom, d.short ? rules.get(a)!.expr : `ALERTS{alertname="${a}"}`)).filter(
            EXPECTED.find((x) => x.alert === a)!.match,
          ).length === 0
        ) {
          resolvedAfter[a] = (Date.now() - t1) / 1000
          open.delete(a)
          d.log(`${a}: resolved after ${resolvedAfter[a]!.toFixed(0)} s`)
        } else if (Date.now() - t1 > rlimit * 1000) open.delete(a)
      }
      await d.progress(async () => `waiting for ${[...open].join(', ') || 'nothing'} to resolve`)
      await sleep(2000)
    }
    await d.stopLoad()
    d.measured.alerts = Object.fromEntries(
      EXPECTED.map((e) => [
        e.alert,
        {
          for: rules.get(e.alert)!.for ?? '0s',
          beforeFault: before[e.alert],
          firedAfterSec: firedAfter[e.alert],
          sawPending: seenPending.has(e.alert),
          resolvedAfterSec: resolvedAfter[e.alert],
        },
      ]),
    )
    d.measured.clicksSpooledDuringFault = spooledInFault
    for (const e of EXPECTED) {
      const was = before[e.alert]!
      const quiet = was === 'expr false' || was === 'inactive'
      d.check(`${e.alert} inactive before the fault`, quiet, was)
    }
    for (const e of EXPECTED) {
      const f = firedAfter[e.alert]
      const within = d.short ? 60 : forSeconds(rules.get(e.alert)!.for) + 90
      d.check(
        `${e.alert} ${d.short ? 'expression true' : 'firing'} during "${e.fault}"`,
        f !== undefined,
        f === undefined ? `not within ${within} s` : `after ${f.toFixed(0)} s (for: ${rules.get(e.alert)!.for ?? '0s'})`,
      )
      if (d.short && !e.resolvesInShort) continue
      const r = resolvedAfter[e.alert]
      d.check(`${e.alert} resolves after the restore`, r !== undefined, r === undefined ? 'still active' : `after ${r.toFixed(0)} s`)
    }
  },
}
