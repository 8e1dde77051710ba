// .github/workflows checked offline: actionlint on every workflow (it also runs shellcheck on `run:` scripts when
// shellcheck is installed), then the repository's own rules: actions pinned by commit SHA, least privilege,
// concurrency groups, no expression interpolated into shell, and a README that lists what is pinned.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse, parseAllDocuments } from 'yaml'
import { DRILLS } from '../../ops/lib/drills/catalogue.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const DIR = resolve(ROOT, '.github/workflows')
const files = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()

interface Step {
  name?: string
  if?: string
  uses?: string
  run?: string
  with?: Record<string, unknown>
}
interface Job {
  if?: string
  permissions?: Record<string, string>
  needs?: string | string[]
  uses?: string
  steps?: Step[]
  services?: Record<string, { image: string }>
  env?: Record<string, string>
}
interface Workflow {
  on: Record<string, unknown>
  permissions?: Record<string, string>
  concurrency?: { group: string }
  jobs: Record<string, Job>
}
const load = (f: string) => parse(readFileSync(resolve(DIR, f), 'utf8')) as Workflow

void t.test('when the workflows are listed, then ci, image, cd and drills are all there', async (t) => {
  t.same(files, ['cd.yml', 'ci.yml', 'drills.yml', 'image.yml'])
})

for (const f of files) {
  void t.test(`when actionlint checks .github/workflows/${f}, then it reports nothing`, async (t) => {
    const r = spawnSync('actionlint', ['-no-color', `.github/workflows/${f}`], { cwd: ROOT, encoding: 'utf8' })
    if (r.error) throw new Error(`actionlint is not installed (ops/test installs it): ${r.error.message}`)
    t.equal(r.status, 0, `actionlint .github/workflows/${f}:\n${r.stdout}${r.stderr}`)
  })

  void t.test(`when .github/workflows/${f} uses an action, then it is pinned to a full commit SHA with its version`, async (t) => {
    const lines = readFileSync(resolve(DIR, f), 'utf8')
      .split('\n')
      .filter((l) => /^\s*(-\s+)?uses:/.test(l) && !/uses:\s+\.\//.test(l))
    t.ok(lines.length > 0, `.github/workflows/${f}: no action used`)
    for (const line of lines) {
      t.match(
        line,
        /uses:\s+[\w.-]+\/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+\s*$/,
        `.github/workflows/${f}: not pinned by SHA with a # vX.Y.Z comment: ${line.trim()}`,
      )
    }
  })

  void t.test(`when .github/workflows/${f} runs, then it has least privilege and a concurrency group`, async (t) => {
    const wf = load(f)
    t.same(wf.permissions, {}, `.github/workflows/${f}: top-level permissions must be {}`)
    t.ok(wf.concurrency?.group, `.github/workflows/${f}: no concurrency group`)
    for (const [name, job] of Object.entries(wf.jobs)) {
      t.ok(job.permissions, `.github/workflows/${f} job ${name}: no job permissions`)
      for (const [scope, level] of Object.entries(job.permissions ?? {})) {
        t.ok(
          level === 'read' || (f === 'image.yml' && scope === 'packages'),
          `.github/workflows/${f} job ${name}: ${scope}: ${level} is more than it needs`,
        )
      }
      for (const step of job.steps ?? []) {
        if (step.uses?.startsWith('actions/checkout@'))
          t.equal(step.with?.['persist-credentials'], false, `.github/workflows/${f}: checkout keeps no token`)
        if (!step.run) continue
        t.notMatch(
          step.run,
          /\$\{\{\s*(inputs\.|github\.event\.|github\.head_ref)/,
          `.github/workflows/${f} job ${name}: pass inputs through env:, not \${{ }} in run:`,
        )
      }
    }
  })
}

void t.test('when ci.yml runs the tests, then it gives them Postgres and Redis and runs typecheck, lint and ops/test', async (t) => {
  const job = load('ci.yml').jobs.test! as Required<Job>
  t.match(job.services?.postgres?.image ?? '', /^postgres:15\./)
  t.match(job.services?.redis?.image ?? '', /^redis:7\./)
  t.equal(job.env?.DATABASE_URL, 'postgres://postgres:postgres@localhost:5432/postgres')
  t.equal(job.env?.REDIS_URL, 'redis://localhost:6379')
  const runs = job.steps.map((s) => s.run ?? '').join('\n')
  for (const cmd of ['npm run typecheck', 'npm run lint', 'ops/test', 'ops/lib/bootstrap.sh'])
    t.ok(runs.includes(cmd), `ci.yml: does not run ${cmd}`)
  t.ok(
    job.steps.some((s) => s.uses?.startsWith('actions/setup-node@') && s.with?.['node-version'] === 24 && s.with.cache === 'npm'),
    'ci.yml: setup-node 24 with npm cache',
  )
  t.ok(
    job.steps.some((s) => s.uses?.startsWith('actions/upload-artifact@')),
    'ci.yml: uploads the test artifacts',
  )
})

void t.test('when image.yml builds, then it pushes to GHCR with an SBOM and max provenance', async (t) => {
  const steps = load('image.yml').jobs.build!.steps!
  const build = steps.find((s) => s.uses?.startsWith('docker/build-push-action@'))
  t.equal(build?.with?.sbom, true)
  t.equal(build?.with?.provenance, 'mode=max')
  const meta = steps.find((s) => s.uses?.startsWith('docker/metadata-action@'))
  t.match(String(meta?.with?.tags), /type=sha,format=long/, 'image.yml: sha-<full sha> tags, which cd.yml pulls')
  t.match(String(meta?.with?.tags), /type=semver/)
})

void t.test('when cd.yml deploys, then it gates on k6 and rolls back on failure', async (t) => {
  const wf = load('cd.yml')
  t.ok((wf.on.workflow_dispatch as { inputs?: Record<string, unknown> }).inputs?.ref, 'cd.yml: workflow_dispatch input ref')
  t.same((wf.on.workflow_run as { workflows: string[] }).workflows, ['image'])
  const runs = wf.jobs.deploy!.steps!.map((s) => s.run ?? '').join('\n')
  for (const cmd of ['k8s/overlays/local', 'rollout status', 'k6 run', 'loadtests/scenarios/smoke.ts', 'rollout undo', 'port-forward']) {
    t.ok(runs.includes(cmd), `cd.yml: no ${cmd}`)
  }
  t.ok(
    wf.jobs.deploy!.steps!.some((s) => s.uses?.startsWith('helm/kind-action@')),
    'cd.yml: kind cluster',
  )
})

void t.test('when drills.yml is dispatched, then the choice lists each drill once and runs npm run drill', async (t) => {
  const wf = load('drills.yml')
  const options = (wf.on.workflow_dispatch as { inputs: { drill: { type: string; options: string[] } } }).inputs.drill
  t.equal(options.type, 'choice')
  t.equal(new Set(options.options).size, options.options.length, 'drills.yml: a drill is listed twice')
  t.ok(options.options.length >= 12, 'drills.yml: every drill is offered')
  t.ok(wf.jobs.drill!.steps!.some((s) => s.run?.includes('npm run drill -- "$DRILL"')))
})

void t.test('when the workflows README is read, then it explains each workflow and lists every pinned action', async (t) => {
  const readme = readFileSync(resolve(DIR, 'README.md'), 'utf8')
  for (const f of files) t.ok(readme.includes(`\`${f}\``), `.github/workflows/README.md: ${f} is not explained`)
  const pins = new Set(
    files.flatMap((f) =>
      [...readFileSync(resolve(DIR, f), 'utf8').matchAll(/uses:\s+([\w./-]+)@([0-9a-f]{40}) # (v[\d.]+)/g)].map(
        (m) => `${m[1]} | ${m[3]} | ${m[2]}`,
      ),
    ),
  )
  for (const pin of pins) t.ok(readme.includes(`| ${pin} |`), `.github/workflows/README.md: pinned action table lacks ${pin}`)
})

void t.test(
  'when ci.yml or drills.yml installs the tools, then ~/.cache/opsdrill is restored first, keyed on the pinned versions',
  async (t) => {
    for (const [f, job] of [
      ['ci.yml', 'test'],
      ['drills.yml', 'drill'],
    ] as const) {
      const steps = load(f).jobs[job]!.steps!
      const install = steps.findIndex((s) => s.run?.includes('ops/lib/bootstrap.sh'))
      const cache = steps.findIndex((s) => s.uses?.startsWith('actions/cache@'))
      t.ok(install >= 0 && cache >= 0 && cache < install, `${f}: actions/cache restores before the bootstrap`)
      t.equal(steps[cache]?.with?.path, '~/.cache/opsdrill', `${f}: caches ~/.cache/opsdrill`)
      // The versions are pinned in bootstrap.sh, the shipper's components in otelcol/builder.yaml: a new pin, a new cache.
      t.match(
        String(steps[cache]?.with?.key),
        /hashFiles\('ops\/lib\/bootstrap\.sh', 'otelcol\/builder\.yaml'\)/,
        `${f}: keyed on ops/lib/bootstrap.sh and otelcol/builder.yaml`,
      )
    }
  },
)

void t.test('when cd.yml is triggered by a run of image.yml, then only a successful one on main deploys', async (t) => {
  const wf = load('cd.yml')
  const run = wf.on.workflow_run as { workflows: string[]; types: string[]; branches: string[] }
  t.same(run.types, ['completed'])
  t.same(run.branches, ['main'])
  // image.yml's build needs its ci job, so a successful image run is a passed CI run.
  t.match(
    wf.jobs.deploy!.if ?? '',
    /github\.event\.workflow_run\.conclusion == 'success'/,
    'cd.yml: deploys only after a successful image run',
  )
  t.notMatch(wf.jobs.deploy!.if ?? '', /\|\|\s*always\(\)/, 'cd.yml: no always() around the condition')
})

void t.test('when ci.yml installs the tools, then it installs what ops/test needs, as root, from a cached ~/.cache/opsdrill', async (t) => {
  const need = /^export OPSDRILL_NEED=(\w+)$/m.exec(readFileSync(resolve(ROOT, 'ops/test'), 'utf8'))?.[1]
  t.ok(need, 'ops/test exports OPSDRILL_NEED')
  const steps = load('ci.yml').jobs.test!.steps!
  const install = steps.findIndex((s) => s.run?.includes('ops/lib/bootstrap.sh'))
  // ops/test re-runs the bootstrap as the runner user, where apt cannot install: this step must leave nothing for it.
  t.match(steps[install]?.run ?? '', new RegExp(`sudo .*OPSDRILL_NEED=${need} bash`), `ci.yml: bootstrap level is ops/test's (${need})`)
  const cache = steps.findIndex((s) => s.uses?.startsWith('actions/cache@'))
  t.ok(cache >= 0 && cache < install, 'ci.yml: actions/cache restores before the bootstrap')
  t.equal(steps[cache]?.with?.path, '~/.cache/opsdrill')
  t.match(
    String(steps[cache]?.with?.key),
    /hashFiles\('ops\/lib\/bootstrap\.sh'(, 'otelcol\/builder\.yaml')?\)/,
    'ci.yml: new tool versions, new cache',
  )
})

void t.test('when image.yml runs, then it waits for CI and builds without pushing on pull requests', async (t) => {
  t.ok('workflow_call' in load('ci.yml').on, 'ci.yml: callable by image.yml')
  const wf = load('image.yml')
  t.ok('pull_request' in wf.on, 'image.yml: builds on pull requests')
  t.equal(wf.jobs.ci?.uses, './.github/workflows/ci.yml')
  t.same([wf.jobs.build!.needs].flat(), ['ci'], 'image.yml: build needs ci')
  const steps = wf.jobs.build!.steps!
  t.equal(steps.find((s) => s.uses?.startsWith('docker/build-push-action@'))?.with?.push, "${{ github.event_name != 'pull_request' }}")
  t.equal(steps.find((s) => s.uses?.startsWith('docker/login-action@'))?.if, "github.event_name != 'pull_request'")
})

void t.test('when cd.yml sets up its tools, then the pinned kubectl and the k6 ops uses are the ones run', async (t) => {
  const steps = load('cd.yml').jobs.deploy!.steps!
  const kind = steps.findIndex((s) => s.uses?.startsWith('helm/kind-action@'))
  const kubectl = steps.findIndex((s) => s.uses?.startsWith('azure/setup-kubectl@'))
  t.ok(kubectl > kind, 'cd.yml: setup-kubectl runs after kind-action, which puts its own kubectl first on PATH')
  t.equal(steps[kind]?.with?.kubectl_version, steps[kubectl]?.with?.version, 'cd.yml: kind-action installs the same kubectl')
  const k6 = /^K6_MODULE="[^@]+@v([\d.]+)"$/m.exec(readFileSync(resolve(ROOT, 'ops/lib/bootstrap.sh'), 'utf8'))?.[1]
  t.ok(k6, 'ops/lib/bootstrap.sh pins K6_MODULE')
  t.equal(steps.find((s) => s.uses?.startsWith('grafana/setup-k6-action@'))?.with?.['k6-version'], k6)
})

void t.test('when cd.yml collects the logs, then its selector matches the api and worker pod templates', async (t) => {
  const runs = load('cd.yml')
    .jobs.deploy!.steps!.map((s) => s.run ?? '')
    .join('\n')
  const m = /kubectl -n "\$NS" logs -l '([\w./-]+) in \(([\w,-]+)\)'/.exec(runs)
  t.ok(m, "cd.yml: logs selected by `-l '<key> in (<values>)'`")
  const [, key, values] = m ?? ['', '', '']
  const templates = ['api.yaml', 'worker.yaml'].flatMap((f) =>
    parseAllDocuments(readFileSync(resolve(ROOT, 'k8s/base', f), 'utf8'))
      .map((d) => d.toJS() as { kind: string; spec: { template: { metadata: { labels: Record<string, string> } } } })
      .filter((d) => d.kind === 'Deployment')
      .map((d) => d.spec.template.metadata.labels),
  )
  t.equal(templates.length, 2, 'k8s/base: api and worker Deployments')
  for (const labels of templates)
    t.ok(values!.split(',').includes(labels[key!] ?? ''), `pod template ${JSON.stringify(labels)} carries ${key}`)
})

void t.test('when drills.yml is dispatched, then it offers exactly the registry and runs the drill on a started stack', async (t) => {
  const wf = load('drills.yml')
  const options = (wf.on.workflow_dispatch as { inputs: { drill: { options: string[] } } }).inputs.drill.options
  t.same(
    options,
    DRILLS.map((d) => d.name),
    'drills.yml: choice list = ops/lib/drills/catalogue.ts',
  )
  const steps = wf.jobs.drill!.steps!
  const up = steps.findIndex((s) => s.run === 'npm run stack -- up')
  const drill = steps.findIndex((s) => s.run?.includes('npm run drill'))
  const down = steps.findIndex((s) => s.run === 'npm run stack -- down')
  t.ok(up >= 0 && up < drill, 'drills.yml: the stack is up before the drill')
  t.ok(down > drill && steps[down]?.if === 'always()', 'drills.yml: the stack is stopped after the drill, whatever happened')
})
