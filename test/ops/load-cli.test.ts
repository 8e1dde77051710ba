// npm run load: bad arguments get one line saying what is wrong and how to fix it, before any stack is touched.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const load = (args: string[]) => spawnSync(process.execPath, ['ops/load.ts', ...args], { cwd: ROOT, encoding: 'utf8' })

void t.test('when --target names no platform the load CLI drives, then one line names the choices and it exits 1', async (t) => {
  const r = load(['autoscale', '--short', '--target', 'k8s'])
  t.equal(r.status, 1)
  t.equal(r.stderr, 'load: --target must be native or compose (got k8s)\n')
})

void t.test('when --target compose is given to a run other than autoscale, then one line gives the command that works', async (t) => {
  const r = load(['average', '--target', 'compose'])
  t.equal(r.status, 1)
  t.equal(r.stderr, 'load: --target compose runs the autoscale comparison only (got average): npm run load -- autoscale --target compose\n')
})
