// Process supervision for the native stack: start detached with a log file, check, stop by pid with a bound,
// wait for health, and say which process holds a busy port.
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createConnection } from 'node:net'

export interface StartSpec {
  name: string
  argv: string[]
  env?: NodeJS.ProcessEnv
  cwd: string
  logFile: string
}

/** Starts argv detached (own process group, survives this CLI), stdout+stderr appended to logFile; returns its identity. */
export function startDetached(spec: StartSpec): ProcId {
  mkdirSync(dirname(spec.logFile), { recursive: true })
  const fd = openSync(spec.logFile, 'a')
  try {
    const child = spawn(spec.argv[0]!, spec.argv.slice(1), {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    })
    if (child.pid === undefined)
      throw new Error(`${spec.name}: could not start ${spec.argv[0]} (is it installed? run ops/stack up, which installs it)`)
    child.unref()
    // Read at once: the child is ours until this process exits, so even one that already exited is not yet reaped.
    return identify(child.pid) ?? { pid: child.pid }
  } finally {
    closeSync(fd)
  }
}

/**
 * A process as this machine knows it: its pid, and when it started (field 22 of /proc/<pid>/stat, clock ticks since
 * boot) on which boot. A recorded pid outlives its process (state.json survives reboots, and the kernel reuses pids):
 * only a process with the same start time on the same boot is the one that was recorded.
 */
export interface ProcId {
  pid: number
  startTime?: number
  bootId?: string
}

let bootIdCache: string | undefined
function bootId(): string {
  bootIdCache ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  return bootIdCache
}

/**
 * The fields of /proc/<pid>/stat after the command name (field 2, which may hold spaces and parentheses): element 0
 * is field 3 (state), element n is field n + 3. Undefined when the process is gone.
 */
export function procStat(pid: number): string[] | undefined {
  let line: string
  try {
    line = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  return line.slice(line.lastIndexOf(')') + 2).split(' ')
}

/** Field 3 (state) and field 22 (starttime) of /proc/<pid>/stat. */
function stat(pid: number): { state: string; startTime: number } | undefined {
  const rest = procStat(pid)
  return rest && { state: rest[0]!, startTime: Number(rest[19]) }
}

/** The identity of a running process (not a zombie), to record when it is started; undefined when it is gone. */
export function identify(pid: number | undefined): ProcId | undefined {
  if (!pid) return undefined
  const st = stat(pid)
  if (!st || st.state === 'Z') return undefined
  return { pid, startTime: st.startTime, bootId: bootId() }
}

/**
 * True while the process runs and is not a zombie. Given a recorded identity, only when the pid is still that process:
 * a record without a start time, or one of another boot, is stale and reads as gone.
 */
export function alive(p: number | ProcId | undefined): boolean {
  if (p === undefined) return false
  const id = typeof p === 'number' ? { pid: p } : p
  if (!id.pid || !Number.isInteger(id.pid) || id.pid <= 0) return false
  const st = stat(id.pid)
  if (!st || st.state === 'Z') return false
  if (typeof p === 'number') return true
  return id.startTime === st.startTime && id.bootId === bootId()
}

/** SIGTERM, then SIGKILL when the process outlives graceMs. Resolves once it is gone; a stale record is never signalled. */
export async function stopPid(p: ProcId | undefined, graceMs: number): Promise<'gone' | 'terminated' | 'killed'> {
  if (!p || !signal(p, 'SIGTERM')) return 'gone'
  const until = Date.now() + graceMs
  while (Date.now() < until) {
    if (!alive(p)) return 'terminated'
    await sleep(50)
  }
  signal(p, 'SIGKILL')
  while (alive(p)) await sleep(20)
  return 'killed'
}

/** Sends sig only when the process is still the recorded one; false when it is gone (or the pid now names another). */
export function signal(p: ProcId, sig: NodeJS.Signals): boolean {
  if (!alive(p)) return false
  try {
    process.kill(p.pid, sig)
    return true
  } catch {
    return false
  }
}

/** "nginx (pid 1234)" for whatever listens on port, from `ss`; undefined when nothing (or nothing visible) does. */
export function portOwner(port: number): string | undefined {
  const out = spawnSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' }).stdout ?? ''
  if (!out.trim()) return undefined
  const m = out.match(/users:\(\("([^"]+)",pid=(\d+)/)
  return m ? `${m[1]} (pid ${m[2]})` : 'another process'
}

export async function httpStatus(url: string, timeoutMs = 1000): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    await res.arrayBuffer()
    return res.status
  } catch {
    return undefined
  }
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host })
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })
}

export type Probe = { http: string } | { port: number }

/** One health check; an HTTP probe waits timeoutMs for the answer. */
export async function probeOk(probe: Probe, timeoutMs = 1000): Promise<boolean> {
  return 'http' in probe ? (await httpStatus(probe.http, timeoutMs)) === 200 : portOpen(probe.port)
}

/** Waits until probe answers; fails early when pid dies, naming its log. */
export async function waitHealthy(name: string, probe: Probe, opts: { pid?: ProcId; timeoutMs: number; logFile?: string }): Promise<void> {
  const until = Date.now() + opts.timeoutMs
  while (Date.now() < until) {
    if (await probeOk(probe)) return
    if (opts.pid !== undefined && !alive(opts.pid)) {
      throw new Error(`${name} exited during start-up${opts.logFile ? `: see ${opts.logFile}` : ''}`)
    }
    await sleep(150)
  }
  const what = 'http' in probe ? `${probe.http} did not answer 200` : `port ${probe.port} did not open`
  throw new Error(`${name} not healthy after ${opts.timeoutMs / 1000} s (${what})${opts.logFile ? `: see ${opts.logFile}` : ''}`)
}
