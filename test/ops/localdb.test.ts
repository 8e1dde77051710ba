// The project's local Postgres and Redis: a server already on the port is reused only when it is this folder's; one
// of another checkout (or a leftover) is an error naming the port, where the bench used to read another folder's
// pid file and crash (ENOENT on postmaster.pid).
import t from 'tap'
import { createServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPostgres, startRedis, stopRedis } from '../../ops/lib/localdb.ts'
import { freePort } from '../../ops/lib/net.ts'

const dir = mkdtempSync(join(tmpdir(), 'opsdrill-localdb-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

void t.test('when another server holds the port, then starting says so in one line, unless the server is shared', async (t) => {
  const port = await freePort()
  const other = createServer().listen(port, '127.0.0.1')
  t.teardown(() => other.close())
  await new Promise((ok) => other.once('listening', ok))
  const held = new RegExp(`^port ${port} is held by a server not started from .+: stop it`)
  await t.rejects(startPostgres(join(dir, 'pg'), port), held, 'Postgres')
  await t.rejects(startRedis(join(dir, 'redis'), port), held, 'Redis')
  t.equal((await startRedis(join(dir, 'redis'), port, { role: 'queues' }, true)).url, `redis://127.0.0.1:${port}`, 'shared: used as it is')
})

void t.test("when this folder's Redis already runs on the port, then it is reused", async (t) => {
  const port = await freePort()
  const rd = join(dir, 'own-redis')
  t.teardown(() => stopRedis(rd))
  const first = await startRedis(rd, port)
  t.same(await startRedis(rd, port), first, 'the second start finds the first server')
})
