import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger, lazyChildLogger } from '../../common/logger.ts'

/** A stream that keeps every line a logger writes to it. */
function lineSink(): { lines: string[]; sink: Writable } {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  return { lines, sink }
}

void t.test('when a log line carries a connection URL with a password, then the password is replaced, the rest kept', async (t) => {
  const { lines, sink } = lineSink()
  const log = createLogger({ serviceName: 'test', instanceId: 'test', level: 'info' }, sink)
  // What ioredis throws for a URL it cannot parse: the input, password and all, as the message's property.
  const err = Object.assign(new TypeError('Invalid URL: redis://default:s3cret-pw@cache:99999'), {
    input: 'redis://default:s3cret-pw@cache:99999',
  })
  log.error({ err }, 'redis client failed')
  log.warn({ target: 'postgres://app:s3cret@pw@db:5432/app' }, 'connecting to postgres://app:s3cret-pw@db:5432/app')
  log.info({ url: 'https://example.com/a@b', email: 'someone@example.test' }, 'no credentials here')
  const all = lines.join('')
  t.equal(lines.length, 3)
  t.notMatch(all, 's3cret', 'no password in any line')
  t.match(all, 'redis://***@cache:99999')
  t.match(all, 'postgres://***@db:5432/app')
  t.match(lines[2], 'https://example.com/a@b', 'a URL without userinfo is untouched')
  t.match(lines[2], 'someone@example.test', 'so is an email')
})

/** Every path of a parsed line, with dotted keys and nested objects both written as a.b.c. */
function paths(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? paths(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  )
}

void t.test('when a line is written, then no field is there twice, as a dotted key and as a nested object', async (t) => {
  // VictoriaLogs v1.52.2 stops with a FATAL panic on a line holding both "service.name" and service: {name}, once
  // service.name is a stream field (its stream tags must be unique); Elasticsearch would store two values.
  const { lines, sink } = lineSink()
  createLogger({ serviceName: 'opsdrill-api', instanceId: 'api-1', level: 'info' }, sink).info({ http: { request: { id: 'r1' } } }, 'hi')
  const line = JSON.parse(lines[0]!) as Record<string, unknown>
  const all = paths(line)
  t.same(
    all.filter((p, i) => all.indexOf(p) !== i),
    [],
    'no repeated field',
  )
  t.equal(line['service.name'], 'opsdrill-api')
  t.same(line.service, { node: { name: 'api-1' } }, 'the instance is service.node.name')
})

void t.test(
  "when a request's lazy logger writes, then its line has the request's bindings; one at a level it skips makes no child",
  async (t) => {
    const { lines, sink } = lineSink()
    const log = createLogger({ serviceName: 'test', instanceId: 'test', level: 'info' }, sink)
    let children = 0
    const counted = new Proxy(log, {
      get: (target, prop, receiver) =>
        prop === 'child'
          ? (...args: Parameters<typeof log.child>) => {
              children++
              return target.child(...args)
            }
          : Reflect.get(target, prop, receiver),
    })
    const quiet = lazyChildLogger(counted, { reqId: 'r-1' }, {})
    quiet.debug('not written')
    t.equal(quiet.level, 'info', "the parent's level")
    t.notOk(quiet.isLevelEnabled('debug'))
    t.equal(children, 0, 'no child made while nothing is written')
    quiet.info({ a: 1 }, 'written')
    quiet.warn('again')
    t.equal(children, 1, 'one child, made at the first line')
    t.equal(lines.length, 2)
    t.match(JSON.parse(lines[0]!), { reqId: 'r-1', a: 1, message: 'written' })
    // A route's own level (Fastify's logLevel: the health routes log at warn).
    const health = lazyChildLogger(log, { reqId: 'r-2' }, { level: 'warn' })
    health.info('skipped')
    health.warn('kept')
    t.equal(lines.length, 3)
    t.match(JSON.parse(lines[2]!), { reqId: 'r-2', message: 'kept' })
  },
)
