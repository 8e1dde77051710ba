// /api/v1/exports: poll an export and download its CSV.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { downloadExport, getExport } from '../../../../usecases/exports.ts'
import { problemResponses } from '../../../../problems.ts'
import { bearer, IdParams } from '../../../schemas.ts'

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.addHook('onRequest', app.authenticate)
  app.get(
    '/:id',
    {
      schema: {
        summary: 'Export status and progress',
        tags: ['exports'],
        security: bearer,
        params: IdParams,
        response: { 200: Type.Ref('Export'), ...problemResponses(400, 401, 404) },
      },
    },
    async (req) => getExport(app.db, req.user, req.params.id),
  )
  app.get(
    '/:id/download',
    {
      schema: {
        summary: 'Download the finished CSV',
        tags: ['exports'],
        security: bearer,
        params: IdParams,
        produces: ['text/csv'],
        response: {
          200: Type.String({ description: 'CSV: click_id,at,referrer,ua_family,country' }),
          ...problemResponses(400, 401, 404, 409),
        },
      },
    },
    async (req, reply) => {
      // Streamed chunk by chunk from Postgres: an export is never whole in the API's memory. The 200 schema documents
      // the CSV for the OpenAPI spec; a stream is sent as it is, without serialization, hence the cast.
      const { bytes, csv } = await downloadExport(app.db, req.user, req.params.id)
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-length', bytes)
        .header('content-disposition', `attachment; filename="export-${req.params.id}.csv"`)
        .send(csv as never)
    },
  )
}
export default routes
