// What `npm run` finds after `ops/stack up`, from a shell whose PATH has only the system's directories (the
// distribution's node, if any, is older than 24). The full walk-through runs in test/system/walkthrough.test.ts.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { OPSDRILL_CACHE, tool } from '../../ops/lib/tools.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const shim = (env: NodeJS.ProcessEnv) =>
  spawnSync(resolve(ROOT, 'ops/lib/node'), ['-p', 'process.versions.node'], { cwd: ROOT, env, encoding: 'utf8' })

void t.test('when an npm script starts from the system PATH, then it runs on the Node 24 ops/stack installed', async (t) => {
  const r = shim({ HOME: process.env.HOME, PATH: SYSTEM_PATH, OPSDRILL_CACHE })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^2[4-9]\./, `Node ${r.stdout.trim()}`)
})

void t.test('when no Node 24 is installed, then an npm script says in one line to run ops/stack up', async (t) => {
  const r = shim({ HOME: process.env.HOME, PATH: SYSTEM_PATH, OPSDRILL_CACHE: '/nonexistent/opsdrill' })
  t.equal(r.status, 1)
  t.equal(r.stdout, '')
  t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
  t.match(r.stderr, /needs Node 24.*run ops\/stack up/)
})

void t.test('when ops runs a tool it built, then it takes it from the cache whatever PATH holds', async (t) => {
  for (const name of ['k6', 'toxiproxy-server'] as const) {
    t.equal(tool(name), resolve(OPSDRILL_CACHE, 'bin', name), `${name} from ${OPSDRILL_CACHE}/bin`)
    t.ok(existsSync(tool(name)), `${name} is installed there (ops/stack up or ops/test built it)`)
  }
})
