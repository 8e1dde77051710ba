// A sampled request under a trace id of the test's own, for the log suites: the API logs every sampled request.
import { randomBytes } from 'node:crypto'

/** GET an unknown code through nginx at baseUrl with a sampled traceparent; its trace id and nginx's request id. */
export async function tracedRequest(baseUrl: string): Promise<{ traceId: string; requestId: string }> {
  const traceId = randomBytes(16).toString('hex')
  const res = await fetch(`${baseUrl}/nosuch${randomBytes(3).toString('hex')}`, {
    headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
    redirect: 'manual',
  })
  await res.arrayBuffer()
  if (res.status !== 404) throw new Error(`an unknown code answered ${res.status}, not 404`)
  // One id: nginx hides the replica's echo and adds its own (nginx/nginx.conf).
  const requestId = res.headers.get('x-request-id') ?? ''
  if (!/^[0-9a-f]{32}$/.test(requestId)) throw new Error(`X-Request-Id should be one id of nginx's, got ${requestId}`)
  return { traceId, requestId }
}
