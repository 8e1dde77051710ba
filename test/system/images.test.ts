// The images `npm run stack -- images` builds (ops/lib/images.ts) keep the interface docker-compose.yml relies on in
// the official images they stand in for: environment, command line, entry point paths, users, healthcheck tools.
// Builds what is missing first (reused when present; ~15 min from nothing on a 2-core machine), then runs each.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { Redis } from 'ioredis'
import { buildImages, IMAGES, tagOf } from '../../ops/lib/images.ts'
import { logsQuery } from '../../ops/lib/logsql.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const tag = (name: string) => tagOf(IMAGES.find((i) => i.name === name)!)
const engine = spawnSync('docker', ['info'], { stdio: 'ignore' }).status === 0
const started: string[] = []

function docker(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('docker', args, { encoding: 'utf8', timeout: 120_000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() }
}

/** Starts a container detached, every exposed port published on a random 127.0.0.1 port. */
function run(name: string, args: string[]): string {
  const id = `opsdrill-imgtest-${name}-${process.pid}`
  const r = docker(['run', '-d', '--name', id, ...args])
  if (r.status !== 0) throw new Error(`docker run ${name}: ${r.out}`)
  started.push(id)
  return id
}

function hostPort(id: string, port: number): number {
  return Number(
    docker(['port', id, String(port)])
      .out.split('\n')[0]!
      .split(':')
      .pop(),
  )
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms
  let last: unknown
  while (Date.now() < end) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    await sleep(500)
  }
  throw new Error(`${what} not within ${ms / 1000} s${last ? `: ${(last as Error).message}` : ''}`)
}

const execOk = (id: string, argv: string[]) => (docker(['exec', id, ...argv]).status === 0 ? true : undefined)
const userOf = (id: string) => docker(['exec', id, 'stat', '-c', '%U', '/proc/1']).out

void t.test('local images', { skip: engine ? false : 'no Docker engine answers (ops/test starts one where it can)' }, async (t) => {
  t.teardown(() => void (started.length && docker(['rm', '-f', '-v', ...started])))
  const log = resolve(ROOT, '.run/images.log')
  mkdirSync(resolve(ROOT, '.run'), { recursive: true })
  buildImages({ log, report: (r) => t.comment(`${r.tag}: ${r.outcome} in ${r.seconds.toFixed(1)} s`) })

  await t.test(
    'when postgres starts on an empty volume with the official variables, then a password login reaches POSTGRES_DB',
    async (t) => {
      const id = run('postgres', [
        '-e',
        'POSTGRES_USER=opsdrill',
        '-e',
        'POSTGRES_PASSWORD=pw',
        '-e',
        'POSTGRES_DB=opsdrill',
        '-p',
        '127.0.0.1::5432',
        tag('postgres'),
        'postgres',
        '-c',
        'max_connections=200',
      ])
      await until('pg_isready (the compose healthcheck)', () => execOk(id, ['pg_isready', '-U', 'opsdrill', '-d', 'opsdrill']))
      const url = (pw: string) => `postgres://opsdrill:${pw}@127.0.0.1:${hostPort(id, 5432)}/opsdrill`
      const c = new pg.Client({ connectionString: url('pw') })
      await c.connect()
      const row = (await c.query("SELECT current_user AS u, current_database() AS d, current_setting('max_connections') AS m")).rows[0]
      await c.end()
      t.same(row, { u: 'opsdrill', d: 'opsdrill', m: '200' }, 'user, database and the -c setting of the command line')
      const bad = new pg.Client({ connectionString: url('wrong') })
      await t.rejects(bad.connect(), /password authentication failed/, 'a wrong password is refused over TCP')
      t.equal(docker(['exec', id, 'stat', '-c', '%U', '/var/lib/postgresql/data/PG_VERSION']).out, 'postgres', 'PGDATA owned by postgres')
    },
  )

  await t.test('when redis runs compose command line, then it answers on every interface with AOF on as the redis user', async (t) => {
    const id = run('redis', [
      '-p',
      '127.0.0.1::6379',
      tag('redis'),
      'redis-server',
      '--appendonly',
      'yes',
      '--maxmemory-policy',
      'noeviction',
    ])
    await until('redis-cli ping (the compose healthcheck)', () => execOk(id, ['redis-cli', 'ping']))
    const r = new Redis(hostPort(id, 6379), '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 })
    await r.connect()
    t.same(await r.config('GET', 'appendonly'), ['appendonly', 'yes'])
    t.same(await r.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction'])
    r.disconnect()
    t.equal(docker(['exec', id, 'stat', '-c', '%U', '/data']).out, 'redis', '/data belongs to redis')
  })

  await t.test('when nginx checks the compose config, then it accepts `server ... resolve` (nginx >= 1.27.3) and has curl', async (t) => {
    const r = docker([
      'run',
      '--rm',
      '-v',
      `${ROOT}/nginx/nginx.conf:/etc/opsdrill/nginx/nginx.conf:ro`,
      '-v',
      `${ROOT}/nginx/upstreams.compose:/etc/opsdrill/nginx/upstreams:ro`,
      '--add-host',
      'api:127.0.0.1',
      tag('nginx'),
      'sh',
      '-c',
      'nginx -v && nginx -p /var/cache/nginx/ -c /etc/opsdrill/nginx/nginx.conf -e stderr -t && curl --version',
    ])
    t.equal(r.status, 0, r.out)
    const [maj, min, patch] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(r.out) ?? []).slice(1).map(Number)
    t.ok(maj! > 1 || min! > 27 || (min === 27 && patch! >= 3), `nginx ${maj}.${min}.${patch} is >= 1.27.3`)
  })

  await t.test('when prometheus runs the compose flags, then it is the pinned 3.x, ready, and runs as nobody', async (t) => {
    const id = run('prometheus', [
      '-v',
      `${ROOT}/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro`,
      '-v',
      `${ROOT}/prometheus/rules:/etc/prometheus/rules:ro`,
      '-p',
      '127.0.0.1::9090',
      tag('prometheus'),
      '--config.file=/etc/prometheus/prometheus.yml',
      '--storage.tsdb.path=/prometheus',
      '--web.enable-remote-write-receiver',
      '--enable-feature=exemplar-storage',
      '--web.enable-lifecycle',
    ])
    await until('wget /-/ready (the compose healthcheck)', () =>
      execOk(id, ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9090/-/ready']),
    )
    const info = (await (await fetch(`http://127.0.0.1:${hostPort(id, 9090)}/api/v1/status/buildinfo`)).json()) as {
      data: { version: string }
    }
    t.equal(info.data.version, IMAGES.find((i) => i.name === 'prometheus')!.version)
    const rules = (await (await fetch(`http://127.0.0.1:${hostPort(id, 9090)}/api/v1/rules`)).json()) as { data: { groups: unknown[] } }
    t.ok(rules.data.groups.length > 0, 'the project rules load')
    t.equal(userOf(id), 'nobody')
  })

  await t.test('when alertmanager runs the project config, then it is ready and runs as nobody', async (t) => {
    const id = run('alertmanager', [
      '-v',
      `${ROOT}/alertmanager:/etc/alertmanager:ro`,
      tag('alertmanager'),
      '--config.file=/etc/alertmanager/alertmanager.yml',
      '--storage.path=/alertmanager',
    ])
    await until('wget /-/ready (the compose healthcheck)', () =>
      execOk(id, ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9093/-/ready']),
    )
    t.equal(userOf(id), 'nobody')
  })

  await t.test('when the exporters start with the compose variables, then /metrics answers on their ports', async (t) => {
    const pgx = run('postgres-exporter', [
      '-e',
      'DATA_SOURCE_URI=127.0.0.1:5432/opsdrill?sslmode=disable',
      '-e',
      'DATA_SOURCE_USER=opsdrill',
      '-e',
      'DATA_SOURCE_PASS=pw',
      tag('postgres-exporter'),
    ])
    const rdx = run('redis-exporter', ['-e', 'REDIS_ADDR=redis://127.0.0.1:6379', tag('redis-exporter')])
    await until('postgres-exporter /metrics', () => execOk(pgx, ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9187/metrics']))
    await until('redis-exporter /metrics', () => execOk(rdx, ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9121/metrics']))
    t.match(
      docker(['exec', pgx, 'wget', '-q', '-O', '-', 'http://127.0.0.1:9187/metrics']).out,
      /^pg_up 0$/m,
      'it reads DATA_SOURCE_* (no server there: pg_up 0)',
    )
    t.match(docker(['exec', rdx, 'wget', '-q', '-O', '-', 'http://127.0.0.1:9121/metrics']).out, /^redis_up 0$/m, 'it reads REDIS_ADDR')
  })

  await t.test('when toxiproxy loads compose/toxiproxy.json, then /toxiproxy-cli list (the healthcheck) shows its proxies', async (t) => {
    const id = run('toxiproxy', [
      '-v',
      `${ROOT}/compose/toxiproxy.json:/config/toxiproxy.json:ro`,
      tag('toxiproxy'),
      '-host=0.0.0.0',
      '-config=/config/toxiproxy.json',
    ])
    const list = await until('/toxiproxy-cli list', () => {
      const r = docker(['exec', id, '/toxiproxy-cli', 'list'])
      return r.status === 0 ? r.out : undefined
    })
    t.match(list, /postgres/)
    t.match(list, /redis/)
  })

  await t.test('when k6 and node run, then they are the pinned versions with the official users', async (t) => {
    t.match(docker(['run', '--rm', tag('k6'), 'version']).out, new RegExp(`v${IMAGES.find((i) => i.name === 'k6')!.version}\\b`))
    t.equal(docker(['run', '--rm', '--entrypoint', 'id', tag('k6'), '-u']).out, '12345')
    const node = docker(['run', '--rm', tag('node'), 'sh', '-c', 'node --version && npm --version && id -u node'])
    t.equal(node.status, 0, node.out)
    t.match(node.out, new RegExp(`^v${IMAGES.find((i) => i.name === 'node')!.version}\\n\\d+\\.\\d+\\.\\d+\\n1000$`))
  })

  await t.test('when jaeger receives an OTLP span, then its query API returns the trace', async (t) => {
    // Without compose/jaeger.yml the default configuration listens on the container's loopback only: the span is
    // posted and read back from inside, with the wget the compose healthcheck uses.
    const id = run('jaeger', [tag('jaeger')])
    await until('wget :13133/status', () => execOk(id, ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:13133/status']))
    const traceId = '5b8efff798038103d269b633813fc60c'
    const now = BigInt(Date.now()) * 1_000_000n
    const span = {
      traceId,
      spanId: 'eee19b7ec3c1b174',
      name: 'probe',
      kind: 2,
      startTimeUnixNano: String(now),
      endTimeUnixNano: String(now + 1_000_000n),
    }
    const body = JSON.stringify({
      resourceSpans: [
        { resource: { attributes: [{ key: 'service.name', value: { stringValue: 'imgtest' } }] }, scopeSpans: [{ spans: [span] }] },
      ],
    })
    const wget = (args: string[]) => docker(['exec', id, 'wget', '-q', '-O', '-', ...args])
    const post = await until('OTLP/HTTP accepts the span', () => {
      const r = wget(['--header=content-type: application/json', `--post-data=${body}`, 'http://127.0.0.1:4318/v1/traces'])
      return r.status === 0 ? r : undefined
    })
    t.match(post.out, /partialSuccess/, 'OTLP/HTTP answered')
    const trace = await until('the trace in the query API', () => {
      const r = wget([`http://127.0.0.1:16686/api/traces/${traceId}`])
      return r.status === 0 ? (JSON.parse(r.out) as { data: { spans: { operationName: string }[] }[] }) : undefined
    })
    t.equal(trace.data[0]?.spans[0]?.operationName, 'probe')
    t.equal(docker(['exec', id, 'id', '-u']).out, '10001')
  })
  await t.test('when the shipper tails an ECS line into VictoriaLogs, then a search by trace.id finds it with its fields', async (t) => {
    // The two log images together, as the logs profile runs them on local images: otelcol with the repo's
    // otelcol/config.yaml (the official image's config path) in VictoriaLogs' network namespace, so the bulk API is
    // its 127.0.0.1:9428; a log file of the test's own stands in for Docker's json-file logs.
    const vl = run('victoria-logs', ['-p', '127.0.0.1::9428', tag('victoria-logs'), '-storageDataPath=/victoria-logs-data'])
    await until('wget :9428/health', () => execOk(vl, ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:9428/health']))
    const logs = mkdtempSync(join(tmpdir(), 'opsdrill-imgtest-logs-'))
    t.teardown(() => rmSync(logs, { recursive: true, force: true }))
    run('otelcol', [
      '--network',
      `container:${vl}`,
      '--user',
      '0',
      '-v',
      `${ROOT}/otelcol/config.yaml:/etc/otelcol-contrib/config.yaml:ro`,
      '-v',
      `${logs}:/logs:ro`,
      '-e',
      'OTELCOL_LOG_FILES=/logs/*.log',
      '-e',
      'LOGS_ES_ENDPOINT=http://127.0.0.1:9428/insert/elasticsearch',
      '-e',
      'OTELCOL_STORAGE_DIR=/tmp/otelcol',
      '-e',
      'OTELCOL_HEALTH_ENDPOINT=127.0.0.1:13133',
      tag('otelcol'),
    ])
    await until('otelcol health :13133', () => execOk(vl, ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:13133/']))
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const line = {
      '@timestamp': new Date().toISOString(),
      'log.level': 'info',
      'ecs.version': '8.10.0',
      'service.name': 'imgtest',
      trace: { id: traceId },
      span: { id: '00f067aa0ba902b7' },
      http: { request: { id: 'req-1' } },
      message: 'GET /imgtest 200',
    }
    appendFileSync(join(logs, 'app.log'), `${JSON.stringify(line)}\n`)
    const base = `http://127.0.0.1:${hostPort(vl, 9428)}`
    const [row] = await until('the line in VictoriaLogs', async () => {
      const rows = await logsQuery(base, `trace.id:${traceId}`)
      return rows.length ? rows : undefined
    })
    t.equal(row!['span.id'], '00f067aa0ba902b7')
    t.equal(row!['http.request.id'], 'req-1')
    t.equal(row!['log.level'], 'info')
    t.equal(row!._msg, 'GET /imgtest 200')
    t.equal(Date.parse(row!._time!), Date.parse(line['@timestamp']), '@timestamp kept as _time')
    t.equal(
      docker(['inspect', '--format', '{{.Config.User}} {{json .Config.Entrypoint}}', tag('otelcol')]).out,
      '10001 ["/otelcol-contrib"]',
    )
    t.equal((await fetch(`${base}/select/vmui/`)).status, 200, 'the web UI is served')
  })
})
