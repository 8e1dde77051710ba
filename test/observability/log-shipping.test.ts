// The log path with its real parts, small: the API (every request sampled) writes its ECS lines to a file, the
// shipper (the otelcol-opsdrill binary with otelcol/config.yaml, as the native stack runs it) tails that file into a
// real VictoriaLogs through its Elasticsearch bulk API, and a search by trace.id finds the request's line within 10 s
// with its fields as written. A line written while VictoriaLogs is stopped arrives once it runs again.
// test/system/logs.test.ts proves the same on the whole native stack, the compose suite under Docker.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startTracing } from '../helpers/tracing.ts'
import { logsQuery, type LogRow } from '../../ops/lib/logsql.ts'
import { freePort } from '../../ops/lib/net.ts'
import { tool } from '../../ops/lib/tools.ts'

startTracing(t, { OTEL_TRACES_SAMPLER: 'always_on' })
const { testApp } = await import('../helpers/app.ts')

const ROOT = resolve(import.meta.dirname, '../..')
const dir = mkdtempSync(join(tmpdir(), 'opsdrill-log-shipping-'))
const logFile = join(dir, 'logs/api-1.log')
mkdirSync(join(dir, 'logs'))
const storePort = await freePort()
const healthPort = await freePort()
const store = `http://127.0.0.1:${storePort}`
const children: ChildProcess[] = []
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

function start(argv: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: 'ignore' })
  children.push(child)
  return child
}

async function healthy(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await fetch(url).catch(() => undefined))?.ok) return
    await sleep(100)
  }
  throw new Error(`${url} did not answer within 10 s`)
}

const startStore = () => start([tool('victoria-logs'), `-httpListenAddr=127.0.0.1:${storePort}`, `-storageDataPath=${join(dir, 'vl')}`])

async function storedLine(traceId: string, seconds: number): Promise<{ row?: LogRow; ms: number }> {
  const t0 = Date.now()
  while (Date.now() - t0 < seconds * 1000) {
    const [row] = await logsQuery(store, `trace.id:${traceId}`).catch(() => [])
    if (row) return { row, ms: Date.now() - t0 }
    await sleep(200)
  }
  return { ms: Date.now() - t0 }
}

let vl = startStore()
await healthy(`${store}/health`)
start([tool('otelcol-opsdrill'), `--config=${join(ROOT, 'otelcol/config.yaml')}`], {
  ...process.env,
  OTELCOL_LOG_FILES: join(dir, 'logs/*.log'),
  OTELCOL_START_AT: 'beginning',
  LOGS_ES_ENDPOINT: `${store}/insert/elasticsearch`,
  OTELCOL_STORAGE_DIR: join(dir, 'otelcol'),
  OTELCOL_HEALTH_ENDPOINT: `127.0.0.1:${healthPort}`,
})
await healthy(`http://127.0.0.1:${healthPort}/`)
const { app } = await testApp(t, {}, undefined, logFile)

/** A request under a trace id of the test's own, as nginx forwards it (its request id, the caller's traceparent). */
async function tracedRequest(): Promise<{ traceId: string; requestId: string }> {
  const traceId = randomBytes(16).toString('hex')
  const requestId = randomBytes(8).toString('hex')
  const res = await app.inject({
    method: 'GET',
    url: `/nosuch${randomBytes(3).toString('hex')}`,
    headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`, 'x-request-id': requestId },
  })
  if (res.statusCode !== 404) throw new Error(`an unknown code answered ${res.statusCode}: ${res.body}`)
  return { traceId, requestId }
}

function writtenLine(traceId: string): Record<string, unknown> & { '@timestamp': string; message: string; span: { id: string } } {
  const line = readFileSync(logFile, 'utf8')
    .split('\n')
    .find((l) => l.includes(`"id":"${traceId}"`))
  if (!line) throw new Error(`the API wrote no line with trace.id ${traceId}`)
  return JSON.parse(line) as ReturnType<typeof writtenLine>
}

void t.test('when a traced request is served, then its log line is found by trace.id within 10 s, fields as written', async (t) => {
  const { traceId, requestId } = await tracedRequest()
  const { row, ms } = await storedLine(traceId, 10)
  t.ok(row, `the line of trace ${traceId} is in the store after ${ms} ms`)
  if (!row) return
  const line = writtenLine(traceId)
  t.equal(Date.parse(row._time!), Date.parse(line['@timestamp']), `@timestamp, kept as _time (${row._time})`)
  t.equal(row['log.level'], 'info', 'log.level')
  t.equal(row['service.name'], 'opsdrill-api', 'service.name')
  t.equal(row['trace.id'], traceId, 'trace.id')
  t.equal(row['span.id'], line.span.id, 'span.id')
  t.match(row['span.id'], /^[0-9a-f]{16}$/)
  t.equal(row['http.request.id'], requestId, 'the request id')
  t.equal(row._msg, line.message, 'the message')
})

void t.test('when the store is stopped while a line is written, then the line arrives after it runs again', async (t) => {
  const exited = new Promise((done) => vl.once('exit', done))
  vl.kill('SIGTERM')
  await exited
  const { traceId } = await tracedRequest()
  t.ok(writtenLine(traceId), 'the API wrote the line while the store was down')
  // The shipper's bulk requests fail meanwhile, and it backs off (1 s, 2 s, ...).
  await sleep(4000)
  vl = startStore()
  await healthy(`${store}/health`)
  const { row, ms } = await storedLine(traceId, 30)
  t.ok(row, `the line written while the store was down arrived ${ms} ms after it was back`)
  t.equal(row?.['trace.id'], traceId)
})
