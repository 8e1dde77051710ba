// npm run screenshots: what a user will see, taken from a real run so the README pictures stay current.
// Starts its own Postgres, Redis and API (like the bench), creates an admin, links, clicks and a dead letter,
// runs k6's smoke scenario for its HTML report, then photographs in headless Chromium (Debian's package):
//   docs/images/swagger-ui.png   the OpenAPI docs at /docs
//   docs/images/bull-board.png   the queues at /admin/queues (admin, HTTP Basic)
//   docs/images/k6-report.png    k6's web-dashboard HTML report
// --out DIR writes elsewhere (the test suite does).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { chromium } from 'playwright-core'
import { migrate } from '../common/migrate.ts'
import { QUEUES } from '../common/queues.ts'
import { addDeadLetter, toDeadLetter } from '../common/deadletters.ts'
import { startPostgres, startRedis, stopPostgres, stopRedis, waitForPort } from './lib/localdb.ts'
import { runK6 } from './lib/k6.ts'

const ROOT = resolve(import.meta.dirname, '..')
const outArg = process.argv.indexOf('--out')
const OUT = outArg > 0 ? resolve(process.argv[outArg + 1] ?? '') : resolve(ROOT, 'docs/images')
const PORT = 4830
const BASE = `http://127.0.0.1:${PORT}`
const EMAIL = 'admin@opsdrill.test'
const PASSWORD = 'screenshot password 1'
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const PREFIX = 'shots'

function fail(msg: string): never {
  process.stderr.write(`screenshots: ${msg}\n`)
  process.exit(1)
}

async function api(method: string, path: string, body?: unknown, token?: string) {
  const res = await fetch(BASE + path, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    redirect: 'manual',
  })
  return {
    status: res.status,
    json: res.headers.get('content-type')?.includes('json') ? ((await res.json()) as Record<string, unknown>) : {},
  }
}

async function main() {
  if (!existsSync(CHROMIUM)) fail(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
  mkdirSync(OUT, { recursive: true })
  const pgh = await startPostgres(resolve(ROOT, '.run/screenshots/postgres'), 15452)
  const rh = await startRedis(resolve(ROOT, '.run/screenshots/redis'), 16392)
  // Its own servers end with it (both stops are synchronous, so they run on any exit).
  process.once('exit', () => {
    stopPostgres(pgh.dir)
    stopRedis(rh.dir)
  })
  const admin = new pg.Client({ connectionString: pgh.url })
  await admin.connect()
  await admin.query('DROP DATABASE IF EXISTS opsdrill_shots WITH (FORCE)')
  await admin.query('CREATE DATABASE opsdrill_shots')
  await admin.end()
  const dbUrl = pgh.url.replace(/\/postgres$/, '/opsdrill_shots')
  await migrate(dbUrl)
  const redis = new Redis(rh.url, { maxRetriesPerRequest: null })
  const stale = await redis.keys(`${PREFIX}:*`)
  if (stale.length) await redis.del(...stale)

  const child: ChildProcess = spawn(process.execPath, ['service/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: dbUrl,
      REDIS_URL: rh.url,
      REDIS_PREFIX: PREFIX,
      PORT: String(PORT),
      METRICS_PORT: String(PORT + 1),
      JWT_SECRET: 'screenshots-secret-screenshots-secret-0123',
      LOG_LEVEL: 'warn',
      PUBLIC_BASE_URL: BASE,
      RATE_LIMIT_GLOBAL_MAX: '1000000',
      RATE_LIMIT_REDIRECT_MAX: '1000000',
      RATE_LIMIT_AUTH_MAX: '1000',
      RATE_LIMIT_LINK_CREATE_MAX: '100000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  try {
    await waitForPort(PORT, 30000, 'the API')
    await api('POST', '/api/v1/auth/register', { email: EMAIL, password: PASSWORD })
    // Admin is granted by an operator, never by registration.
    const promote = spawnSync(process.execPath, ['ops/cli.ts', 'user', 'promote', EMAIL], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: dbUrl },
      encoding: 'utf8',
    })
    if (promote.status !== 0) throw new Error(`could not promote ${EMAIL}: ${promote.stderr.trim()}`)
    const token = String((await api('POST', '/api/v1/auth/login', { email: EMAIL, password: PASSWORD })).json.accessToken)
    for (let i = 0; i < 5; i++) {
      const link = (await api('POST', '/api/v1/links', { url: `https://example.com/page/${i}` }, token)).json
      for (let j = 0; j < 3; j++) await api('GET', `/${String(link.code)}`)
      if (i === 0) await api('POST', `/api/v1/links/${String(link.id)}/exports`, undefined, token)
    }
    // One dead letter, so the UI shows where exhausted jobs go.
    const dlq = new Queue(QUEUES.deadLetters, { connection: redis, prefix: PREFIX })
    const data = {
      clickId: crypto.randomUUID(),
      linkId: crypto.randomUUID(),
      at: new Date().toISOString(),
      referrer: null,
      uaFamily: 'Chrome',
      country: null,
    }
    await addDeadLetter(
      dlq,
      toDeadLetter(
        QUEUES.clicks,
        { id: data.clickId, name: 'click', data },
        new Error('insert or update on table "clicks" violates foreign key constraint'),
        5,
      ),
    )
    await dlq.close()
    await sleep(300)

    process.stdout.write('==> k6 smoke (short) for its HTML report\n')
    const k6 = await runK6({ scenario: 'smoke', short: true, baseUrl: BASE, label: 'screenshots' })
    const report = resolve(k6.dir, 'report.html')
    if (!existsSync(report)) fail(`k6 wrote no HTML report in ${k6.dir}`)

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    try {
      const docs = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      await docs.goto(`${BASE}/docs`, { waitUntil: 'networkidle' })
      await docs.waitForSelector('.opblock', { timeout: 15000 })
      await docs.screenshot({ path: resolve(OUT, 'swagger-ui.png') })

      const ctx = await browser.newContext({
        viewport: { width: 1280, height: 800 },
        httpCredentials: { username: EMAIL, password: PASSWORD },
      })
      const board = await ctx.newPage()
      // The board runs under its own CSP (service/routes/admin/queues.ts): anything it refuses, other than the Google
      // Fonts stylesheet it deliberately blocks, is a part of the page that broke.
      const refused: string[] = []
      board.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text()) && !m.text().includes('fonts.googleapis.com')) refused.push(m.text())
      })
      await board.goto(`${BASE}/admin/queues`, { waitUntil: 'networkidle' })
      await board.waitForSelector('text=clicks', { timeout: 15000 })
      await board.screenshot({ path: resolve(OUT, 'bull-board.png') })
      if (refused.length > 0) throw new Error(`bull-board broke under its CSP: ${refused.join(' | ')}`)

      const k6Page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      await k6Page.goto(`file://${report}`, { waitUntil: 'load' })
      await k6Page.waitForTimeout(1500)
      await k6Page.screenshot({ path: resolve(OUT, 'k6-report.png') })
    } finally {
      await browser.close()
    }
    process.stdout.write(`==> wrote swagger-ui.png, bull-board.png, k6-report.png to ${OUT}\n`)
  } finally {
    child.kill('SIGTERM')
    await redis.quit()
  }
}

await main()
