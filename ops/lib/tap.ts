// Runs tap over a list of files and counts what it reports with tap's own parser (tap-parser), one line per file.
// The unit counted is a file's first-level test (a `t.test` or a top-level assertion): passed, failed, or skipped
// (`# SKIP`, and a file with no test at all). The run is a failure when a test fails, when a file handed to tap
// never reports back, or when tap itself exits non-zero.
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { Parser, type Result } from 'tap-parser'

export interface Tally {
  passed: number
  failed: number
  skipped: number
  /** What fails the run besides a failed test: a file that never reported, tap's own exit status. */
  problems: string[]
  /** One line per failed file: its failing assertions, each cut to one short line (the run's recap). */
  recap: string[]
}

export const emptyTally = (): Tally => ({ passed: 0, failed: 0, skipped: 0, problems: [], recap: [] })

export function addTally(into: Tally, t: Tally): void {
  into.passed += t.passed
  into.failed += t.failed
  into.skipped += t.skipped
  into.problems.push(...t.problems)
  into.recap.push(...t.recap)
}

/**
 * The recap printed just above the tally line, so that the end of a long run's output (what a CI page shows) still
 * names what failed and why, however long the failures' own output was.
 */
export function recapLines(t: Tally): string {
  return t.recap.length ? `failed:\n${t.recap.map((l) => `  ${l}\n`).join('')}` : ''
}

export function tallyLine(t: Tally): string {
  return `${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`
}

export const tallyOk = (t: Tally): boolean => t.failed === 0 && t.problems.length === 0 && t.passed > 0

export interface TapOptions {
  root: string
  jobs: number
  env: NodeJS.ProcessEnv
  timeoutSec: number
  write?: (text: string) => void
}

interface FileState {
  failures: string[]
  lines: string[]
  counted: number
  passed: number
  skipped: number
}

const fresh = (): FileState => ({ failures: [], lines: [], counted: 0, passed: 0, skipped: 0 })

export function runTap(files: string[], o: TapOptions): Promise<Tally> {
  const write = o.write ?? ((s: string) => void process.stdout.write(s))
  const tally = emptyTally()
  const state = new Map<string, FileState>()
  const reported = new Set<string>()
  const parser = new Parser()
  // Each file is one child of the root stream; its own test points are the file's first-level tests.
  parser.on('child', (file: Parser) => {
    const s = fresh()
    state.set(file.name, s)
    file.on('line', (l: string) => s.lines.push(l))
    file.on('assert', (a: Result) => {
      s.counted++
      if (a.skip || a.todo) {
        tally.skipped++
        s.skipped++
      } else if (a.ok) {
        tally.passed++
        s.passed++
      } else {
        tally.failed++
        s.failures.push(a.name)
      }
    })
  })
  parser.on('assert', (a: Result) => {
    reported.add(a.name)
    const s = state.get(a.name) ?? fresh()
    if (s.counted === 0) {
      if (a.skip) tally.skipped++
      else if (a.ok) tally.passed++
      else tally.failed++
    } else if (!a.ok && s.failures.length === 0) {
      tally.failed++
      s.failures.push('(the file failed outside its tests)')
    }
    const diag = (a.diag ?? {}) as { exitCode?: number | null; signal?: string | null }
    const note = [
      s.counted ? `${s.passed} passed` : '',
      s.failures.length ? `${s.failures.length} failed` : '',
      s.skipped ? `${s.skipped} skipped` : '',
      a.skip ? `SKIP ${a.skip === true ? '' : a.skip}`.trim() : '',
      !a.ok && diag.exitCode ? `exit code ${diag.exitCode}` : '',
      !a.ok && diag.signal ? `signal ${diag.signal}` : '',
      a.time ? `${Math.round(a.time)} ms` : '',
    ].filter(Boolean)
    write(`${a.ok ? 'ok    ' : 'FAIL  '} ${a.name}${note.length ? ` (${note.join(', ')})` : ''}\n`)
    if (!a.ok) {
      for (const f of s.failures) write(`      not ok: ${f}\n`)
      write(failureExcerpt(s.lines))
      const short = (l: string) => (l.length > 160 ? `${l.slice(0, 157)}...` : l)
      const inner = s.lines
        .map((l) => /^\s*not ok \d+ - (.*)$/.exec(l.trimEnd())?.[1])
        .filter((l): l is string => Boolean(l))
        .map((l) => short(l.replace(/ # time=.*$/, '')))
      tally.recap.push(`${a.name}: ${(inner.length ? inner : s.failures).slice(0, 6).join(' | ')}`)
    }
  })
  return new Promise((done) => {
    const child = spawn(
      resolve(o.root, 'node_modules/.bin/tap'),
      ['--reporter=tap', `--jobs=${o.jobs}`, `--timeout=${o.timeoutSec}`, ...files],
      { cwd: o.root, env: o.env, stdio: ['ignore', 'pipe', 'inherit'] },
    )
    child.stdout.pipe(parser)
    const parsed = new Promise((r) => parser.on('complete', r))
    child.on('close', async (code, signal) => {
      await parsed
      const missing = files.filter((f) => !reported.has(f))
      if (missing.length) tally.problems.push(`${missing.length} file(s) never reported: ${missing.join(', ')}`)
      if (code !== 0 && (tally.failed === 0 || code === null))
        tally.problems.push(`tap exited with ${code ?? signal} although no test failed`)
      for (const p of tally.problems) write(`FAIL   ${p}\n`)
      done(tally)
    })
  })
}

/** The failing assertions of a file's TAP output, with their diffs and locations: enough to act on. */
function failureExcerpt(lines: string[]): string {
  const keep =
    /not ok|^\s+[-+][^-+]|^\s+(message|found|wanted|error|code|lineNumber|fileName|stdout|stderr|exitCode|signal):|^\s+[A-Z][a-zA-Z]*Error\b/
  const out = lines.filter((l) => keep.test(l)).slice(0, 80)
  return out.length ? out.map((l) => `      ${l.trim()}`).join('\n') + '\n' : ''
}
