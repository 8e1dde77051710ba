// npm run drill -- <name> [--short] [--target native|compose|k8s] | --list | all [--short]
// A chaos or scaling drill against a running stack (npm run stack -- up): steady k6 load, a fault, recovery, a
// report in .run/drills/<name>-<time>/ (report.md, report.json, chart.svg). Exit 0 only when the drill passed, 1 when
// it failed, 3 when it could not run on the target (no engine, no cluster, no stack up).
// Game-day scripts for each drill: docs/drills.md. OPSDRILL_SHORT=1 in the environment is --short
// (test/system/walkthrough.test.ts runs the README's commands as written).
import { DRILLS, drillNamed } from './lib/drills/catalogue.ts'
import { platformFor, TARGETS, type Target } from './lib/drills/platform.ts'
import { runDrill } from './lib/drills/runner.ts'

const USAGE = 'usage: npm run drill -- <name>|all [--short] [--target native|compose|k8s] | --list'

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--list')) {
    for (const d of DRILLS) process.stdout.write(`${d.name.padEnd(20)} ${d.title}\n${' '.repeat(21)}pass: ${d.criteria.join('; ')}\n`)
    return 0
  }
  const short = argv.includes('--short') || process.env.OPSDRILL_SHORT === '1'
  const ti = argv.indexOf('--target')
  const target = (ti >= 0 ? argv[ti + 1] : 'native') as Target
  if (!TARGETS.includes(target)) throw new Error(`--target must be one of ${TARGETS.join(', ')} (got ${target})`)
  const names = argv.filter((a, i) => !a.startsWith('--') && (ti < 0 || i !== ti + 1))
  if (names.length !== 1) {
    process.stderr.write(`${USAGE}\n`)
    return 2
  }
  const drills = names[0] === 'all' ? DRILLS : [drillNamed(names[0]!)]
  if (!drills[0]) throw new Error(`no drill named ${names[0]}: see npm run drill -- --list`)
  const platform = platformFor(target)
  // A drill that cannot start is reported as not run (exit 3), never as passed or as a failure of the system.
  const why = platform.unavailable?.()
  if (why) {
    process.stdout.write(`NOT RUN on ${target}: ${drills.map((d) => d!.name).join(', ')}: ${why}\n`)
    return 3
  }
  let failed = 0
  for (const drill of drills) {
    const outcome = await runDrill(drill!, { short, platform })
    if (!outcome.passed) failed++
  }
  return failed === 0 ? 0 : 1
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`drill: ${(err as Error).message}\n`)
  process.exitCode = 1
}
