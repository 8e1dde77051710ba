// The k8s platform of the drills is a command builder (this machine has no cluster): these tests pin the commands an
// operator's machine would run for each fault. The compose platform runs against the engine in compose.test.ts.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { K8sPlatform, k8sCommands } from '../../ops/lib/drills/platform.ts'
import { alertRules, forSeconds } from '../../ops/lib/drills/alerts.ts'
import { DRILLS } from '../../ops/lib/drills/catalogue.ts'
import { sumMetric } from '../../ops/lib/drills/client.ts'

void t.test('when a k8s drill kills a replica, then SIGTERM is a pod delete and SIGKILL a forced one', async (t) => {
  const k = k8sCommands('opsdrill')
  const [sh, flag, term] = k.kill('api-2', 'SIGTERM')
  t.same([sh, flag], ['sh', '-c'])
  t.match(
    term!,
    /^kubectl -n opsdrill delete \$\(kubectl -n opsdrill get pods -l app.kubernetes.io\/name=opsdrill-api -o name \| sed -n 2p\) --wait=false$/,
  )
  t.match(k.kill('worker-1', 'SIGKILL')[2]!, /name=opsdrill-worker .*sed -n 1p\) --grace-period=0 --force --wait=false$/)
  t.match(k.pause('api-1')[2]!, /exec .* -- kill -STOP 1$/)
  t.same(k.scale({ api: 4 }), [['kubectl', '-n', 'opsdrill', 'scale', 'deployment/opsdrill-api', '--replicas=4']])
  t.same(k.scale({ worker: 0 }), [['kubectl', '-n', 'opsdrill', 'scale', 'deployment/opsdrill-worker', '--replicas=0']])
  t.same(k.stopStore('postgres'), ['kubectl', '-n', 'opsdrill', 'scale', 'statefulset/postgres', '--replicas=0'])
  t.same(k.startStore('redis'), ['kubectl', '-n', 'opsdrill', 'scale', 'deployment/redis', '--replicas=1'])
})

void t.test('when a command platform runs a fault, then it hands the built commands to its runner in order', async (t) => {
  const ran: string[][] = []
  const run = async (argv: string[]) => void ran.push(argv)
  const k8s = new K8sPlatform({ run, namespace: 'staging' })
  await k8s.scale({ api: 1, worker: 1 })
  t.same(ran, [
    ['kubectl', '-n', 'staging', 'scale', 'deployment/opsdrill-api', '--replicas=1'],
    ['kubectl', '-n', 'staging', 'scale', 'deployment/opsdrill-worker', '--replicas=1'],
  ])
  t.equal(k8s.target, 'k8s')
  t.equal(k8s.toxiproxy.url, 'http://127.0.0.1:8474')
})

void t.test('when the alerts drill reads the rules, then every alert it expects exists with a readable for', async (t) => {
  const rules = alertRules()
  const alerts = DRILLS.find((d) => d.name === 'alerts')!.alerts
  for (const a of alerts) {
    t.ok(rules.has(a), `${a} is in prometheus/rules/alerts.yml`)
    t.ok(forSeconds(rules.get(a)!.for) <= 120, `${a}: for ${rules.get(a)!.for ?? '0s'} fits the full drill`)
  }
  t.equal(forSeconds('2m'), 120)
  t.throws(() => forSeconds('2 minutes'))
})

void t.test('when drills are listed, then names are unique and each has criteria and dashboards', async (t) => {
  const names = DRILLS.map((d) => d.name)
  t.equal(new Set(names).size, names.length)
  t.ok(DRILLS.length >= 13)
  for (const d of DRILLS) {
    t.ok(d.criteria.length > 0, `${d.name} has criteria`)
    for (const uid of d.dashboards) t.match(uid, /^opsdrill-(overview|cache|queues|runtime|datastores|slo)$/, `${d.name}: dashboard ${uid}`)
  }
})

void t.test('when a /metrics page is summed, then labels filter and other names with the same prefix do not count', async (t) => {
  const page = [
    '# HELP opsdrill_clicks_dropped_total x',
    'opsdrill_clicks_dropped_total{reason="redis_unavailable"} 7',
    'opsdrill_clicks_dropped_total{reason="buffer_full"} 2',
    'opsdrill_clicks_dropped_total_extra 100',
    'opsdrill_pg_pool_connections{state="total"} 4',
    'opsdrill_pg_pool_connections{state="waiting"} 0',
  ].join('\n')
  t.equal(sumMetric(page, 'opsdrill_clicks_dropped_total'), 9)
  t.equal(sumMetric(page, 'opsdrill_clicks_dropped_total', { reason: 'buffer_full' }), 2)
  t.equal(sumMetric(page, 'opsdrill_pg_pool_connections', { state: 'total' }), 4)
})

void t.test('when no cluster answers, then a k8s drill is reported as not run (exit 3), never as passed', async (t) => {
  const res = spawnSync(process.execPath, ['ops/drill.ts', 'api-sigkill', '--short', '--target', 'k8s'], {
    cwd: resolve(import.meta.dirname, '../..'),
    // A kubeconfig that names no cluster: the check must not depend on what the machine has configured.
    env: { ...process.env, KUBECONFIG: '/nonexistent/kubeconfig' },
    encoding: 'utf8',
  })
  t.equal(res.status, 3, res.stderr)
  t.match(res.stdout, /^NOT RUN on k8s: api-sigkill: no Kubernetes cluster answers \(kubectl cluster-info: .+\)$/m)
  t.notMatch(res.stdout, /PASS/)
})
