// The native stack's supervisor: restarts an API or worker replica whose process is gone, as compose's
// `restart: unless-stopped` and a kubelet do. Started by `ops/stack up` as a part of the stack (the last), stopped by
// `down` (the first). Why a process of its own: `ops/stack up` returns, and the drills and tests drive the stack from
// processes that come and go; only something that lives as long as the stack can notice a crash at any time.
//
// Usage (by the stack, not by hand): node ops/lib/stack/supervisor.ts <stack dir> <port offset>
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { stackAt } from './index.ts'
import { alive } from './procs.ts'

const POLL_MS = 250
const [dir, offset] = process.argv.slice(2)
if (!dir || offset === undefined) {
  process.stderr.write('usage: node ops/lib/stack/supervisor.ts <stack dir> <port offset> (ops/stack up starts it)\n')
  process.exit(2)
}
const say = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`)
const stack = stackAt({ dir, offset: Number(offset), log: say })
// `down` holds the stack's lock when it stops the supervisor, so no restart of ours is half done: exit at once.
process.on('SIGTERM', () => {
  say('supervisor stops (SIGTERM)')
  process.exit(0)
})
say(`supervising the API and worker replicas of ${dir} (pid ${process.pid})`)

for (;;) {
  // The stack is down (or this supervisor was replaced): nothing left to watch.
  const me = stack.processes().find((p) => p.kind === 'supervisor')
  if (!existsSync(join(dir, 'state.json')) || (me && me.pid !== process.pid && alive(me))) break
  for (const part of stack.processes()) {
    if ((part.kind !== 'api' && part.kind !== 'worker') || part.held || part.crashLoop || (part.nextTryAt ?? 0) > Date.now()) continue
    if (alive(part)) continue
    await stack.revive(part).catch((err: Error) => say(`    ${part.name}: ${err.message}`))
  }
  await sleep(POLL_MS)
}
say('supervisor stops: the stack is down')
