// /metrics on METRICS_PORT, apart from public traffic. Prometheus gets OpenMetrics (which carries exemplars) when
// it asks for it; anything else gets the classic text format, which `promtool check metrics` reads.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { renderMetrics } from './metrics.ts'

export interface MetricsServer {
  server: Server
  port: number
  close: () => Promise<void>
}

export async function startMetricsServer(host: string, port: number, isReady: () => boolean = () => true): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      const openMetrics = (req.headers.accept ?? '').includes('application/openmetrics-text')
      renderMetrics(openMetrics ? 'openmetrics' : 'text')
        .then(({ body, contentType }) => {
          res.writeHead(200, { 'content-type': contentType })
          res.end(body)
        })
        .catch((err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' })
          res.end(`metrics collection failed: ${err.message}\n`)
        })
      return
    }
    if (req.url === '/healthz') return void res.writeHead(200).end('ok\n')
    if (req.url === '/readyz') return void res.writeHead(isReady() ? 200 : 503).end(isReady() ? 'ready\n' : 'not ready\n')
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
