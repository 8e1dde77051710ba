// The whole test suite: `npm test` (or ops/test, which installs what is missing first).
// 1. Real Postgres and Redis: DATABASE_URL/REDIS_URL when set; else testcontainers when a Docker engine answers
//    (the local opsdrill/postgres and opsdrill/redis images when built, else the official ones); else, or when
//    the containers cannot start (no registry to pull from), project-owned local servers under .run/test.
// 2. A migrated template database that each test file clones (test/helpers/env.ts).
// 3. tap runs the fast suites in parallel, then the system suites (stack, load, drills) one at a time, the compose
//    ones last, once the local images built beside them are ready; tap's own parser counts what they report
//    (ops/lib/tap.ts).
// Ends with one line: `N passed, N failed, N skipped`. Exit 1 when a test failed, a file never reported, or tap
// exited non-zero.
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { delimiter, dirname, join, resolve } from 'node:path'
import pg from 'pg'
import { migrate } from '../common/migrate.ts'
import { IMAGES, imageExists, tagOf } from './lib/images.ts'
import { startPostgres, startRedis } from './lib/localdb.ts'
import { alive } from './lib/stack/procs.ts'
import { addTally, emptyTally, recapLines, runTap as tapRun, tallyLine, tallyOk } from './lib/tap.ts'

const ROOT = resolve(import.meta.dirname, '..')
// tap and the test files it starts run on the first `node` on PATH: make it this Node 24, which `npm test` may have
// found in the cache rather than on PATH (ops/lib/node).
process.env.PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`
const args = process.argv.slice(2)
const image = (name: string) => IMAGES.find((i) => i.name === name)!

async function services(): Promise<{ pgAdmin: string; redis: string; stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL && process.env.REDIS_URL) {
    return { pgAdmin: process.env.DATABASE_URL, redis: process.env.REDIS_URL, stop: async () => undefined }
  }
  if (spawnSync('docker', ['info'], { stdio: 'ignore' }).status === 0) {
    // Without a registry nothing can be pulled: the images `npm run stack -- images` builds are used when present
    // (and Ryuk, the reaper testcontainers would pull, is off: stop() removes the two containers); otherwise the
    // official ones, and local servers when those cannot be had.
    const local = [tagOf(image('postgres')), tagOf(image('redis'))]
    const useLocal = local.every(imageExists)
    if (useLocal) process.env.TESTCONTAINERS_RYUK_DISABLED = 'true'
    const [pgImage, redisImage] = useLocal ? local : ['postgres:15-alpine', 'redis:7-alpine']
    try {
      const started = await containers(pgImage!, redisImage!)
      log(`Postgres and Redis in containers (testcontainers) from ${pgImage} and ${redisImage}`)
      return started
    } catch (err) {
      log(`testcontainers could not start ${pgImage} and ${redisImage} (${(err as Error).message.split('\n')[0]}): local servers instead`)
    }
  } else log('no Docker engine: local Postgres and Redis')
  const p = await startPostgres(resolve(ROOT, '.run/test/postgres'), 15432, [], true)
  const r = await startRedis(resolve(ROOT, '.run/test/redis'), 16379, { role: 'queues' }, true)
  log(`local Postgres and Redis under .run/test (ports 15432, 16379)`)
  return { pgAdmin: p.url, redis: r.url, stop: async () => undefined }
}

async function containers(pgImage: string, redisImage: string): Promise<{ pgAdmin: string; redis: string; stop: () => Promise<void> }> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql')
  const { RedisContainer } = await import('@testcontainers/redis')
  const [p, r] = await Promise.allSettled([
    new PostgreSqlContainer(pgImage).withCommand(['postgres', '-c', 'max_connections=300']).start(),
    new RedisContainer(redisImage).start(),
  ])
  if (p.status === 'rejected' || r.status === 'rejected') {
    await Promise.all([p, r].map(async (c) => c.status === 'fulfilled' && (await c.value.stop())))
    throw p.status === 'rejected' ? p.reason : (r as PromiseRejectedResult).reason
  }
  return {
    pgAdmin: p.value.getConnectionUri(),
    redis: r.value.getConnectionUrl(),
    stop: async () => void (await Promise.all([p.value.stop(), r.value.stop()])),
  }
}

// Each run owns a template and a database-name prefix keyed by its pid, so runs on one server (two developers, or a
// developer and a helper script) never drop each other's databases. Leftovers of runs whose process is gone are
// dropped; a live run's databases are left alone.
const RUN = `r${process.pid}`
const TEMPLATE = `opsdrill_tpl_${RUN}`

function runAlive(name: string): boolean {
  const pid = Number(/_r(\d+)(?:_|$)/.exec(name)?.[1])
  return pid !== process.pid && alive(pid)
}

async function dropDatabases(adminUrl: string, which: (name: string) => boolean): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  const all = await admin.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname LIKE 'opsdrill\\_t\\_%' OR datname LIKE 'opsdrill\\_tpl\\_%'",
  )
  for (const { datname } of all.rows.filter((r) => which(r.datname))) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`)
  await admin.end()
}

async function prepareTemplate(adminUrl: string): Promise<string> {
  await dropDatabases(adminUrl, (name) => !runAlive(name))
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${TEMPLATE}`)
  await admin.end()
  const url = new URL(adminUrl)
  url.pathname = `/${TEMPLATE}`
  await migrate(url.toString())
  return url.toString()
}

/** tap is given files, not folders: with its TypeScript plugin off it does not look for .ts files in a folder. */
function testFiles(paths: string[]): string[] {
  return paths.flatMap((p) => {
    const full = resolve(ROOT, p)
    if (!existsSync(full)) return []
    if (!statSync(full).isDirectory()) return [p]
    return readdirSync(full, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.test.ts'))
      .sort()
      .map((f) => join(p, f))
  })
}

/** tap compiles its plugin set into node_modules; rebuild it when .taprc changes (e.g. after npm ci). */
function ensureTapBuilt(): void {
  const stamp = resolve(ROOT, 'node_modules/.opsdrill-tap-built')
  const want = readFileSync(resolve(ROOT, '.taprc'), 'utf8')
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return
  log('building tap plugins for .taprc (Node type stripping instead of ts-node)')
  const res = spawnSync(resolve(ROOT, 'node_modules/.bin/tap'), ['build'], { cwd: ROOT, stdio: 'inherit' })
  if (res.status !== 0) throw new Error('tap build failed')
  writeFileSync(stamp, want)
}

/**
 * The Docker CLI plugins where missing, then `npm run stack -- images`, at nice 19, the output in .run/images-build.log;
 * resolves (never rejects) once it ends.
 */
function buildImagesBeside(): Promise<void> {
  const file = resolve(ROOT, '.run/images-build.log')
  mkdirSync(dirname(file), { recursive: true })
  const out = openSync(file, 'w')
  const t0 = performance.now()
  log(`the Compose and buildx plugins and the local images for the compose suites, at nice 19 beside the suites: ${file}`)
  const steps = `bash ops/lib/bootstrap.sh ensure_docker && "${process.execPath}" ops/stack.ts images`
  const child = spawn('nice', ['-n', '19', 'bash', '-c', steps], { cwd: ROOT, stdio: ['ignore', out, out] })
  closeSync(out)
  return new Promise((done) => {
    child.on('error', (err) => {
      log(`local images: could not start (${err.message})`)
      done()
    })
    child.on('exit', (code) => {
      const secs = ((performance.now() - t0) / 1000).toFixed(0)
      log(`local images: ${code === 0 ? 'ready' : `exit code ${code}`} after ${secs} s`)
      process.stdout.write(readFileSync(file, 'utf8'))
      done()
    })
  })
}

function log(msg: string): void {
  process.stdout.write(`==> ${msg}\n`)
}

ensureTapBuilt()
const { pgAdmin, redis, stop } = await services()
const template = await prepareTemplate(pgAdmin)
const env = {
  ...process.env,
  OPSDRILL_TEST_PG_ADMIN_URL: pgAdmin,
  OPSDRILL_TEST_PG_TEMPLATE: TEMPLATE,
  OPSDRILL_TEST_DB_PREFIX: `opsdrill_t_${RUN}_`,
  OPSDRILL_TEST_REDIS_URL: redis,
  OPSDRILL_TEST_TEMPLATE_URL: template,
  K6_NO_USAGE_REPORT: 'true',
}
const total = emptyTally()
const runTap = async (files: string[], jobs: number, timeoutSec = 120) => {
  // tap without files would look for tests itself.
  if (files.length > 0) addTally(total, await tapRun(files, { root: ROOT, jobs, env, timeoutSec }))
}
if (args.length > 0) {
  // System suites share port offsets (stack and load both use 1000): they never run beside each other.
  const files = testFiles(args)
  const system = files.filter((f) => f.includes('test/system/'))
  const fast = files.filter((f) => !system.includes(f))
  if (fast.length > 0) await runTap(fast, 2)
  if (system.length > 0) await runTap(system, 1, 1200)
} else {
  const systemFiles = testFiles(['test/system'])
  // The compose, images and workflows suites need the local images and the Compose plugin; the others do not. Where
  // some are missing (Go builds and apt, minutes on a machine with none: Jaeger is most of it), they are built at nice 19
  // beside the fast suites and the other system suites, which leave CPU idle while they wait on alerts and load
  // phases, and those two suites run last. Built outside tap, so no per-file timeout applies. A failed build is left
  // for those suites to report; present, the check takes about a second.
  const needImages = systemFiles.filter((f) => /\/(compose|images|workflows)\.test\.ts$/.test(f))
  const images = needImages.length > 0 && spawnSync('docker', ['info'], { stdio: 'ignore' }).status === 0 ? buildImagesBeside() : undefined
  log('fast suites (parallel)')
  await runTap(testFiles(['test/common', 'test/ops', 'test/service', 'test/worker', 'test/observability', 'test/static']), 2)
  log('system suites (one at a time)')
  await runTap(
    systemFiles.filter((f) => !needImages.includes(f)),
    1,
    1200,
  )
  if (images) await images
  await runTap(needImages, 1, 1200)
}
await dropDatabases(pgAdmin, (name) => name.includes(`_${RUN}`))
await stop()
process.stdout.write(`${recapLines(total)}${tallyLine(total)}\n`)
process.exit(tallyOk(total) ? 0 : 1)
