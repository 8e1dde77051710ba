// The files through which the native stack tells nginx and Prometheus where the replicas are: nginx's upstream list
// (included by nginx/nginx.conf; it names the balancing method too) and Prometheus's file_sd target lists (read by
// prometheus/prometheus.yml).
// With the default ports these are the repository's own config files; a stack on offset ports (the test suite) gets
// copies under its state folder so it never rewrites the files of a stack a user has up.
import { existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { StackPorts } from './ports.ts'

export interface ConfigPaths {
  nginxConf: string
  upstreamFile: string
  prometheusConf: string
  targetsDir: string
  alertmanagerConf: string
}

export const PROMETHEUS_JOBS = ['opsdrill-api', 'opsdrill-worker', 'postgres', 'redis', 'prometheus', 'alertmanager'] as const
export type PrometheusJob = (typeof PROMETHEUS_JOBS)[number]
export interface Target {
  address: string
  replica: string
}

export function configPaths(root: string, stateDir: string, ports: StackPorts, offset: number): ConfigPaths {
  const alertmanagerConf = join(root, 'alertmanager/alertmanager.yml')
  if (offset === 0) {
    return {
      nginxConf: join(root, 'nginx/nginx.conf'),
      upstreamFile: join(root, 'nginx/upstreams/api.conf'),
      prometheusConf: join(root, 'prometheus/prometheus.yml'),
      targetsDir: join(root, 'prometheus/targets'),
      alertmanagerConf,
    }
  }
  // Copies that differ from the repository's files only in nginx's two listen ports.
  const nginxDir = join(stateDir, 'config/nginx')
  const promDir = join(stateDir, 'config/prometheus')
  mkdirSync(join(nginxDir, 'upstreams'), { recursive: true })
  mkdirSync(join(promDir, 'targets'), { recursive: true })
  const nginx = readFileSync(join(root, 'nginx/nginx.conf'), 'utf8')
  const moved = nginx
    .replace(/listen 8080;/, `listen ${ports.nginx};`)
    .replace(/listen 127\.0\.0\.1:8081;/, `listen 127.0.0.1:${ports.nginxStatus};`)
  if (!moved.includes(`listen ${ports.nginx};`) || !moved.includes(`127.0.0.1:${ports.nginxStatus};`)) {
    throw new Error('nginx/nginx.conf no longer has `listen 8080;` and `listen 127.0.0.1:8081;`: update ops/lib/stack/targets.ts to match')
  }
  writeFileSync(join(nginxDir, 'nginx.conf'), moved)
  writeFileSync(join(promDir, 'prometheus.yml'), readFileSync(join(root, 'prometheus/prometheus.yml')))
  const rules = join(promDir, 'rules')
  rmSync(rules, { force: true, recursive: true })
  symlinkSync(join(root, 'prometheus/rules'), rules)
  return {
    nginxConf: join(nginxDir, 'nginx.conf'),
    upstreamFile: join(nginxDir, 'upstreams/api.conf'),
    prometheusConf: join(promDir, 'prometheus.yml'),
    targetsDir: join(promDir, 'targets'),
    alertmanagerConf,
  }
}

/**
 * How nginx picks the API replica for a request: `least_conn` (the one with the fewest active requests; the default,
 * as under compose) or `round_robin` (nginx's own default, named by no directive), which the balancing comparison
 * runs side by side with it (ops/load.ts).
 */
export const BALANCING = ['least_conn', 'round_robin'] as const
export type Balancing = (typeof BALANCING)[number]

/** The body of the `upstream opsdrill_api` block of nginx/nginx.conf: the balancing method, then the server lines. */
export function upstreamConf(apiPorts: number[], balancing: Balancing = 'least_conn'): string {
  const lines = apiPorts.map((p) => `server 127.0.0.1:${p} max_fails=2 fail_timeout=5s;`)
  const method = balancing === 'least_conn' ? 'least_conn;' : '# round-robin: no method directive'
  return `# Written by ops/lib/stack (npm run stack): how nginx balances, and the API replicas it balances over.\n${method}\n${lines.join('\n')}\n`
}

/** Writes the upstream list; true when it changed (nginx then needs a reload to see it). */
export function writeUpstreams(file: string, apiPorts: number[], balancing: Balancing = 'least_conn'): boolean {
  if (apiPorts.length === 0) throw new Error('nginx needs at least one API replica: scale api to 1 or more')
  const body = upstreamConf(apiPorts, balancing)
  if (existsSync(file) && readFileSync(file, 'utf8') === body) return false
  atomicWrite(file, body)
  return true
}

export function writeTargets(dir: string, job: PrometheusJob, targets: Target[]): void {
  const body = targets.map((t) => ({ targets: [t.address], labels: { replica: t.replica } }))
  atomicWrite(join(dir, `${job}.json`), JSON.stringify(body, null, 2) + '\n')
}

export function removeTargets(dir: string): void {
  for (const job of PROMETHEUS_JOBS) rmSync(join(dir, `${job}.json`), { force: true })
}

/** Readers (nginx on reload, Prometheus's file watcher) never see a half-written file. */
function atomicWrite(file: string, body: string): void {
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, body)
  renameSync(tmp, file)
}

export function requireFile(path: string, owner: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing (${owner}): the stack runs the repository's config files`)
}
