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

export default fp(
  async (app, options: HelmetOptions) => {
    const headers = helmetHeaders(options)
    app.addHook('onRequest', (_req, reply, done) => {
      reply.headers(headers)
      done()
    })
  },
  { name: 'security-headers' },
)
