// Two commands on one stack never interleave their changes of state.json: the second waits for the first, and one
// that waits too long fails with one line naming the holder.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { LockTimeout, StateLock } from '../../../ops/lib/stack/lock.ts'

const ROOT = resolve(import.meta.dirname, '../../..')

/** Another process that holds the lock for holdMs, printing "held" once it has it. */
function holder(t: Test, file: string, holdMs: number) {
  const code = `import { StateLock } from './ops/lib/stack/lock.ts'
await new StateLock(${JSON.stringify(file)}, { waitMs: 10000, say: () => {} }).run('scale api=3', async () => {
  process.stdout.write('held ' + Date.now() + '\\n')
  await new Promise((r) => setTimeout(r, ${holdMs}))
  process.stdout.write('released ' + Date.now() + '\\n')
})`
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => void child.kill('SIGKILL'))
  let out = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString()))
  const exited = new Promise<number | null>((r) => child.on('exit', r))
  return {
    held: async () => {
      while (!/held/.test(out)) await sleep(20)
      return Number(/held (\d+)/.exec(out)![1])
    },
    released: async () => {
      await exited
      return Number(/released (\d+)/.exec(out)?.[1])
    },
    pid: child.pid!,
  }
}

void t.test('when another process holds the state lock, then a second command waits, says for whom, and runs after it', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'stack-lock-')), 'state.json')
  const h = holder(t, file, 1500)
  await h.held()
  const said: string[] = []
  let ranAt = 0
  await new StateLock(file, { waitMs: 10_000, say: (l) => said.push(l) }).run('up', async () => {
    ranAt = Date.now()
  })
  const releasedAt = await h.released()
  t.ok(ranAt >= releasedAt, `ran after the holder released it (${ranAt - releasedAt} ms later)`)
  t.match(said.join('\n'), new RegExp(`waiting for pid ${h.pid} \\(scale api=3\\)`))
})

void t.test('when the holder keeps the lock past the wait, then the command fails with one line naming it', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'stack-lock-')), 'state.json')
  const h = holder(t, file, 5000)
  await h.held()
  let ran = false
  const err = await new StateLock(file, { waitMs: 800, say: () => {} })
    .run('down', async () => {
      ran = true
    })
    .catch((e: Error) => e)
  t.notOk(ran, 'it did not run')
  t.type(err, LockTimeout)
  t.match(
    (err as Error).message,
    new RegExp(
      `^${file.replace(/[.]/g, '\\.')} is held by pid ${h.pid} \\(scale api=3, since .+\\) for more than 0\\.8 s: wait for it to finish, or stop that process$`,
    ),
  )
  t.notMatch((err as Error).message, /\n/)
})

void t.test('when two calls in one process change the state at once, then they take turns; nested calls do not wait', async (t) => {
  const lock = new StateLock(join(mkdtempSync(join(tmpdir(), 'stack-lock-')), 'state.json'), { waitMs: 10_000, say: () => {} })
  const spans: [number, number][] = []
  const job = () =>
    lock.run('scale', async () => {
      const from = Date.now()
      // Nested: up() calls what scale() calls.
      await lock.run('nested', () => sleep(300))
      spans.push([from, Date.now()])
    })
  await Promise.all([job(), job()])
  spans.sort((a, b) => a[0] - b[0])
  t.equal(spans.length, 2)
  t.ok(spans[1]![0] >= spans[0]![1], `no overlap: ${JSON.stringify(spans)}`)
})
