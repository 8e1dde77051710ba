import t from 'tap'
import { stackPorts } from '../../ops/lib/stack/ports.ts'
import { ephemeralRange, freePort } from '../../ops/lib/net.ts'

// A client that keeps dialling a stopped server's port inside the ephemeral range can connect to itself and then hold
// the port (ops/lib/net.ts): drills stop Postgres and Redis while toxiproxy keeps dialling them.
const { low, high } = ephemeralRange() ?? { low: 32768, high: 60999 }

void t.test('when the stack runs at any port offset, then no part listens inside the ephemeral port range', async (t) => {
  for (const offset of [0, 1000, 1500]) {
    const inside = Object.entries(stackPorts(offset)).filter(([, port]) => port >= low && port <= high)
    t.same(inside, [], `offset ${offset}: ports outside ${low}-${high}`)
  }
})

void t.test('when a test asks for a free port, then it gets one below the ephemeral range', async (t) => {
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()))
  t.same(
    ports.filter((p) => p >= low),
    [],
    'every port below the ephemeral range',
  )
})
