// The compose platform's view of a project's containers, against the real Docker engine: a container removed between
// `docker ps` and `docker inspect` (a scale-down under way beside the autoscaler's replica count) is left out, where it
// had thrown "No such object" out of a timer and ended the autoscale run.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { ComposePlatform, inspectListed } from '../../../ops/lib/drills/platform.ts'

const docker = (args: string[], input?: string) =>
  execFileSync('docker', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] }).trim()

void t.test('when a listed container is removed before it is inspected, then the others are returned without it', async (t) => {
  const project = `opsdrill-platform-${randomBytes(3).toString('hex')}`
  // An image of nothing (no registry here, and nothing needs to run): `docker create` only records the containers.
  const image = `${project}:empty`
  execFileSync('docker', ['import', '-', image], { input: execFileSync('tar', ['-c', '--files-from', '/dev/null']) })
  t.teardown(() => docker(['rmi', '-f', image]))
  const labels = (n: number) =>
    ['project=' + project, 'oneoff=False', 'service=api', `container-number=${n}`].flatMap((l) => ['--label', `com.docker.compose.${l}`])
  const ids = [1, 2].map((n) => docker(['create', '--name', `${project}-api-${n}`, ...labels(n), image, '/nothing']))
  t.teardown(() => docker(['rm', '-f', ...ids]).length)

  const platform = new ComposePlatform({ project })
  t.same(
    platform
      .containers('api')
      .map((c) => c.name)
      .sort(),
    [`${project}-api-1`, `${project}-api-2`],
    'both containers are listed',
  )
  const gone = ids[1]!
  docker(['rm', gone])
  t.same(
    inspectListed(ids).map((c) => c.Name),
    [`/${project}-api-1`],
    'the one removed after the listing is left out',
  )
  t.throws(() => inspectListed(['']), /docker inspect/, 'any other failure still throws')
})
