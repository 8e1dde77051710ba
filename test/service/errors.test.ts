import t from 'tap'
import { createServer, type Socket } from 'node:net'
import { testApp, login } from '../helpers/app.ts'
import { apiConfig, testDatabase } from '../helpers/env.ts'
import { assertProblem, counterValue, dependencyUp, unreadyApp } from '../helpers/service.ts'
import { createLink, createUser } from '../helpers/factories.ts'
import { freePort } from '../../ops/lib/net.ts'
import { metrics } from '../../common/metrics.ts'

void t.test('when a handler throws unexpectedly, then 500 INTERNAL with no message or stack, and the error is logged', async (t) => {
  const config = apiConfig(await testDatabase(t), { LOG_LEVEL: 'info' })
  const { app, logs } = await unreadyApp(t, config)
  app.get('/boom', async () => {
    throw new Error('secret internal detail: connection string postgres://x')
  })
  await app.ready()
  const res = await app.inject('/boom')
  assertProblem(t, res, 500, 'INTERNAL')
  t.notMatch(res.body, /secret internal detail|postgres:|stack|at .*\.ts/, 'nothing internal in the body')
  const logged = logs.find((l) => l['log.level'] === 'error' && JSON.stringify(l).includes('secret internal detail'))
  t.ok(logged, 'the error and its message are in the log')
  t.match(logged, { error: { stack_trace: String } })
})

async function silentServer(t: { teardown(fn: () => unknown): void }): Promise<number> {
  // Accepts TCP connections and never answers: a Postgres that hangs.
  const sockets = new Set<Socket>()
  const server = createServer((s) => void sockets.add(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return (server.address() as { port: number }).port
}

for (const [what, port] of [
  ['refuses connections', () => freePort()],
  ['accepts and never answers', silentServer],
] as const) {
  void t.test(
    `when Postgres ${what}, then a Postgres route answers 503 SERVICE_UNAVAILABLE with Retry-After within the connect timeout, readyz stays 200 and dependency_up{postgres} is 0`,
    async (t) => {
      const p = await port(t)
      const { app } = await testApp(t, { PG_CONNECT_TIMEOUT_MS: '300' }, `postgres://postgres@127.0.0.1:${p}/none`)
      const started = Date.now()
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { email: 'a@example.test', password: 'whatever-password' },
      })
      const took = Date.now() - started
      assertProblem(t, res, 503, 'SERVICE_UNAVAILABLE')
      t.equal(res.headers['retry-after'], '1')
      t.ok(took < 800, `answered in ${took} ms (connect timeout 300 ms + 0.5 s)`)
      t.notMatch(res.body, /ECONNREFUSED|timeout|127\.0\.0\.1/, 'no internals in the body')
      t.equal((await app.inject('/readyz')).statusCode, 200, 'still ready: cached redirects can be served without Postgres')
      const probed = Date.now()
      t.equal(await dependencyUp('postgres'), 0, 'dependency_up{postgres} is 0')
      t.ok(Date.now() - probed < 800, `the probe answered in ${Date.now() - probed} ms (bounded by the connect timeout)`)
      t.equal(await dependencyUp('redis'), 1, 'dependency_up{redis} is 1')
      t.equal((await app.inject('/healthz')).statusCode, 200, 'liveness does not depend on Postgres')
    },
  )
}

void t.test('when a route does not exist, then 404 problem+json naming the path', async (t) => {
  const { app } = await testApp(t)
  const res = await app.inject({ method: 'POST', url: '/api/v1/nothing-here?x=1' })
  assertProblem(t, res, 404, 'NOT_FOUND')
  t.match(res.json(), { instance: '/api/v1/nothing-here', detail: /POST \/api\/v1\/nothing-here/ })
})

void t.test(
  'when a response with a body is sent (success or error), then it carries the helmet headers and an x-request-id; a redirect only those that act without a body',
  async (t) => {
    const { app } = await testApp(t)
    const { auth } = await login(app)
    const responses = {
      '200': await app.inject({ url: '/api/v1/links', headers: auth }),
      '400': await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 1 } }),
      '401': await app.inject('/api/v1/links'),
      '404 route': await app.inject('/no/such/route'),
      '404 code': await app.inject('/unknown-code'),
      healthz: await app.inject('/healthz'),
    }
    for (const [name, res] of Object.entries(responses)) {
      t.equal(res.headers['x-content-type-options'], 'nosniff', `${name}: x-content-type-options`)
      t.match(res.headers['strict-transport-security'], /max-age=\d+/, `${name}: strict-transport-security`)
      t.ok(res.headers['content-security-policy'], `${name}: content-security-policy`)
      t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', `${name}: x-frame-options`)
      t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, `${name}: x-request-id`)
    }
    const owner = await createUser(app.db)
    const link = await createLink(app.db, owner.id)
    const redirect = await app.inject(`/${link.code}`)
    t.equal(redirect.statusCode, 302)
    t.match(redirect.headers['strict-transport-security'], /max-age=\d+/, 'redirect: strict-transport-security')
    t.equal(redirect.headers['cross-origin-resource-policy'], 'same-origin', 'redirect: cross-origin-resource-policy')
    t.match(redirect.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'redirect: x-request-id')
    t.equal(redirect.headers['referrer-policy'], 'strict-origin-when-cross-origin', "redirect: the redirect's own referrer-policy")
    for (const name of [
      'content-security-policy',
      'x-frame-options',
      'x-content-type-options',
      'cross-origin-opener-policy',
      'x-xss-protection',
    ])
      t.equal(redirect.headers[name], undefined, `redirect: no ${name} on a response without a body`)
    t.equal(responses['404 code'].headers['cross-origin-resource-policy'], 'same-origin', '404 code: cross-origin-resource-policy')
    t.equal(responses['404 code'].headers['referrer-policy'], 'no-referrer', "404 code: helmet's referrer-policy on the problem body")
    const given = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'trace-me-123' } })
    t.equal(given.headers['x-request-id'], 'trace-me-123', 'a caller-supplied request id is echoed')
    const a = await app.inject('/healthz')
    const b = await app.inject('/healthz')
    t.not(a.headers['x-request-id'], b.headers['x-request-id'], 'generated ids are unique')
  },
)

void t.test('when /docs/json is read, then it is OpenAPI 3.1 listing every /api/v1 route with schemas and bearerAuth', async (t) => {
  const { app } = await testApp(t)
  const res = await app.inject('/docs/json')
  t.equal(res.statusCode, 200)
  const spec = res.json() as {
    openapi: string
    paths: Record<
      string,
      Record<
        string,
        {
          requestBody?: { content: Record<string, { schema: unknown }> }
          parameters?: { in: string; name: string }[]
          responses: Record<string, { content?: Record<string, { schema: unknown }> }>
          security?: unknown[]
        }
      >
    >
    components: { securitySchemes: Record<string, { type: string; scheme: string }> }
  }
  t.equal(spec.openapi, '3.1.0')
  t.match(spec.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' })
  const expected: [string, string][] = [
    ['post', '/api/v1/auth/register'],
    ['post', '/api/v1/auth/login'],
    ['post', '/api/v1/links'],
    ['get', '/api/v1/links'],
    ['get', '/api/v1/links/{id}'],
    ['patch', '/api/v1/links/{id}'],
    ['delete', '/api/v1/links/{id}'],
    ['get', '/api/v1/links/{id}/stats'],
    ['post', '/api/v1/links/{id}/exports'],
    ['get', '/api/v1/exports/{id}'],
    ['get', '/api/v1/exports/{id}/download'],
  ]
  for (const [method, path] of expected) t.ok(spec.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`)
  // Every /api/v1 operation the app has (including any added later) is fully described.
  const ops = Object.entries(spec.paths)
    .filter(([p]) => p.startsWith('/api/v1/'))
    .flatMap(([p, m]) => Object.entries(m).map(([verb, op]) => ({ name: `${verb.toUpperCase()} ${p}`, path: p, verb, op })))
  t.ok(ops.length >= expected.length)
  for (const { name, path, verb, op } of ops) {
    const success = Object.entries(op.responses).find(([s]) => s.startsWith('2'))
    t.ok(success, `${name}: documents its success response`)
    const errorCodes = Object.keys(op.responses).filter((s) => s.startsWith('4'))
    t.ok(errorCodes.length > 0, `${name}: documents its problems`)
    if (['post', 'patch', 'put'].includes(verb) && !path.endsWith('/exports') && !path.includes('/admin/'))
      t.ok(op.requestBody?.content['application/json']?.schema, `${name}: request body schema`)
    if (path.includes('{id}'))
      t.ok(
        op.parameters?.some((p) => p.in === 'path' && p.name === 'id'),
        `${name}: id path parameter`,
      )
    if (!path.startsWith('/api/v1/auth/')) t.same(op.security, [{ bearerAuth: [] }], `${name}: bearerAuth`)
  }
  const ui = await app.inject('/docs')
  const page = ui.statusCode === 302 ? await app.inject(String(ui.headers.location).replace(/^\.?\/?/, '/docs/')) : ui
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /swagger-ui/i)
})

void t.test(
  'when the event loop is over MAX_EVENT_LOOP_UTILIZATION, then requests get 503 OVERLOADED with Retry-After and are counted, but /healthz answers',
  async (t) => {
    const { app } = await testApp(t, { MAX_EVENT_LOOP_UTILIZATION: '0.01' })
    const shed0 = await counterValue(metrics.httpShed)
    // Keep the loop busy past the start-up grace (two 1 s samples) so the sampled utilisation is high.
    const until = Date.now() + 2300
    while (Date.now() < until) {
      const spin = Date.now() + 40
      while (Date.now() < spin);
      await new Promise((r) => setImmediate(r))
    }
    const res = await app.inject('/api/v1/links')
    assertProblem(t, res, 503, 'OVERLOADED')
    t.equal(res.headers['retry-after'], '1')
    t.ok((await counterValue(metrics.httpShed)) > shed0, 'opsdrill_http_requests_shed_total grew')
    t.ok((await counterValue(metrics.httpShed, { reason: 'eventLoopUtilization' })) > 0, 'with reason eventLoopUtilization')
    t.equal((await app.inject('/healthz')).statusCode, 200, 'liveness is never shed')
    t.not((await app.inject('/readyz')).json().code, 'OVERLOADED', 'readiness is not shed either')
  },
)

void t.test('when the event loop stalls while the app starts, then its first requests are not shed', async (t) => {
  const { app } = await testApp(t, { MAX_EVENT_LOOP_DELAY_MS: '1', MAX_EVENT_LOOP_UTILIZATION: '0.01' })
  // A start-up stall, as loading modules and compiling schemas cause, inside under-pressure's first sample.
  const until = Date.now() + 1100
  while (Date.now() < until);
  await new Promise((r) => setTimeout(r, 50))
  t.equal((await app.inject('/api/v1/links')).statusCode, 401, 'served (401: no token), not 503 OVERLOADED')
})

void t.test('when the event loop was blocked past MAX_EVENT_LOOP_DELAY_MS, then requests get 503 OVERLOADED', async (t) => {
  const { app } = await testApp(t, { MAX_EVENT_LOOP_DELAY_MS: '1', MAX_EVENT_LOOP_UTILIZATION: '1' })
  const shed0 = await counterValue(metrics.httpShed, { reason: 'eventLoopDelay' })
  const until = Date.now() + 2300
  while (Date.now() < until) {
    const spin = Date.now() + 100
    while (Date.now() < spin);
    await new Promise((r) => setImmediate(r))
  }
  assertProblem(t, await app.inject('/api/v1/links'), 503, 'OVERLOADED')
  t.ok((await counterValue(metrics.httpShed, { reason: 'eventLoopDelay' })) > shed0, 'counted with reason eventLoopDelay')
  t.equal((await app.inject('/healthz')).statusCode, 200)
})

void t.test('when a code is long or a path parameter too long, then 404 or 414 problem, as the OpenAPI document says', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  for (const length of [33, 65, 100]) {
    assertProblem(t, await app.inject(`/${'a'.repeat(length)}`), 404, 'NOT_FOUND')
    t.equal((await app.inject({ method: 'HEAD', url: `/${'a'.repeat(length)}` })).statusCode, 404, 'HEAD alike (no body)')
  }
  for (const url of [`/${'a'.repeat(101)}`, `/api/v1/links/${'b'.repeat(5000)}`]) {
    const res = await app.inject({ url, headers: auth })
    assertProblem(t, res, 414, 'URI_TOO_LONG')
    t.equal(res.json().detail, 'a path parameter is longer than 100 characters')
  }
  const bad = await app.inject('/%E0%A4%A')
  assertProblem(t, bad, 400, 'BAD_URL')

  const spec = (await app.inject('/docs/json')).json() as {
    paths: Record<
      string,
      Record<string, { parameters: { name: string; schema: object }[]; responses: Record<string, { content?: object }> }>
    >
  }
  const redirect = spec.paths['/{code}']!.get!
  t.same(Object.keys(redirect.responses).sort(), ['302', '404', '410', '414', '429', '503'], 'no 400, and 414 documented')
  t.notOk('maxLength' in redirect.parameters.find((p) => p.name === 'code')!.schema, 'no length limit that would answer 400')
  t.ok(redirect.responses['414']!.content, '414 is a problem body')
  for (const [path, methods] of Object.entries(spec.paths))
    for (const [verb, op] of Object.entries(methods))
      if (path.includes('{')) t.ok(op.responses['414'], `${verb.toUpperCase()} ${path} documents 414`)
})
