// Starts project-owned Postgres and Redis servers from the Debian packages, in folders under .run/, on their own
// ports: the test suite and the native stack never touch a system-wide instance.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, chownSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { logTail } from './logs.ts'
import { identify, portOpen, signal } from './stack/procs.ts'

const PG_BIN = '/usr/lib/postgresql/15/bin'

function asPostgresUser(cmd: string, args: string[]): string[] {
  // Postgres refuses to run as root; on a root machine run it as the postgres user the package created.
  return process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', cmd, ...args] : [cmd, ...args]
}

function run(argv: string[], what: string): void {
  const res = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' })
  if (res.status !== 0) throw new Error(`${what} failed: ${(res.stderr || res.stdout || '').trim().split('\n').slice(-3).join(' | ')}`)
}

/** Waits for a listener on port; the error quotes the last lines of logFile, where a server says why it did not start. */
export async function waitForPort(port: number, timeoutMs: number, what: string, logFile?: string): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await portOpen(port)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  const log = logFile ? logTail(logFile, 3, ' | ') : ''
  throw new Error(`${what} did not open port ${port} within ${timeoutMs} ms${log ? `: ${log}` : ''}`)
}

export interface PostgresHandle {
  url: string
  dir: string
  port: number
}

/** The one-line error for a port some other server holds. */
function portTaken(port: number, dir: string): Error {
  return new Error(
    `port ${port} is held by a server not started from ${dir} (another checkout's, or a leftover): stop it (ss -ltnp 'sport = :${port}' names it) and run again`,
  )
}

/** The pid of this folder's running Postgres when it listens on port (postmaster.pid: pid first, port fourth). */
export function postgresPid(dir: string, port: number): number | undefined {
  const pidFile = join(dir, 'data', 'postmaster.pid')
  if (!existsSync(pidFile)) return undefined
  const lines = readFileSync(pidFile, 'utf8').split('\n')
  const id = identify(Number(lines[0]))
  return id && Number(lines[3]) === port ? id.pid : undefined
}

/**
 * Initialises (once) and starts a Postgres cluster in dir on port; returns a superuser URL. A server already on the
 * port is used when it is this folder's; anyone else's is an error, unless `shared` (the test suite's server, which
 * every checkout on the machine may use).
 */
export async function startPostgres(dir: string, port: number, extraConf: string[] = [], shared = false): Promise<PostgresHandle> {
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  if (await portOpen(port)) {
    if (shared || postgresPid(dir, port) !== undefined) return { url, dir, port }
    throw portTaken(port, dir)
  }
  const data = join(dir, 'data')
  mkdirSync(dir, { recursive: true })
  if (process.getuid?.() === 0) chownSync(dir, uid('postgres'), gid('postgres'))
  if (!existsSync(join(data, 'PG_VERSION'))) {
    run(asPostgresUser(`${PG_BIN}/initdb`, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions']), 'initdb')
  }
  const conf = [
    `port=${port}`,
    "listen_addresses='127.0.0.1'",
    `unix_socket_directories='${dir}'`,
    'fsync=on',
    'max_connections=300',
    'shared_buffers=256MB',
    ...extraConf,
  ]
  // A server of this folder that runs but not on this port (started with another port, by an older checkout) is
  // stopped first: pg_ctl start would refuse the data folder.
  const status = asPostgresUser(`${PG_BIN}/pg_ctl`, ['-D', data, 'status'])
  if (spawnSync(status[0]!, status.slice(1)).status === 0) stopPostgres(dir)
  writeFileSync(join(dir, 'opsdrill.conf'), conf.join('\n') + '\n')
  if (process.getuid?.() === 0) chownSync(join(dir, 'opsdrill.conf'), uid('postgres'), gid('postgres'))
  run(
    asPostgresUser(`${PG_BIN}/pg_ctl`, [
      '-D',
      data,
      '-l',
      join(dir, 'postgres.log'),
      '-w',
      '-t',
      '30',
      '-o',
      conf.map((c) => `-c ${c}`).join(' '),
      'start',
    ]),
    'pg_ctl start',
  )
  return { url, dir, port }
}

export function stopPostgres(dir: string, mode: 'fast' | 'immediate' = 'fast'): void {
  const data = join(dir, 'data')
  if (!existsSync(join(data, 'postmaster.pid'))) return
  run(asPostgresUser(`${PG_BIN}/pg_ctl`, ['-D', data, '-m', mode, '-w', 'stop']), 'pg_ctl stop')
}

export interface RedisHandle {
  url: string
  dir: string
  port: number
}

/** How a Redis keeps its data: the queues' (AOF, never evicts) or a cache's (memory only, evicts the least recently used). */
export type RedisServerKind = { role: 'queues'; maxmemory?: string } | { role: 'cache'; maxmemory: string }

/**
 * Starts redis-server in dir on port; by default for queues, with AOF on and noeviction (jobs must never be evicted).
 * A server already on the port is used when it is this folder's (its pid file names a live process); anyone else's
 * is an error, unless `shared`.
 */
export async function startRedis(
  dir: string,
  port: number,
  as: RedisServerKind = { role: 'queues' },
  shared = false,
): Promise<RedisHandle> {
  const url = `redis://127.0.0.1:${port}`
  if (await portOpen(port)) {
    if (shared || redisProcess(dir)) return { url, dir, port }
    throw portTaken(port, dir)
  }
  mkdirSync(dir, { recursive: true })
  execFileSync('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--daemonize',
    'yes',
    '--pidfile',
    join(dir, 'redis.pid'),
    '--logfile',
    join(dir, 'redis.log'),
    ...(as.role === 'queues'
      ? ['--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--maxmemory', as.maxmemory ?? '0']
      : ['--appendonly', 'no', '--maxmemory', as.maxmemory, '--maxmemory-policy', 'allkeys-lru']),
    '--save',
    '',
  ])
  await waitForPort(port, 10000, 'redis-server', join(dir, 'redis.log'))
  return { url, dir, port }
}

/** This folder's redis-server, read from its pid file now, if that process still runs. */
function redisProcess(dir: string) {
  const pidFile = join(dir, 'redis.pid')
  return existsSync(pidFile) ? identify(Number(readFileSync(pidFile, 'utf8').trim())) : undefined
}

export function stopRedis(dir: string): void {
  // Only the process the pid file names, and only if it still runs, is signalled.
  const id = redisProcess(dir)
  if (id) signal(id, 'SIGTERM')
}

function uid(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim())
}
function gid(user: string): number {
  return Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim())
}
