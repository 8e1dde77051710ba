// The native stack signals a recorded pid only while it is still the process it started: state.json outlives its
// processes (a reboot, a crash), and the kernel hands their pids to others.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { alive, identify, signal, startDetached, stopPid } from '../../../ops/lib/stack/procs.ts'
import { stackAt } from '../../../ops/lib/stack/index.ts'

function sleeper(t: Test) {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' })
  t.teardown(() => void child.kill('SIGKILL'))
  return child
}

void t.test('when a process is started, then its identity holds its start time from /proc and it reads as alive', async (t) => {
  const id = startDetached({
    name: 'sleep',
    argv: ['sleep', '60'],
    cwd: tmpdir(),
    logFile: join(mkdtempSync(join(tmpdir(), 'procs-')), 'sleep.log'),
  })
  t.teardown(() => void signal(id, 'SIGKILL'))
  t.type(id.startTime, 'number')
  t.ok(id.startTime! > 0)
  t.match(id.bootId, /^[0-9a-f-]{36}$/)
  t.ok(alive(id))
  t.equal(await stopPid(id, 2000), 'terminated')
  t.notOk(alive(id), 'gone once stopped')
})

void t.test(
  'when a recorded pid now names another process (another start time or boot), then it is gone and is never signalled',
  async (t) => {
    const other = sleeper(t)
    const real = identify(other.pid)!
    const stale = [
      { pid: real.pid, startTime: real.startTime! - 1, bootId: real.bootId },
      { pid: real.pid, startTime: real.startTime, bootId: '00000000-0000-0000-0000-000000000000' },
      { pid: real.pid },
    ]
    for (const rec of stale) {
      t.notOk(alive(rec), `stale record ${JSON.stringify(rec)} reads as gone`)
      t.notOk(signal(rec, 'SIGTERM'), 'signal refuses it')
      t.equal(await stopPid(rec, 500), 'gone', 'stop treats it as gone')
    }
    await sleep(100)
    t.ok(alive(real), 'the process that owns the pid now is untouched')
    t.equal(other.exitCode, null)
    t.equal(other.signalCode, null)
  },
)

void t.test('when the stack state records a pid that another process has since taken, then down leaves that process alone', async (t) => {
  const other = sleeper(t)
  const real = identify(other.pid)!
  const dir = mkdtempSync(join(tmpdir(), 'stack-stale-'))
  const part = (name: string, kind: string) => ({
    name,
    kind,
    pid: real.pid,
    startTime: real.startTime! + 7,
    bootId: real.bootId,
    port: 0,
    logFile: join(dir, `${name}.log`),
  })
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify({
      offset: 1450,
      ports: {},
      apiEnv: {},
      parts: { toxiproxy: part('toxiproxy', 'toxiproxy'), 'api-1': part('api-1', 'api') },
    }),
  )
  const lines: string[] = []
  const stack = stackAt({ offset: 1450, dir, log: (l) => lines.push(l) })
  t.same(
    (await stack.status()).map((s) => [s.name, s.running]),
    [
      ['toxiproxy', false],
      ['api-1', false],
    ],
  )
  t.same((await stack.down()).sort(), ['api-1', 'toxiproxy'])
  t.match(lines.join('\n'), /api-1: was not running/)
  await sleep(100)
  t.ok(alive(real), 'the sleep that holds the recorded pid was not signalled')
  t.equal(other.signalCode, null)
})
