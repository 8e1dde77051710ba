// The supervisor against a stack state of its own, with no other part running: a replica that cannot start (a bad
// LOG_LEVEL stops the worker at its config check) is tried again with a back-off, then left down as a crash loop; a
// held replica is left alone; a record whose pid now names another process is restarted, never signalled. The
// restart of a healthy replica is in test/system/stack.test.ts.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { stackPorts } from '../../../ops/lib/stack/ports.ts'
import { BACKOFF_MS, CRASH_LOOP_LIMIT, type Part } from '../../../ops/lib/stack/index.ts'

const ROOT = resolve(import.meta.dirname, '../../..')
const OFFSET = 1450
// Five start-ups of a worker (3-8 s each on a busy box) and 15 s of back-off: over tap's 120 s default per file.
t.setTimeout(240_000)

void t.test('when a replica fails every restart, then the supervisor backs off, stops after 5 and records a crash loop', async (t) => {
  t.setTimeout(150_000)
  const dir = mkdtempSync(join(tmpdir(), 'stack-supervisor-'))
  mkdirSync(join(dir, 'logs'))
  const ports = stackPorts(OFFSET)
  // This test's own pid with another start time: a stale record, as after a reboot.
  const stale = { pid: process.pid, startTime: 1, bootId: '00000000-0000-0000-0000-000000000000' }
  const worker = (i: number, extra: Partial<Part>): Part => ({
    name: `worker-${i}`,
    kind: 'worker',
    ...stale,
    port: ports.workerMetricsBase + i,
    metricsPort: ports.workerMetricsBase + i,
    logFile: join(dir, `logs/worker-${i}.log`),
    env: { LOG_LEVEL: 'nope' },
    ...extra,
  })
  const stateFile = join(dir, 'state.json')
  writeFileSync(
    stateFile,
    JSON.stringify({ offset: OFFSET, ports, apiEnv: {}, parts: { 'worker-1': worker(1, {}), 'worker-2': worker(2, { held: true }) } }),
  )
  const parts = () => (JSON.parse(readFileSync(stateFile, 'utf8')) as { parts: Record<string, Part> }).parts
  const sup = spawn(process.execPath, ['ops/lib/stack/supervisor.ts', dir, String(OFFSET)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  sup.stdout.on('data', (b: Buffer) => (log += b.toString()))
  sup.stderr.on('data', (b: Buffer) => (log += b.toString()))
  t.teardown(() => void sup.kill('SIGKILL'))

  const t0 = Date.now()
  // A restart removes the record for a moment (stopped, then started): read through it.
  while (!parts()['worker-1']?.crashLoop && Date.now() - t0 < 120_000) await sleep(200)
  const ms = Date.now() - t0
  const w1 = parts()['worker-1']!
  t.comment(`MEASURED supervisor: crash loop declared after ${ms} ms`)
  t.match(w1.crashLoop, new RegExp(`^${CRASH_LOOP_LIMIT} restarts in a row failed, the last: worker-1 exited during start-up`), log)
  t.equal(w1.failedStarts, CRASH_LOOP_LIMIT)
  const waits = [...log.matchAll(/worker-1: restart (\d) failed .*; next try in (\d+) ms/g)].map((m) => [Number(m[1]), Number(m[2])])
  t.same(
    waits,
    [1, 2, 3, 4].map((n) => [n, BACKOFF_MS * 2 ** (n - 1)]),
    'the back-off doubles: 1, 2, 4, 8 s',
  )
  t.ok(ms >= 15 * BACKOFF_MS, `the tries were spread by the back-off (${ms} ms)`)
  t.not(w1.pid, process.pid, 'the stale record was replaced by the processes it started')

  const pid = w1.pid
  await sleep(3000)
  t.equal(parts()['worker-1']!.pid, pid, 'no more tries once in a crash loop')
  t.same(parts()['worker-2'], worker(2, { held: true }), 'the held replica was left alone')
  t.equal(sup.exitCode, null, 'the supervisor keeps running')

  rmSync(stateFile)
  const exited = await Promise.race([new Promise((r) => sup.once('exit', () => r(true))), sleep(5000).then(() => false)])
  t.ok(exited, 'it exits once the stack is down (no state)')
})
