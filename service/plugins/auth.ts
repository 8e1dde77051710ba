// JWT access tokens: HS256 pinned, exp/sub required, issuer and audience checked on every verify.
// @fastify/jwt takes a numeric expiresIn in seconds (it converts to fast-jwt's milliseconds itself).
import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { HttpProblem } from '../problems.ts'

export type Role = 'user' | 'admin'
export interface AccessClaims {
  sub: string
  role: Role
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: AccessClaims
    user: AccessClaims
  }
}
declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (req: FastifyRequest, reply: FastifyReply) => Promise<void>
    requireAdmin: (req: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

export const unauthorized = () =>
  new HttpProblem(401, 'UNAUTHORIZED', 'Unauthorized', 'a valid bearer token is required', { headers: { 'www-authenticate': 'Bearer' } })

export default fp(
  async (app) => {
    const c = app.config
    await app.register(jwt, {
      secret: c.JWT_SECRET,
      sign: { algorithm: 'HS256', iss: c.JWT_ISSUER, aud: c.JWT_AUDIENCE, expiresIn: c.JWT_TTL_SECONDS },
      verify: { algorithms: ['HS256'], allowedIss: c.JWT_ISSUER, allowedAud: c.JWT_AUDIENCE, requiredClaims: ['exp', 'sub', 'iss', 'aud'] },
    })
    app.decorate('authenticate', async (req: FastifyRequest) => {
      try {
        await req.jwtVerify()
      } catch {
        throw unauthorized()
      }
    })
    app.decorate('requireAdmin', async (req: FastifyRequest) => {
      try {
        await req.jwtVerify()
      } catch {
        throw unauthorized()
      }
      if (req.user.role !== 'admin') throw new HttpProblem(403, 'FORBIDDEN', 'Forbidden', 'this route is for admins')
    })
  },
  { name: 'auth' },
)
