// Helmet's security headers, computed once at start-up and set on every response. @fastify/helmet runs helmet's
// middleware factory on every request, which re-parses the whole policy each time (5% of the redirect's CPU in a
// profile, docs/benchmarks.md); the headers do not depend on the request, so they are built once here.
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** The headers helmet sets for these options, by lower-case name. */
export function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const res = {
    setHeader: (name: string, value: string) => {
      headers[name.toLowerCase()] = value
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()]
    },
  }
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err
  })
  return headers
}

/**
 * Of helmet's headers, the ones that act on a response without a body: Strict-Transport-Security (a browser pins
 * HTTPS from any response) and Cross-Origin-Resource-Policy (checked on every response of a no-cors fetch, redirects
 * included). The others govern a body: a document the browser renders (Content-Security-Policy, X-Frame-Options,
 * Cross-Origin-Opener-Policy, Origin-Agent-Cluster, X-DNS-Prefetch-Control, X-Download-Options,
 * X-Permitted-Cross-Domain-Policies, X-XSS-Protection), one it might sniff (X-Content-Type-Options) or the page's
 * Referrer-Policy.
 */
export const ANY_RESPONSE = new Set(['strict-transport-security', 'cross-origin-resource-policy'])

/**
 * Every response gets the headers that act without a body; a response with a body gets the rest too. The redirect's
 * 302 has no body: the other ten were 346 bytes of its answer, each one stored, validated and written on every
 * redirect for a browser that ignores it there (docs/benchmarks.md has what dropping them gained). A route that sets
 * one of them itself (the Swagger UI's and the queue board's CSP) keeps its own.
 */
export default fp(
  async (app, options: HelmetOptions) => {
    const all = Object.entries(helmetHeaders(options))
    const always = Object.fromEntries(all.filter(([name]) => ANY_RESPONSE.has(name)))
    const withBody = all.filter(([name]) => !ANY_RESPONSE.has(name))
    app.addHook('onRequest', (_req, reply, done) => {
      reply.headers(always)
      done()
    })
    app.addHook('onSend', (_req, reply, payload, done) => {
      if (payload !== undefined && payload !== null && payload !== '' && !(Buffer.isBuffer(payload) && payload.length === 0))
        for (const [name, value] of withBody) if (!reply.hasHeader(name)) reply.header(name, value)
      done(null, payload)
    })
  },
  { name: 'security-headers' },
)
