// /metrics on METRICS_PORT, apart from public traffic. Prometheus gets OpenMetrics (which carries exemplars) when
// it asks for it; anything else gets the classic text format, which `promtool check metrics` reads.
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { renderMetrics } from './metrics.ts'

export interface MetricsServer {
  server: Server
  port: number
  close: () => Promise<void>
}

export async function startMetricsServer(host: string, port: number, isReady: () => boolean = () => true): Promise<MetricsServer> {
  let closing = false
  // Once closing, each answer ends its connection: a scraper or probe on keep-alive that asks more often than the
  // idle timeout would otherwise hold close() open until SHUTDOWN_GRACE_MS (found by the worker-sigterm drill).
  const reply = (res: ServerResponse, status: number, headers: Record<string, string>, body?: string) =>
    void res.writeHead(status, closing ? { ...headers, connection: 'close' } : headers).end(body)
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      const openMetrics = (req.headers.accept ?? '').includes('application/openmetrics-text')
      renderMetrics(openMetrics ? 'openmetrics' : 'text')
        .then(({ body, contentType }) => reply(res, 200, { 'content-type': contentType }, body))
        .catch((err: Error) => reply(res, 500, { 'content-type': 'text/plain' }, `metrics collection failed: ${err.message}\n`))
      return
    }
    if (req.url === '/healthz') return reply(res, 200, {}, 'ok\n')
    if (req.url === '/readyz') return isReady() ? reply(res, 200, {}, 'ready\n') : reply(res, 503, {}, 'not ready\n')
    reply(res, 404, {})
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true
        // close() ends the idle connections; a request in flight ends its own with the header above.
        server.close(() => resolve())
      }),
  }
}
