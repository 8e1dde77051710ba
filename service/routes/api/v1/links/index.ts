// /api/v1/links: CRUD on the caller's links, their stats and export requests.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import * as links from '../../../../usecases/links.ts'
import { linkStats } from '../../../../usecases/stats.ts'
import { requestExport } from '../../../../usecases/exports.ts'
import { producerReady } from '../../../../plugins/queues.ts'
import { problemResponses } from '../../../../problems.ts'
import { bearer, DateTime, IdParams, Uuid } from '../../../schemas.ts'

const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'absolute http(s) URL' })

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const deps: links.LinkDeps = { db: app.db, cache: app.linkCache, publicBaseUrl: app.config.PUBLIC_BASE_URL }
  const statsDeps = { db: app.db, redis: app.redis, prefix: app.config.REDIS_PREFIX, ttlSeconds: app.config.STATS_CACHE_TTL_SECONDS }
  app.addHook('onRequest', app.authenticate)

  app.post(
    '/',
    {
      config: { rateLimit: { max: app.config.RATE_LIMIT_LINK_CREATE_MAX, timeWindow: app.config.RATE_LIMIT_WINDOW_MS } },
      schema: {
        summary: 'Shorten a URL',
        tags: ['links'],
        security: bearer,
        body: Type.Object(
          {
            url: Url,
            alias: Type.Optional(
              Type.String({ minLength: 3, maxLength: 32, pattern: links.CODE_PATTERN, description: 'custom code: A-Z a-z 0-9 _ -' }),
            ),
            expiresAt: Type.Optional(DateTime),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Ref('Link'), ...problemResponses(400, 401, 409, 413, 429) },
      },
    },
    async (req, reply) => reply.code(201).send(await links.createLink(deps, req.user, req.body)),
  )

  app.get(
    '/',
    {
      schema: {
        summary: 'List my links, newest first',
        tags: ['links'],
        security: bearer,
        querystring: Type.Object(
          { limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }), cursor: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(Type.Ref('Link')), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...problemResponses(400, 401),
        },
      },
    },
    async (req) => links.listLinks(deps, req.user, req.query),
  )

  app.get(
    '/:id',
    {
      schema: {
        summary: 'Get one of my links',
        tags: ['links'],
        security: bearer,
        params: IdParams,
        response: { 200: Type.Ref('Link'), ...problemResponses(400, 401, 404) },
      },
    },
    async (req) => links.getLink(deps, req.user, req.params.id),
  )

  app.patch(
    '/:id',
    {
      schema: {
        summary: 'Change the target or expiry of one of my links',
        tags: ['links'],
        security: bearer,
        params: IdParams,
        body: Type.Object(
          { url: Type.Optional(Url), expiresAt: Type.Optional(Type.Union([DateTime, Type.Null()])) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Type.Ref('Link'), ...problemResponses(400, 401, 404, 503) },
      },
    },
    async (req) => links.updateLink(deps, req.user, req.params.id, req.body),
  )

  app.delete(
    '/:id',
    {
      schema: {
        summary: 'Delete one of my links (its code then answers 410)',
        tags: ['links'],
        security: bearer,
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses(400, 401, 404, 503) },
      },
    },
    async (req, reply) => {
      await links.deleteLink(deps, req.user, req.params.id)
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/:id/stats',
    {
      schema: {
        summary: 'Click totals and a per-day series (UTC) from the rollups',
        tags: ['stats'],
        security: bearer,
        params: IdParams,
        querystring: Type.Object({ days: Type.Integer({ minimum: 1, maximum: 366, default: 30 }) }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            linkId: Uuid,
            total: Type.Integer(),
            days: Type.Array(Type.Object({ day: Type.String(), clicks: Type.Integer() })),
            generatedAt: DateTime,
          }),
          ...problemResponses(400, 401, 404),
        },
      },
    },
    async (req) => {
      const link = await links.requireLink(app.db, req.user, req.params.id)
      return linkStats(statsDeps, link.id, req.query.days)
    },
  )

  app.post(
    '/:id/exports',
    {
      schema: {
        summary: "Export the link's clicks as CSV (asynchronous)",
        tags: ['exports'],
        security: bearer,
        params: IdParams,
        response: {
          202: Type.Object({ exportId: Uuid, status: Type.String(), statusUrl: Type.String() }),
          ...problemResponses(400, 401, 404, 503),
        },
      },
    },
    async (req, reply) => {
      const link = await links.requireLink(app.db, req.user, req.params.id)
      const exp = await requestExport(
        { db: app.db, queue: app.queues.exports, queueReady: () => producerReady(app.redisProducer) },
        req.user,
        link.id,
      )
      return reply
        .code(202)
        .header('location', `/api/v1/exports/${exp.id}`)
        .send({ exportId: exp.id, status: exp.status, statusUrl: `/api/v1/exports/${exp.id}` })
    },
  )
}
export default routes
