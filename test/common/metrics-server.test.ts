// The /metrics server closes promptly while a client keeps a keep-alive connection busy: a Prometheus scrape or a
// readiness probe that asks more often than the idle timeout must not hold the shutdown until SHUTDOWN_GRACE_MS.
import t from 'tap'
import { Agent, request } from 'node:http'
import { startMetricsServer } from '../../common/metrics-server.ts'

function get(port: number, agent: Agent, path: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }))
    })
    req.on('error', reject)
    req.end()
  })
}

void t.test('when a keep-alive client polls /metrics every 50 ms, then close() resolves within 1 s', async (t) => {
  const srv = await startMetricsServer('127.0.0.1', 0)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  let polling = true
  let answered = 0
  const poller = (async () => {
    while (polling) {
      const r = await get(srv.port, agent, '/metrics').catch(() => undefined)
      if (r) answered++
      await new Promise((ok) => setTimeout(ok, 50))
    }
  })()
  // close() lands while a request is in the server, as a scrape in progress does at SIGTERM.
  let requests = 0
  const closed = new Promise<number>((resolve) =>
    srv.server.on('request', () => {
      if (++requests !== 3) return
      const start = performance.now()
      void srv.close().then(() => resolve(performance.now() - start))
    }),
  )
  const ms = await Promise.race([closed, new Promise<undefined>((ok) => setTimeout(() => ok(undefined), 3000).unref())])
  polling = false
  await poller
  t.ok(answered >= 2, `the poller got answers on its keep-alive connection (${answered})`)
  t.ok(
    ms !== undefined && ms < 1000,
    `close() resolved while the client kept polling (${ms?.toFixed(0) ?? 'not'} ms; the bound is 1000 ms)`,
  )
})

void t.test('when the server is closing, then an answer on a kept-alive connection says connection: close', async (t) => {
  const srv = await startMetricsServer('127.0.0.1', 0)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  t.not((await get(srv.port, agent, '/healthz')).connection, 'close', 'kept alive before close')
  // close() lands while /metrics is being rendered: the server has the request, the answer is not written yet.
  let closing: Promise<void> | undefined
  srv.server.once('request', () => void (closing = srv.close()))
  t.equal((await get(srv.port, agent, '/metrics')).connection, 'close', 'the answer in flight ends its connection')
  await closing
})
