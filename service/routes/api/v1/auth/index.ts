// /api/v1/auth: register and log in. Stricter rate limits than the rest of the API: per client address on each
// route, and per account (plugins/auth-limit.ts) before any argon2id work.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { authenticate, register } from '../../../../usecases/auth.ts'
import { problemResponses } from '../../../../problems.ts'

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

const REGISTERED = 'log in with this email and password; an email that already had an account keeps its password'

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
        description:
          'Answers 202 with the same body whether or not the email already had an account (whose password is then ' +
          'unchanged), so registration does not tell who has an account. Log in to use it.',
        response: {
          202: Type.Object({ email: Type.String(), detail: Type.String() }),
          ...problemResponses(400, 413, 429),
        },
      },
    },
    async (req, reply) => {
      await app.authLimit.account(req, req.body.email)
      await register(app.db, req.body)
      return reply.code(202).send({ email: req.body.email, detail: REGISTERED })
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
      await app.authLimit.account(req, req.body.email)
      const user = await authenticate(app.db, req.body)
      const accessToken = await app.jwt.sign({ sub: user.id, role: user.role })
      return { accessToken, tokenType: 'Bearer' as const, expiresIn: app.config.JWT_TTL_SECONDS }
    },
  )
}
export default routes
