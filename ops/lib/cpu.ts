// CPU time of the whole box from /proc/stat: what `npm run load` and the scale-out drill report next to their
// throughput, since on a shared box a replica that adds no throughput usually found no idle CPU to use.
import { readFileSync } from 'node:fs'

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
