import t from 'tap'
import { once } from 'node:events'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp } from '../../service/app.ts'
import { createLogger } from '../../common/logger.ts'
import { apiConfig, testDatabase } from '../helpers/env.ts'
import { uniqueEmail, PASSWORD } from '../helpers/app.ts'
import { eventually, spawnApi, sql } from '../helpers/service.ts'

void t.test(
  'when SIGTERM arrives with a request in flight, then readiness turns 503, the request completes in full, and the process exits 0 within SHUTDOWN_GRACE_MS',
  async (t) => {
    const grace = 8000
    const srv = await spawnApi(t, {
      SHUTDOWN_READINESS_DELAY_MS: '1500',
      SHUTDOWN_GRACE_MS: String(grace),
      // The held INSERT must outlive the drain: statement timeouts above the test's hold time.
      PG_STATEMENT_TIMEOUT_MS: '20000',
      PG_QUERY_TIMEOUT_MS: '20000',
    })
    const { base, child, exited, databaseUrl } = srv

    // Hold the API's INSERT on the unique email index with an uncommitted row of the same email.
    const email = uniqueEmail()
    const db = await sql(t, databaseUrl)
    await db.query('BEGIN')
    await db.query("INSERT INTO users (email, password_hash) VALUES ($1, 'held')", [email])
    let settled = false
    const inflight = fetch(`${base}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    }).then(async (r) => {
      settled = true
      return { status: r.status, body: await r.text() }
    })
    // Another session: inside our transaction pg_stat_activity would be a frozen snapshot.
    const observer = await sql(t, databaseUrl)
    const blocked = await eventually(async () => {
      const { rows } = await observer.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'opsdrill-api%' AND wait_event_type = 'Lock'",
      )
      return rows.length === 1
    }, 5000)
    t.ok(blocked, "the API's INSERT waits on our row lock")

    const killedAt = Date.now()
    child.kill('SIGTERM')
    t.ok(await eventually(async () => srv.out.includes('shutting down: draining'), 2000), 'the server logs that it drains')
    const ready = await fetch(`${base}/readyz`)
    t.equal(ready.status, 503, 'a new request to /readyz gets 503 while draining')
    t.match(await ready.json(), { status: 'shutting down' })
    t.equal(settled, false, 'the in-flight request is still pending')

    // After the readiness delay the listener closes: new connections are refused, the held request stays open.
    t.ok(
      await eventually(
        async () => {
          try {
            const r = await fetch(`${base}/healthz`, { headers: { connection: 'close' } })
            return r.status === 503
          } catch {
            return true
          }
        },
        4000,
        100,
      ),
      'new requests are refused (or 503) once the listener closes',
    )
    t.equal(settled, false, 'the in-flight request is still pending after the listener closed')

    await db.query('ROLLBACK')
    const res = await inflight
    t.equal(res.status, 202, `the in-flight request completed in full: ${res.body}`)
    t.match(JSON.parse(res.body), { email })
    const [code, signal] = await exited
    t.equal(signal, null)
    t.equal(code, 0, 'exit code 0')
    t.ok(Date.now() - killedAt < grace, `exited ${Date.now() - killedAt} ms after SIGTERM (grace ${grace} ms)`)
    t.match(srv.out, 'shutdown complete')
  },
)

void t.test(
  'when a request arrives on a busy keep-alive connection after close() began, then it is served with Connection: close, not refused with 503',
  async (t) => {
    const config = apiConfig(await testDatabase(t))
    const app = await buildApp({ config, logger: createLogger({ serviceName: 'opsdrill-api', instanceId: 'test', level: 'silent' }) })
    let release = () => {}
    const held = new Promise<void>((r) => (release = r))
    let entered = () => {}
    const inHandler = new Promise<void>((r) => (entered = r))
    // A route that answers when the test lets it: it keeps the connection busy, so closing the idle ones spares it.
    app.get('/held-for-test', async () => {
      entered()
      await held
      return { ok: true }
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1')
    let data = ''
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()))
    const ended = once(socket, 'close')
    socket.write('GET /held-for-test HTTP/1.1\r\nhost: test\r\n\r\n')
    await inHandler

    const closed = app.close()
    t.ok(await eventually(async () => !app.server.listening, 2000, 10), 'the listener closed')
    // nginx sends the next request on the connection it holds: that is the request a deploy must not lose. The held
    // request is let go once the server has read this one.
    const read = once(app.server, 'request')
    socket.write('GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n')
    await read
    release()
    await ended
    await closed

    const responses = data.split(/(?=HTTP\/1\.1 \d{3} )/)
    t.same(
      responses.map((r) => r.match(/^HTTP\/1\.1 (\d{3})/)?.[1]),
      ['200', '200'],
      `both requests are answered in full:\n${data}`,
    )
    t.match(responses[1], /^connection: close\r$/im, 'the second answer closes the connection')
  },
)

/** One GET on a raw keep-alive socket: the status and the headers of its response (its body read and dropped). */
function rawGet(socket: Socket, path: string): Promise<{ status: number; headers: string }> {
  return new Promise((done, fail) => {
    let buf = ''
    const onData = (chunk: Buffer) => {
      buf += chunk.toString()
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const headers = buf.slice(0, end)
      const length = Number(headers.match(/^content-length: (\d+)\r?$/im)?.[1] ?? 0)
      if (buf.length < end + 4 + length) return
      socket.off('data', onData).off('close', onClose)
      done({ status: Number(headers.match(/^HTTP\/1\.1 (\d{3})/)?.[1]), headers })
    }
    const onClose = () => fail(new Error(`the connection closed before the response to ${path} (read: ${JSON.stringify(buf)})`))
    socket.on('data', onData).once('close', onClose)
    socket.write(`GET ${path} HTTP/1.1\r\nhost: test\r\n\r\n`)
  })
}

void t.test(
  'when SIGTERM arrives, then keep-alive connections stay open through the drain: responses keep them alive until the listener closes, an idle one is still open SHUTDOWN_IDLE_GRACE_MS after it, and the next response on it closes it',
  async (t) => {
    // nginx must neither open new connections to a replica about to close its listener (a connection the kernel has
    // accepted and Node not yet is reset when it closes), nor have an idle one closed under a request it is writing:
    // both lose a POST nginx does not resend (service/server.ts).
    const srv = await spawnApi(t, { SHUTDOWN_READINESS_DELAY_MS: '1500', SHUTDOWN_IDLE_GRACE_MS: '3000' })
    const { port, child, exited } = srv
    const open = async () => {
      const s = connect(port, '127.0.0.1')
      await once(s, 'connect')
      t.teardown(() => s.destroy())
      return s
    }
    const [other, idle] = [await open(), await open()]
    let idleClosedAt = 0
    idle.once('close', () => (idleClosedAt = Date.now()))
    t.equal((await rawGet(idle, '/healthz')).status, 200, 'the idle connection served a request before SIGTERM')

    child.kill('SIGTERM')
    t.ok(await eventually(async () => srv.out.includes('shutting down: draining'), 2000, 20), 'the server logs that it drains')
    const draining = await rawGet(other, '/readyz')
    t.equal(draining.status, 503, 'readiness fails while draining')
    t.notMatch(draining.headers, /^connection: close\r?$/im, 'a response before the listener closes keeps its connection alive')
    t.equal((await rawGet(other, '/healthz')).status, 200, 'the same connection serves the next request')

    const refused = () =>
      new Promise<boolean>((done) => {
        const s = connect(port, '127.0.0.1')
        s.once('connect', () => (s.destroy(), done(false))).once('error', () => done(true))
      })
    t.ok(await eventually(refused, 4000, 50), 'new connections are refused once the listener closes')
    const listenerClosedAt = Date.now()
    await sleep(2000)
    t.equal(idleClosedAt, 0, 'the idle keep-alive connection is still open 2 s after the listener closed (grace 3 s)')
    const last = await rawGet(idle, '/healthz')
    t.equal(last.status, 200, 'a request on it is still served')
    t.match(last.headers, /^connection: close\r?$/im, 'and its response closes the connection')
    t.ok(await eventually(async () => idleClosedAt > 0, 1000, 20), 'the server closed it after that response')
    t.ok(idleClosedAt - listenerClosedAt < 3000, `within the grace (${idleClosedAt - listenerClosedAt} ms after the listener closed)`)
    const [code] = await exited
    t.equal(code, 0, `exit code 0 once the other connection was closed at the grace's end: ${srv.out.slice(-300)}`)
  },
)
