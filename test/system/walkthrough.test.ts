// The README's walk-throughs, run as written: every command of the sh blocks under "## Walk-throughs" in README.md,
// each with `bash -c` from a shell that has only the system PATH, as a newcomer's shell after `ops/stack up` (which
// puts ~/.cache/opsdrill on the PATH of its own process only). Editing the README changes what runs here.
// The long commands take their short form from OPSDRILL_SHORT=1 (npm run load, npm run drill), never from an edit.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { loadavg, cpus, homedir } from 'node:os'
import { resolve } from 'node:path'
import { stackAt } from '../../ops/lib/stack/index.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const OFFSET = 1500
t.setTimeout(10 * 60_000)

/** The command lines of the sh code blocks in README.md's "## Walk-throughs" section, comments dropped. */
function walkthroughCommands(readme: string): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Walk-throughs'))
  if (!section) throw new Error('README.md has no "## Walk-throughs" section')
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```/gm)]
    .flatMap((m) => m[1]!.split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line && !line.startsWith('#'))
}

// A newcomer's environment: the system PATH, HOME (where ops/stack caches Node 24 and the tools), nothing else from
// this test run. The offset keeps the stack away from a user's and from the other suites'; the README tells the user
// to set nothing else.
const loadPerCore = loadavg()[0]! / cpus().length
const env: NodeJS.ProcessEnv = {
  HOME: homedir(),
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  OPSDRILL_STACK_PORT_OFFSET: String(OFFSET),
  OPSDRILL_SHORT: '1',
  // The shared box may be busy: latency bounds widen (never error bounds), as in load.test.ts.
  SLO_LATENCY_FACTOR: loadPerCore > 1 ? String(Math.min(10, Math.ceil(loadPerCore * 2))) : '1',
}

function bash(command: string): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn('bash', ['-c', command], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.once('close', (code) => done({ code, output }))
  })
}

const stack = stackAt({ offset: OFFSET, log: (line) => t.comment(line) })
t.teardown(() => stack.down())

void t.test('when the README walk-throughs are extracted, then they are the stack, load and drill commands', async (t) => {
  const commands = walkthroughCommands(readFileSync(resolve(ROOT, 'README.md'), 'utf8'))
  t.equal(commands[0], 'ops/stack up', 'the walk-through starts the stack')
  t.ok(
    commands.some((c) => c.startsWith('npm run load')),
    'a load command',
  )
  t.ok(
    commands.some((c) => c.startsWith('npm run drill')),
    'a drill command',
  )
  t.not(spawnSync('bash', ['-c', 'command -v k6'], { env }).status, 0, "k6 is not on the newcomer's PATH")
})

void t.test("when a newcomer runs the README's walk-through commands as written, then every one succeeds", async (t) => {
  // `ops/stack up` reinstalls the npm packages (npm ci) when they were not installed from this package-lock.json;
  // under the suite ops/test has just installed them, but a node_modules shared between checkouts (a symlink) would be
  // wiped for all of them.
  const stamp = resolve(ROOT, 'node_modules/.opsdrill-lock')
  if (!existsSync(stamp) || !readFileSync(stamp).equals(readFileSync(resolve(ROOT, 'package-lock.json')))) {
    t.fail('node_modules was not installed from this package-lock.json: run ops/test, which installs it first')
    return
  }
  await stack.down()
  for (const command of walkthroughCommands(readFileSync(resolve(ROOT, 'README.md'), 'utf8'))) {
    const started = Date.now()
    const { code, output } = await bash(command)
    t.comment(`${command}: exit ${code} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
    if (code !== 0) {
      // Its output first, then a one-line failure that the run's recap can show whole: the command and its last line.
      t.comment(output)
      const last = output.trim().split('\n').at(-1) ?? ''
      t.fail(`README walk-through: \`${command}\` exited ${code}; its last line: ${last.slice(0, 200)}`)
      return
    }
    t.pass(command)
  }
})
