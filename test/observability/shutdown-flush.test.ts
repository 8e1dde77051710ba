// Spans still waiting in the SDK's batch processor when a process is told to stop are exported before it exits: each
// process runs as in production (`node --import ./common/telemetry/instrumentation.ts`), exporting OTLP/HTTP to a
// collector this test runs, and gets SIGTERM right after its work, well inside the processor's 5 s batch delay.
import t from 'tap'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { testDatabase } from '../helpers/env.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { eventually, spawnApi } from '../helpers/service.ts'
import { clickJob, count, pgPool, producer, spawnWorker } from '../helpers/worker.ts'
import { workerConfig } from '../helpers/env.ts'

const INSTRUMENTATION = ['--import', './common/telemetry/instrumentation.ts']

interface ReceivedSpan {
  service: string
  name: string
  traceId: string
}

/** An OTLP/HTTP (JSON) trace receiver: what a collector would get. */
async function collector(t: { teardown(fn: () => unknown): void }): Promise<{ url: string; spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = []
  const server: Server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      type Attr = { key: string; value: { stringValue?: string } }
      const doc = JSON.parse(body) as {
        resourceSpans: { resource: { attributes: Attr[] }; scopeSpans: { spans: { name: string; traceId: string }[] }[] }[]
      }
      for (const rs of doc.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? ''
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ service, name: s.name, traceId: s.traceId })
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((done) => server.close(done)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans }
}

const otlpEnv = (url: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })

void t.test('when the API gets SIGTERM right after a sampled request, then the request span reaches the collector', async (t) => {
  const sink = await collector(t)
  const api = await spawnApi(t, { ...otlpEnv(sink.url), SHUTDOWN_READINESS_DELAY_MS: '0' }, { instrumented: true })
  const traceId = randomBytes(16).toString('hex')
  const res = await fetch(`${api.base}/api/v1/links`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } })
  t.equal(res.status, 401)
  api.child.kill('SIGTERM')
  const [code] = await api.exited
  t.equal(code, 0, `a clean exit: ${api.out.slice(-300)}`)
  const got = sink.spans.filter((s) => s.traceId === traceId)
  t.ok(
    got.some((s) => s.service === 'opsdrill-api' && s.name === 'GET /api/v1/links'),
    `the request's server span arrived (spans of its trace: ${JSON.stringify(got)}; ${sink.spans.length} spans in all)`,
  )
})

void t.test('when the worker gets SIGTERM right after a job, then the job spans reach the collector', async (t) => {
  const sink = await collector(t)
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const link = await createLink(pool, (await createUser(pool)).id)
  const config = workerConfig(url)
  const worker = spawnWorker(t, config, { ...otlpEnv(sink.url), LOG_LEVEL: 'info', OTEL_TRACES_SAMPLER: 'always_on' }, INSTRUMENTATION)
  t.ok(await eventually(async () => worker.output().includes('worker started'), 20_000, 100), `the worker started: ${worker.output()}`)

  const p = producer(t, config)
  const clicks = [clickJob(link.id)]
  await p.clicks.add('clicks', { clicks }, { jobId: `b-${clicks[0]!.clickId}` })
  t.ok(await eventually(async () => (await count(pool, 'SELECT count(*) AS n FROM clicks')) === 1, 15_000, 20), 'the click is stored')
  worker.child.kill('SIGTERM')
  const { code } = await worker.exit
  t.equal(code, 0, `a clean exit: ${worker.output().slice(-300)}`)
  const names = sink.spans.filter((s) => s.service === 'opsdrill-worker').map((s) => s.name)
  t.ok(
    names.some((n) => /process/i.test(n) && /clicks/.test(n)),
    `the job's processing span arrived (worker spans: ${JSON.stringify([...new Set(names)])})`,
  )
})

void t.test('when the checkout path itself contains "worker", then the API is still named opsdrill-api', async (t) => {
  const { defaultServiceName } = await import('../../common/telemetry/sdk.ts')
  t.equal(defaultServiceName('/home/worker/opsdrill/service/server.ts'), 'opsdrill-api')
  t.equal(defaultServiceName('/home/api/opsdrill/worker/main.ts'), 'opsdrill-worker')
})
