// The code itself: types, lint, format, the dependency rule, and no focused tests. Each tool's own output on failure.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const bin = (name: string) => resolve(ROOT, 'node_modules/.bin', name)

function run(cmd: string, args: string[]) {
  const res = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 32 * 1024 * 1024 })
  return { code: res.status, out: `${res.stdout}${res.stderr}`.trim().split('\n').slice(-40).join('\n') }
}

void t.test('when the sources are type-checked in strict mode, then tsc reports nothing', async (t) => {
  const r = run(bin('tsc'), ['--noEmit', '-p', '.'])
  t.equal(r.code, 0, r.out)
})

void t.test(
  'when the k6 scenarios are type-checked, then tsc reports nothing',
  { skip: !pathExists('loadtests/tsconfig.json') && 'no loadtests yet' },
  async (t) => {
    const r = run(bin('tsc'), ['--noEmit', '-p', 'loadtests'])
    t.equal(r.code, 0, r.out)
  },
)

void t.test('when the sources are linted, then eslint reports nothing', async (t) => {
  const r = run(bin('eslint'), ['--max-warnings=0', '.'])
  t.equal(r.code, 0, r.out)
})

void t.test('when formatting is checked, then prettier finds every file formatted', async (t) => {
  const r = run(bin('prettier'), ['--check', '**/*.{ts,js,cjs,mjs}'])
  t.equal(r.code, 0, r.out)
})

void t.test(
  'when imports are cruised, then service/ and worker/ share code only through common/ and load only packages in dependencies',
  async (t) => {
    const r = run(bin('depcruise'), ['--config', '.dependency-cruiser.cjs', 'common', 'service', 'worker', 'ops'])
    t.equal(r.code, 0, r.out)
  },
)

void t.test('when the tests are searched, then none is focused with .only', async (t) => {
  const r = run('git', ['grep', '-nE', String.raw`\b(t|tap|test|it|describe)\.only\(`, '--', '*.ts', ':!test/static/code.test.ts'])
  t.equal(r.out, '', 'focused tests found')
})

void t.test('when the operator code is searched, then each shared helper is defined in one place', async (t) => {
  const helpers: [string, string, string][] = [
    ['pid-alive check', String.raw`process\.kill\([^,]+, 0\)|/proc/\$\{[^}]+\}/stat`, 'ops/lib/stack/procs.ts'],
    ['CPU-tick reader', String.raw`readFileSync\('/proc/stat'`, 'ops/lib/cpu.ts'],
    ['clicks queue', String.raw`new Queue(<[^>]*>)?\(QUEUES\.clicks`, 'ops/lib/backlog.ts'],
    ['recovery POST', String.raw`drill/recovered`, 'ops/lib/drills/fault.ts'],
    // One k6 runner (STYLE.md): the binary, its command line and its REST API are ops/lib/k6.ts's alone.
    ['k6 process', String.raw`tool\('k6'\)`, 'ops/lib/k6.ts'],
    ['k6 command line', String.raw`'--summary-export'`, 'ops/lib/k6.ts'],
    ['k6 REST API', String.raw`/v1/(metrics|status)`, 'ops/lib/k6.ts'],
  ]
  for (const [name, re, home] of helpers) {
    const r = run('git', ['grep', '--untracked', '-lE', re, '--', 'ops', 'common', 'test/ops'])
    t.same(r.out.split('\n').filter(Boolean), [home], `${name}: one definition, in ${home}; import it elsewhere`)
  }
})

function pathExists(p: string): boolean {
  return spawnSync('test', ['-e', resolve(ROOT, p)]).status === 0
}
