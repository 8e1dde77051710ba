import t from 'tap'
import type { Test } from 'tap'
import { createServer, type Socket } from 'node:net'
import { createRedis } from '../../common/redis.ts'

// ioredis opens with HELLO 3 (RESP3), then CLIENT SETNAME/SETINFO, then INFO for its ready check.
const HELLO = '%3\r\n+server\r\n+redis\r\n+version\r\n+7.2.0\r\n+proto\r\n:3\r\n'
const INFO = '# Server\r\nloading:0'
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined }

/** A Redis stand-in that answers the handshake at once and every GET `delayMs` late (what toxiproxy's latency does). */
async function slowRedis(t: Test, delayMs: number): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    let buf = ''
    socket.on('data', (chunk) => {
      buf += chunk.toString('latin1')
      // RESP arrays of bulk strings: *<n>\r\n($<len>\r\n<arg>\r\n)*n
      for (;;) {
        const m = /^\*(\d+)\r\n/.exec(buf)
        if (!m) return
        const args: string[] = []
        let at = m[0].length
        for (let i = 0; i < Number(m[1]); i++) {
          const len = /^\$(\d+)\r\n/.exec(buf.slice(at))
          if (!len || buf.length < at + len[0].length + Number(len[1]) + 2) return
          at += len[0].length
          args.push(buf.slice(at, at + Number(len[1])))
          at += Number(len[1]) + 2
        }
        buf = buf.slice(at)
        const cmd = args[0]!.toLowerCase()
        if (cmd === 'get') setTimeout(() => socket.writable && socket.write('$-1\r\n'), delayMs)
        else if (cmd === 'info') socket.write(`$${INFO.length}\r\n${INFO}\r\n`)
        else if (cmd === 'hello') socket.write(HELLO)
        else socket.write('+OK\r\n')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const address = server.address()
  return `redis://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
}

void t.test('when Redis answers late and commands overlap, then each caller waits no longer than the command timeout', async (t) => {
  const timeoutMs = 400
  const url = await slowRedis(t, 1000)
  const redis = createRedis('cache', { url, commandTimeoutMs: timeoutMs, connectTimeoutMs: 2000 }, quiet)
  t.teardown(() => redis.disconnect())
  await new Promise((resolve) => redis.once('ready', resolve))

  const timed = async () => {
    const t0 = performance.now()
    const err = await redis.get('k').then(
      () => undefined,
      (e: Error) => e,
    )
    return { ms: performance.now() - t0, err }
  }
  // The second GET is asked while the first is still on the wire: it must not wait for the first to time out.
  const first = timed()
  await new Promise((resolve) => setTimeout(resolve, timeoutMs / 4))
  const waits = await Promise.all([first, timed()])
  for (const [i, w] of waits.entries()) {
    t.match(w.err?.message, /timed out/, `GET ${i + 1} fails (fail-open is the caller's)`)
    t.ok(w.ms <= timeoutMs + 50, `GET ${i + 1} gave up after ${w.ms.toFixed(0)} ms (command timeout ${timeoutMs} ms)`)
  }
})
