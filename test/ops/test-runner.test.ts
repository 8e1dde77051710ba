// The test runner's counting (ops/lib/tap.ts) driven through real tap runs over small fixture files
// (test/fixtures/tap/*.fixture.ts: named so the suite itself never picks them up).
import t from 'tap'
import { resolve } from 'node:path'
import { recapLines, runTap, tallyLine, tallyOk, type Tally } from '../../ops/lib/tap.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const fixture = (name: string) => `test/fixtures/tap/${name}.fixture.ts`
// The tap running this file marks its children through TAP* variables; the inner tap must run as a top-level one.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TAP')))

async function run(files: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ tally: Tally; out: string }> {
  let out = ''
  const tally = await runTap(files, { root: ROOT, jobs: 2, env: { ...env, ...extraEnv }, timeoutSec: 60, write: (s) => (out += s) })
  return { tally, out }
}

void t.test('when files pass, fail, skip and crash, then each is counted apart and the run fails', async (t) => {
  const { tally, out } = await run(['pass', 'fail', 'skip', 'crash'].map(fixture))
  // pass: 2, fail: 1 + 1 failed, skip: 1 + 1 skipped, crash: 1 + the file failing outside its tests.
  t.same({ passed: tally.passed, failed: tally.failed, skipped: tally.skipped }, { passed: 5, failed: 2, skipped: 1 })
  t.equal(tallyLine(tally), '5 passed, 2 failed, 1 skipped')
  t.same(tally.problems, [])
  t.equal(tallyOk(tally), false)
  t.match(out, /^ok +test\/fixtures\/tap\/skip\.fixture\.ts \(1 passed, 1 skipped/m, 'the skip shows on its file line')
  t.match(out, /^FAIL +test\/fixtures\/tap\/fail\.fixture\.ts .*\n +not ok: this one fails\n/m, 'the failing test is named')
  t.match(out, /^ +-3\n +\+2$/m, 'with its diff')
  t.match(out, /^FAIL +test\/fixtures\/tap\/crash\.fixture\.ts \(1 passed, 1 failed, exit code 1/m, 'the crash shows its exit code')
  t.match(out, /not ok: \(the file failed outside its tests\)/)
  // The recap above the tally line names each failing file with its inner failing assertions, one line each.
  const recap = recapLines(tally)
  t.match(recap, /^failed:\n/, 'the recap starts with its heading')
  t.match(recap, /^ {2}test\/fixtures\/tap\/fail\.fixture\.ts: .*arithmetic is wrong on purpose/m, 'it names the failing assertion')
  t.match(recap, /^ {2}test\/fixtures\/tap\/crash\.fixture\.ts: /m, 'and the crashed file')
  t.equal(recap.split('\n').length, 4, 'one line per failed file')
})

void t.test('when only skips and passes come back, then the run passes and shows the skip', async (t) => {
  const { tally } = await run([fixture('skip'), fixture('pass')])
  t.equal(tallyLine(tally), '3 passed, 0 failed, 1 skipped')
  t.equal(tallyOk(tally), true)
})

void t.test('when a file handed to tap never reports, then the run fails and names it', async (t) => {
  const { tally, out } = await run([fixture('pass'), fixture('missing')])
  t.equal(tally.failed, 0, 'no test failed')
  t.same(tally.problems, ['1 file(s) never reported: test/fixtures/tap/missing.fixture.ts'])
  t.equal(tallyOk(tally), false)
  t.match(out, /^FAIL +1 file\(s\) never reported/m)
})

void t.test('when tap itself exits non-zero, then the run fails', async (t) => {
  // Node refuses to start tap with this option: no file runs, tap exits 9.
  const { tally } = await run([fixture('pass')], { NODE_OPTIONS: '--not-an-option' })
  t.equal(tally.failed, 0)
  t.match(tally.problems, [/never reported/, /tap exited with 9/])
  t.equal(tallyOk(tally), false)
})
