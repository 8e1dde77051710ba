// Schemas shared by several routes. Types come from the schemas (Static<>), never written twice.
import { Type } from 'typebox'

export const Uuid = Type.String({ format: 'uuid' })
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false })
export const DateTime = Type.String({ format: 'date-time' })

export const LinkSchema = Type.Object(
  {
    id: Uuid,
    code: Type.String(),
    shortUrl: Type.String(),
    url: Type.String(),
    createdAt: DateTime,
    updatedAt: DateTime,
    expiresAt: Type.Union([DateTime, Type.Null()]),
    ownerId: Uuid,
  },
  { $id: 'Link' },
)

export const ExportSchema = Type.Object(
  {
    id: Uuid,
    linkId: Uuid,
    status: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]),
    progress: Type.Integer({ minimum: 0, maximum: 100 }),
    rowCount: Type.Union([Type.Integer(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
    createdAt: DateTime,
    finishedAt: Type.Union([DateTime, Type.Null()]),
    downloadUrl: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'Export' },
)

export const bearer = [{ bearerAuth: [] }]
