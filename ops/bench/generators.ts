// The bench's load generators, each in a process of its own so that it never shares an event loop (or a core's
// worth of JavaScript) with the server it measures or with the bench's orchestration:
// - wrk (Debian's package, C and epoll) for every saturation row: one thread drives a trivial server at several
//   times the rate any Node server here reaches;
// - the autocannon CLI for the fixed-rate rows, which wrk cannot do (open model, latency from the scheduled send).
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export interface Sample {
  rps: number
  /** Responses with a 2xx or 3xx status. */
  ok: number
  p50: number
  p99: number
  errors: number
  non2xx3xx: number
}

export interface Load {
  url: string
  /** Paths requested in turn (each wrk thread walks the list from its own start). */
  paths: string[]
  headers?: Record<string, string>
  connections: number
  seconds: number
}

const ROOT = resolve(import.meta.dirname, '../..')

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => (out += c))
    child.stderr.on('data', (c: Buffer) => (err += c))
    child.once('error', (e) =>
      reject(new Error(`${cmd} could not start (${e.message}): install it (apt-get install wrk, or bash ops/lib/bootstrap.sh)`)),
    )
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))))
  })
}

const lua = (s: string) => JSON.stringify(s)

/** Threads of wrk: one, so the generator takes at most one of the box's cores and the server under test the other. */
export const WRK_THREADS = 1

/** Saturates the server with wrk (closed model, `connections` requests in flight) for `seconds`. */
export async function wrk(load: Load): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-wrk-'))
  const script = join(dir, 'bench.lua')
  // done() prints one JSON line: wrk's own summary (latencies in microseconds) without its text report to parse.
  writeFileSync(
    script,
    `local paths = { ${load.paths.map(lua).join(', ')} }
${Object.entries(load.headers ?? {})
  .map(([k, v]) => `wrk.headers[${lua(k)}] = ${lua(v)}`)
  .join('\n')}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`,
  )
  try {
    const out = await run('wrk', [`-t${WRK_THREADS}`, `-c${load.connections}`, `-d${load.seconds}s`, '-s', script, load.url])
    const line = out.split('\n').find((l) => l.startsWith('{"requests"'))
    if (!line) throw new Error(`wrk printed no summary: ${out.slice(-500)}`)
    const r = JSON.parse(line) as Record<string, number>
    const ok = r.requests! - r.status!
    return {
      rps: Math.round(ok / (r.us! / 1e6)),
      ok,
      p50: Math.round(r.p50! / 100) / 10,
      p99: Math.round(r.p99! / 100) / 10,
      errors: r.connect! + r.read! + r.write! + r.timeout!,
      non2xx3xx: r.status!,
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A fixed request rate with the autocannon CLI in its own process (one path: wrk's list has no CLI form here). */
export async function autocannonAtRate(load: Load, rate: number): Promise<Sample> {
  const headers = Object.entries(load.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}=${v}`])
  const args = [join(ROOT, 'node_modules/autocannon/autocannon.js'), '-j', '-c', String(load.connections), '-d', String(load.seconds)]
  const out = await run(process.execPath, [...args, '-R', String(rate), ...headers, load.url + load.paths[0]])
  const r = JSON.parse(out) as {
    latency: { p50: number; p99: number }
    errors: number
    timeouts: number
    duration: number
  } & Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>
  const ok = r['2xx'] + r['3xx']
  const bad = r['1xx'] + r['4xx'] + r['5xx']
  return { rps: Math.round(ok / r.duration), ok, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx3xx: bad }
}
