// compose/local-images.yml against docker-compose.yml and the image table of ops/lib/images.ts: every third-party
// service either runs the image built here for it or is parked, with the reason stated in NOT_BUILT.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse } from 'yaml'
import { CA_SECRET, IMAGES, NOT_BUILT, tagOf } from '../../ops/lib/images.ts'

const ROOT = resolve(import.meta.dirname, '../..')
interface Service {
  image?: string
  profiles?: string[]
  build?: { args?: Record<string, string>; secrets?: string[] }
  pull_policy?: string
}
// `!override` (compose-go) replaces a list instead of merging it; here it reads as the plain list.
const override = { tag: '!override', collection: 'seq' as const, resolve: (seq: unknown) => seq }
const read = (p: string) =>
  parse(readFileSync(resolve(ROOT, p), 'utf8'), { merge: true, customTags: [override] }) as {
    services: Record<string, Service>
    secrets?: Record<string, { file?: string }>
  }
const compose = read('docker-compose.yml')
const local = read('compose/local-images.yml')
const APP = /opsdrill:local/

void t.test('when compose runs with local images, then each third-party service runs the image built for it or is parked', async (t) => {
  for (const [name, svc] of Object.entries(compose.services)) {
    if (APP.test(svc.image ?? '')) continue
    const built = IMAGES.find((i) => i.services.includes(name))
    const over = local.services[name]
    if (built) {
      t.equal(over?.image, tagOf(built), `local-images.yml: ${name} runs ${tagOf(built)}`)
      t.equal(over?.pull_policy, 'never', `local-images.yml: ${name} is never pulled (there is no registry)`)
    } else {
      t.ok(NOT_BUILT[name], `${name} (${svc.image}) has no local image and no reason in NOT_BUILT (ops/lib/images.ts)`)
      t.same(over?.profiles, ['registry-only'], `local-images.yml: ${name} is parked in a profile nothing starts`)
    }
  }
  for (const name of Object.keys(local.services)) t.ok(compose.services[name], `local-images.yml: ${name} is not a compose service`)
  for (const i of IMAGES)
    for (const s of i.services) t.ok(compose.services[s], `ops/lib/images.ts: ${i.name} stands in for ${s}, not in docker-compose.yml`)
})

void t.test('when the app image is built here, then it is FROM the local Node base with the CA bundle as a build secret', async (t) => {
  const builders = Object.entries(local.services).filter(([, s]) => s.build)
  t.equal(builders.length, 1, 'local-images.yml: one service carries the app build settings')
  const [name, svc] = builders[0]!
  t.ok(compose.services[name] && 'build' in compose.services[name], `docker-compose.yml: ${name} is the service that builds`)
  t.equal(svc.build?.args?.NODE_IMAGE, tagOf(IMAGES.find((i) => i.name === 'node')!))
  t.same(svc.build?.secrets, ['ca'])
  t.equal(resolve(ROOT, local.secrets?.ca?.file ?? ''), CA_SECRET, 'the ca secret is the copy `stack images` writes')
})
