// Operator commands against a running stack's Redis and Postgres.
//   node ops/cli.ts dlq list [--limit N] [--offset N] [--json]   dead letters, oldest first
//   node ops/cli.ts dlq replay <id> | --all [--json]              back to their queues, then off the list
//   node ops/cli.ts user promote|demote <email>                  grant or take away the admin role
// dlq reads REDIS_URL and REDIS_PREFIX (and JOB_ATTEMPTS/JOB_BACKOFF_MS for replayed jobs); user reads DATABASE_URL.
// A bad or missing variable, or bad usage, prints one line and exits 2.
import { Type, type Static } from 'typebox'
import { BaseEnv, ConfigError, loadConfig } from '../common/config.ts'
import { redactCredentials } from '../common/redact.ts'
import type { DeadLetterEntry } from '../common/deadletters.ts'
import { defaultJobOptions } from '../common/queues.ts'

// Only what each command group uses: a dlq command has no business holding the database password, nor a user
// command the Redis one.
const DlqEnv = Type.Object({
  REDIS_URL: BaseEnv.REDIS_URL,
  REDIS_PREFIX: BaseEnv.REDIS_PREFIX,
  REDIS_CONNECT_TIMEOUT_MS: BaseEnv.REDIS_CONNECT_TIMEOUT_MS,
  JOB_ATTEMPTS: BaseEnv.JOB_ATTEMPTS,
  JOB_BACKOFF_MS: BaseEnv.JOB_BACKOFF_MS,
})
const UserEnv = Type.Object({ DATABASE_URL: BaseEnv.DATABASE_URL, PG_CONNECT_TIMEOUT_MS: BaseEnv.PG_CONNECT_TIMEOUT_MS })

const USAGE =
  'usage: node ops/cli.ts dlq list [--limit N] [--offset N] [--json] | dlq replay <id>|--all [--json] | user promote|demote <email>'

class UsageError extends Error {}

interface UserCommand {
  group: 'user'
  action: 'promote' | 'demote'
  email: string
}

interface DlqCommand {
  group: 'dlq'
  action: 'list' | 'replay'
  json: boolean
  limit: number
  offset: number
  id?: string
  all: boolean
}

function parseArgs(argv: string[]): DlqCommand | UserCommand {
  const [group, action, ...rest] = argv
  if (group === 'user' && (action === 'promote' || action === 'demote')) {
    if (rest.length !== 1 || !rest[0]!.includes('@')) throw new UsageError(`user ${action} takes one email; ${USAGE}`)
    return { group, action, email: rest[0]! }
  }
  if (group !== 'dlq' || (action !== 'list' && action !== 'replay')) throw new UsageError(USAGE)
  const cmd: DlqCommand = { group, action, json: false, limit: 50, offset: 0, all: false }
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (arg === '--json') cmd.json = true
    else if (arg === '--all' && action === 'replay') cmd.all = true
    else if ((arg === '--limit' || arg === '--offset') && action === 'list') {
      const n = Number(rest[++i])
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`${arg} takes a whole number; ${USAGE}`)
      cmd[arg === '--limit' ? 'limit' : 'offset'] = n
    } else if (action === 'replay' && !arg.startsWith('--') && cmd.id === undefined) cmd.id = arg
    else throw new UsageError(`unknown argument ${JSON.stringify(arg)}; ${USAGE}`)
  }
  if (action === 'replay' && cmd.all === (cmd.id !== undefined)) throw new UsageError(`replay takes one id or --all; ${USAGE}`)
  return cmd
}

function table(items: DeadLetterEntry[]): string {
  const rows = [
    ['ID', 'QUEUE', 'JOB', 'ATTEMPTS', 'FAILED AT', 'REASON'],
    ...items.map((d) => [d.id, d.queue, d.name, String(d.attemptsMade), d.failedAt, d.failedReason.replace(/\s+/g, ' ').slice(0, 80)]),
  ]
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n')
}

/** Sets a user's role. The next request of that user sees it: admin checks read the role from Postgres. */
async function setRole(cmd: UserCommand, config: Static<typeof UserEnv>): Promise<number> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: config.DATABASE_URL, connectionTimeoutMillis: config.PG_CONNECT_TIMEOUT_MS })
  const role = cmd.action === 'promote' ? 'admin' : 'user'
  try {
    await client.connect()
    const { rows } = await client.query<{ email: string; before: string }>(
      `UPDATE users u SET role = $2 FROM users old WHERE old.id = u.id AND lower(u.email) = lower($1)
       RETURNING u.email, old.role AS before`,
      [cmd.email, role],
    )
    const user = rows[0]
    if (!user) {
      process.stderr.write(`no user with email ${cmd.email}: register it first\n`)
      return 1
    }
    const what = role === 'admin' ? 'an admin' : 'a user'
    process.stdout.write(user.before === role ? `${user.email} is already ${what}\n` : `${user.email} is now ${what}\n`)
    return 0
  } catch (err) {
    process.stderr.write(`user ${cmd.action} failed: ${redactCredentials((err as Error).message)} (is DATABASE_URL reachable?)\n`)
    return 1
  } finally {
    await client.end().catch(() => undefined)
  }
}

async function main(argv: string[]): Promise<number> {
  let cmd: DlqCommand
  let config
  try {
    const parsed = parseArgs(argv)
    if (parsed.group === 'user') return await setRole(parsed, loadConfig(UserEnv))
    cmd = parsed
    config = loadConfig(DlqEnv)
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      return 2
    }
    throw err
  }
  // Loaded only once the command is known to be valid, so a usage or config error answers at once.
  const { Redis } = await import('ioredis')
  const { DeadLetterNotFoundError, DeadLetterNotReplayableError, listDeadLetters, replayAllDeadLetters, replayDeadLetter } =
    await import('../common/deadletters.ts')
  const connection = new Redis(config.REDIS_URL, {
    connectionName: 'opsdrill-cli',
    connectTimeout: config.REDIS_CONNECT_TIMEOUT_MS,
    // An operator wants an answer, not a wait: give up after a few reconnects.
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => (times > 3 ? null : 200 * times),
  })
  let redisError: Error | undefined
  connection.on('error', (err: Error) => (redisError = err))
  const out = (s: string) => process.stdout.write(`${s}\n`)
  try {
    if (cmd.action === 'list') {
      const page = await listDeadLetters(connection, config.REDIS_PREFIX, { limit: cmd.limit, offset: cmd.offset })
      if (cmd.json) out(JSON.stringify(page))
      else out(`${table(page.items)}\n${page.items.length} of ${page.total} dead letters`)
      return 0
    }
    const opts = { jobOptions: defaultJobOptions(config.JOB_ATTEMPTS, config.JOB_BACKOFF_MS) }
    if (cmd.all) {
      const result = await replayAllDeadLetters(connection, config.REDIS_PREFIX, opts)
      if (cmd.json) out(JSON.stringify(result))
      else {
        for (const r of result.replayed) out(`replayed ${r.id} -> ${r.queue} job ${r.jobId}`)
        for (const s of result.skipped) out(`skipped ${s.id}: ${s.reason}`)
        out(`${result.replayed.length} replayed, ${result.skipped.length} skipped`)
      }
      return result.skipped.length > 0 ? 1 : 0
    }
    const r = await replayDeadLetter(connection, config.REDIS_PREFIX, cmd.id!, opts)
    out(cmd.json ? JSON.stringify(r) : `replayed ${r.id} -> ${r.queue} job ${r.jobId}`)
    return 0
  } catch (err) {
    if (err instanceof DeadLetterNotFoundError || err instanceof DeadLetterNotReplayableError) {
      process.stderr.write(`${err.message}\n`)
      return 1
    }
    process.stderr.write(`dlq ${cmd.action} failed: ${redactCredentials((redisError ?? (err as Error)).message)}\n`)
    return 1
  } finally {
    connection.disconnect()
  }
}

process.exitCode = await main(process.argv.slice(2))
