// GET /:code -> 302. The hot path: no auth, one cache lookup, one buffered click.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { redirect } from '../usecases/redirect.ts'
import { problemResponses } from '../problems.ts'

const route: FastifyPluginAsyncTypebox = async (app) => {
  const deps = { cache: app.linkCache, clicks: app.clickBuffer }
  app.get(
    '/:code',
    {
      // The hot path is traced by the HTTP server span alone (and the Redis and SQL spans of a cache miss): a
      // handler span on every redirect costs more than it tells (npm run bench, docs/benchmarks.md).
      config: { otel: { instrumentHandler: false } },
      schema: {
        summary: 'Follow a short link',
        tags: ['redirect'],
        params: Type.Object({ code: Type.String({ maxLength: 64 }) }),
        response: {
          302: Type.Null({ description: 'Redirect to the target URL (Location header)' }),
          ...problemResponses(404, 410, 429, 503),
        },
      },
    },
    async (req, reply) => {
      const url = await redirect(deps, req.params.code, {
        referrer: req.headers.referer,
        userAgent: req.headers['user-agent'],
        country: (req.headers['cf-ipcountry'] ?? req.headers['x-country-code']) as string | undefined,
      })
      return reply.header('cache-control', 'private, max-age=0').redirect(url, 302)
    },
  )
}
export default route
