// docker-compose.yml checked offline: the compose-spec JSON schema (vendored), then the facts a schema cannot know:
// mounts exist, the app's required env is set and valid, names and ports agree with the other config files,
// images are pinned, long-running services have healthchecks and memory limits, and the budget comment is true.
import t from 'tap'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse } from 'yaml'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { ApiEnv, WorkerEnv, loadConfig } from '../../common/config.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const read = (p: string) => readFileSync(resolve(ROOT, p), 'utf8')
const SECRETS = { JWT_SECRET: 'compose-test-secret-of-at-least-32-bytes!', POSTGRES_PASSWORD: 'pw', GRAFANA_ADMIN_PASSWORD: 'pw' }

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
interface Service {
  image?: string
  build?: unknown
  pull_policy?: string
  env_file?: unknown
  network_mode?: string
  entrypoint?: string[]
  labels?: Record<string, string>
  profiles?: string[]
  environment?: Record<string, string>
  volumes?: (string | { type: string; source: string })[]
  expose?: string[]
  ports?: string[]
  healthcheck?: { test?: string[]; disable?: boolean }
  depends_on?: Record<string, { condition: string }>
  deploy?: { replicas?: number; resources?: { limits?: { memory?: string } } }
  mem_limit?: string
  restart?: string
  command?: string[]
}

/** Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$. */
function interpolate(node: Json, env: Record<string, string>, where = ''): Json {
  if (typeof node === 'string') {
    return node.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (m, name?: string, op?: string, arg?: string) => {
      if (m === '$$') return '$'
      const v = env[name!]
      const unset = v === undefined || (op?.startsWith(':') && v === '')
      if (!unset) return v!
      if (op?.endsWith('?')) throw new Error(`${where}: ${name} is required: ${arg}`)
      return op ? arg! : ''
    })
  }
  if (Array.isArray(node)) return node.map((v, i) => interpolate(v, env, `${where}[${i}]`))
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, env, where ? `${where}.${k}` : k)]))
  }
  return node
}

const raw = parse(read('docker-compose.yml'), { merge: true }) as Json
const compose = interpolate(raw, SECRETS) as unknown as { services: Record<string, Service>; volumes: Record<string, unknown> }
const services = Object.entries(compose.services)
const oneShot = (s: Service) => s.restart === 'no'
const memMiB = (s: Service): number | undefined => {
  const v = s.deploy?.resources?.limits?.memory ?? s.mem_limit
  const m = v?.match(/^(\d+)([mg])$/)
  return m ? Number(m[1]) * (m[2] === 'g' ? 1024 : 1) : undefined
}
const exposes = (s: Service, port: string) => (s.expose ?? []).includes(port) || (s.ports ?? []).some((p) => p.split(':').at(-1) === port)

function envOf(s: Service): Record<string, string> {
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]))
}

void t.test('when docker-compose.yml is validated against the compose-spec schema, then it has no errors', async (t) => {
  const ajv = new Ajv({ allErrors: true, strict: false })
  addFormats.default(ajv)
  // The spec names its meta-schema by https URL; Ajv registers draft-07 under http. Same draft, so drop the tag.
  const { $schema: _draft, ...schema } = JSON.parse(read('test/fixtures/schemas/compose-spec.json')) as Record<string, unknown>
  const validate = ajv.compile(schema)
  const ok = validate(compose)
  t.ok(ok, `docker-compose.yml: ${ajv.errorsText(validate.errors, { separator: '\n  ' })}`)
})

void t.test('when a secret is missing from .env, then compose refuses to start and names it', async (t) => {
  for (const name of Object.keys(SECRETS)) {
    const env: Record<string, string> = { ...SECRETS }
    delete env[name]
    t.throws(() => interpolate(raw, env), new RegExp(`${name} is required`), `docker-compose.yml: ${name} must be \${${name}:?...}`)
  }
  const text = read('docker-compose.yml')
  for (const key of ['JWT_SECRET', 'POSTGRES_PASSWORD', 'GF_SECURITY_ADMIN_PASSWORD', 'DATA_SOURCE_PASS']) {
    for (const line of text.split('\n').filter((l) => l.trim().startsWith(`${key}:`))) {
      t.match(line, /\$\{[A-Z_]+:\?/, `docker-compose.yml: ${key} must come from .env, not a literal: ${line.trim()}`)
    }
  }
})

const documentedIn = (file: string) => new Set([...read(file).matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!))

void t.test('when app.env.example is read, then it documents every app key and OTEL variable, all commented out', async (t) => {
  const example = read('app.env.example')
  const documented = documentedIn('app.env.example')
  const appKeys = new Set([...Object.keys(ApiEnv.properties), ...Object.keys(WorkerEnv.properties)])
  for (const key of appKeys) t.ok(documented.has(key), `app.env.example: ApiEnv/WorkerEnv key ${key} is not documented`)
  for (const key of [
    'OTEL_SERVICE_NAME',
    'OTEL_EXPORTER_OTLP_ENDPOINT',
    'OTEL_TRACES_SAMPLER',
    'OTEL_TRACES_SAMPLER_ARG',
    'OTEL_SDK_DISABLED',
  ]) {
    t.ok(documented.has(key), `app.env.example: ${key} is not documented`)
  }
  t.match(example, /^# OTEL_TRACES_SAMPLER=parentbased_traceidratio$/m, 'app.env.example: the sampler is parentbased_traceidratio')
  t.same(
    [...example.matchAll(/^([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]),
    [],
    'app.env.example: every key is commented out',
  )
})

void t.test('when .env.example is read, then it holds compose variables only, with no value committed', async (t) => {
  const example = read('.env.example')
  const documented = documentedIn('.env.example')
  const used = new Set([...read('docker-compose.yml').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!))
  for (const name of used)
    t.ok(documented.has(name), `.env.example: docker-compose.yml uses \${${name}} but .env.example does not document it`)
  // Compose's own variables (COMPOSE_*) are read by compose itself, not through ${...}.
  for (const name of documented) {
    t.ok(
      used.has(name) || name.startsWith('COMPOSE_'),
      `.env.example: ${name} is not a variable docker-compose.yml reads (app keys: app.env.example)`,
    )
  }
  for (const [, name, value] of example.matchAll(/^([A-Z][A-Z0-9_]+)=(.*)$/gm)) {
    t.equal(value, '', `.env.example: ${name} must be left empty (no secret or value committed)`)
  }
})

void t.test(
  'when compose hands out environment, then no service gets a whole env file and each secret goes where it is used',
  async (t) => {
    for (const [name, s] of services) t.notOk(s.env_file, `docker-compose.yml: ${name} has an env_file (it hands over every key in it)`)
    // Which services name a secret, read from the raw file (interpolation hides where a value came from).
    const rawServices = (raw as { services: Record<string, Json> }).services
    const users = (secret: string) =>
      Object.entries(rawServices)
        .filter(([, svc]) => JSON.stringify(svc).includes(`\${${secret}`))
        .map(([n]) => n)
        .sort()
    t.same(users('JWT_SECRET'), ['api'], 'JWT_SECRET: the api alone signs and checks tokens')
    t.same(users('GRAFANA_ADMIN_PASSWORD'), ['grafana'], 'GRAFANA_ADMIN_PASSWORD: Grafana alone')
    t.same(
      users('POSTGRES_PASSWORD'),
      ['api', 'migrate', 'postgres', 'postgres-exporter', 'worker'],
      'POSTGRES_PASSWORD: Postgres and the services that log in to it',
    )
  },
)

void t.test('when compose builds the app image, then one service builds it and the others never pull it', async (t) => {
  const builders = services.filter(([, s]) => s.build)
  t.same(
    builders.map(([n]) => n),
    ['api'],
    'one service builds the image (three parallel builds of one tag fail with "image already exists")',
  )
  const image = builders[0]?.[1].image
  t.equal(builders[0]?.[1].pull_policy, 'build', 'the builder rebuilds on every up, so a pulled or older image is never run stale')
  const runners = services.filter(([, s]) => !s.build && s.image === image).map(([n, s]) => [n, s.pull_policy])
  t.same(
    runners,
    [
      ['migrate', 'never'],
      ['worker', 'never'],
      ['alert-recorder', 'never'],
    ],
    'migrate, worker and alert-recorder run the built image and never pull it from a registry',
  )
})

void t.test('when a service publishes a port, then only nginx is on every interface, and every host port is set in .env', async (t) => {
  let published = 0
  for (const [name, s] of services) {
    for (const p of s.ports ?? []) {
      published++
      if (name === 'nginx') continue
      t.match(p, /^127\.0\.0\.1:\d+:\d+$/, `docker-compose.yml: ${name} publishes ${p} beyond 127.0.0.1`)
    }
  }
  t.ok(published >= 8, `${published} published ports checked`)
  const rawServices = (raw as { services: Record<string, { ports?: string[] }> }).services
  for (const [name, s] of Object.entries(rawServices)) {
    for (const p of s.ports ?? []) {
      t.match(
        p,
        /^(127\.0\.0\.1:)?\$\{[A-Z_]+_PORT:-\d+\}:\d+$/,
        `docker-compose.yml: ${name} host port of ${p} comes from .env with a default`,
      )
    }
  }
})

void t.test('when Prometheus runs under compose, then it gets the config and rules, not the native stack targets', async (t) => {
  const mounts = (compose.services.prometheus!.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':')[0]! : v.source))
  t.ok(mounts.includes('./prometheus/prometheus.yml'), 'prometheus.yml is mounted')
  t.ok(mounts.includes('./prometheus/rules'), 'the rules are mounted')
  for (const m of mounts) {
    t.notOk(
      m === './prometheus' || m === './prometheus/' || m.startsWith('./prometheus/targets'),
      `docker-compose.yml: prometheus mounts ${m}, which holds the native stack's file_sd targets`,
    )
  }
})

void t.test('when the default profile runs, then the app exports traces only where a collector is started', async (t) => {
  for (const [name, env] of [
    ['default', {}],
    ['tracing', { OTEL_SDK_DISABLED: 'false' }],
  ] as const) {
    const c = interpolate(raw, { ...SECRETS, ...env }) as unknown as typeof compose
    for (const svc of ['api', 'worker']) {
      const e = envOf(c.services[svc]!)
      if (e.OTEL_SDK_DISABLED === 'true') continue
      t.equal(name, 'tracing', `docker-compose.yml: ${svc} exports traces by default, but the default profile starts no collector`)
      const host = new URL(e.OTEL_EXPORTER_OTLP_ENDPOINT!).hostname
      t.ok(c.services[host]?.profiles?.includes('tracing'), `${svc} exports to ${host}, which the tracing profile starts`)
    }
  }
  t.equal(envOf(compose.services.api!).OTEL_SDK_DISABLED, 'true', 'tracing is off without the tracing profile')
})

void t.test('when Jaeger runs, then it is v2 with its config file: OTLP receivers, memory storage, query on 16686', async (t) => {
  const j = compose.services.jaeger!
  t.match(j.image ?? '', /^jaegertracing\/jaeger:2\.\d+\.\d+$/, 'Jaeger v2 (v1 all-in-one is past its end of life)')
  t.same(j.command, ['--config=/etc/jaeger/config.yml'])
  t.ok((j.volumes ?? []).includes('./compose/jaeger.yml:/etc/jaeger/config.yml:ro'), 'compose/jaeger.yml is its config')
  const cfg = parse(read('compose/jaeger.yml')) as {
    service: { extensions: string[]; pipelines: { traces: { receivers: string[]; exporters: string[] } } }
    extensions: {
      healthcheckv2: { http: { endpoint: string } }
      jaeger_query: { storage: { traces: string }; http: { endpoint: string } }
      jaeger_storage: { backends: Record<string, { memory?: { max_traces: number } }> }
    }
    receivers: { otlp: { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } } }
    exporters: { jaeger_storage_exporter: { trace_storage: string } }
  }
  t.same(cfg.service.pipelines.traces.receivers, ['otlp'])
  t.same(cfg.service.pipelines.traces.exporters, ['jaeger_storage_exporter'])
  const store = cfg.exporters.jaeger_storage_exporter.trace_storage
  t.ok(cfg.extensions.jaeger_storage.backends[store]?.memory?.max_traces, `the exporter writes to ${store}, a memory store`)
  t.equal(cfg.extensions.jaeger_query.storage.traces, store, 'the query reads the store the exporter writes')
  const port = (endpoint: string) => endpoint.split(':').at(-1)!
  for (const [what, endpoint] of [
    ['OTLP/gRPC', cfg.receivers.otlp.protocols.grpc.endpoint],
    ['OTLP/HTTP', cfg.receivers.otlp.protocols.http.endpoint],
    ['query', cfg.extensions.jaeger_query.http.endpoint],
    ['health', cfg.extensions.healthcheckv2.http.endpoint],
  ] as const) {
    t.match(endpoint, /^0\.0\.0\.0:\d+$/, `${what} listens on every interface of the container`)
    t.ok(exposes(j, port(endpoint)), `${what} port ${port(endpoint)} is exposed`)
  }
  t.equal(port(cfg.extensions.jaeger_query.http.endpoint), '16686')
  t.ok(
    j.healthcheck?.test?.some((a) => a.includes(`:${port(cfg.extensions.healthcheckv2.http.endpoint)}/status`)),
    'the healthcheck probes healthcheckv2',
  )
})

void t.test("when Alertmanager notifies its webhook, then a recorder listens at that address in Alertmanager's network", async (t) => {
  const am = parse(read('alertmanager/alertmanager.yml')) as { receivers: { name: string; webhook_configs?: { url: string }[] }[] }
  const urls = am.receivers.flatMap((r) => (r.webhook_configs ?? []).map((w) => new URL(w.url)))
  t.ok(urls.length >= 2, 'the page and ticket receivers post to webhooks')
  const recorder = services.find(([, s]) => s.network_mode === 'service:alertmanager')
  t.ok(recorder, 'a service shares the network namespace of alertmanager')
  for (const u of urls) {
    t.equal(u.hostname, '127.0.0.1', `${u}: Alertmanager's own loopback, which the recorder shares`)
    t.equal(envOf(recorder![1]).PORT, u.port, `${u}: the recorder listens on that port`)
  }
  t.same(recorder![1].entrypoint, ['node', 'ops/alert-recorder.ts'])
  t.ok(
    (compose.services.alertmanager!.ports ?? []).some((p) => p.endsWith(`:${urls[0]!.port}`)),
    'the recorder port is published (on alertmanager, the owner of the namespace), so the suite can read it',
  )
})

void t.test('when a service bind-mounts a repository path, then that path exists', async (t) => {
  let checked = 0
  for (const [name, s] of services) {
    for (const v of s.volumes ?? []) {
      const source = typeof v === 'string' ? v.split(':')[0]! : v.source
      if (!source.startsWith('./')) continue // named volumes and host paths (/var/lib/docker/...) are not in the repo
      checked++
      t.ok(existsSync(resolve(ROOT, source)), `docker-compose.yml: ${name} mounts ${source}, which does not exist`)
    }
  }
  t.ok(checked >= 8, 'the repository config files are mounted, not copied')
})

void t.test('when the api and worker environments are loaded with the app schemas, then they are complete and valid', async (t) => {
  const cases = [
    ['api', ApiEnv],
    ['worker', WorkerEnv],
  ] as const
  for (const [name, schema] of cases) {
    const env = envOf(compose.services[name]!)
    const required = Object.entries(schema.properties as Record<string, { default?: unknown }>)
      .filter(([, p]) => p.default === undefined)
      .map(([k]) => k)
    for (const key of required) t.ok(env[key], `docker-compose.yml: ${name} does not set ${key}, which has no default`)
    t.doesNotThrow(() => loadConfig(schema, env), `docker-compose.yml: ${name} environment fails its schema`)
  }
  t.equal(envOf(compose.services.api!).PORT, '3000', 'the API listens on 3000 (nginx upstream api:3000)')
  t.equal(envOf(compose.services.api!).METRICS_PORT, '9464')
  t.equal(envOf(compose.services.worker!).METRICS_PORT, '9465')
  t.equal(envOf(compose.services.worker!).HEALTHCHECK_PORT, '9465', 'the image healthcheck probes the worker on 9465')
})

void t.test('when a config file names a compose host and port, then that service exists and exposes the port', async (t) => {
  const refs: { from: string; host: string; port: string }[] = []
  const url = (from: string, u: string) => {
    const p = new URL(u)
    refs.push({ from, host: p.hostname, port: p.port || (p.protocol === 'https:' ? '443' : '80') })
  }
  const prom = parse(read('prometheus/prometheus.yml')) as {
    scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[]
    alerting?: { alertmanagers: { dns_sd_configs?: { names: string[]; port: number }[] }[] }
  }
  const dns = [
    ...prom.scrape_configs.flatMap((j) => j.dns_sd_configs ?? []),
    ...(prom.alerting?.alertmanagers ?? []).flatMap((a) => a.dns_sd_configs ?? []),
  ]
  for (const d of dns)
    for (const n of d.names) refs.push({ from: 'prometheus/prometheus.yml dns_sd_configs', host: n, port: String(d.port) })
  for (const want of ['api:9464', 'worker:9465', 'postgres-exporter:9187', 'redis-exporter:9121']) {
    t.ok(
      dns.some((d) => d.names.some((n) => `${n}:${d.port}` === want)),
      `prometheus/prometheus.yml: no dns_sd target ${want}`,
    )
  }

  const dsDir = resolve(ROOT, 'grafana/provisioning/datasources')
  const dsFiles = existsSync(dsDir) ? readdirSync(dsDir).filter((f) => /\.ya?ml$/.test(f)) : []
  t.ok(dsFiles.length > 0, 'grafana/provisioning/datasources: no datasource file to check')
  for (const f of dsFiles) {
    const doc = parse(read(`grafana/provisioning/datasources/${f}`)) as { datasources?: { uid?: string; url?: string }[] }
    for (const ds of doc.datasources ?? []) if (ds.url) url(`grafana datasource ${ds.uid}`, ds.url)
  }

  for (const [, host, port] of read('nginx/upstreams.compose/api.conf').matchAll(/^\s*server\s+([\w.-]+):(\d+)/gm)) {
    refs.push({ from: 'nginx/upstreams.compose/api.conf', host: host!, port: port! })
  }
  t.match(read('nginx/upstreams.compose/api.conf'), /^server api:3000 max_fails=2 fail_timeout=5s resolve;$/m)

  for (const p of JSON.parse(read('compose/toxiproxy.json')) as { name: string; listen: string; upstream: string }[]) {
    const [host, port] = p.upstream.split(':')
    refs.push({ from: `compose/toxiproxy.json proxy ${p.name}`, host: host!, port: port! })
    refs.push({ from: `compose/toxiproxy.json proxy ${p.name} listener`, host: 'toxiproxy', port: p.listen.split(':')[1]! })
  }
  // The shipper's store: Elasticsearch by default, VictoriaLogs' bulk API when LOGS_ES_ENDPOINT says so (and on
  // local images, compose/local-images.yml).
  url('otelcol LOGS_ES_ENDPOINT', envOf(compose.services.otelcol!).LOGS_ES_ENDPOINT!)
  // logLevel: compose's !override tags mean nothing to this parser, and the values under them are not read here.
  const local = parse(read('compose/local-images.yml'), { logLevel: 'error' }) as { services: Record<string, Service> }
  url('compose/local-images.yml otelcol LOGS_ES_ENDPOINT', local.services.otelcol!.environment!.LOGS_ES_ENDPOINT!)

  for (const name of ['api', 'worker']) {
    const env = envOf(compose.services[name]!)
    url(`${name} DATABASE_URL`, env.DATABASE_URL!)
    url(`${name} REDIS_URL`, env.REDIS_URL!)
    url(`${name} OTEL_EXPORTER_OTLP_ENDPOINT`, env.OTEL_EXPORTER_OTLP_ENDPOINT!)
    t.match(env.DATABASE_URL!, /@toxiproxy:15432\//, `${name} reaches Postgres through toxiproxy`)
    t.match(env.REDIS_URL!, /^redis:\/\/toxiproxy:16379$/, `${name} reaches Redis through toxiproxy`)
  }
  // The cache has its own Redis that evicts (issue 11): a full cache must not make the queues' writes fail.
  const api = envOf(compose.services.api!)
  url('api CACHE_REDIS_URL', api.CACHE_REDIS_URL!)
  t.match(api.CACHE_REDIS_URL!, /^redis:\/\/toxiproxy:16380$/, 'api reaches the cache Redis through toxiproxy')
  const cacheCmd = compose.services['redis-cache']?.command ?? []
  t.match(cacheCmd.join(' '), /--maxmemory-policy allkeys-lru/, 'redis-cache evicts (allkeys-lru)')
  t.match(cacheCmd.join(' '), /--maxmemory \d+mb/, 'redis-cache has a maxmemory')
  t.match((compose.services.redis?.command ?? []).join(' '), /--maxmemory-policy noeviction/, 'the queue Redis never evicts')
  const k6 = envOf(compose.services.k6!)
  url('k6 BASE_URL', k6.BASE_URL!)
  url('k6 K6_PROMETHEUS_RW_SERVER_URL', k6.K6_PROMETHEUS_RW_SERVER_URL!)

  for (const r of refs) {
    const s = compose.services[r.host]
    t.ok(s && exposes(s, r.port), `${r.from}: ${r.host}:${r.port} is not a compose service exposing that port`)
  }
})

void t.test('when an image is named, then it is pinned to an exact version', async (t) => {
  for (const [name, s] of services) {
    if (s.build || s.pull_policy === 'never') {
      t.match(s.image ?? '', /^opsdrill:/, `docker-compose.yml: ${name} runs the image built from the Dockerfile`)
      continue
    }
    const m = s.image?.match(/^(.+?):([^:/@]+)(@sha256:[0-9a-f]{64})?$/)
    t.ok(m, `docker-compose.yml: ${name} image ${s.image} has no tag`)
    t.match(
      m?.[2] ?? '',
      /^v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?$/,
      `docker-compose.yml: ${name} image ${s.image} is not pinned to an exact version`,
    )
  }
})

/** Long-running services whose official image holds nothing that could probe them, with why. */
const NO_PROBE: Record<string, string> = {
  otelcol: "the contrib image is FROM scratch; the compose suite finds a request's log line in the store instead",
}

void t.test('when a service runs long, then it has a healthcheck and every service has a memory limit', async (t) => {
  for (const [name, s] of services) {
    t.ok(memMiB(s), `docker-compose.yml: ${name} has no memory limit`)
    if (oneShot(s)) continue
    if (NO_PROBE[name]) {
      t.ok(s.healthcheck?.disable, `docker-compose.yml: ${name} has no healthcheck: ${NO_PROBE[name]}`)
      continue
    }
    t.ok(s.healthcheck?.test && !s.healthcheck.disable, `docker-compose.yml: long-running ${name} has no healthcheck`)
  }
})

void t.test('when a service depends on another, then it waits for health (or completion of a one-shot)', async (t) => {
  for (const [name, s] of services) {
    for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
      const target = compose.services[dep]
      t.ok(target, `docker-compose.yml: ${name} depends on unknown ${dep}`)
      const want = target && oneShot(target) ? 'service_completed_successfully' : 'service_healthy'
      t.equal(condition, want, `docker-compose.yml: ${name} -> ${dep} should wait for ${want}`)
      t.ok(
        !target?.profiles || (s.profiles ?? []).every((p) => target.profiles!.includes(p)) || s.profiles?.includes('load'),
        `docker-compose.yml: ${name} depends on ${dep}, which its profiles do not start`,
      )
    }
  }
  t.equal(compose.services.api?.deploy?.replicas, 3)
  t.equal(compose.services.worker?.deploy?.replicas, 2)
  t.notOk(compose.services.api?.ports, 'the API has no host port: only nginx reaches it (scalable with --scale api=N)')
  t.same(compose.services.nginx?.ports, ['8080:8080'], 'nginx is the one entry point, on host port 8080')
})

void t.test('when the memory limits are summed per profile, then they match the budget at the top of the file', async (t) => {
  const sum = (pick: (s: Service) => boolean) =>
    services.filter(([, s]) => pick(s)).reduce((n, [, s]) => n + memMiB(s)! * (s.deploy?.replicas ?? 1), 0)
  const core = sum((s) => !s.profiles)
  const only = (p: string) => sum((s) => !!s.profiles?.includes(p))
  const header = read('docker-compose.yml')
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .join('\n')
  const row = (label: string) => Number(header.match(new RegExp(`^#\\s+${label.replace('+', '\\+')}\\s+(\\d+)`, 'm'))?.[1])
  t.equal(row('core'), core, `docker-compose.yml budget: core should be ${core}`)
  t.equal(row('+ tracing'), only('tracing'), `docker-compose.yml budget: tracing should be ${only('tracing')}`)
  t.equal(row('+ logs'), only('logs'), `docker-compose.yml budget: logs should be ${only('logs')}`)
  t.equal(row('full'), core + only('full'), `docker-compose.yml budget: full should be ${core + only('full')}`)
  t.equal(row('+ load'), only('load'), `docker-compose.yml budget: load should be ${only('load')}`)
  t.equal(only('full'), only('tracing') + only('logs'), 'profile full is exactly tracing + logs')
})

void t.test("when the shipper writes daily indices, then Kibana's data view and Grafana's datasource read that pattern", async (t) => {
  const cfg = parse(read('otelcol/config.yaml')) as {
    exporters: { elasticsearch: { logs_index: string; logstash_format?: { enabled: boolean }; mapping: { allowed_modes: string[] } } }
  }
  const es = cfg.exporters.elasticsearch
  t.ok(es.logstash_format?.enabled, 'otelcol/config.yaml: daily indices (logstash_format), <logs_index>-YYYY.MM.DD')
  t.same(
    es.mapping.allowed_modes,
    ['bodymap'],
    'otelcol/config.yaml: the ECS line is the document, as written (bodymap, the one mode allowed)',
  )
  const pattern = `${es.logs_index}-*`
  const setup = compose.services['kibana-setup']!.command!
  const view = JSON.parse(setup[setup.indexOf('-d') + 1]!) as { data_view: { title: string; timeFieldName: string } }
  t.equal(view.data_view.title, pattern, "kibana-setup: the data view's pattern is the shipper's indices")
  t.equal(view.data_view.timeFieldName, '@timestamp')
  t.ok(setup.includes('http://kibana:5601/api/data_views/data_view'), "kibana-setup posts to Kibana's data views API")
  const ds = parse(read('grafana/provisioning/datasources/datasources.yml')) as {
    datasources: { uid: string; jsonData?: { index?: string; timeField?: string; tracesToLogsV2?: { datasourceUid: string } } }[]
  }
  const elastic = ds.datasources.find((d) => d.uid === 'elasticsearch')
  t.equal(elastic?.jsonData?.index, pattern, "Grafana's logs datasource reads the shipper's indices")
  t.equal(elastic?.jsonData?.timeField, '@timestamp')
  // Grafana expands $LOGS_DATASOURCE from its environment, which is elasticsearch unless set.
  const linked = ds.datasources.find((d) => d.uid === 'jaeger')?.jsonData?.tracesToLogsV2?.datasourceUid
  const env = compose.services.grafana!.environment as Record<string, string> | undefined
  t.equal(`${linked}|${env?.LOGS_DATASOURCE}`, '$LOGS_DATASOURCE|elasticsearch', 'traces link to those logs by default')
})
