// /api/v1/auth: register and log in. Stricter rate limits than the rest of the API.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { authenticate, register } from '../../../../usecases/auth.ts'
import { problemResponses } from '../../../../problems.ts'
import { Uuid, DateTime } from '../../../schemas.ts'

const Credentials = Type.Object(
  {
    email: Type.String({ format: 'email', maxLength: 254 }),
    // OWASP ASVS 2.1: at least 12 characters, at most 128, any characters.
    password: Type.String({ minLength: 12, maxLength: 128 }),
  },
  { additionalProperties: false },
)
// Login does not re-apply the registration policy: it only bounds the input.
const Login = Type.Object(
  { email: Type.String({ format: 'email', maxLength: 254 }), password: Type.String({ minLength: 1, maxLength: 128 }) },
  { additionalProperties: false },
)

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const rateLimit = { max: app.config.RATE_LIMIT_AUTH_MAX, timeWindow: app.config.RATE_LIMIT_WINDOW_MS }

  app.post(
    '/register',
    {
      config: { rateLimit },
      schema: {
        summary: 'Create an account',
        tags: ['auth'],
        body: Credentials,
        response: {
          201: Type.Object({ id: Uuid, email: Type.String(), role: Type.String(), createdAt: DateTime }),
          ...problemResponses(400, 409, 413, 429),
        },
      },
    },
    async (req, reply) => {
      const user = await register(app.db, req.body)
      return reply.code(201).send({ id: user.id, email: user.email, role: user.role, createdAt: user.created_at.toISOString() })
    },
  )

  app.post(
    '/login',
    {
      config: { rateLimit },
      schema: {
        summary: 'Exchange credentials for an access token',
        tags: ['auth'],
        body: Login,
        response: {
          200: Type.Object({ accessToken: Type.String(), tokenType: Type.Literal('Bearer'), expiresIn: Type.Integer() }),
          ...problemResponses(400, 401, 429),
        },
      },
    },
    async (req) => {
      const user = await authenticate(app.db, req.body)
      const accessToken = await app.jwt.sign({ sub: user.id, role: user.role })
      return { accessToken, tokenType: 'Bearer' as const, expiresIn: app.config.JWT_TTL_SECONDS }
    },
  )
}
export default routes
