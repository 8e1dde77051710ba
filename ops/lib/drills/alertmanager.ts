// Alertmanager's API as the drills read it: the alerts an operator would see, with Prometheus's firing time.
export interface AmAlert {
  alert: string
  labels: Record<string, string>
  /** Unix ms: when Prometheus saw the alert fire (after its `for`). */
  startsAt: number
  state: string
}

/** Alerts Alertmanager holds now: active, inhibited and silenced alike (an inhibited alert still fired). Throws when it does not answer. */
export async function alertmanagerAlerts(base: string): Promise<AmAlert[]> {
  const res = await fetch(`${base}/api/v2/alerts?active=true&inhibited=true&silenced=true&unprocessed=true`, {
    signal: AbortSignal.timeout(5000),
  })
  if (!res.ok) throw new Error(`Alertmanager ${base} answered ${res.status}`)
  const body = (await res.json()) as { labels: Record<string, string>; startsAt: string; status: { state: string } }[]
  return body.map((a) => ({ alert: a.labels.alertname ?? '', labels: a.labels, startsAt: Date.parse(a.startsAt), state: a.status.state }))
}
