// The receiver behind Alertmanager's page and ticket webhooks (alertmanager/alertmanager.yml: http://127.0.0.1:5001/):
// it keeps the notifications it got, newest last, and lists them on GET /, so a person or a test can see that an
// alert fired in Prometheus reached the end of the pipe. Each one is also logged (ECS JSON) for the log pipeline.
import { createServer } from 'node:http'
import { Type } from 'typebox'
import { loadConfigOrExit } from '../common/config.ts'
import { createLogger } from '../common/logger.ts'

const config = loadConfigOrExit(
  Type.Object({
    HOST: Type.String({ default: '127.0.0.1' }),
    PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 5001 }),
    /** Notifications kept in memory; the oldest go first. */
    ALERT_RECORDER_KEEP: Type.Integer({ minimum: 1, default: 1000 }),
  }),
)
const log = createLogger({ serviceName: 'opsdrill-alert-recorder', instanceId: `alert-recorder-${process.pid}`, level: 'info' })
const received: unknown[] = []

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(received))
    return
  }
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'GET, POST' }).end()
    return
  }
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    let body: { status?: string; receiver?: string; alerts?: { labels?: Record<string, string> }[] }
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body
    } catch {
      res.writeHead(400, { 'content-type': 'application/problem+json' })
      res.end(JSON.stringify({ type: 'about:blank', title: 'Bad Request', status: 400, detail: 'body: not JSON' }))
      return
    }
    received.push({ at: new Date().toISOString(), ...body })
    if (received.length > config.ALERT_RECORDER_KEEP) received.shift()
    log.info(
      { alert: { receiver: body.receiver, status: body.status, names: (body.alerts ?? []).map((a) => a.labels?.alertname) } },
      'alert notification received',
    )
    res.writeHead(200).end()
  })
})

server.listen(config.PORT, config.HOST, () => log.info(`alert recorder on ${config.HOST}:${config.PORT}`))
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => server.close(() => process.exit(0)))
