// The log path of the native stack, on offset ports (1100): the API writes an ECS line for a traced request to its log
// file, the shipper (otelcol/config.yaml) sends it through VictoriaLogs' Elasticsearch bulk API, and a search by
// trace.id finds it within 10 s with its ECS fields as written. With the store stopped, a line written meanwhile
// arrives once it is back: the shipper retries, nothing is lost.
import t from 'tap'
import { tracedRequest } from '../helpers/traced.ts'
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ROOT, stackAt } from '../../ops/lib/stack/index.ts'
import { alive } from '../../ops/lib/stack/procs.ts'
import { logsQuery, type LogRow } from '../../ops/lib/logsql.ts'

t.setTimeout(5 * 60_000)
const stack = stackAt({ offset: 1100, log: (line) => t.comment(line) })
/** The figures README and otelcol/README quote (the runner shows no messages of a passing file). */
const figures: Record<string, string> = {}
t.teardown(async () => {
  await stack.down()
  mkdirSync(join(ROOT, '.run'), { recursive: true })
  writeFileSync(join(ROOT, '.run/logs-suite-figures.json'), `${JSON.stringify(figures, null, 2)}\n`)
})

/**
 * The ECS line an API replica wrote to its log file for this trace (what the store must hold); nginx picks the
 * replica. Polled for up to 5 s: pino writes through a buffered stream, so the line can reach the file a moment after
 * the response (it was not there yet once in .ci/run).
 */
async function writtenLine(traceId: string): Promise<Record<string, unknown>> {
  const files = stack.replicas('api').map((r) => r.logFile)
  for (let i = 0; i < 50; i++) {
    const line = files.flatMap((file) => readFileSync(file, 'utf8').split('\n')).find((l) => l.includes(`"id":"${traceId}"`))
    if (line) return JSON.parse(line) as Record<string, unknown>
    await sleep(100)
  }
  throw new Error(`no line with trace.id ${traceId} in ${files.join(', ')} within 5 s`)
}

/** Polls the store for the API's line of this trace; undefined when it is not there within `seconds`. */
async function storedLine(traceId: string, seconds: number): Promise<{ row: LogRow | undefined; ms: number }> {
  const t0 = Date.now()
  while (Date.now() - t0 < seconds * 1000) {
    const rows = await logsQuery(stack.logsUrl, `trace.id:${traceId}`).catch(() => [])
    const row = rows.find((r) => r['service.name'] === 'opsdrill-api')
    if (row) return { row, ms: Date.now() - t0 }
    await sleep(250)
  }
  return { row: undefined, ms: Date.now() - t0 }
}

void t.test('when the stack comes up, then VictoriaLogs and the shipper are healthy and the UI answers', async (t) => {
  t.setTimeout(180_000)
  await stack.down()
  await stack.up({ api: 1, worker: 0 })
  const parts = await stack.status()
  for (const name of ['victoria-logs', 'otelcol']) t.ok(parts.find((p) => p.name === name)?.healthy, `${name} is healthy`)
  const ui = await fetch(stack.logsUiUrl)
  t.equal(ui.status, 200, `the log UI answers at ${stack.logsUiUrl}`)
  t.match(await ui.text(), /<html/i)
})

void t.test('when a traced request is served, then its log line is found by trace.id within 10 s with its ECS fields', async (t) => {
  const { traceId, requestId } = await tracedRequest(stack.baseUrl)
  const { row, ms } = await storedLine(traceId, 10)
  figures['request line in the store'] = `${ms} ms`
  t.ok(row, `the API's line of trace ${traceId} is in the store (${ms} ms)`)
  if (!row) return
  const line = (await writtenLine(traceId)) as {
    '@timestamp': string
    'log.level': string
    'service.name': string
    message: string
    trace: { id: string }
    span: { id: string }
    http: { request: { id: string } }
  }
  t.equal(Date.parse(row._time!), Date.parse(line['@timestamp']), `@timestamp, kept by the store as _time (${row._time})`)
  t.equal(row['log.level'], line['log.level'], 'log.level')
  t.equal(row['service.name'], 'opsdrill-api', 'service.name')
  t.equal(row['trace.id'], traceId, 'trace.id')
  t.match(row['span.id'], /^[0-9a-f]{16}$/, 'span.id')
  t.equal(row['span.id'], line.span.id, 'span.id as written')
  t.equal(row['http.request.id'], requestId, "the request id (nginx's X-Request-Id)")
  t.equal(row._msg, line.message, 'the message')
  // nginx writes its access line as the response leaves; the shipper may send it a poll (500 ms) after the API's.
  let nginx = 0
  for (let i = 0; i < 40 && nginx === 0; i++) {
    nginx = (await logsQuery(stack.logsUrl, `trace.id:${traceId} service.name:nginx`)).length
    if (nginx === 0) await sleep(250)
  }
  t.equal(nginx, 1, "nginx's access line of the same request is found by the same trace.id")
})

void t.test('when an operator runs status and search, then they print the UI URL and the lines of a trace', async (t) => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['ops/stack.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, OPSDRILL_STACK_PORT_OFFSET: String(stack.offset) },
      encoding: 'utf8',
    })
  const status = cli(['status'])
  t.equal(status.status, 0, status.stderr)
  t.match(status.stdout, `log search (VictoriaLogs): ${stack.logsUiUrl}`, 'status prints the UI URL')
  const { traceId } = await tracedRequest(stack.baseUrl)
  t.ok((await storedLine(traceId, 10)).row, 'the line is in the store')
  const found = cli(['search', `trace.id:${traceId}`])
  t.equal(found.status, 0, found.stderr)
  const rows = found.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LogRow)
  t.same([...new Set(rows.map((r) => r['service.name']))].sort(), ['nginx', 'opsdrill-api'], "the API's and nginx's lines of the trace")
  t.match(found.stderr, `${stack.logsUiUrl}#/?query=trace.id`, 'and the link to the query in the UI')
  const none = cli(['search', `trace.id:${'0'.repeat(32)}`])
  t.equal(none.status, 1, 'no match exits 1, as grep does')
  const bad = cli(['search'])
  t.equal(bad.status, 1)
  t.match(bad.stderr, /^stack: search needs a LogsQL query, e\.g\./, 'no query: one line saying what to give')
})

void t.test('when the store is down while a line is written, then the line arrives after the store is back', async (t) => {
  t.setTimeout(120_000)
  const store = stack.processes().find((p) => p.name === 'victoria-logs')!
  await stack.kill('victoria-logs', 'SIGTERM')
  // Back up even when a check below fails, so the next test finds the store running.
  t.teardown(() => stack.up())
  for (let i = 0; i < 100 && alive(store.pid); i++) await sleep(100)
  t.notOk(alive(store.pid), 'VictoriaLogs is stopped')
  const { traceId } = await tracedRequest(stack.baseUrl)
  t.ok(await writtenLine(traceId), 'the API wrote the line while the store was down')
  // Long enough for the shipper to fail its bulk request and retry at least twice (1 s, then 2 s backoff).
  await sleep(5000)
  await stack.up()
  const { row, ms } = await storedLine(traceId, 30)
  figures['line written while the store was down, after it came back'] = `${ms} ms`
  t.ok(row, `the line written while the store was down arrived ${ms} ms after the store came back`)
  t.equal(row?.['trace.id'], traceId)
})

void t.test('when the log path has run, then its parts report their resident memory (for the README budget)', async (t) => {
  for (const part of stack.processes().filter((p) => p.kind === 'victoria-logs' || p.kind === 'otelcol')) {
    const rss = Number(spawnSync('ps', ['-o', 'rss=', '-p', String(part.pid)], { encoding: 'utf8' }).stdout.trim())
    figures[`${part.name} resident`] = `${(rss / 1024).toFixed(0)} MiB`
    t.ok(rss > 0, `${part.name}: ${(rss / 1024).toFixed(0)} MiB resident`)
  }
})
