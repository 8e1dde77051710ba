// A fixed CPU share for one running process, the way Kubernetes gives a pod its CPU: a CFS quota (cgroup v2
// `cpu.max`, v1 `cpu.cfs_quota_us`) caps it, a high weight keeps it while other work competes. The capacity runs give
// each API replica the half core k8s/base/api.yaml requests for a pod, so one replica is the bottleneck and a second
// brings a share of its own.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const V2 = '/sys/fs/cgroup'
const V1 = '/sys/fs/cgroup/cpu'
const PERIOD_US = 100_000

function root(): { dir: string; v2: boolean } {
  if (existsSync(join(V2, 'cgroup.controllers')) && readFileSync(join(V2, 'cgroup.controllers'), 'utf8').includes('cpu'))
    return { dir: join(V2, 'opsdrill'), v2: true }
  if (existsSync(join(V1, 'cpu.cfs_quota_us'))) return { dir: join(V1, 'opsdrill'), v2: false }
  throw new Error(
    'no cgroup cpu controller at /sys/fs/cgroup: a per-replica CPU limit needs one (run as root on Linux, or in a container with a writable cgroup fs)',
  )
}

/**
 * Moves process `pid` (all its threads) into cgroup opsdrill/<name>, held to `cores`; returns the undo. The quota is
 * per `periodUs` (100 ms, the kernel's default) and at least 1 ms: a longer period allows a smaller share, in stalls
 * as long as the period.
 */
export function limitCpu(name: string, pid: number, cores: number, periodUs = PERIOD_US): () => void {
  const { dir: base, v2 } = root()
  const dir = join(base, name)
  try {
    if (v2 && !existsSync(base)) {
      mkdirSync(base)
      writeFileSync(join(base, 'cgroup.subtree_control'), '+cpu')
    }
    mkdirSync(dir, { recursive: true })
    const quota = Math.max(1000, Math.round(cores * periodUs))
    // The quota caps the process at `cores`; the weight keeps them for it while other work on the box competes (a
    // process of the root group weighs 1024 in v1, 100 in v2), as a pod's CPU request is kept for it by the kubelet.
    if (v2) {
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${periodUs}`)
      writeFileSync(join(dir, 'cpu.weight'), '2000')
    } else {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs))
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota))
      writeFileSync(join(dir, 'cpu.shares'), String(20 * 1024))
    }
    writeFileSync(join(dir, 'cgroup.procs'), String(pid))
  } catch (err) {
    throw new Error(`could not limit ${name} (pid ${pid}) to ${cores} core(s) in ${dir}: ${(err as Error).message}`, { cause: err })
  }
  return () => {
    // A cgroup is removable once empty: the process has exited, or moves back to the root here; the opsdrill group
    // goes with its last member (rmdir refuses while another replica's group is in it).
    try {
      for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
        writeFileSync(join(dir, '..', '..', 'cgroup.procs'), p)
      rmdirSync(dir)
      rmdirSync(base)
    } catch {
      /* already gone */
    }
  }
}
