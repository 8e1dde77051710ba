// GET /:code -> 302. The hot path: no auth, one cache lookup, one buffered click.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { FastifyRequest } from 'fastify'
import ipaddr from 'ipaddr.js'
import { redirect } from '../usecases/redirect.ts'
import { problemResponses } from '../problems.ts'

const PURPOSE_HEADERS = ['sec-purpose', 'purpose', 'x-purpose', 'x-moz'] as const

/** Whether the connection comes straight from one of TRUSTED_PROXIES (IPs or CIDRs), the only peers whose headers count. */
export function trustedPeer(list: string): (address: string | undefined) => boolean {
  const ranges = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (s.includes('/') ? ipaddr.parseCIDR(s) : ([ipaddr.parse(s), s.includes(':') ? 128 : 32] as const)))
  return (address) => {
    if (!address || !ipaddr.isValid(address)) return false
    const ip = ipaddr.process(address)
    return ranges.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits))
  }
}

const route: FastifyPluginAsyncTypebox = async (app) => {
  const deps = { cache: app.linkCache, clicks: app.clickBuffer }
  const referrerPolicy = app.config.REDIRECT_REFERRER_POLICY
  const countryHeader = app.config.COUNTRY_HEADER.toLowerCase()
  const fromProxy = trustedPeer(app.config.TRUSTED_PROXIES)
  // A client can send any header: the country is read only when the configured proxy is the one that connected.
  const countryOf = (req: FastifyRequest) =>
    countryHeader && fromProxy(req.socket.remoteAddress) ? (req.headers[countryHeader] as string | undefined) : undefined
  app.get(
    '/:code',
    {
      // The hot path is traced by the HTTP server span alone (and the Redis and SQL spans of a cache miss): a
      // handler span on every redirect costs more than it tells (npm run bench, docs/benchmarks.md).
      config: { otel: { instrumentHandler: false } },
      schema: {
        summary: 'Follow a short link',
        tags: ['redirect'],
        // Any text is accepted: a code that cannot exist is simply not found (404), as a fuzzer expects of a lookup.
        params: Type.Object({ code: Type.String({ description: 'a short code or alias; one that does not exist answers 404' }) }),
        response: {
          302: Type.Null({ description: 'Redirect to the target URL (Location header)' }),
          ...problemResponses(404, 410, 429, 503),
        },
      },
    },
    (req, reply) => {
      const found = (url: string) => {
        // Helmet's no-referrer suits the API; on the redirect the policy is the product's choice (README, design notes).
        reply.header('cache-control', 'private, max-age=0').header('referrer-policy', referrerPolicy).redirect(url, 302)
      }
      // Fastify answers HEAD with this handler too (exposeHeadRoutes): the method tells it apart.
      const url = redirect(deps, req.params.code, {
        method: req.method,
        purpose: PURPOSE_HEADERS.flatMap((h) => req.headers[h] ?? []),
        referrer: req.headers.referer,
        userAgent: req.headers['user-agent'],
        country: countryOf(req),
      })
      // An L1 hit is answered without a promise (usecases/redirect.ts): no microtask hop on the hot path.
      if (typeof url !== 'string') return url.then(found)
      found(url)
    },
  )
}
export default route
