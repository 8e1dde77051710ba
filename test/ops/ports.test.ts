import t from 'tap'
import { readFileSync } from 'node:fs'
import { DEFAULT_PORTS, stackPorts } from '../../ops/lib/stack/ports.ts'
import { freePort } from '../../ops/lib/net.ts'

// A client that keeps dialling a stopped server's port inside the ephemeral range can connect to itself and then hold
// the port (ops/lib/net.ts): drills stop Postgres and Redis while toxiproxy keeps dialling them.
const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number]

void t.test('when the stack runs at any port offset, then no part listens inside the ephemeral port range', async (t) => {
  for (const offset of [0, 1000, 1500]) {
    const inside = Object.entries(stackPorts(offset)).filter(([, port]) => port >= low && port <= high)
    t.same(inside, [], `offset ${offset}: ports outside ${low}-${high}`)
  }
  t.equal(stackPorts(0).postgres, DEFAULT_PORTS.postgres)
})

void t.test('when a test asks for a free port, then it gets one below the ephemeral range', async (t) => {
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()))
  t.same(
    ports.filter((p) => p >= low),
    [],
    'every port below the ephemeral range',
  )
})
