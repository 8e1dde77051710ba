// k8s/ checked offline: each overlay is rendered by kustomize and validated by kubeconform in strict mode against
// the vendored schemas (Kubernetes 1.33 standalone-strict, KEDA ScaledObject and ServiceMonitor CRDs; nothing is
// fetched, no kind is skipped), then read for the operational promises the schemas cannot check.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import pg from 'pg'
import { parseAllDocuments } from 'yaml'
import { ApiEnv, WorkerEnv, loadConfig, BaseEnv } from '../../common/config.ts'
import { QUEUES } from '../../common/queues.ts'
import { tool } from '../../ops/lib/tools.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const SCHEMAS = resolve(ROOT, 'test/fixtures/schemas')
const K8S_VERSION = '1.33.0'
const OVERLAYS = ['local', 'production'] as const

// The rendered manifests are plain data; these types name only the fields the checks read.
interface Obj {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
  [k: string]: unknown
}
interface Probe {
  httpGet?: { path: string; port: number | string }
}
interface EnvVar {
  name: string
  value?: string
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: unknown }
}
interface Container {
  name: string
  image?: string
  ports?: { name?: string; containerPort: number }[]
  env?: EnvVar[]
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[]
  livenessProbe?: Probe
  readinessProbe?: Probe
  lifecycle?: { preStop?: { exec?: { command: string[] } } }
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> }
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } }
}
interface PodSpec {
  containers: Container[]
  initContainers?: Container[]
  terminationGracePeriodSeconds?: number
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } }
}
interface Workload extends Obj {
  spec: { template: { metadata?: { annotations?: Record<string, string> }; spec: PodSpec } }
}

function run(cmd: string, args: string[], input?: string) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', input, maxBuffer: 64 << 20 })
  if (r.error) throw new Error(`${cmd} is not installed (ops/test installs it): ${r.error.message}`)
  return r
}

const rendered = new Map<string, { yaml: string; docs: Obj[] }>()
for (const o of OVERLAYS) {
  const r = run(tool('kustomize'), ['build', `k8s/overlays/${o}`])
  if (r.status !== 0) throw new Error(`kustomize build k8s/overlays/${o} failed:\n${r.stderr}`)
  rendered.set(o, { yaml: r.stdout, docs: parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj) })
}
const docsOf = (o: string) => rendered.get(o)!.docs
const find = <T extends Obj>(o: string, kind: string, name: string) =>
  docsOf(o).find((d) => d.kind === kind && d.metadata.name === name) as T | undefined
const workloads = (o: string) => docsOf(o).filter((d) => ['Deployment', 'StatefulSet', 'Job'].includes(d.kind)) as Workload[]
const portOf = (c: Container, p: number | string) => (typeof p === 'number' ? p : c.ports?.find((x) => x.name === p)?.containerPort)

for (const o of OVERLAYS) {
  void t.test(
    `when k8s/overlays/${o} is rendered, then kubeconform -strict finds every resource valid against the vendored schemas`,
    async (t) => {
      const r = run(
        tool('kubeconform'),
        [
          '-strict',
          '-summary',
          '-kubernetes-version',
          K8S_VERSION,
          '-schema-location',
          `${SCHEMAS}/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
          '-schema-location',
          `${SCHEMAS}/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`,
          '-',
        ],
        rendered.get(o)!.yaml,
      )
      t.equal(r.status, 0, `kubeconform on k8s/overlays/${o}:\n${r.stdout}${r.stderr}`)
      const m = r.stdout.match(/(\d+) resources found .* Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)/)
      t.ok(m, `kubeconform printed no summary: ${r.stdout}`)
      t.equal(m?.[1], m?.[2], `k8s/overlays/${o}: every resource is valid`)
      t.equal(m?.[5], '0', `k8s/overlays/${o}: no resource was skipped for lack of a schema`)
    },
  )
}

void t.test('when a resource is invalid, then the same kubeconform check rejects it', async (t) => {
  const bad = rendered
    .get('local')!
    .yaml.replace('terminationGracePeriodSeconds: 30', 'terminationGracePeriodSeconds: "30"\n      bogusField: 1')
  const r = run(
    tool('kubeconform'),
    [
      '-strict',
      '-summary',
      '-kubernetes-version',
      K8S_VERSION,
      '-schema-location',
      `${SCHEMAS}/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
      '-',
    ],
    bad,
  )
  t.not(r.status, 0, 'kubeconform accepted an unknown field and a string where an integer belongs')
  t.match(r.stdout, /bogusField/)
})

for (const o of OVERLAYS) {
  void t.test(`when k8s/overlays/${o} runs the API, then it probes, drains and is locked down`, async (t) => {
    const api = find<Workload>(o, 'Deployment', 'opsdrill-api')!
    t.ok(api, `k8s/overlays/${o}: no Deployment opsdrill-api`)
    const pod = api.spec.template.spec
    const c = pod.containers[0]!
    t.equal(portOf(c, c.livenessProbe!.httpGet!.port), 3000, 'liveness probe on 3000')
    t.equal(c.livenessProbe?.httpGet?.path, '/healthz')
    t.equal(portOf(c, c.readinessProbe!.httpGet!.port), 3000, 'readiness probe on 3000')
    t.equal(c.readinessProbe?.httpGet?.path, '/readyz')
    t.same(c.lifecycle?.preStop?.exec?.command, ['sleep', '5'], 'preStop drains for 5 s')
    t.equal(pod.terminationGracePeriodSeconds, 30)
    const annotations = api.spec.template.metadata?.annotations ?? {}
    t.equal(annotations['prometheus.io/scrape'], 'true')
    t.equal(Number(annotations['prometheus.io/port']), portOf(c, 'metrics'), 'scrape annotation names the metrics port')
    t.equal(annotations['prometheus.io/path'], '/metrics')

    const worker = find<Workload>(o, 'Deployment', 'opsdrill-worker')!
    const w = worker.spec.template.spec.containers[0]!
    t.equal(portOf(w, w.livenessProbe!.httpGet!.port), 9465, 'worker liveness on 9465')
    t.equal(portOf(w, w.readinessProbe!.httpGet!.port), 9465, 'worker readiness on 9465')
    t.equal(Number(worker.spec.template.metadata?.annotations?.['prometheus.io/port']), 9465)
  })

  void t.test(`when k8s/overlays/${o} runs any container, then it is non-root, read-only, capability-free and bounded`, async (t) => {
    for (const w of workloads(o)) {
      const pod = w.spec.template.spec
      const where = `k8s/overlays/${o} ${w.kind}/${w.metadata.name}`
      t.equal(pod.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`)
      t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp RuntimeDefault`)
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${where}/${c.name}: allowPrivilegeEscalation false`)
        t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where}/${c.name}: readOnlyRootFilesystem`)
        t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${where}/${c.name}: drops ALL capabilities`)
        t.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${where}/${c.name}: cpu and memory requests`)
        t.ok(c.resources?.limits?.memory, `${where}/${c.name}: memory limit`)
      }
    }
  })

  void t.test(
    `when k8s/overlays/${o} configures the app, then secrets come from secretKeyRef and the env passes the app schemas`,
    async (t) => {
      const cm = find<Obj & { data: Record<string, string> }>(o, 'ConfigMap', 'opsdrill-config')!
      const secret = find<Obj & { data?: Record<string, string> }>(
        o,
        'Secret',
        docsOf(o).find((d) => d.kind === 'Secret')?.metadata.name ?? '',
      )
      const known = new Set([...Object.keys(ApiEnv.properties), ...Object.keys(WorkerEnv.properties)])
      for (const key of Object.keys(cm.data)) {
        t.ok(known.has(key) || key.startsWith('OTEL_'), `k8s ConfigMap opsdrill-config: ${key} is not an app setting`)
        t.notMatch(key, /SECRET|PASSWORD|DATABASE_URL|REDIS_URL/, `k8s ConfigMap opsdrill-config: ${key} belongs in the Secret`)
      }
      const cases = [
        ['opsdrill-api', ApiEnv, ['JWT_SECRET', 'DATABASE_URL', 'REDIS_URL', 'CACHE_REDIS_URL']],
        ['opsdrill-worker', WorkerEnv, ['DATABASE_URL', 'REDIS_URL']],
      ] as const
      for (const [name, schema, secretKeys] of cases) {
        const c = find<Workload>(o, 'Deployment', name)!.spec.template.spec.containers[0]!
        const env: Record<string, string> = { ...cm.data }
        for (const v of c.env ?? []) {
          if (v.value !== undefined) env[v.name] = v.value
          else if (v.valueFrom?.fieldRef) env[v.name] = `${name}-pod`
        }
        for (const key of secretKeys) {
          const v = c.env?.find((e) => e.name === key)
          t.ok(v?.valueFrom?.secretKeyRef, `k8s ${name}: ${key} must come from a secretKeyRef`)
          if (secret) t.ok(v?.valueFrom?.secretKeyRef?.name === secret.metadata.name, `k8s ${name}: ${key} refers to the generated Secret`)
          // The Secret's shape.
          env[key] = {
            JWT_SECRET: 'x'.repeat(32),
            DATABASE_URL: 'postgres://opsdrill:pw@postgres:5432/opsdrill',
            REDIS_URL: 'rediss://default:pw@redis:6380',
            CACHE_REDIS_URL: 'rediss://default:pw@redis-cache:6380',
          }[key]
        }
        t.doesNotThrow(() => loadConfig(schema, env), `k8s ${name}: the ConfigMap + env fail the app's schema`)
      }
      if (o === 'production') t.notOk(secret, 'k8s/overlays/production ships no Secret: it is created from a secret store')
      else t.equal(secret?.metadata.labels?.['opsdrill.dev/local-only'], 'true', 'the local Secret is labelled local-only')
    },
  )

  void t.test(`when k8s/overlays/${o} is applied, then scaling, disruption budgets and network policies are in place`, async (t) => {
    const hpa = find<
      Obj & {
        spec: { scaleTargetRef: { name: string }; metrics: { resource: { name: string; target: { averageUtilization: number } } }[] }
      }
    >(o, 'HorizontalPodAutoscaler', 'opsdrill-api')
    t.equal(hpa?.spec.scaleTargetRef.name, 'opsdrill-api')
    t.same(
      hpa?.spec.metrics.map((m) => [m.resource.name, m.resource.target.averageUtilization]),
      [['cpu', 70]],
      'API scales on CPU 70%',
    )
    for (const name of ['opsdrill-api', 'opsdrill-worker'])
      t.ok(find(o, 'PodDisruptionBudget', name), `k8s/overlays/${o}: PodDisruptionBudget ${name}`)
    const deny = find<Obj & { spec: { podSelector: object; policyTypes: string[] } }>(o, 'NetworkPolicy', 'default-deny')
    t.same(deny?.spec, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }, 'default deny for ingress and egress')
    for (const name of ['allow-dns', 'api-ingress', 'metrics-ingress', 'app-egress'])
      t.ok(find(o, 'NetworkPolicy', name), `NetworkPolicy ${name}`)
    t.notOk(
      docsOf(o).some((d) => d.kind === 'Job'),
      'no Job: its pod template is immutable, so an apply with a new image would fail',
    )
    t.ok(
      docsOf(o).every((d) => d.kind === 'Namespace' || d.metadata.namespace === 'opsdrill'),
      'everything lives in namespace opsdrill',
    )
  })
}

void t.test('when production scales the worker, then KEDA follows the BullMQ wait list of the clicks queue', async (t) => {
  const so = find<Obj & { spec: { scaleTargetRef: { name: string }; triggers: { type: string; metadata: Record<string, string> }[] } }>(
    'production',
    'ScaledObject',
    'opsdrill-worker',
  )
  t.ok(so, 'k8s/overlays/production: ScaledObject opsdrill-worker')
  const prefix =
    find<Obj & { data: Record<string, string> }>('production', 'ConfigMap', 'opsdrill-config')!.data.REDIS_PREFIX ??
    String((BaseEnv.REDIS_PREFIX as { default?: unknown }).default)
  const trigger = so?.spec.triggers[0]
  t.equal(so?.spec.scaleTargetRef.name, 'opsdrill-worker')
  t.equal(trigger?.type, 'redis')
  t.equal(trigger?.metadata.listName, `${prefix}:${QUEUES.clicks}:wait`, 'listName is the wait list BullMQ keeps for the clicks queue')
  t.equal(trigger?.metadata.listLength, '20', 'one replica per 20 waiting batch jobs (up to 10,000 clicks)')
  t.notOk(find('local', 'ScaledObject', 'opsdrill-worker'), 'kind runs no KEDA: the local overlay drops the ScaledObject')
})

void t.test('when the overlays differ, then local runs its own stores and production points at managed ones', async (t) => {
  t.ok(find('local', 'StatefulSet', 'postgres'), 'local: in-cluster Postgres StatefulSet')
  t.ok(find('local', 'Deployment', 'redis'), 'local: in-cluster Redis')
  // The cache has its own Redis that evicts, apart from the queues' (issue 11).
  type Container = { args?: string[] }
  const args = (name: string) =>
    find<Obj & { spec: { template: { spec: { containers: Container[] } } } }>('local', 'Deployment', name)?.spec.template.spec.containers[0]
      ?.args ?? []
  t.match(
    args('redis-cache').join(' '),
    /--maxmemory-policy allkeys-lru --maxmemory \d+mb/,
    'local: the cache Redis evicts within maxmemory',
  )
  t.match(args('redis').join(' '), /--maxmemory-policy noeviction/, 'local: the queue Redis never evicts')
  t.notOk(
    docsOf('production').some((d) => d.kind === 'StatefulSet' || (d.kind === 'Deployment' && !d.metadata.name.startsWith('opsdrill-'))),
    'production: no in-cluster stores',
  )
  for (const name of ['postgres', 'redis', 'redis-cache']) {
    const svc = find<Obj & { spec: { type?: string } }>('production', 'Service', name)
    t.equal(svc?.spec.type, 'ExternalName', `production: Service ${name} is an ExternalName to the managed store`)
  }
  t.ok(find('production', 'ServiceMonitor', 'opsdrill'), 'production includes the ServiceMonitor component')
  const minReplicas = (o: string) =>
    find<Obj & { spec: { minReplicas: number } }>(o, 'HorizontalPodAutoscaler', 'opsdrill-api')!.spec.minReplicas
  t.ok(minReplicas('production') > minReplicas('local'), 'production runs more API replicas')
})

void t.test('when the local overlay runs the stores, then the app reaches them through toxiproxy, as in compose', async (t) => {
  type Proxy = { name: string; listen: string; upstream: string; enabled: boolean }
  const cm = find<Obj & { data: Record<string, string> }>('local', 'ConfigMap', 'toxiproxy')
  const proxies = JSON.parse(cm?.data['toxiproxy.json'] ?? '[]') as Proxy[]
  t.same(proxies, JSON.parse(readFileSync(resolve(ROOT, 'compose/toxiproxy.json'), 'utf8')) as Proxy[], 'the proxies of compose')
  t.ok(find('local', 'Deployment', 'toxiproxy'), 'local: toxiproxy Deployment')
  const svc = find<Obj & { spec: { ports: { name: string; port: number }[] } }>('local', 'Service', 'toxiproxy')
  const listenPort = (name: string) => Number(proxies.find((p) => p.name === name)?.listen.split(':')[1])
  const listeners = proxies.map((p) => listenPort(p.name))
  t.same(svc?.spec.ports.map((p) => p.port).sort(), [8474, ...listeners].sort(), 'Service toxiproxy: the API and every listener')

  const secret = docsOf('local').find((d) => d.kind === 'Secret') as Obj & { data: Record<string, string> }
  const databaseUrl = Buffer.from(secret.data.DATABASE_URL!, 'base64').toString()
  const redisUrl = Buffer.from(secret.data.REDIS_URL!, 'base64').toString()
  const via = (url: string) => `${new URL(url).hostname}:${new URL(url).port}`
  t.equal(via(databaseUrl), `toxiproxy:${listenPort('postgres')}`, 'DATABASE_URL: via toxiproxy')
  t.equal(via(redisUrl), `toxiproxy:${listenPort('redis')}`, 'REDIS_URL: via toxiproxy')
  const cacheUrl = Buffer.from(secret.data.CACHE_REDIS_URL!, 'base64').toString()
  t.equal(via(cacheUrl), `toxiproxy:${listenPort('redis-cache')}`, 'CACHE_REDIS_URL: via toxiproxy')
  t.ok(find('production', 'Service', 'redis-cache'), 'production: a redis-cache Service for the managed cache Redis')

  type Policy = Obj & { spec: { egress?: { ports?: { port: number }[] }[]; ingress?: { ports?: { port: number }[] }[] } }
  const egressPorts = find<Policy>('local', 'NetworkPolicy', 'app-egress')!.spec.egress!.flatMap((e) => e.ports?.map((p) => p.port) ?? [])
  const ingressPorts = find<Policy>('local', 'NetworkPolicy', 'toxiproxy-ingress')?.spec.ingress?.flatMap(
    (e) => e.ports?.map((p) => p.port) ?? [],
  )
  for (const port of listeners) {
    t.ok(egressPorts.includes(port), `app-egress lets the app out to toxiproxy's ${port}`)
    t.ok(ingressPorts?.includes(port), `toxiproxy-ingress lets the app in on ${port}`)
  }
  t.notOk(find('production', 'Deployment', 'toxiproxy'), 'production: no toxiproxy in the request path')
})

// The production overlay's promises (issue 11), read on the rendered manifests.
type Policy = Obj & {
  spec: { egress?: { to?: { ipBlock?: { cidr: string }; podSelector?: object }[]; ports?: { protocol: string; port: number }[] }[] }
}

for (const o of OVERLAYS) {
  void t.test(`when a node runs NodeLocal DNSCache, then k8s/overlays/${o} lets pods resolve through 169.254.20.10`, async (t) => {
    const dns = find<Policy>(o, 'NetworkPolicy', 'allow-dns')!
    const rule = dns.spec.egress?.find((e) => e.to?.some((p) => p.ipBlock?.cidr === '169.254.20.10/32'))
    t.ok(rule, 'allow-dns has an ipBlock for the node-local DNS address')
    t.same(rule?.ports?.map((p) => `${p.protocol}/${p.port}`).sort(), ['TCP/53', 'UDP/53'], 'on port 53, UDP and TCP')
  })
}

void t.test('when production runs kube-prometheus-stack, then its ServiceMonitor carries the release label it selects on', async (t) => {
  const sm = find('production', 'ServiceMonitor', 'opsdrill')
  t.match(sm?.metadata.labels?.release, /^[a-z0-9][-a-z0-9]*$/, 'ServiceMonitor opsdrill: label release=<Helm release name>')
})

for (const o of OVERLAYS) {
  void t.test(
    `when an autoscaler owns a Deployment in k8s/overlays/${o}, then the manifest sets no replicas an apply would reset`,
    async (t) => {
      const scaled = docsOf(o)
        .filter((d) => d.kind === 'HorizontalPodAutoscaler' || d.kind === 'ScaledObject')
        .map((d) => (d as Obj & { spec: { scaleTargetRef: { name: string } } }).spec.scaleTargetRef.name)
      t.ok(scaled.includes('opsdrill-api'), 'the API has an HPA')
      for (const name of scaled) {
        const d = find<Obj & { spec: { replicas?: number } }>(o, 'Deployment', name)
        t.ok(d, `Deployment ${name} exists`)
        t.equal(d?.spec.replicas, undefined, `Deployment ${name}: no spec.replicas (its autoscaler owns it)`)
      }
    },
  )
}

void t.test('when production builds short links, then PUBLIC_BASE_URL is a public https origin, not localhost', async (t) => {
  const url = new URL(find<Obj & { data: Record<string, string> }>('production', 'ConfigMap', 'opsdrill-config')!.data.PUBLIC_BASE_URL!)
  t.equal(url.protocol, 'https:', 'PUBLIC_BASE_URL is https')
  t.notMatch(url.hostname, /^(localhost|127\.|\[?::1)/, 'PUBLIC_BASE_URL is not a loopback host')
})

void t.test('when production is rendered, then every container runs an image pinned by digest, never a moving tag', async (t) => {
  const images = workloads('production').flatMap((w) => [
    ...w.spec.template.spec.containers.map((c) => c.image),
    ...(w.spec.template.spec.initContainers ?? []).map((c) => c.image),
  ])
  t.ok(images.length > 0, 'production runs containers')
  for (const image of images) t.match(image, /^[^:@]+(:[^@]+)?@sha256:[0-9a-f]{64}$/, `${image}: pinned by digest`)

  // The documented release step, on a copy: `kustomize edit set image` sets the digest every container then runs.
  const copy = mkdtempSync(join(tmpdir(), 'opsdrill-k8s-'))
  t.teardown(() => rmSync(copy, { recursive: true, force: true }))
  cpSync(resolve(ROOT, 'k8s'), join(copy, 'k8s'), { recursive: true })
  const digest = `sha256:${'ab12'.repeat(16)}`
  const edit = spawnSync(tool('kustomize'), ['edit', 'set', 'image', `ghcr.io/opsdrill/opsdrill=ghcr.io/acme/opsdrill@${digest}`], {
    cwd: join(copy, 'k8s/overlays/production'),
    encoding: 'utf8',
  })
  t.equal(edit.status, 0, `kustomize edit set image: ${edit.stderr}`)
  const built = spawnSync(tool('kustomize'), ['build', join(copy, 'k8s/overlays/production')], { encoding: 'utf8', maxBuffer: 64 << 20 })
  const pinned = [...built.stdout.matchAll(/image: (\S+)/g)].map((m) => m[1])
  t.same([...new Set(pinned)], [`ghcr.io/acme/opsdrill@${digest}`], 'every container runs the digest the release set')
})

void t.test(
  'when production scales on Redis, then KEDA authenticates from the Secret over TLS and the ScaledObject holds no credential',
  async (t) => {
    type Trigger = { metadata: Record<string, string>; authenticationRef?: { name: string } }
    const trigger = find<Obj & { spec: { triggers: Trigger[] } }>('production', 'ScaledObject', 'opsdrill-worker')!.spec.triggers[0]!
    t.notOk(
      Object.keys(trigger.metadata).some((k) => /password|username/i.test(k)),
      'no credential in the trigger metadata',
    )
    t.equal(trigger.metadata.enableTLS, 'true', 'KEDA talks TLS to the managed Redis')
    const auth = find<Obj & { spec: { secretTargetRef: { parameter: string; name: string; key: string }[] } }>(
      'production',
      'TriggerAuthentication',
      trigger.authenticationRef?.name ?? '',
    )
    t.ok(auth, `the trigger's authenticationRef (${trigger.authenticationRef?.name}) is a TriggerAuthentication in the render`)
    t.same(
      auth?.spec.secretTargetRef.find((r) => r.parameter === 'password'),
      { parameter: 'password', name: 'opsdrill-secrets', key: 'REDIS_PASSWORD' },
      'the password comes from the app Secret',
    )
    t.notOk(find('local', 'TriggerAuthentication', 'opsdrill-redis'), 'kind runs no KEDA: local drops the TriggerAuthentication too')
  },
)

/** The commands of k8s/README.md's production walk-through, continuation lines joined. */
function productionSteps(): string[] {
  const readme = readFileSync(resolve(ROOT, 'k8s/README.md'), 'utf8')
  const section = readme.split(/^### /m).find((s) => s.startsWith('Production, step by step'))
  const block = /^```sh\n([\s\S]*?)^```/m.exec(section ?? '')?.[1] ?? ''
  return block
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter(Boolean)
}

void t.test(
  'when production is deployed as k8s/README.md says, then its namespace exists before the Secret is created in it',
  async (t) => {
    const steps = productionSteps()
    const at = (re: RegExp) => steps.findIndex((s) => re.test(s))
    const ns = at(/^kubectl apply -f (\S+)$/)
    const secret = at(/^kubectl -n (\S+) create secret generic opsdrill-secrets /)
    const apply = at(/^kubectl apply -k k8s\/overlays\/production$/)
    t.ok(ns >= 0 && secret > ns && apply > secret, `namespace, then Secret, then the overlay: ${JSON.stringify(steps)}`)
    const nsDocs = parseAllDocuments(
      readFileSync(resolve(ROOT, /^kubectl apply -f (\S+)$/.exec(steps[ns] ?? '')?.[1] ?? 'missing'), 'utf8'),
    )
    const namespace = nsDocs.map((d) => d.toJS() as Obj).find((d) => d.kind === 'Namespace')
    const target = docsOf('production').find((d) => d.kind !== 'Namespace')!.metadata.namespace
    t.equal(namespace?.metadata.name, target, 'the first apply creates the namespace the overlay deploys into')
    t.equal(/^kubectl -n (\S+) create secret/.exec(steps[secret] ?? '')?.[1], target, 'the Secret is created in that namespace')
  },
)

for (const o of OVERLAYS) {
  void t.test(`when k8s/overlays/${o} rolls out a new image, then every API and worker pod migrates first with that image`, async (t) => {
    for (const name of ['opsdrill-api', 'opsdrill-worker']) {
      const pod = find<Workload>(o, 'Deployment', name)!.spec.template.spec
      const init = pod.initContainers?.find((c) => c.name === 'migrate') as (Container & { command?: string[] }) | undefined
      t.same(init?.command, ['node', 'ops/migrate.ts'], `${name}: init container migrate runs ops/migrate.ts`)
      t.equal(init?.image, pod.containers[0]!.image, `${name}: with the app's own image`)
      t.ok(init?.env?.find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef, `${name}: DATABASE_URL from the Secret`)
    }
  })
}

void t.test(
  "when production connects to a managed Postgres, then it verifies the provider's host against its root certificate mounted in every pod",
  async (t) => {
    const step = productionSteps().find((s) => s.includes('create secret generic opsdrill-secrets')) ?? ''
    const databaseUrl = new URL(/--from-literal=DATABASE_URL='([^']+)'/.exec(step)?.[1] ?? 'postgres://missing')
    t.equal(databaseUrl.searchParams.get('sslmode'), 'verify-full', 'the documented DATABASE_URL uses sslmode=verify-full')
    t.not(databaseUrl.hostname, 'postgres', "it names the provider's host (on its certificate), not the ExternalName")
    const rootCert = databaseUrl.searchParams.get('sslrootcert') ?? ''
    t.match(rootCert, /^\//, 'sslrootcert is a file path')

    for (const name of ['opsdrill-api', 'opsdrill-worker']) {
      const pod = find<Workload>('production', 'Deployment', name)!.spec.template.spec as PodSpec & {
        volumes?: { name: string; configMap?: { name: string } }[]
      }
      const volume = pod.volumes?.find((v) => v.configMap?.name === 'opsdrill-postgres-ca')
      t.ok(volume, `${name}: a volume from the ConfigMap opsdrill-postgres-ca`)
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        if (!c.env?.some((e) => e.name === 'DATABASE_URL')) continue
        const mount = (c as Container & { volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] }).volumeMounts?.find(
          (m) => m.name === volume?.name,
        )
        t.ok(mount?.readOnly && rootCert.startsWith(`${mount.mountPath}/`), `${name}/${c.name}: the CA is mounted read-only at ${rootCert}`)
      }
    }

    // pg reads sslrootcert itself: the URL alone gives the client the CA and a verifying TLS setup.
    const dir = mkdtempSync(join(tmpdir(), 'opsdrill-ca-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'ca.crt'), 'CA-PEM')
    databaseUrl.searchParams.set('sslrootcert', join(dir, 'ca.crt'))
    const client = new pg.Client({ connectionString: databaseUrl.toString() }) as pg.Client & {
      connectionParameters: { ssl: { ca?: string; rejectUnauthorized?: boolean } | boolean }
    }
    const ssl = client.connectionParameters.ssl
    t.equal(typeof ssl === 'object' && ssl.ca, 'CA-PEM', 'pg loads the root certificate from sslrootcert')
    t.not(typeof ssl === 'object' && ssl.rejectUnauthorized, false, 'and rejects certificates it does not verify')
  },
)

void t.test(
  'when production autoscales the API on CPU, then it scales out at a load a replica carries easily, not at 70 millicores',
  async (t) => {
    const hpa = find<Obj & { spec: { metrics: { resource: { target: { averageUtilization: number } } }[] } }>(
      'production',
      'HorizontalPodAutoscaler',
      'opsdrill-api',
    )!
    const c = find<Workload>('production', 'Deployment', 'opsdrill-api')!.spec.template.spec.containers[0]!
    const millicores = (v: string | undefined) => (v?.endsWith('m') ? Number(v.slice(0, -1)) : Number(v) * 1000)
    const request = millicores(c.resources?.requests?.cpu)
    const scaleAt = (request * hpa.spec.metrics[0]!.resource.target.averageUtilization) / 100
    // Measured on one replica (k8s/README.md): about 200m at 400 API req/s, 175m at 2,000 cached redirects/s.
    t.ok(scaleAt >= 300, `the HPA scales out at ${scaleAt}m per pod: above the ~200m of a replica at 400 API req/s`)
    t.ok(request <= millicores(c.resources?.limits?.cpu), `the request (${request}m) fits under the limit`)
    t.ok(scaleAt < 1000, `and below the one core a Node process can use (${scaleAt}m)`)
  },
)
