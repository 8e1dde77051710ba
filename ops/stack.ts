// npm run stack -- up [api=N] [worker=M] | down | status | scale api=N worker=M | restart <name> | logs <name> [lines]
//                  | search <LogsQL> | deploy <git-ref> [--repo <path>] | deploy --rollback | images [--rebuild] [name...]
//                  | autoscale [--scale-down-window S] [--period S]   (the k8s HPA and KEDA rules: ops/lib/autoscale.ts)
//                  | balancing [least_conn|round_robin]   (how nginx balances over the API replicas; least_conn by default)
// The native stack (no Docker): see ops/README.md for the parts and their ports. ops/stack installs what is missing
// first, then runs this. `images` builds the images docker compose runs on a machine without a registry
// (ops/lib/images.ts).
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { autoscaleCli } from './lib/autoscale.ts'
import { NativePlatform } from './lib/drills/platform.ts'
import { buildImages, NOT_BUILT } from './lib/images.ts'
import { deploy, DeployUsageError, describe } from './lib/stack/deploy.ts'
import { BALANCING, stackAt, StackError, type Balancing, type PartStatus } from './lib/stack/index.ts'
import { logsQuery, logsUiLink } from './lib/logsql.ts'

const USAGE =
  'usage: npm run stack -- up [api=N] [worker=M] | down | status | scale [api=N] [worker=M] | restart <name> | logs <name> [lines]\n' +
  '                        | search <LogsQL> | deploy <git-ref> [--repo <path>] | deploy --rollback | images [--rebuild] [name...]\n' +
  '                        | autoscale [--scale-down-window S] [--period S] | balancing [least_conn|round_robin]'

function counts(args: string[]): { api?: number; worker?: number } {
  const out: { api?: number; worker?: number } = {}
  for (const a of args) {
    const m = a.match(/^(api|worker)=(\d+)$/)
    if (!m) throw new StackError(`cannot read "${a}": expected api=N or worker=M`)
    out[m[1] as 'api' | 'worker'] = Number(m[2])
  }
  return out
}

function table(rows: PartStatus[]): string {
  const head = ['PART', 'PID', 'PORT', 'STATE', 'RESTARTS', 'VERSION', 'LOG']
  const body = rows.map((r) => [
    r.name,
    String(r.pid ?? '-'),
    String(r.port || '-'),
    r.crashLoop ? 'crash-loop' : !r.running ? 'stopped' : r.healthy ? 'healthy' : 'unhealthy',
    r.kind === 'api' || r.kind === 'worker' ? String(r.restarts) : '-',
    r.release ? describe(r.release) : r.kind === 'api' || r.kind === 'worker' ? 'checkout' : '-',
    r.logFile,
  ])
  const widths = head.map((_, i) => Math.max(...[head, ...body].map((row) => row[i]!.length)))
  return [head, ...body]
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

function images(args: string[]): void {
  const log = resolve(import.meta.dirname, '../.run/images.log')
  mkdirSync(resolve(log, '..'), { recursive: true })
  const say = (line: string) => process.stdout.write(`images: ${line}\n`)
  say(`building what is missing, one at a time (build output: ${log})`)
  const t0 = performance.now()
  const results = buildImages({
    rebuild: args.includes('--rebuild'),
    only: args.filter((a) => a !== '--rebuild'),
    log,
    report: (r) =>
      say(
        r.outcome === 'built'
          ? `${r.tag} built in ${r.seconds.toFixed(1)} s`
          : r.outcome === 'failed'
            ? `${r.tag} FAILED after ${r.seconds.toFixed(1)} s: ${r.error}`
            : `${r.tag} present, reused (--rebuild builds it again)`,
      ),
  })
  const built = results.filter((r) => r.outcome === 'built').length
  say(`${built} built, ${results.length - built} reused, ${((performance.now() - t0) / 1000).toFixed(1)} s in all`)
  for (const [service, why] of Object.entries(NOT_BUILT)) say(`${service}: not built here: ${why}`)
  say(`run compose on them: docker compose -f docker-compose.yml -f compose/local-images.yml up -d --wait`)
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2)
  const stack = stackAt()
  switch (cmd) {
    case 'up':
      await stack.up(counts(rest))
      return 0
    case 'down':
      await stack.down()
      return 0
    case 'status': {
      const rows = await stack.status()
      if (rows.length === 0) {
        process.stdout.write(`no stack running from ${stack.dir}: start one with \`npm run stack -- up\`\n`)
        return 1
      }
      process.stdout.write(table(rows) + '\n')
      for (const r of rows.filter((x) => x.crashLoop))
        process.stdout.write(`${r.name}: ${r.crashLoop}; \`npm run stack -- restart ${r.name}\` tries again\n`)
      if (rows.some((r) => r.kind === 'victoria-logs')) process.stdout.write(`log search (VictoriaLogs): ${stack.logsUiUrl}\n`)
      return rows.every((r) => r.healthy) ? 0 : 1
    }
    case 'scale': {
      const want = counts(rest)
      if (want.api === undefined && want.worker === undefined) throw new StackError('scale needs api=N and/or worker=M')
      await stack.scale(want)
      return 0
    }
    case 'balancing': {
      if (rest[0] === undefined) {
        process.stdout.write(`${stack.balancing()}\n`)
        return 0
      }
      if (!(BALANCING as readonly string[]).includes(rest[0]))
        throw new StackError(`balancing is one of ${BALANCING.join(', ')} (got "${rest[0]}")`)
      await stack.setBalancing(rest[0] as Balancing)
      return 0
    }
    case 'restart':
      if (!rest[0]) throw new StackError('restart needs a replica name, e.g. `restart api-1`')
      await stack.restartReplica(rest[0])
      return 0
    case 'deploy': {
      const repoAt = rest.indexOf('--repo')
      const repo = repoAt >= 0 ? rest[repoAt + 1] : undefined
      if (repoAt >= 0 && !repo) throw new DeployUsageError('--repo needs a path to a git repository')
      const plain = rest.filter((_, i) => repoAt < 0 || (i !== repoAt && i !== repoAt + 1))
      const rollback = plain.includes('--rollback')
      const refs = plain.filter((a) => a !== '--rollback')
      if (rollback ? refs.length > 0 : refs.length !== 1) throw new DeployUsageError('deploy takes one git ref, or --rollback')
      const res = await deploy(stack, { ref: refs[0], rollback, repo })
      if (res.outcome !== 'rolled back') return 0
      process.stderr.write(`stack: deploy of ${describe(res.to)} failed: ${res.reason}; rolled back to ${describe(res.from)}\n`)
      return 1
    }
    case 'logs':
      if (!rest[0]) throw new StackError('logs needs a part name, e.g. `logs api-1` (names: npm run stack -- status)')
      process.stdout.write(stack.logTail(rest[0], Number(rest[1] ?? 100)))
      return 0
    case 'search': {
      // The stack's log store, as its UI would answer: one JSON line per stored ECS line, newest first; exit 1 when
      // none matches, as grep does.
      const query = rest.join(' ').trim()
      if (!query) throw new StackError("search needs a LogsQL query, e.g. `search 'trace.id:<id>'` or `search 'log.level:error'`")
      if (!(await stack.status()).some((r) => r.kind === 'victoria-logs' && r.healthy))
        throw new StackError(`the log store of ${stack.dir} does not answer: start the stack with \`npm run stack -- up\``)
      const rows = await logsQuery(stack.logsUrl, query, { limit: 100 })
      for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`)
      process.stderr.write(
        `${rows.length} line(s)${rows.length === 100 ? ' (the newest 100)' : ''}; in the UI: ${logsUiLink(stack.logsUiUrl, query)}\n`,
      )
      return rows.length > 0 ? 0 : 1
    }
    case 'images':
      images(rest)
      return 0
    case 'autoscale':
      await autoscaleCli(new NativePlatform(stack), rest)
      return 0
    default:
      process.stderr.write(`${USAGE}\n`)
      return 2
  }
}

try {
  process.exitCode = await main()
} catch (err) {
  process.stderr.write(`stack: ${(err as Error).message}\n`)
  process.exitCode = err instanceof DeployUsageError ? 2 : 1
}
