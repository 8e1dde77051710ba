// The one k6 runner (ops/lib/k6.ts) driving a real k6 against a local HTTP server: its REST API reports live totals,
// a stop through it ends the run, and the outputs every caller reads (summary, JSON points tagged with the testid,
// log) are where the run says they are.
import t from 'tap'
import { createServer } from 'node:http'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { bucketPoints, K6, k6Version, points } from '../../ops/lib/k6.ts'

const SCRIPT = resolve(import.meta.dirname, '../fixtures/k6/steady.ts')

async function server(status: number): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0
  const s = createServer((_req, res) => {
    hits++
    res.writeHead(status).end()
  })
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))
  const { port } = s.address() as { port: number }
  return { url: `http://127.0.0.1:${port}`, hits: () => hits, close: () => new Promise((ok) => s.close(() => ok())) }
}

void t.test('when k6 runs through the runner and is stopped, then its live totals, exit and outputs agree', async (t) => {
  const srv = await server(200)
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-k6-'))
  t.teardown(async () => {
    await srv.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const k6 = await K6.start({ script: SCRIPT, dir, testid: 'runner-test', vars: { BASE_URL: srv.url } })
  t.ok(await k6.until(async () => (await k6.live()).requests >= 20, 30_000), 'the REST API counts requests while k6 runs')
  t.notOk(await k6.done(), 'still running before the stop')
  const exit = await k6.stop()
  // 103 is k6's ScriptStoppedFromRESTAPI: the stop landed, and nothing else went wrong.
  t.equal(exit, 103, `k6 exits 103 after a stop through its REST API (${k6.logFile})`)
  t.ok(await k6.done(), 'done once stopped')
  t.ok(existsSync(k6.summaryFile), 'summary written')
  const summary = JSON.parse(readFileSync(k6.summaryFile, 'utf8')) as { metrics: Record<string, { count?: number }> }
  const tagged: string[] = []
  for await (const p of points(k6.pointsFile)) if (p.metric === 'http_reqs') tagged.push(p.data.tags?.testid ?? '')
  t.ok(tagged.length >= 20 && tagged.every((id) => id === 'runner-test'), `every request point carries testid (${tagged.length})`)
  t.equal(summary.metrics.http_reqs?.count, tagged.length, 'summary and points count the same requests')
  // A stop can land while a request is in flight: the server saw it, k6 dropped its sample. At most one per VU
  // (the fixture's preAllocatedVUs: 4); a point the server never saw, or more missing than VUs, fails.
  const unrecorded = srv.hits() - tagged.length
  t.ok(
    unrecorded >= 0 && unrecorded <= 4,
    `the server saw each request the points record, and at most 4 more cut by the stop (${srv.hits()} seen, ${tagged.length} recorded)`,
  )
  const series = await bucketPoints(k6.pointsFile)
  t.equal(
    series.reduce((a, b) => a + b.reqs, 0),
    tagged.length,
    'the per-second buckets hold every request',
  )
})

void t.test('when the server fails every request, then the runner counts them failed', async (t) => {
  const srv = await server(500)
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-k6-'))
  t.teardown(async () => {
    await srv.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const k6 = await K6.start({ script: SCRIPT, dir, testid: 'runner-test-500', vars: { BASE_URL: srv.url } })
  t.ok(await k6.until(async () => (await k6.live()).failed >= 10, 30_000), 'failed requests counted live')
  await k6.stop()
  const series = await bucketPoints(k6.pointsFile)
  const [reqs, failed] = series.reduce(([r, f], b) => [r + b.reqs, f + b.failed], [0, 0])
  t.ok(reqs >= 10 && failed === reqs, `every request failed (${failed} of ${reqs})`)
})

void t.test('when k6 ends by itself, then until() gives up instead of waiting forever', async (t) => {
  const srv = await server(200)
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-k6-'))
  t.teardown(async () => {
    await srv.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const k6 = await K6.start({ script: SCRIPT, dir, testid: 'runner-test-end', vars: { BASE_URL: srv.url, DURATION: '1s' } })
  t.equal(await k6.until(async () => false, 60_000), false)
  t.equal(await k6.exited, 0)
})

void t.test('when the k6 version is asked, then it is the pinned one', async (t) => {
  const pinned = /^K6_MODULE="[^@]+@v([\d.]+)"$/m.exec(
    readFileSync(resolve(import.meta.dirname, '../../ops/lib/bootstrap.sh'), 'utf8'),
  )?.[1]
  t.match(k6Version(), new RegExp(`v${pinned!.replaceAll('.', '\\.')}\\b`))
})
