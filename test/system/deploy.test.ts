// `npm run stack -- deploy` on a stack at offset 950: a good commit replaces every replica under a steady trickle of
// requests without failing one; a commit that cannot start, and one that passes its health gate but fails the k6
// smoke gate, are both rolled back automatically; `--rollback` returns to the checkout. The commits are made in a
// throwaway clone (`--repo`), never in this checkout.
import t from 'tap'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { RELEASES_DIR } from '../../ops/lib/stack/deploy.ts'
import { ROOT, stackAt, type Release } from '../../ops/lib/stack/index.ts'

// The file as a whole (tap's default is 120 s per file, .taprc).
t.setTimeout(9 * 60_000)
const OFFSET = 950
const stack = stackAt({ offset: OFFSET, log: (line) => t.comment(line) })
const loadPerCore = loadavg()[0]! / cpus().length
// As in load.test.ts: on a busy box the smoke gate's latency bounds widen (its error bounds never do).
const SLO_LATENCY_FACTOR = loadPerCore > 1 ? String(Math.min(10, Math.ceil(loadPerCore * 2))) : '1'
t.comment(`load per core ${loadPerCore.toFixed(2)}: SLO_LATENCY_FACTOR=${SLO_LATENCY_FACTOR}`)

const tmp = mkdtempSync(join(tmpdir(), 'opsdrill-deploy-'))
const repo = join(tmp, 'repo')
const git = (...args: string[]) =>
  execFileSync('git', ['-C', repo, '-c', 'user.name=deploy test', '-c', 'user.email=deploy-test@example.com', ...args], {
    encoding: 'utf8',
  }).trim()
const checkoutSha = execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim()
execFileSync('git', ['clone', '--quiet', '--local', '--no-hardlinks', ROOT, repo])

/** A commit on its own branch of the clone, from HEAD of the checkout, with one file edited. */
function commit(branch: string, file: string, edit: (src: string) => string): string {
  git('checkout', '--quiet', '-b', branch, checkoutSha)
  const path = join(repo, file)
  const before = readFileSync(path, 'utf8')
  const after = edit(before)
  if (after === before) throw new Error(`the edit of ${file} for ${branch} changed nothing: update this test`)
  writeFileSync(path, after)
  git('commit', '--quiet', '-am', branch)
  return git('rev-parse', 'HEAD')
}
const good = commit('good', 'service/routes/health.ts', (s) => `${s}// A harmless change: this release differs only in its commit.\n`)
const cannotStart = commit('cannot-start', 'service/server.ts', (s) =>
  s.replace('const config = loadConfigOrExit(ApiEnv)\n', "process.stderr.write('deliberately broken release\\n')\nprocess.exit(1)\n"),
)
const answers500 = commit('answers-500', 'service/routes/redirect.ts', (s) =>
  s.replace(
    '    (req, reply) => {\n',
    "    (req, reply) => {\n      if (req.params.code) throw new Error('deliberately broken release')\n",
  ),
)

t.teardown(async () => {
  agent.destroy()
  await stack.down()
  rmSync(tmp, { recursive: true, force: true })
  for (const sha of [good, cannotStart, answers500]) rmSync(join(RELEASES_DIR, sha), { recursive: true, force: true })
})

interface Run {
  code: number
  stdout: string
  stderr: string
  ms: number
}

/** The CLI as an operator runs it, spawned so this process keeps sending traffic meanwhile. */
function deploy(...args: string[]): Promise<Run> {
  const t0 = Date.now()
  const child = spawn(process.execPath, [join(ROOT, 'ops/stack.ts'), 'deploy', ...args], {
    cwd: ROOT,
    env: { ...process.env, OPSDRILL_STACK_PORT_OFFSET: String(OFFSET), SLO_LATENCY_FACTOR },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b))
  child.stderr.on('data', (b: Buffer) => (stderr += b))
  return new Promise((done) =>
    child.on('close', (code) => {
      t.comment(stdout.trimEnd())
      if (stderr) t.comment(stderr.trimEnd())
      done({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 })
    }),
  )
}

let code = ''
const agent = new Agent({ keepAlive: true, maxSockets: 4 })

/**
 * GET through nginx on a keep-alive connection; the status, or the error. A request on a reused connection that the
 * server closed at the same moment (nginx's old workers close idle connections on reload) is sent once more, as
 * browsers, Go's net/http (k6) and the Node docs do: https://nodejs.org/api/http.html#requestreusedsocket
 */
function get(path: string, retried = false): Promise<{ status?: number; upstream?: string; error?: string; retried: boolean }> {
  return new Promise((done) => {
    const req = request(`${stack.baseUrl}${path}`, { agent, timeout: 5000 }, (res) => {
      res.resume()
      res.on('end', () => done({ status: res.statusCode, upstream: String(res.headers['x-upstream']), retried }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out after 5 s')))
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!retried && req.reusedSocket && err.code === 'ECONNRESET') done(get(path, true))
      else done({ error: `${err.code ?? ''} ${err.message}`, retried })
    })
    req.end()
  })
}

/** GET /healthz and GET /<code> (302) through nginx, one every 20 ms, until stopped; every other answer is a failure. */
function trickle() {
  let running = true
  const failures: string[] = []
  let sent = 0
  let retried = 0
  const loop = (async () => {
    while (running) {
      const path = sent % 2 === 0 ? '/healthz' : `/${code}`
      const want = path === '/healthz' ? 200 : 302
      sent++
      const res = await get(path)
      if (res.retried) retried++
      if (res.status !== want) failures.push(`${path} ${res.status ?? res.error} via ${res.upstream ?? '-'}`)
      await sleep(20)
    }
  })()
  return {
    failures,
    sent: () => sent,
    retried: () => retried,
    stop: async () => {
      running = false
      await loop
    },
  }
}

/** The version label of opsdrill_build_info on a replica's /metrics. */
async function buildVersion(metricsPort: number): Promise<string | undefined> {
  const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  return body.match(/^opsdrill_build_info\{version="([^"]+)"/m)?.[1]
}

/** The commit each API replica and worker runs, by the stack state and by its own /metrics. */
async function running(): Promise<{ state: Record<string, string>; metrics: Record<string, string | undefined> }> {
  const parts = [...stack.replicas('api'), ...stack.replicas('worker')]
  const state = Object.fromEntries(parts.map((p) => [p.name, p.release?.sha ?? 'checkout']))
  const metrics = Object.fromEntries(await Promise.all(parts.map(async (p) => [p.name, await buildVersion(p.metricsPort!)] as const)))
  return { state, metrics }
}
const all = (sha: string) => ({ 'api-1': sha, 'api-2': sha, 'worker-1': sha })

void t.test('before deploying, the stack runs the checkout with 2 API replicas and 1 worker', async (t) => {
  t.setTimeout(180_000)
  await stack.down()
  rmSync(join(stack.dir, 'deploys.json'), { force: true })
  await stack.up({ api: 2, worker: 1 })
  const json = { 'content-type': 'application/json' }
  const user = JSON.stringify({ email: `deploy-${Date.now()}@example.com`, password: 'correct-horse-battery-staple' })
  t.equal((await fetch(`${stack.baseUrl}/api/v1/auth/register`, { method: 'POST', headers: json, body: user })).status, 202)
  const login = (await (await fetch(`${stack.baseUrl}/api/v1/auth/login`, { method: 'POST', headers: json, body: user })).json()) as {
    accessToken: string
  }
  const link = await fetch(`${stack.baseUrl}/api/v1/links`, {
    method: 'POST',
    headers: { ...json, authorization: `Bearer ${login.accessToken}` },
    body: JSON.stringify({ url: 'https://example.com/deploy' }),
  })
  t.equal(link.status, 201)
  code = ((await link.json()) as { code: string }).code
  t.same((await running()).state, all('checkout'), 'no replica runs a release yet')
})

void t.test('when a ref is unknown, then deploy says so in one line and exits 2 without touching a replica', async (t) => {
  const pids = stack.processes().map((p) => p.pid)
  const run = await deploy('no-such-ref-anywhere', '--repo', repo)
  t.equal(run.code, 2)
  t.equal(run.stderr, `stack: unknown git ref "no-such-ref-anywhere" in ${repo}\n`)
  t.same(
    stack.processes().map((p) => p.pid),
    pids,
  )
})

void t.test(
  'when a good commit is deployed under a steady trickle of requests, then no request fails and every replica runs it',
  async (t) => {
    t.setTimeout(240_000)
    const traffic = trickle()
    await sleep(500)
    const run = await deploy('good', '--repo', repo)
    await sleep(500)
    await traffic.stop()
    t.equal(run.code, 0, 'deploy exits 0')
    t.match(run.stdout, /node_modules: package-lock\.json is the checkout's: linked/, 'the release reuses node_modules')
    t.match(run.stdout, /==> migrations from /)
    t.match(run.stdout, new RegExp(`==> deployed ${good.slice(0, 12)} in `))
    t.ok(traffic.sent() > 200, `traffic kept flowing (${traffic.sent()} requests)`)
    t.same(traffic.failures, [], 'no request failed during the deploy')
    const now = await running()
    t.same(now.state, all(good), 'the stack state records the new commit for every replica')
    t.same(now.metrics, all(good), 'every replica reports the new commit in opsdrill_build_info')
    t.same(
      stack.replicas('api').map((p) => p.release?.dir),
      [join(RELEASES_DIR, good), join(RELEASES_DIR, good)],
    )
    t.comment(
      `MEASURED good deploy (2 API + 1 worker): ${(run.ms / 1000).toFixed(1)} s; ${traffic.sent()} requests, ${traffic.failures.length} failed, ` +
        `${traffic.retried()} resent after a keep-alive close race`,
    )
  },
)

void t.test('when a commit cannot start, then its first replica fails the health gate, is rolled back, and no request fails', async (t) => {
  t.setTimeout(180_000)
  const traffic = trickle()
  const run = await deploy('cannot-start', '--repo', repo)
  await traffic.stop()
  t.equal(run.code, 1, 'deploy exits 1')
  t.match(
    run.stderr,
    new RegExp(
      `^stack: deploy of ${cannotStart.slice(0, 12)} failed: api-1 did not become ready: api-1 exited during start-up.*; rolled back to ${good.slice(0, 12)}\\n$`,
    ),
    'one line says why and that it rolled back',
  )
  t.notMatch(run.stdout, /api-2: .* -> /, 'api-2 was never replaced')
  const now = await running()
  t.same(now.state, all(good))
  t.same(now.metrics, all(good))
  t.same(traffic.failures, [], `no request failed (${traffic.sent()} sent): the broken replica never joined nginx`)
  t.comment(`MEASURED health-gate failure and rollback: ${(run.ms / 1000).toFixed(1)} s`)
})

void t.test(
  'when a commit answers 500 on redirects, then the smoke gate fails, every replica is rolled back, and traffic is served again',
  async (t) => {
    t.setTimeout(300_000)
    const run = await deploy('answers-500', '--repo', repo)
    t.equal(run.code, 1, 'deploy exits 1')
    t.match(
      run.stderr,
      new RegExp(
        `^stack: deploy of ${answers500.slice(0, 12)} failed: smoke gate failed .*http_req_failed.*; rolled back to ${good.slice(0, 12)}\\n$`,
      ),
    )
    const rollback = run.stdout.match(/==> rolled back to \S+ in ([\d.]+) s/)?.[1]
    t.ok(rollback, 'the rollback time is printed')
    const now = await running()
    t.same(now.state, all(good))
    t.same(now.metrics, all(good))
    const traffic = trickle()
    await sleep(2000)
    await traffic.stop()
    t.ok(traffic.sent() > 20)
    t.same(traffic.failures, [], 'redirects and health checks answer again')
    t.comment(`MEASURED smoke-gate failure: ${(run.ms / 1000).toFixed(1)} s in all, of which the rollback took ${rollback} s`)
  },
)

void t.test('when --rollback is asked for, then the release before the current one runs again: the checkout', async (t) => {
  t.setTimeout(180_000)
  // The checkout's commit when `good` was deployed (others may commit to this checkout while the test runs).
  const history = JSON.parse(readFileSync(join(stack.dir, 'deploys.json'), 'utf8')) as { outcome: string; from: Release; to: Release }[]
  const before = history.find((e) => e.outcome === 'deployed' && e.to.sha === good)!.from
  t.equal(before.dir, ROOT)
  const run = await deploy('--rollback')
  t.equal(run.code, 0)
  t.match(run.stdout, new RegExp(`==> rollback: ${good.slice(0, 12)} -> ${before.sha.slice(0, 12)} \\(checkout\\)`))
  const now = await running()
  t.same(now.state, all(before.sha))
  t.same(now.metrics, all(before.sha))
  t.same(
    stack.replicas('worker').map((p) => p.release?.dir),
    [ROOT],
  )
  t.equal((await deploy('--rollback')).code, 2, 'nothing was deployed before the checkout: a second rollback refuses')
})
