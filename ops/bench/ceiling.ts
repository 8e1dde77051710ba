// The ceiling: bare Fastify answering a constant, no plugins, no logging.
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.get('/', async () => 'ok')
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)))
