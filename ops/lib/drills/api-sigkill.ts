// api-sigkill: one API replica is SIGKILLed (OOM kill, node loss): nginx routes around it, then it rejoins. On the
// native stack the stack's supervisor restarts it, as compose's restart policy and a kubelet would: the drill only
// waits, so "rejoins" measures the supervisor. On compose (`docker kill` is a manual stop) the drill restarts it.
import type { Criterion } from './criteria.ts'
import { steadyFault, timing as t } from './fault.ts'
import { defineDrill } from './runner.ts'

/** nginx marks a refused upstream failed for fail_timeout (5 s) at a time: the failures belong to the first two. */
const FAILURES_WITHIN_MS = 10_000
/** Start-up (3-4 s here), the wait for its port, and nginx trying it again after fail_timeout (5 s). */
const REJOIN_WITHIN_MS = 20_000

export interface Measured {
  killedAt: number
  failures: { at: number }[]
  /** Requests the restarted replica served in 3 s of light load (its own counter); native and compose. */
  rejoinedRequests?: number
  /** native: from the kill until the supervisor's restart was back in nginx's rotation, with no restart by the drill. */
  supervisorRejoinMs?: number
}

export const criteria: Criterion<Measured>[] = [
  {
    text: `every failure within ${FAILURES_WITHIN_MS / 1000} s of the kill`,
    judge: (m) => {
      const late = m.failures.filter((f) => f.at < m.killedAt || f.at > m.killedAt + FAILURES_WITHIN_MS)
      return { pass: late.length === 0, detail: `${m.failures.length} failures, ${late.length} outside [kill, kill + 10 s]` }
    },
  },
  {
    text: `the stack's supervisor restarts it, the drill only waits: back in nginx's rotation within ${REJOIN_WITHIN_MS / 1000} s of the kill`,
    targets: ['native'],
    judge: (m) => ({
      pass: m.supervisorRejoinMs !== undefined && m.supervisorRejoinMs <= REJOIN_WITHIN_MS,
      detail: m.supervisorRejoinMs === undefined ? 'not back' : `back ${(m.supervisorRejoinMs / 1000).toFixed(1)} s after the kill`,
    }),
  },
  {
    text: 'the replica rejoins: its own request counter grows in 3 s of load after its restart',
    targets: ['native', 'compose'],
    judge: (m) => ({
      pass: (m.rejoinedRequests ?? 0) > 0,
      detail: `served ${m.rejoinedRequests ?? 'no'} requests in 3 s after its restart`,
    }),
  },
]

export const apiSigkill = defineDrill<Measured>({
  name: 'api-sigkill',
  title: 'One API replica is SIGKILLed (OOM kill, node loss): nginx routes around it, then it rejoins.',
  criteria,
  budget: {
    redirect: 0.001,
    api: 0.005,
    settleSec: 2,
    why: 'nginx resends a GET cut by the kill on the other replica, never a POST: a few API requests in flight may be lost',
  },
  alerts: ['InstanceDown (for 1m: fires only if the replica stays down)'],
  dashboards: ['opsdrill-overview', 'opsdrill-slo'],
  shape: { api: 2, worker: 1 },
  timing: { full: t(200, 20, 20, 20), short: t(100, 4, 8, 6) },
  async run(d) {
    const victim = 'api-1'
    const supervised = d.platform.target === 'native'
    let killedAt = 0
    let rejoined: Promise<number | undefined> | undefined
    await steadyFault(
      d,
      `SIGKILL ${victim}`,
      async () => {
        killedAt = Date.now()
        await d.platform.kill(victim, 'SIGKILL')
        // Waited for from the kill on, so the time is the supervisor's, not the fault window's.
        if (supervised)
          rejoined = d.platform.rejoin(victim).then(
            () => Date.now() - killedAt,
            (err: Error) => (d.log(`supervisor: ${err.message}`), undefined),
          )
      },
      // The fault is mitigated once the replica is back: by the supervisor (native), by the drill elsewhere.
      async () => {
        if (supervised) await rejoined
        else await d.platform.rejoin(victim)
      },
    )
    const supervisorRejoinMs = await rejoined
    if (supervisorRejoinMs !== undefined) d.measured.supervisorRejoinMs = supervisorRejoinMs
    const failures = d.loadResult!.failures
    // k8s: the replicas' /metrics are not reachable from here.
    if (d.platform.target === 'k8s') return { killedAt, failures }
    await d.startLoad({ rate: Math.min(50, d.timing.rate) })
    const before = (await d.perReplica('api', 'opsdrill_http_request_duration_seconds_count'))[victim] ?? 0
    await d.watch(3)
    const after = (await d.perReplica('api', 'opsdrill_http_request_duration_seconds_count'))[victim] ?? 0
    await d.stopLoad()
    d.measured.rejoinedRequests = after - before
    return { killedAt, failures, rejoinedRequests: after - before, ...(supervisorRejoinMs !== undefined ? { supervisorRejoinMs } : {}) }
  },
})
