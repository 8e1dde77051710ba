// Ports for short-lived servers in tests, benchmarks and drills.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

// Ports are drawn below the kernel's ephemeral range, never from it (listen(0) would). A client that keeps dialling a
// dead loopback port inside that range can, once the kernel hands it that same number as its source port, connect to
// itself (a TCP simultaneous open): the "down" server then looks up, and the port is held so the server cannot start
// again. It also keeps a port freed by one test from being handed straight to another process's listen(0).
// Above the native stack's proxies at the largest port offset (26380 + 1500) and the project's fixed test ports.
const LOW = 28000

/** The kernel's ephemeral port range (Linux), or undefined where it cannot be read. */
export function ephemeralRange(): { low: number; high: number } | undefined {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    return low && high ? { low, high } : undefined
  } catch {
    return undefined
  }
}

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((done) => {
    const srv = createServer()
    srv.once('error', () => done(undefined))
    srv.listen(port, '127.0.0.1', () => {
      const { port: got } = srv.address() as { port: number }
      srv.close(() => done(got))
    })
  })
}

/** A TCP port free on 127.0.0.1 at the time of asking, outside the ephemeral range when the kernel leaves room. */
export async function freePort(): Promise<number> {
  const below = ephemeralRange()?.low ?? 0
  for (let i = 0; below > LOW && i < 50; i++) {
    const port = await tryListen(LOW + Math.floor(Math.random() * (below - LOW)))
    if (port) return port
  }
  const port = await tryListen(0)
  if (!port) throw new Error('no free TCP port on 127.0.0.1')
  return port
}
