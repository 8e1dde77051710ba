// The native autoscaler's rules come from the k8s manifests, and its arithmetic is the HPA's and KEDA's.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { hpaDesired, kedaDesired, readRules, Stabilizer } from '../../../ops/lib/autoscale.ts'

const K8S = resolve(import.meta.dirname, '../../../k8s/base')

void t.test('when the k8s base manifests are read, then the rules are the HPA and ScaledObject values', async (t) => {
  const r = readRules()
  t.same(r.api, { min: 2, max: 10, targetUtilization: 0.7, cpuRequest: 0.5, scaleDownWindowSec: 120, periodSec: 15 })
  // KEDA's ScaledObject sets no HPA behaviour: the HPA it makes keeps the default 300 s scale-down window.
  t.same(r.worker, { min: 1, max: 10, listLength: 20, activationListLength: 2, scaleDownWindowSec: 300, periodSec: 10 })
})

void t.test('when a manifest changes a bound, then the rules follow it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-k8s-'))
  writeFileSync(join(dir, 'api.yaml'), readFileSync(join(K8S, 'api.yaml'), 'utf8').replace('maxReplicas: 10', 'maxReplicas: 7'))
  writeFileSync(join(dir, 'worker.yaml'), readFileSync(join(K8S, 'worker.yaml'), 'utf8').replace("listLength: '20'", "listLength: '50'"))
  const r = readRules(dir)
  t.equal(r.api.max, 7)
  t.equal(r.worker.listLength, 50)
})

void t.test('when a manifest lacks the CPU target, then reading it names what is missing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-k8s-'))
  writeFileSync(join(dir, 'api.yaml'), readFileSync(join(K8S, 'api.yaml'), 'utf8').replace('averageUtilization: 70', ''))
  writeFileSync(join(dir, 'worker.yaml'), readFileSync(join(K8S, 'worker.yaml'), 'utf8'))
  t.throws(() => readRules(dir), /api autoscaling rule has no usable targetUtilization/)
})

void t.test('when CPU utilization is read, then the HPA formula gives the replicas, within its 10% tolerance', async (t) => {
  const rule = readRules().api
  t.equal(hpaDesired(rule, 2, 0.7), 2, 'at the target: no change')
  t.equal(hpaDesired(rule, 2, 0.75), 2, 'within 10%: no change')
  t.equal(hpaDesired(rule, 2, 1.4), 4, 'twice the target: twice the replicas')
  t.equal(hpaDesired(rule, 4, 0.1), 1, 'idle: down (the stabilizer clamps to the minimum)')
})

void t.test('when the wait list is read, then KEDA gives one worker per listLength jobs past the activation', async (t) => {
  const rule = readRules().worker
  t.equal(kedaDesired(rule, 0), 1)
  t.equal(kedaDesired(rule, 2), 1, 'at the activation length: the minimum')
  t.equal(kedaDesired(rule, 41), 3)
})

void t.test('when recommendations change, then up is at once (at most double or +4) and down waits for the window', async (t) => {
  const s = new Stabilizer(2, 10, 60)
  t.equal(s.next(0, 2, 9), 6, 'scale-up limited to +4 from 2')
  t.equal(s.next(15_000, 6, 12), 10, 'clamped to the maximum')
  t.equal(s.next(30_000, 10, 2), 10, 'a lower recommendation inside the window keeps the highest')
  t.equal(s.next(80_000, 10, 2), 2, 'once the high ones left the window, down to the recommendation')
  t.equal(s.next(95_000, 2, 0), 2, 'never below the minimum')
})

void t.test('when `npm run stack -- autoscale` gets a bad flag or finds no stack, then it says so in one line and exits 1', async (t) => {
  const stack = (args: string[]) =>
    spawnSync(process.execPath, [resolve(import.meta.dirname, '../../../ops/stack.ts'), ...args], {
      // An offset no suite uses: no stack runs there.
      env: { PATH: process.env.PATH, OPSDRILL_STACK_PORT_OFFSET: '1499' },
      encoding: 'utf8',
      timeout: 20_000,
    })
  const bad = stack(['autoscale', '--period', 'x'])
  t.equal(bad.status, 1)
  t.equal(bad.stderr, 'stack: cannot read "--period x": expected --scale-down-window <seconds> or --period <seconds>\n')
  const none = stack(['autoscale'])
  t.equal(none.status, 1)
  t.equal(none.stderr, 'stack: no API replica is running: start the stack first (npm run stack -- up)\n')
})
