// A drill's metric read: summed over the replicas' real /metrics pages, and a replica that does not answer makes the
// read throw instead of counting as 0 (which read as "no stalled jobs" while stress-ng starved the worker).
import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { apiSigterm } from '../../../ops/lib/drills/api-sigterm.ts'
import type { Platform, Replica } from '../../../ops/lib/drills/platform.ts'
import { DrillRun } from '../../../ops/lib/drills/runner.ts'
import { freePort } from '../../../ops/lib/net.ts'

async function metricsServer(t: Test, page: string): Promise<number> {
  const server = createServer((_, res) => res.end(page))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return (server.address() as AddressInfo).port
}

/** The drill runner over replicas that exist only as /metrics ports: what metric() reads, nothing else. */
function runOver(t: Test, workers: Replica[]): DrillRun {
  const platform = { target: 'native', replicas: (kind: string) => (kind === 'worker' ? workers : []) } as unknown as Platform
  return new DrillRun(apiSigterm, { short: true, platform, outDir: t.testdir() })
}

void t.test('when every replica answers, then the metric is summed over their pages', async (t) => {
  const a = await metricsServer(t, 'opsdrill_jobs_stalled_total{queue="clicks"} 2\n')
  const b = await metricsServer(t, 'opsdrill_jobs_stalled_total{queue="clicks"} 3\n')
  const d = runOver(t, [
    { name: 'worker-1', metricsPort: a },
    { name: 'worker-2', metricsPort: b },
  ])
  t.equal(await d.metric('worker', 'opsdrill_jobs_stalled_total'), 5)
  t.same(await d.perReplica('worker', 'opsdrill_jobs_stalled_total'), { 'worker-1': 2, 'worker-2': 3 })
})

void t.test('when a replica does not answer its scrape, then the read fails instead of counting 0', async (t) => {
  const a = await metricsServer(t, 'opsdrill_jobs_stalled_total{queue="clicks"} 0\n')
  const dead = await freePort()
  const d = runOver(t, [
    { name: 'worker-1', metricsPort: a },
    { name: 'worker-2', metricsPort: dead },
  ])
  await t.rejects(d.metric('worker', 'opsdrill_jobs_stalled_total'), new RegExp(`scrape of 127.0.0.1:${dead}/metrics failed`))
  await t.rejects(d.metric('worker', 'opsdrill_jobs_stalled_total', {}, ['worker-1', 'worker-2']))
  t.equal(await d.metric('worker', 'opsdrill_jobs_stalled_total', {}, ['worker-1']), 0, 'naming only the live replica reads it')
})

void t.test('when a replica has no /metrics port on the target, then the read fails', async (t) => {
  const d = runOver(t, [{ name: 'worker-1' }])
  await t.rejects(d.metric('worker', 'opsdrill_jobs_stalled_total'), /no \/metrics port/)
})
