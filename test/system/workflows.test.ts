// The workflows' jobs run here under nektos/act (pinned in ops/lib/bootstrap.sh), in opsdrill/runner:bookworm
// (compose/images/runner), a local stand-in for GitHub's ubuntu-24.04 runner: no registry and no github.com here.
// Short form: ci.yml's test job from checkout through its bootstrap, typecheck and lint, then the bootstrap ops/test
// itself runs first, as the unprivileged runner user (which fails when the install step left anything for it, as
// bootstrap level `full` did). The job's steps are taken from ci.yml as written; the ones left out, and the other
// workflows' steps, are each named with the reason in .github/workflows/README.md, which this test checks.
//
// What stands in for GitHub here: actions/checkout is act's own copy of the working tree (act skips a local
// checkout); actions/setup-node and actions/cache are the composite stand-ins in test/fixtures/act (act's
// --local-repository), the cache "restored" by copying this machine's ~/.cache/opsdrill (Node 24 and the Go-built
// tools) and ~/.npm into the job. The host engine is the job's, through its socket, with the machine's compose and
// buildx plugins (GitHub's runner has an engine with both). Everything else runs as on GitHub: apt-get from Debian's
// archive, npm ci from the registry, the Go tools from the cache.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import {
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { parse, stringify } from 'yaml'
import { buildImages, IMAGES, imageExists, tagOf } from '../../ops/lib/images.ts'
import { OPSDRILL_CACHE, tool } from '../../ops/lib/tools.ts'

t.setTimeout(15 * 60_000)
const ROOT = resolve(import.meta.dirname, '../..')
const RUNNER = tagOf(IMAGES.find((i) => i.name === 'runner')!)
const STAND_INS = ['actions/setup-node', 'actions/cache']
const CHECKOUT = 'actions/checkout'

interface Step {
  name?: string
  uses?: string
  run?: string
  with?: Record<string, unknown>
}
interface Job {
  'runs-on': string
  services?: unknown
  steps: Step[]
  [k: string]: unknown
}
const workflow = (f: string) =>
  parse(readFileSync(resolve(ROOT, '.github/workflows', f), 'utf8')) as { jobs: Record<string, Job> } & Record<string, unknown>

/** What the suite runs of ci.yml's test job (by step name), beside the checkout and the stand-ins. */
const CI_STEPS = ['Install tools as ops/test does', 'Typecheck', 'Lint']
// ops/test's own first step: the bootstrap at its level, unprivileged. Taken from ops/test, not written again.
const OPS_TEST_BOOTSTRAP: Step = {
  name: "ops/test's bootstrap, as the runner user",
  run: `export "$(grep -m1 -oE '^export OPSDRILL_NEED=\\w+' ops/test | cut -d' ' -f2)"\nsource ops/lib/bootstrap.sh\necho "ops/test's bootstrap ($OPSDRILL_NEED) found nothing to install"`,
}

function docker(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('docker', args, { encoding: 'utf8', timeout: 300_000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() }
}

/** Runs act on one job of a workflow file; resolves to its exit code, its output in log. */
function act(args: string[], log: string, timeoutMs: number): Promise<number | null> {
  const out = createWriteStream(log)
  const child = spawn(tool('act'), args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.pipe(out, { end: false })
  child.stderr.pipe(out, { end: false })
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
  return new Promise((done, fail) => {
    child.once('error', (err) => fail(new Error(`could not run act (${err.message}): ops/test builds it (ops/lib/bootstrap.sh)`)))
    child.once('close', (code) => {
      clearTimeout(timer)
      out.end(() => done(code))
    })
  })
}

void t.test('when ci.yml runs under act in the local runner image, then its bootstrap, typecheck and lint pass', async (t) => {
  // No engine, no act, or no image: the suite cannot say anything, and that is a failure, not a skip.
  t.equal(docker(['info']).status, 0, 'a Docker engine answers (ops/test starts one where it can)')
  t.ok(existsSync(tool('act')), `act is built in ${OPSDRILL_CACHE}/bin (ops/lib/bootstrap.sh, level test)`)
  const runDir = resolve(ROOT, '.run/act')
  mkdirSync(runDir, { recursive: true })
  // Built when missing (with the Node image it is built FROM); `npm run stack -- images` builds it with the others.
  if (!imageExists(RUNNER))
    buildImages({
      only: ['runner'],
      log: join(runDir, 'images.log'),
      report: (r) => t.comment(`${r.tag}: ${r.outcome} in ${r.seconds.toFixed(1)} s`),
    })

  const tmp = mkdtempSync(join(tmpdir(), 'opsdrill-act-'))
  const network = `opsdrill-act-${process.pid}`
  const name = `ci-act-${process.pid}`
  t.teardown(() => {
    // act removes its job container when it ends; one it left (a timeout) goes here, before its network.
    const left = docker(['ps', '-aq', '--filter', `name=act-${name}-`]).out
    if (left) docker(['rm', '-f', '-v', ...left.split('\n')])
    docker(['network', 'rm', network])
    rmSync(tmp, { recursive: true, force: true })
  })
  // The job gets its own bridge network: act's default, the host network, would put what it starts on the host's ports.
  t.equal(docker(['network', 'create', network]).status, 0, `docker network ${network}`)

  // The cache the CI run would restore: Node and the Go-built tools, not the image binaries or logs.
  const cache = join(tmp, 'cache')
  for (const entry of ['bin', 'node', readlinkSync(join(OPSDRILL_CACHE, 'node'))])
    cpSync(join(OPSDRILL_CACHE, entry), join(cache, entry), { recursive: true, verbatimSymlinks: true })
  const npmCache = join(tmp, 'npm')
  mkdirSync(npmCache)
  if (existsSync(join(homedir(), '.npm/_cacache')))
    cpSync(join(homedir(), '.npm/_cacache'), join(npmCache, '_cacache'), { recursive: true })

  const ci = workflow('ci.yml')
  const job = ci.jobs.test!
  const kept = job.steps.filter(
    (s) => s.uses?.startsWith(`${CHECKOUT}@`) || STAND_INS.some((a) => s.uses?.startsWith(`${a}@`)) || CI_STEPS.includes(s.name ?? ''),
  )
  t.same(
    kept.filter((s) => s.run).map((s) => s.name),
    CI_STEPS,
    'ci.yml still has the steps the short form runs',
  )
  // Service containers (postgres:15.13, redis:7.4.5) come from Docker Hub; the short form's steps do not use them.
  delete job.services
  job.steps = [...kept, OPS_TEST_BOOTSTRAP]
  const file = join(tmp, 'ci.yml')
  writeFileSync(file, stringify({ name, on: 'workflow_dispatch', permissions: {}, jobs: { test: job } }))

  const standIns = STAND_INS.map((a) => {
    const sha = /@([0-9a-f]{40})/.exec(job.steps.find((s) => s.uses?.startsWith(`${a}@`))?.uses ?? '')?.[1]
    return ['--local-repository', `${a}@${sha}=${resolve(ROOT, 'test/fixtures/act', a.split('/')[1]!)}`]
  }).flat()
  const ca = '/etc/ssl/certs/ca-certificates.crt'
  const plugins = ['docker-compose', 'docker-buildx'].map((p) => realpathSync(join(homedir(), '.docker/cli-plugins', p)))
  const log = join(runDir, 'ci.log')
  const t0 = performance.now()
  const code = await act(
    [
      'workflow_dispatch',
      '-W',
      file,
      '-j',
      'test',
      '-P',
      `${job['runs-on']}=${RUNNER}`,
      '--pull=false',
      '--action-offline-mode',
      '--action-cache-path',
      join(tmp, 'actions'),
      '--no-cache-server',
      '--network',
      network,
      ...standIns,
      '--container-options',
      [
        `-v ${cache}:/home/runner/.cache/opsdrill`,
        `-v ${npmCache}:/home/runner/.npm`,
        ...(existsSync(ca) ? [`-v ${ca}:${ca}:ro`] : []),
        // GitHub's runner has Docker with its compose and buildx plugins: here they are the machine's own.
        ...plugins.map((p) => `-v ${p}:/usr/libexec/docker/cli-plugins/${basename(p)}:ro`),
      ].join(' '),
    ],
    log,
    12 * 60_000,
  )
  const seconds = (performance.now() - t0) / 1000
  const out = readFileSync(log, 'utf8')
  t.comment(`act ran ci.yml's short form in ${seconds.toFixed(0)} s (log: ${log})`)
  t.equal(code, 0, `act exits 0 (log: ${log}):\n${out.split('\n').slice(-30).join('\n')}`)
  t.match(out, /🏁 {2}Job succeeded/, 'the job succeeded')
  for (const name of [...CI_STEPS, OPS_TEST_BOOTSTRAP.name!]) t.match(out, `✅  Success - Main ${name}`, `step "${name}" ran and passed`)
  t.notMatch(out, /❌/, 'no step failed')
  t.match(out, /cache stand-in: hit for key opsdrill-Linux-[0-9a-f]{64} /, "the cache key carries hashFiles('ops/lib/bootstrap.sh')")
  t.match(out, /setup-node stand-in: Node v24\./, 'Node 24 for the later steps')
  t.match(out, /ops\/test's bootstrap \(test\) found nothing to install/, "ops/test's unprivileged bootstrap had nothing left to install")
})

void t.test('when the workflows README lists what this suite does not run, then every step left out is named there', async (t) => {
  const readme = readFileSync(resolve(ROOT, '.github/workflows/README.md'), 'utf8')
  const notRun = readme.slice(readme.indexOf('## What runs here'))
  t.ok(notRun.length < readme.length, '.github/workflows/README.md has a "What runs here" section')
  for (const f of ['ci.yml', 'image.yml', 'cd.yml', 'drills.yml']) {
    for (const [id, job] of Object.entries(workflow(f).jobs)) {
      for (const s of job.steps ?? []) {
        const action = s.uses?.split('@')[0]
        if (action === CHECKOUT || (f === 'ci.yml' && (STAND_INS.includes(action ?? '') || CI_STEPS.includes(s.name ?? '')))) continue
        const label = s.name ?? action!
        t.ok(notRun.includes(`| \`${f}\` | ${label} | `), `${f} job ${id}: "${label}" is run here or named in the README's table`)
      }
    }
  }
})
