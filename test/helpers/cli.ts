// The operator CLI (ops/cli.ts) as a user runs it: its own process, only the environment it is given, and PATH.
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'

const CLI = resolve(import.meta.dirname, '../../ops/cli.ts')

export function cli(args: string[], env: Record<string, string>): { code: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 20_000 })
  return { code: res.status, stdout: res.stdout, stderr: res.stderr }
}
