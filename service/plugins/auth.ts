// JWT access tokens: HS256 pinned, exp/sub required, issuer and audience checked on every verify.
// @fastify/jwt takes a numeric expiresIn in seconds (it converts to fast-jwt's milliseconds itself).
// The role claim is trusted only to say "user": an admin claim is checked against Postgres on every request, so an
// operator's demotion (npm run ops -- user demote) takes effect on the next request, not when the token expires.
// Admins are few, so the lookup costs ordinary users nothing.
import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { HttpProblem } from '../problems.ts'
import { findUserRole } from '../repositories/users.ts'

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

export const forbidden = () => new HttpProblem(403, 'FORBIDDEN', 'Forbidden', 'this route is for admins')

export default fp(
  async (app) => {
    const c = app.config
    await app.register(jwt, {
      secret: c.JWT_SECRET,
      sign: { algorithm: 'HS256', iss: c.JWT_ISSUER, aud: c.JWT_AUDIENCE, expiresIn: c.JWT_TTL_SECONDS },
      verify: { algorithms: ['HS256'], allowedIss: c.JWT_ISSUER, allowedAud: c.JWT_AUDIENCE, requiredClaims: ['exp', 'sub', 'iss', 'aud'] },
    })
    async function authenticate(req: FastifyRequest): Promise<void> {
      try {
        await req.jwtVerify()
      } catch {
        throw unauthorized()
      }
      if (req.user.role === 'admin') {
        const role = await findUserRole(app.db, req.user.sub)
        if (role === null) throw unauthorized()
        req.user = { sub: req.user.sub, role }
      }
    }
    app.decorate('authenticate', authenticate)
    app.decorate('requireAdmin', async (req: FastifyRequest) => {
      await authenticate(req)
      if (req.user.role !== 'admin') throw forbidden()
    })
  },
  { name: 'auth', dependencies: ['db'] },
)
