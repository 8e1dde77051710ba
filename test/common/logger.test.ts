import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger } from '../../common/logger.ts'

void t.test('when a log line carries a connection URL with a password, then the password is replaced, the rest kept', async (t) => {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString())
      done()
    },
  })
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
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString())
      done()
    },
  })
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
