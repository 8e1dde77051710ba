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
