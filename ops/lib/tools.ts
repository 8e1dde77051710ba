// The tools ops/lib/bootstrap.sh builds into ~/.cache/opsdrill/bin (k6, toxiproxy, the linters) are found there,
// whatever PATH holds: `ops/stack up` installs them, but only its own shell gets the folder on PATH, and the README's
// next command (`npm run load`, `npm run drill`) runs from the user's shell.
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

/** The cache folder of ops/lib/bootstrap.sh (OPSDRILL_CACHE, default ~/.cache/opsdrill). */
export const OPSDRILL_CACHE = process.env.OPSDRILL_CACHE || join(homedir(), '.cache/opsdrill')

export type CachedTool =
  | 'k6'
  | 'toxiproxy-server'
  | 'toxiproxy-cli'
  | 'actionlint'
  | 'kubeconform'
  | 'kustomize'
  | 'hadolint'
  | 'victoria-logs'
  | 'otelcol-opsdrill'
  | 'act'

/** The cached build of a tool; the bare name (looked up on PATH) when the cache has none. */
export function tool(name: CachedTool): string {
  const cached = join(OPSDRILL_CACHE, 'bin', name)
  return existsSync(cached) ? cached : name
}
