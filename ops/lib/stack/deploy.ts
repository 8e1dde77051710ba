// `npm run stack -- deploy <git-ref>`: a rolling deployment of one commit onto the native stack, and its rollback.
//
//   1. resolve the ref to a commit; build .run/releases/<sha>/ from `git archive` (node_modules linked when the
//      lock file is the checkout's, else `npm ci --omit=dev`);
//   2. run the release's migrations against the stack's database (expand-only: the old code keeps working);
//   3. replace the API replicas one at a time (out of nginx, SIGTERM, start, /readyz within 60 s, back into nginx),
//      then the workers (SIGTERM lets them finish their active jobs);
//   4. gate on the k6 smoke scenario through nginx;
//   5. when a replica never gets ready or the gate fails, replace every replica back to the release that ran before.
//
// Which replica runs what is in the stack state (Part.release); the history of deploys, which `--rollback` walks
// back, is <stack dir>/deploys.json. The checkout (ROOT at its HEAD) is the release a fresh stack runs.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { runK6 } from '../k6.ts'
import { ROOT, StackError, type Part, type Release, type Stack } from './index.ts'

export const RELEASES_DIR = join(ROOT, '.run/releases')
/** Written last into a release folder: a folder without it is a build that was interrupted. */
const COMPLETE_MARK = '.opsdrill-release'

/** A deploy that cannot start (unknown ref, no stack, nothing to roll back to): exit 2, nothing was touched. */
export class DeployUsageError extends Error {}

export interface DeployOptions {
  /** Branch, tag or commit to deploy; ignored with rollback. */
  ref?: string
  /** Roll back to the release that ran before the current one (deploys.json), health-gated, no smoke gate. */
  rollback?: boolean
  /** The git repository the ref lives in; default the checkout. */
  repo?: string
  log?: (line: string) => void
}

export interface DeployResult {
  /** `rolled back`: the deploy failed and the previous release runs again. An explicit rollback that worked is `deployed`. */
  outcome: 'deployed' | 'rolled back' | 'unchanged'
  from: Release
  to: Release
  /** Why the deploy was rolled back. */
  reason?: string
  /** Wall time of the whole command, of the rolling replacement, and of the automatic rollback. */
  ms: { total: number; replace: number; gate?: number; rollback?: number }
}

interface HistoryEntry {
  at: string
  outcome: 'deployed' | 'rolled back' | 'rollback'
  from: Release
  to: Release
  reason?: string
}

/** One rollout at a time, and no supervisor restart in the middle of one: the whole deploy holds the stack's lock. */
export async function deploy(stack: Stack, opts: DeployOptions): Promise<DeployResult> {
  return stack.exclusive('deploy', () => rollout(stack, opts))
}

async function rollout(stack: Stack, opts: DeployOptions): Promise<DeployResult> {
  const say = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`))
  const t0 = Date.now()
  if (stack.replicas('api').length === 0) {
    throw new DeployUsageError(`no stack is running from ${stack.dir}: start it with \`npm run stack -- up\``)
  }
  if (opts.rollback) {
    const from = currentRelease(stack)
    const last = readHistory(stack)
      .reverse()
      .find((e) => e.outcome === 'deployed' && sameRelease(e.to, from))
    if (!last) throw new DeployUsageError(`nothing to roll back to: ${describe(from)} was not put there by a deploy`)
    say(`==> rollback: ${describe(from)} -> ${describe(last.from)}`)
    const t1 = Date.now()
    await replaceAll(stack, last.from, say)
    appendHistory(stack, { at: new Date().toISOString(), outcome: 'rollback', from, to: last.from })
    const ms = Date.now() - t1
    say(`==> rolled back to ${describe(last.from)} in ${secs(ms)}`)
    return { outcome: 'deployed', from, to: last.from, ms: { total: Date.now() - t0, replace: ms } }
  }

  if (!opts.ref) throw new DeployUsageError('deploy needs a git ref (branch, tag or commit), or --rollback')
  const repo = resolve(opts.repo ?? ROOT)
  const sha = resolveRef(repo, opts.ref)
  say(`==> deploy ${opts.ref} = ${sha}${repo === ROOT ? '' : ` (from ${repo})`}`)
  const to = { sha, dir: buildRelease(repo, sha, say) }
  const from = currentRelease(stack, to)
  say(`    running now: ${describe(from)}`)
  if ([...stack.replicas('api'), ...stack.replicas('worker')].every((r) => sameRelease(r.release, to))) {
    say(`==> every replica already runs ${describe(to)}: nothing to do`)
    return { outcome: 'unchanged', from, to, ms: { total: Date.now() - t0, replace: 0 } }
  }
  migrate(stack, to, say)

  const t1 = Date.now()
  let reason: string | undefined
  let failed: string | undefined
  try {
    await replaceAll(stack, to, say, (name) => (failed = name))
  } catch (err) {
    reason = `${failed ?? 'a replica'} did not become ready: ${(err as Error).message}`
  }
  const replace = Date.now() - t1
  let gate: number | undefined
  if (!reason) {
    say(`==> every replica runs ${describe(to)} (${secs(replace)}); smoke gate`)
    const t2 = Date.now()
    reason = await smokeGate(stack, say)
    gate = Date.now() - t2
  }

  if (!reason) {
    appendHistory(stack, { at: new Date().toISOString(), outcome: 'deployed', from, to })
    const total = Date.now() - t0
    say(`==> deployed ${describe(to)} in ${secs(total)} (replacement ${secs(replace)}, smoke gate ${secs(gate!)})`)
    return { outcome: 'deployed', from, to, ms: { total, replace, ...(gate !== undefined ? { gate } : {}) } }
  }

  say(`==> ${reason}: rolling back to ${describe(from)}`)
  const t3 = Date.now()
  try {
    await replaceAll(stack, from, say, undefined, failed)
  } catch (err) {
    throw new StackError(
      `${reason}; the rollback to ${describe(from)} failed too (${(err as Error).message}): see \`npm run stack -- status\``,
    )
  }
  const rollback = Date.now() - t3
  appendHistory(stack, { at: new Date().toISOString(), outcome: 'rolled back', from, to, reason })
  say(`==> rolled back to ${describe(from)} in ${secs(rollback)}`)
  return {
    outcome: 'rolled back',
    from,
    to,
    reason,
    ms: { total: Date.now() - t0, replace, ...(gate !== undefined ? { gate } : {}), rollback },
  }
}

/**
 * The release the replicas run. They agree unless a deploy was cut short; then, when deploying `target` again (which
 * skips the replicas already on it), the one to roll back to is the release of a replica not on it yet.
 */
export function currentRelease(stack: Stack, target?: Release): Release {
  const parts = [...stack.replicas('api'), ...stack.replicas('worker')]
  const older = target ? parts.find((p) => !sameRelease(p.release, target)) : undefined
  return (older ?? parts[0])?.release ?? checkoutRelease()
}

/** The checkout as a release: what `up` starts when no deploy has happened. */
export function checkoutRelease(): Release {
  const head = spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' })
  if (head.status !== 0) throw new StackError(`cannot read the checkout's commit: ${head.stderr.trim()}`)
  return { sha: head.stdout.trim(), dir: ROOT }
}

/** `1e7ac836ea9c` for a built release (.run/releases/<sha>), `9d7efc5fdef6 (checkout)` for the checkout. */
export function describe(r: Release): string {
  return `${r.sha.slice(0, 12)}${resolve(r.dir) === ROOT ? ' (checkout)' : ''}`
}

function sameRelease(a: Release | undefined, b: Release): boolean {
  const x = a ?? checkoutRelease()
  return x.sha === b.sha && resolve(x.dir) === resolve(b.dir)
}

function resolveRef(repo: string, ref: string): string {
  const res = spawnSync('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { encoding: 'utf8' })
  if (res.status !== 0) throw new DeployUsageError(`unknown git ref "${ref}" in ${repo}`)
  return res.stdout.trim()
}

/**
 * .run/releases/<sha>/: the commit's files from `git archive`, with node_modules. Built into a temporary folder and
 * renamed, so a folder that exists is complete and is reused as is.
 */
function buildRelease(repo: string, sha: string, say: (line: string) => void): string {
  const dir = join(RELEASES_DIR, sha)
  if (existsSync(join(dir, COMPLETE_MARK))) {
    say(`==> release ${relative(ROOT, dir)}: already built`)
    return dir
  }
  rmSync(dir, { recursive: true, force: true })
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp, { recursive: true })
  try {
    const archive = spawnSync('sh', ['-c', 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', 'sh', repo, sha, tmp], {
      encoding: 'utf8',
    })
    if (archive.status !== 0) throw new StackError(`git archive of ${sha} failed: ${archive.stderr.trim()}`)
    const lock = (root: string) =>
      existsSync(join(root, 'package-lock.json')) ? readFileSync(join(root, 'package-lock.json'), 'utf8') : ''
    if (lock(tmp) === lock(ROOT) && existsSync(join(ROOT, 'node_modules'))) {
      symlinkSync(join(ROOT, 'node_modules'), join(tmp, 'node_modules'))
      say("    node_modules: package-lock.json is the checkout's: linked to the checkout's node_modules")
    } else {
      say("    node_modules: package-lock.json differs from the checkout's: npm ci --omit=dev")
      const ci = spawnSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: tmp, encoding: 'utf8' })
      if (ci.status !== 0) throw new StackError(`npm ci in the release failed: ${lastLine(ci.stderr || ci.stdout)}`)
    }
    writeFileSync(join(tmp, COMPLETE_MARK), `${sha}\n`)
    renameSync(tmp, dir)
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true })
    throw err
  }
  say(`==> release ${relative(ROOT, dir)}: built`)
  return dir
}

/**
 * The release's migrations, before any of its code runs. The replicas still on the old release share the database
 * while the new ones start, and a rollback does not undo migrations: they must be expand-only (add, never drop or
 * rename), so both releases work on the migrated schema.
 */
function migrate(stack: Stack, release: Release, say: (line: string) => void): void {
  say(`==> migrations from ${describe(release)}`)
  const mig = spawnSync(process.execPath, ['ops/migrate.ts'], {
    cwd: release.dir,
    env: { ...process.env, DATABASE_URL: stack.databaseUrl },
    encoding: 'utf8',
  })
  if (mig.status !== 0)
    throw new StackError(`migrations of ${describe(release)} failed, no replica was replaced: ${lastLine(mig.stderr || mig.stdout)}`)
  say(`    ${mig.stdout.trim()}`)
}

/**
 * Replaces every API replica, then every worker, one at a time with `release`, skipping those that already run it.
 * `first` goes first: on rollback, the replica that failed its health gate is out of nginx, and must be back before
 * another one is drained. Throws on the first replica that does not get ready, after naming it to `failing`.
 */
async function replaceAll(
  stack: Stack,
  release: Release,
  say: (line: string) => void,
  failing?: (name: string) => void,
  first?: string,
): Promise<void> {
  await stack.setRelease(release)
  const order = (parts: Part[]) => [...parts.filter((p) => p.name === first), ...parts.filter((p) => p.name !== first)]
  for (const kind of ['api', 'worker'] as const) {
    for (const part of order(stack.replicas(kind))) {
      if (sameRelease(part.release, release) && part.name !== first) continue
      say(`==> ${part.name}: ${describe(part.release ?? checkoutRelease())} -> ${describe(release)}`)
      const t0 = Date.now()
      try {
        await stack.restartReplica(part.name, undefined, release)
      } catch (err) {
        failing?.(part.name)
        throw err
      }
      say(`    ${part.name}: replaced in ${secs(Date.now() - t0)}`)
    }
  }
}

/** The k6 smoke scenario through nginx (the same script and thresholds as the cd workflow's gate); the reason it failed. */
async function smokeGate(stack: Stack, say: (line: string) => void): Promise<string | undefined> {
  try {
    const run = await runK6({ scenario: 'smoke', short: true, baseUrl: stack.baseUrl, label: 'deploy-gate', log: say })
    if (run.thresholdsHeld) return undefined
    return `smoke gate failed (k6 exit ${run.exitCode}${run.failedThresholds.length ? `; thresholds crossed: ${run.failedThresholds.join(', ')}` : ''}; ${run.dir})`
  } catch (err) {
    return `smoke gate failed: ${lastLine((err as Error).message)}`
  }
}

function historyFile(stack: Stack): string {
  return join(stack.dir, 'deploys.json')
}

function readHistory(stack: Stack): HistoryEntry[] {
  const file = historyFile(stack)
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as HistoryEntry[]) : []
}

function appendHistory(stack: Stack, entry: HistoryEntry): void {
  writeFileSync(historyFile(stack), JSON.stringify([...readHistory(stack), entry], null, 2) + '\n')
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? ''
}
