// The log store queries of ops/lib/logsql.ts against a real VictoriaLogs (the binary ops/stack builds), fed through the
// Elasticsearch bulk API with the headers the shipper sends (otelcol/config.yaml).
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parse } from 'yaml'
import { setTimeout as sleep } from 'node:timers/promises'
import { errorLinesPerService, logsQuery, logsUiLink, timeWindow } from '../../ops/lib/logsql.ts'
import { freePort } from '../../ops/lib/net.ts'
import { tool } from '../../ops/lib/tools.ts'

const dir = mkdtempSync(join(tmpdir(), 'opsdrill-logsql-'))
const port = await freePort()
const base = `http://127.0.0.1:${port}`
const vl = spawn(tool('victoria-logs'), [`-httpListenAddr=127.0.0.1:${port}`, `-storageDataPath=${dir}`], { stdio: 'ignore' })
t.teardown(() => {
  vl.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})
for (let i = 0; i < 100; i++) {
  if ((await fetch(`${base}/health`).catch(() => undefined))?.ok) break
  await sleep(100)
}

async function bulk(lines: object[]): Promise<void> {
  const body = lines.map((l) => `{"create":{}}\n${JSON.stringify(l)}\n`).join('')
  const res = await fetch(`${base}/insert/elasticsearch/_bulk`, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/x-ndjson',
      'VL-Msg-Field': 'message',
      'VL-Time-Field': '@timestamp',
      'VL-Stream-Fields': 'service.name',
    },
  })
  if (res.status !== 200) throw new Error(`bulk request answered ${res.status}: ${await res.text()}`)
}

const at = (ms: number) => new Date(ms).toISOString()
const now = Date.now()
const line = (ms: number, service: string, level: string) => ({
  '@timestamp': at(ms),
  'ecs.version': '8.10.0',
  'log.level': level,
  'service.name': service,
  message: `${level} from ${service}`,
})

void t.test('when error lines fall in and around a window, then only those inside are counted, per service', async (t) => {
  const from = now - 60_000
  const to = now - 30_000
  await bulk([
    line(from + 1000, 'opsdrill-api', 'error'),
    line(from + 2000, 'opsdrill-api', 'error'),
    line(from + 3000, 'opsdrill-api', 'info'),
    line(from + 4000, 'opsdrill-worker', 'error'),
    line(from - 5000, 'opsdrill-api', 'error'),
    line(to + 5000, 'opsdrill-worker', 'error'),
  ])
  let counts: Record<string, number> = {}
  for (let i = 0; i < 40 && Object.keys(counts).length < 2; i++) {
    counts = await errorLinesPerService(base, from, to)
    await sleep(250)
  }
  t.same(counts, { 'opsdrill-api': 2, 'opsdrill-worker': 1 })
  const rows = await logsQuery(base, `${timeWindow(from, to)} log.level:error`)
  t.equal(rows.length, 3, 'the same window as a query in the link gives the same lines')
  t.equal(rows[0]!._msg, 'error from opsdrill-worker', 'newest first')
})

void t.test('when a query is not LogsQL, then the error names the query and the store says why', async (t) => {
  await t.rejects(logsQuery(base, 'trace.id:('), /LogsQL query "trace\.id:\(" failed: 400/)
})

void t.test('when a link is made, then it opens the UI on that query', async (t) => {
  const link = logsUiLink(`${base}/select/vmui/`, 'trace.id:abc log.level:error')
  t.equal(link, `${base}/select/vmui/#/?query=trace.id%3Aabc+log.level%3Aerror`)
  t.equal((await fetch(`${base}/select/vmui/`)).status, 200)
})

void t.test("when Grafana's trace-to-logs query is filled in, then VictoriaLogs returns that trace's lines only", async (t) => {
  // The query Grafana's Jaeger datasource sends to the logs datasource for a span (grafana/provisioning): `$$` is the
  // file's escape for `$`, and Grafana puts the trace id in ${__trace.traceId}. Grafana itself is not run here.
  const file = resolve(import.meta.dirname, '../../grafana/provisioning/datasources/datasources.yml')
  const ds = (parse(readFileSync(file, 'utf8')) as { datasources: { uid: string; jsonData?: { tracesToLogsV2?: { query?: string } } }[] })
    .datasources
  const template = ds.find((d) => d.uid === 'jaeger')?.jsonData?.tracesToLogsV2?.query ?? ''
  t.match(template, /\$\$\{__trace\.traceId\}/, 'the query carries the trace id placeholder')
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const query = template.replace('$${__trace.traceId}', traceId)
  const ms = Date.now() - 10_000
  await bulk([
    { ...line(ms, 'opsdrill-api', 'info'), 'trace.id': traceId, message: 'request completed' },
    { ...line(ms + 1, 'opsdrill-worker', 'error'), 'trace.id': traceId, message: 'job failed' },
    { ...line(ms + 2, 'opsdrill-api', 'info'), 'trace.id': '0af7651916cd43dd8448eb211c80319c', message: 'another trace' },
  ])
  let rows: Record<string, string>[] = []
  for (let i = 0; i < 40 && rows.length < 2; i++) {
    rows = await logsQuery(base, `${timeWindow(ms - 1000, ms + 1000)} ${query}`)
    await sleep(250)
  }
  t.same(rows.map((r) => r._msg).sort(), ['job failed', 'request completed'], `${query} finds the trace's two lines`)
})
