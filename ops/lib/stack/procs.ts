// Process supervision for the native stack: start detached with a log file, check, stop by pid with a bound,
// wait for health, and say which process holds a busy port.
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, openSync, closeSync } from 'node:fs'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { portOpen } from '../localdb.ts'

export interface StartSpec {
  name: string
  argv: string[]
  env?: NodeJS.ProcessEnv
  cwd: string
  logFile: string
}

/** Starts argv detached (own process group, survives this CLI), stdout+stderr appended to logFile; returns the pid. */
export function startDetached(spec: StartSpec): number {
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
    return child.pid
  } finally {
    closeSync(fd)
  }
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  // A zombie (exited, not yet reaped by its parent) still answers kill(0).
  const stat = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim()
  return stat !== '' && !stat.startsWith('Z')
}

/** SIGTERM, then SIGKILL when the process outlives graceMs. Resolves once it is gone. */
export async function stopPid(pid: number | undefined, graceMs: number): Promise<'gone' | 'terminated' | 'killed'> {
  if (!alive(pid)) return 'gone'
  signal(pid!, 'SIGTERM')
  const until = Date.now() + graceMs
  while (Date.now() < until) {
    if (!alive(pid)) return 'terminated'
    await sleep(50)
  }
  signal(pid!, 'SIGKILL')
  while (alive(pid)) await sleep(20)
  return 'killed'
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    /* already gone */
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

export type Probe = { http: string } | { port: number }

/** One health check; an HTTP probe waits timeoutMs for the answer. */
export async function probeOk(probe: Probe, timeoutMs = 1000): Promise<boolean> {
  return 'http' in probe ? (await httpStatus(probe.http, timeoutMs)) === 200 : portOpen(probe.port)
}

/** Waits until probe answers; fails early when pid dies, naming its log. */
export async function waitHealthy(name: string, probe: Probe, opts: { pid?: number; timeoutMs: number; logFile?: string }): Promise<void> {
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
