// What several drill files share: the baseline / fault / restore / recovery sequence under a steady load, waiting for
// a signalled replica to be gone, and reading a graceful exit from a replica's log.
import type { DrillRun, Timing } from './runner.ts'
import type { Window } from './report.ts'

/**
 * Baseline, fault, restore, recovery under the steady load; returns the fault window, which ends when the fault is
 * removed (the timeline's mitigate). `recover` runs right after, inside the recovery phase.
 */
export async function steadyFault(
  d: DrillRun,
  label: string,
  inject: () => Promise<void>,
  restore: () => Promise<void>,
  opts: { during?: () => Promise<string>; recover?: () => Promise<void> } = {},
): Promise<Window> {
  await d.startLoad()
  d.phase('baseline')
  await d.watch(d.timing.baselineSec)
  d.phase('fault')
  d.faultStart(label)
  await inject()
  await d.watch(d.timing.faultSec, opts.during)
  await restore()
  const w = d.faultEnd()
  d.phase('recovery')
  await opts.recover?.()
  await d.watch(d.timing.recoverSec)
  await d.stopLoad()
  return w
}

/** Waits for a killed or signalled replica's process to be gone; returns ms, or undefined past the limit. */
export async function exitWithin(d: DrillRun, replica: string, limitMs: number): Promise<number | undefined> {
  const took = await d.until(() => d.platform.gone(replica), limitMs / 1000 + 1)
  return took === undefined ? undefined : took * 1000
}

/** close-with-grace exits 0 after its handler resolves and 1 on timeout or error; its log says which. */
export function cleanExit(log: string, done: RegExp): { pass: boolean; detail: string } {
  if (/killed by timeout/.test(log)) return { pass: false, detail: 'close-with-grace: killed by timeout (exit 1)' }
  if (/shutting down after an uncaught error|second SIG/.test(log)) return { pass: false, detail: 'shut down after an error (exit 1)' }
  if (!done.test(log)) return { pass: false, detail: `no "${done.source}" line in its log` }
  return { pass: true, detail: `logged "${done.source}" and no timeout/error: close-with-grace exit 0` }
}

/** Creates a link through nginx; true on 201 (the Postgres-backed path works end to end). */
export async function createsLink(d: DrillRun): Promise<boolean> {
  const res = await fetch(`${d.platform.baseUrl}/api/v1/links`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${d.data.token}` },
    body: JSON.stringify({ url: 'https://example.com/drill/recovered' }),
    signal: AbortSignal.timeout(10_000),
  }).catch(() => undefined)
  await res?.arrayBuffer()
  return res?.status === 201
}

export const pct = (x: number) => `${(x * 100).toFixed(3)}%`

/** Offered load (req/s) and the seconds of baseline, fault and recovery. */
export const timing = (rate: number, baselineSec: number, faultSec: number, recoverSec: number): Timing => ({
  rate,
  baselineSec,
  faultSec,
  recoverSec,
})
