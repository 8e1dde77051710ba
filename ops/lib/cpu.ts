// CPU time of the whole box from /proc/stat: what `npm run load` and the scale-out drill report next to their
// throughput, since on a shared box a replica that adds no throughput usually found no idle CPU to use.
import { readdirSync, readFileSync } from 'node:fs'
import { procStat } from './stack/procs.ts'

export interface CpuTicks {
  busy: number
  total: number
}

/** Busy and total jiffies of all CPUs so far (the first line of /proc/stat; idle = idle + iowait). */
export function cpuTicks(): CpuTicks {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

/** Share of all cores (0..1) busy between two readings. */
export function cpuBusy(a: CpuTicks, b: CpuTicks): number {
  return (b.busy - a.busy) / Math.max(1, b.total - a.total)
}

// Clock ticks per second of /proc's CPU times (USER_HZ): 100 on every Linux build this project runs on.
const USER_HZ = 100

/** utime, stime, cutime and cstime (seconds) and the parent pid of one process, or null when it is gone. */
function procTimes(pid: number): { self: number; reaped: number; ppid: number } | null {
  const f = procStat(pid)
  if (!f) return null
  const n = (i: number) => Number(f[i - 3])
  return { self: (n(14) + n(15)) / USER_HZ, reaped: (n(16) + n(17)) / USER_HZ, ppid: n(4) }
}

/**
 * CPU seconds a server has used so far: the process itself, the children it has reaped (a Postgres backend that
 * disconnected is counted in the postmaster's cutime) and the children alive now.
 */
export function serverCpuSeconds(pid: number): number {
  const root = procTimes(pid)
  if (!root) throw new Error(`no process ${pid}: the server whose CPU is measured has exited`)
  let total = root.self + root.reaped
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const child = procTimes(Number(entry))
    if (child && child.ppid === pid) total += child.self
  }
  return total
}
