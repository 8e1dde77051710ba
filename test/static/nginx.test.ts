// nginx/nginx.conf checked with the real nginx (Debian's 1.22): `nginx -t`, then run on loopback in front of small
// upstream servers to prove the proxy behaviour the drills rely on: X-Upstream, forwarded headers, a dead replica
// costing one retry, and a POST that reached a replica never being re-sent. The compose upstream list uses
// `server ... resolve` (nginx >= 1.27.3), which 1.22 rejects, so that file is checked by text.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ApiEnv } from '../../common/config.ts'
import { freePort } from '../../ops/lib/net.ts'
import { BALANCING, upstreamConf } from '../../ops/lib/stack/targets.ts'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const CONF = resolve(import.meta.dirname, '../../nginx/nginx.conf')
const COMPOSE_UPSTREAMS = resolve(import.meta.dirname, '../../nginx/upstreams.compose/api.conf')

/** A prefix directory holding a copy of nginx.conf and the upstreams/api.conf the native stack writes. */
function prefix(upstreams: string, listen?: { main: number; status: number }): string {
  const dir = mkdtempSync(join(tmpdir(), 'opsdrill-nginx-'))
  mkdirSync(join(dir, 'upstreams'))
  writeFileSync(join(dir, 'upstreams/api.conf'), upstreams)
  if (!listen) copyFileSync(CONF, join(dir, 'nginx.conf'))
  else {
    // Only the listen ports change, so parallel test runs and a running stack on 8080 do not collide.
    const conf = readFileSync(CONF, 'utf8')
      .replace(/^(\s*)listen 8080;$/m, `$1listen 127.0.0.1:${listen.main};`)
      .replace(/^(\s*)listen 127\.0\.0\.1:8081;$/m, `$1listen 127.0.0.1:${listen.status};`)
    writeFileSync(join(dir, 'nginx.conf'), conf)
  }
  return dir
}

interface Upstream {
  port: number
  hits: { method: string; headers: IncomingHttpHeaders }[]
  close: () => Promise<void>
}

async function upstream(status: number): Promise<Upstream> {
  const hits: Upstream['hits'] = []
  const srv: Server = createServer((req, res) => {
    hits.push({ method: req.method!, headers: req.headers })
    req.resume()
    // The API echoes the request id it was given (service/app.ts), as this stand-in does.
    const id = req.headers['x-request-id']
    req.on('end', () => res.writeHead(status, { 'content-type': 'application/json', ...(id ? { 'x-request-id': id } : {}) }).end('{}'))
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  return { port: (srv.address() as AddressInfo).port, hits, close: () => new Promise((r) => srv.close(() => r())) }
}

async function runNginx(t: Test, ports: number[]): Promise<{ url: string; status: string; log: () => string }> {
  const main = await freePort()
  const status = await freePort()
  const dir = prefix(upstreamConf(ports), { main, status })
  // stdout must be a file (or a real pipe), not Node's default socketpair: nginx opens /dev/stdout for the access
  // log, and Linux cannot reopen a socket through /proc/self/fd (ENXIO).
  const logFile = join(dir, 'out.log')
  const fd = openSync(logFile, 'a')
  const child = spawn('nginx', ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], {
    stdio: ['ignore', fd, fd],
  })
  closeSync(fd)
  const out = () => readFileSync(logFile, 'utf8')
  t.teardown(async () => {
    child.kill('SIGQUIT')
    await new Promise((r) => child.once('exit', r))
  })
  const url = `http://127.0.0.1:${main}`
  for (let i = 0; i < 100; i++) {
    if (
      await fetch(`http://127.0.0.1:${status}/nginx_status`).then(
        (r) => r.ok,
        () => false,
      )
    ) {
      return { url, status: `http://127.0.0.1:${status}/nginx_status`, log: out }
    }
    await sleep(50)
  }
  throw new Error(`nginx did not start: ${out()}`)
}

for (const balancing of BALANCING) {
  void t.test(`when nginx -t checks nginx.conf with a native upstream list by ${balancing}, then the config is valid`, async (t) => {
    const dir = prefix(upstreamConf([3001, 3002], balancing))
    const fd = openSync(join(dir, 'out.log'), 'a') // a file, not a socket: nginx -t opens /dev/stdout too
    const r = spawnSync('nginx', ['-t', '-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', 'stderr'], {
      encoding: 'utf8',
      stdio: ['ignore', fd, 'pipe'],
    })
    closeSync(fd)
    t.equal(r.status, 0, `nginx -t on nginx/nginx.conf failed:\n${r.stderr}`)
    t.match(r.stderr, /test is successful/)
  })
}

void t.test('when the native stack writes its upstream list, then least_conn is the method unless round-robin is asked for', async (t) => {
  const methods = (text: string) => text.split('\n').filter((l) => /^\s*(least_conn|ip_hash|hash|random)\b/.test(l))
  t.same(methods(upstreamConf([3001])), ['least_conn;'], 'least_conn by default')
  t.same(methods(upstreamConf([3001], 'round_robin')), [], "round-robin: no method directive, nginx's default")
  t.same(upstreamConf([3001, 3002]).match(/^server .*$/gm), [
    'server 127.0.0.1:3001 max_fails=2 fail_timeout=5s;',
    'server 127.0.0.1:3002 max_fails=2 fail_timeout=5s;',
  ])
})

void t.test('when nginx.conf is read, then it has no absolute pid or log paths and keeps the upstream policy', async (t) => {
  const conf = readFileSync(CONF, 'utf8')
  t.match(conf, /^pid nginx\.pid;$/m, 'nginx/nginx.conf: pid relative to the prefix')
  t.match(conf, /^error_log stderr/m, 'nginx/nginx.conf: errors to stderr')
  t.match(conf, /access_log \/dev\/stdout opsdrill_json;/, 'nginx/nginx.conf: JSON access log to stdout')
  t.notMatch(conf, /^\s*(pid|error_log|access_log|\w+_temp_path)\s+\/(?!dev\/stdout)/m, 'nginx/nginx.conf: an absolute path')
  const upstreamBlock = conf.match(/upstream opsdrill_api \{([\s\S]*?)\n {4}\}/)?.[1] ?? ''
  for (const d of ['zone opsdrill_api', 'include upstreams/api.conf;', 'keepalive 64;']) {
    t.ok(upstreamBlock.includes(d), `nginx/nginx.conf: upstream opsdrill_api lacks ${d}`)
  }
  // nginx refuses a second method ("load balancing method redefined"): the included list names it.
  t.notMatch(
    upstreamBlock,
    /^\s*(least_conn|ip_hash|hash|random)\b/m,
    'nginx/nginx.conf: the balancing method belongs in upstreams/api.conf',
  )
  t.match(conf, /proxy_next_upstream error timeout http_502;/, "retries on connection errors, timeouts and 502, not on the app's own 503s")
  t.notMatch(conf, /^\s*proxy_next_upstream [^;#]*non_idempotent/m, 'nginx/nginx.conf: POSTs that reached a replica must not be retried')
  t.match(conf, /proxy_next_upstream_tries 3;/)
  t.match(conf, /listen 127\.0\.0\.1:8081;[\s\S]*location = \/nginx_status \{\s*stub_status;/)
})

void t.test(
  'when the compose upstream list is read, then it balances by least_conn and re-resolves `api` through Docker DNS on every server line',
  async (t) => {
    const text = readFileSync(COMPOSE_UPSTREAMS, 'utf8')
    const lines = text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))
    t.ok(lines.includes('least_conn;'), 'nginx/upstreams.compose/api.conf: least_conn')
    t.ok(lines.includes('resolver 127.0.0.11 valid=5s ipv6=off;'), 'nginx/upstreams.compose/api.conf: Docker resolver')
    const servers = lines.filter((l) => l.startsWith('server '))
    t.ok(servers.length > 0, 'nginx/upstreams.compose/api.conf: no server line')
    for (const s of servers)
      t.match(s, /^server [\w.-]+:\d+ max_fails=2 fail_timeout=5s resolve;$/, `nginx/upstreams.compose/api.conf: ${s}`)
    t.same(
      lines.filter((l) => !l.startsWith('server ') && !l.startsWith('resolver ') && l !== 'least_conn;'),
      [],
      'only the method, server and resolver lines',
    )
  },
)

void t.test('when one replica is down, then requests still succeed and X-Upstream names the replicas tried', async (t) => {
  const live = await upstream(200)
  t.teardown(live.close)
  const dead = await freePort()
  const ngx = await runNginx(t, [dead, live.port])
  const upstreams: string[] = []
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${ngx.url}/api/v1/links`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' },
    })
    t.equal(res.status, 200, 'a POST whose connection failed is retried on the next replica')
    upstreams.push(res.headers.get('x-upstream') ?? '')
    const hit = live.hits.at(-1)!
    // Once: nginx hides the replica's echo and adds its own, so an nginx-made error (502) carries it too.
    t.equal(hit.headers['x-request-id'], res.headers.get('x-request-id'), 'the request id reaches the replica and comes back, once')
    t.match(hit.headers['x-request-id'], /^[0-9a-f]{32}$/)
    t.equal(hit.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'X-Forwarded-For appends the client')
    t.equal(hit.headers['x-real-ip'], '127.0.0.1')
  }
  t.ok(
    upstreams.every((u) => u.endsWith(`127.0.0.1:${live.port}`)),
    `X-Upstream ends at the live replica: ${upstreams.join(' | ')}`,
  )
  t.ok(
    upstreams.some((u) => u === `127.0.0.1:${dead}, 127.0.0.1:${live.port}`),
    `one request tried the dead replica first: ${upstreams.join(' | ')}`,
  )
  await sleep(100)
  const line = ngx
    .log()
    .split('\n')
    .find((l) => l.startsWith('{'))
  t.ok(line, 'nginx writes a JSON access log line to stdout')
  const entry = JSON.parse(line!) as Record<string, string>
  t.equal(entry['http.request.method'], 'POST')
  t.match(entry['nginx.upstream.addr'], `127.0.0.1:${live.port}`)
  t.match(entry['nginx.upstream.response_time_s'], /\d/)
  t.equal(entry['trace.id'], '', 'no traceparent, no trace id')
})

void t.test('when a request carries a traceparent, then its access log line carries the trace id and request id', async (t) => {
  const live = await upstream(200)
  t.teardown(live.close)
  const ngx = await runNginx(t, [live.port])
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const res = await fetch(`${ngx.url}/abc123`, { redirect: 'manual', headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } })
  t.equal(res.status, 200)
  t.equal(live.hits[0]?.headers.traceparent, `00-${traceId}-00f067aa0ba902b7-01`, 'the traceparent reaches the replica')
  const malformed = await fetch(`${ngx.url}/abc123`, { headers: { traceparent: 'not-a-traceparent' } })
  t.equal(malformed.status, 200)
  await sleep(100)
  const entries = ngx
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, string>)
  t.equal(entries.length, 2, `one access line per request: ${ngx.log()}`)
  t.equal(entries[0]!['trace.id'], traceId, 'the trace id parsed from the traceparent')
  t.equal(entries[0]!['http.request.id'], res.headers.get('x-request-id'), "nginx's request id, which the app logs too")
  t.equal(entries[1]!['trace.id'], '', 'a malformed traceparent gives no trace id')
})

void t.test('when every replica answers 502, then a GET is retried but a POST that reached a replica is not', async (t) => {
  const a = await upstream(502)
  const b = await upstream(502)
  t.teardown(a.close)
  t.teardown(b.close)
  const ngx = await runNginx(t, [a.port, b.port])
  const get = await fetch(`${ngx.url}/abc123`, { redirect: 'manual' })
  t.equal(get.status, 502)
  t.equal(a.hits.length + b.hits.length, 2, 'the GET tried both replicas')
  t.match(get.headers.get('x-upstream'), /, /, 'X-Upstream lists both replicas on an error response too')
  const before = a.hits.length + b.hits.length
  const post = await fetch(`${ngx.url}/api/v1/links`, { method: 'POST', body: '{}' })
  t.equal(post.status, 502)
  t.equal(a.hits.length + b.hits.length - before, 1, 'the POST went to exactly one replica (no duplicate link)')
})

void t.test(
  'when an API replica stops listening, then nginx has closed its idle keep-alive connections before the replica closes them (SHUTDOWN_IDLE_GRACE_MS)',
  async (t) => {
    // The replica closes the idle connections SHUTDOWN_IDLE_GRACE_MS after its listener closes (service/server.ts);
    // nginx must have closed them first, or a POST it sends on one at that moment gets a 502 it may not retry.
    const srv = createServer((req, res) => {
      req.resume()
      req.on('end', () => setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 50))
    })
    srv.keepAliveTimeout = 72_000 // Fastify's default: the replica never closes an idle connection on its own
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
    t.teardown(() => new Promise<void>((r) => srv.close(() => r())))
    srv.on('connection', (s) => t.teardown(() => s.destroy()))
    const ngx = await runNginx(t, [(srv.address() as AddressInfo).port])
    const open = () => new Promise<number>((r, j) => srv.getConnections((err, n) => (err ? j(err) : r(n))))
    await Promise.all(Array.from({ length: 16 }, () => fetch(`${ngx.url}/abc123`).then((res) => res.arrayBuffer())))
    t.ok((await open()) > 1, 'the burst opened several upstream connections')
    const graceMs = (ApiEnv.properties.SHUTDOWN_IDLE_GRACE_MS as unknown as { default: number }).default
    await sleep(graceMs)
    t.equal(await open(), 0, `idle upstream connections still open ${graceMs} ms (SHUTDOWN_IDLE_GRACE_MS) after the last request`)
  },
)
