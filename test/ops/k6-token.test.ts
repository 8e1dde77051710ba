// The load mix's access token outlives the API's 15-minute JWT: tokenFor() (loadtests/lib/api.ts) logs the user in
// again a minute before the token expires. Run by a real k6 against a local server that issues tokens expiring in
// 61 s, so each is due for renewal one second after it is issued. The full soak (30 min) got 401 on every
// authenticated request after minute 15 before this (5% of its requests).
import t from 'tap'
import { createServer } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { K6 } from '../../ops/lib/k6.ts'

void t.test('when a session token nears its expiry, then tokenFor logs in again and returns the new token', async (t) => {
  let logins = 0
  const srv = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (req.url === '/api/v1/auth/register') return res.writeHead(202, { 'content-type': 'application/json' }).end('{}')
      if (req.url === '/api/v1/auth/login') {
        logins++
        return res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ accessToken: `token-${logins}`, tokenType: 'Bearer', expiresIn: 61 }))
      }
      res.writeHead(404).end()
    })
  })
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok))
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-k6-token-'))
  t.teardown(async () => {
    await new Promise((ok) => srv.close(ok))
    rmSync(dir, { recursive: true, force: true })
  })
  const { port } = srv.address() as { port: number }
  const k6 = await K6.start({
    script: resolve(import.meta.dirname, '../fixtures/k6/token-refresh.ts'),
    dir,
    testid: 'token-refresh',
    vars: { BASE_URL: `http://127.0.0.1:${port}` },
  })
  t.equal(await k6.exited, 0, `k6 exits 0 (${k6.logFile})`)
  const tokens =
    readFileSync(k6.logFile, 'utf8')
      .match(/TOKENS ([\w,-]+)/)?.[1]
      ?.split(',') ?? []
  t.ok(tokens.length >= 2, `the token was renewed within 2.5 s (tokens in order: ${tokens.join(', ')})`)
  t.same(
    tokens,
    Array.from({ length: tokens.length }, (_, i) => `token-${i + 1}`),
    'each renewal returned the newest token',
  )
  t.equal(logins, tokens.length, `one login per token (${logins})`)
})
