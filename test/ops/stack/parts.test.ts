// The stack's parts are one table: up walks it so every part comes after what it needs, down walks it backwards.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PARTS, rowOf, startOrder, waitForFile, type PartSpec } from '../../../ops/lib/stack/parts.ts'

const names = (rows: PartSpec[]) => rows.map((r) => r.name)

void t.test('when the table is ordered, then every part starts after what it needs and the supervisor last', async (t) => {
  const order = names(startOrder())
  t.same([...order].sort(), names(PARTS).sort(), 'every row once')
  for (const row of PARTS) for (const n of row.needs) t.ok(order.indexOf(n) < order.indexOf(row.name), `${n} before ${row.name}`)
  t.equal(order.at(-1), 'supervisor', 'the supervisor starts last and stops first')
  t.equal(order[0], 'postgres')
})

void t.test('when a new part is a row with needs, then the walk places it after them, wherever the row is', async (t) => {
  const logStore: PartSpec = { name: 'victorialogs', kind: 'prometheus', needs: [], timeoutMs: 1, graceMs: 1 }
  const shipper: PartSpec = { name: 'log-shipper', kind: 'prometheus', needs: ['victorialogs', 'api'], timeoutMs: 1, graceMs: 1 }
  const order = names(startOrder([shipper, ...PARTS, logStore]))
  t.ok(order.indexOf('log-shipper') > order.indexOf('victorialogs'))
  t.ok(order.indexOf('log-shipper') > order.indexOf('api'))
})

void t.test('when rows need each other or a missing part, then the walk says which', async (t) => {
  const a: PartSpec = { name: 'a', kind: 'nginx', needs: ['b'], timeoutMs: 1, graceMs: 1 }
  const b: PartSpec = { name: 'b', kind: 'nginx', needs: ['a'], timeoutMs: 1, graceMs: 1 }
  t.throws(() => startOrder([a, b]), /parts need each other: a -> b -> a/)
  t.throws(() => startOrder([a]), /a needs b, which is not a part/)
})

void t.test('when a recorded part is looked up, then replicas map to their row', async (t) => {
  t.equal(rowOf('api-12')?.name, 'api')
  t.equal(rowOf('worker-1')?.name, 'worker')
  t.equal(rowOf('redis-cache')?.name, 'redis-cache')
  t.equal(rowOf('redis-cache-exporter')?.name, 'redis-cache-exporter')
  t.equal(rowOf('nosuch'), undefined)
})

void t.test("when a pid file exists before its pid is written, then the wait returns the pid, not the empty file's text", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-pidfile-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'redis.pid')
  // What redis-server leaves for a moment: the file opened, nothing written yet.
  writeFileSync(file, '')
  setTimeout(() => writeFileSync(file, '4242\n'), 200)
  t.equal(await waitForFile(file, 5000, /^(\d+)\n$/), '4242')
  writeFileSync(file, '42')
  await t.rejects(waitForFile(file, 200, /^(\d+)\n$/), /did not hold a complete value \(read "42"\) within 200 ms/)
})
