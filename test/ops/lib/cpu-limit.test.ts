// A CPU limit holds a process to its quota, as a pod's limits.cpu does.
import t from 'tap'
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { serverCpuSeconds as cpuSeconds } from '../../../ops/lib/cpu.ts'
import { limitCpu } from '../../../ops/lib/cpu-limit.ts'

void t.test('when a busy process is limited to 0.2 core, then it uses no more than that', async (t) => {
  const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  const undo = limitCpu(`test-${process.pid}`, child.pid!, 0.2)
  t.teardown(undo)
  await sleep(300)
  const [c0, w0] = [cpuSeconds(child.pid!), performance.now()]
  await sleep(2000)
  const share = (cpuSeconds(child.pid!) - c0) / ((performance.now() - w0) / 1000)
  t.ok(share < 0.3, `the process used ${share.toFixed(2)} core (limit 0.2)`)
  t.ok(share > 0.02, `and did run (${share.toFixed(2)} core)`)
})
