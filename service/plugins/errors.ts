// One error handler and one not-found handler, both answering application/problem+json.
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { HttpProblem, PROBLEM_BASE, ProblemSchema, type Problem } from '../problems.ts'
import { isDbUnavailable } from '../../common/db.ts'

/** Longest path parameter the router matches (Fastify's default); a longer one is answered 414. */
export const MAX_PARAM_LENGTH = 100

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

const CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'VALIDATION_FAILED',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION_FAILED',
  FST_JWT_NO_AUTHORIZATION_IN_HEADER: 'UNAUTHORIZED',
  FST_JWT_AUTHORIZATION_TOKEN_INVALID: 'UNAUTHORIZED',
  FST_JWT_AUTHORIZATION_TOKEN_EXPIRED: 'UNAUTHORIZED',
  FST_JWT_AUTHORIZATION_TOKEN_UNTRUSTED: 'UNAUTHORIZED',
  FST_JWT_BAD_REQUEST: 'UNAUTHORIZED',
  FST_JWT_BAD_COOKIE_REQUEST: 'UNAUTHORIZED',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
  FST_ERR_BAD_URL: 'BAD_URL',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
}

// The router's own answers echo the whole path; these say what is wrong without it.
const DETAILS: Record<string, string> = {
  FST_ERR_BAD_URL: 'the path is not validly percent-encoded',
  FST_ERR_MAX_PARAM_LENGTH: `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`,
}

export function sendProblem(reply: FastifyReply, p: Problem, headers: Record<string, string> = {}): FastifyReply {
  return reply.code(p.status).headers(headers).type('application/problem+json').send(p)
}

function fieldOf(v: NonNullable<FastifyError['validation']>[number], context: string | undefined): string {
  const params = v.params as { missingProperty?: string; additionalProperty?: string }
  const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.')
  const leaf = params.missingProperty ?? params.additionalProperty
  return [context, path, leaf].filter(Boolean).join('.') || (context ?? 'request')
}

type Answer = { problem: Problem; headers: Record<string, string> }

/** One problem body: the type URI and the title follow from the code and the status. */
function answer(status: number, code: string, detail: string, instance: string | undefined, extra: Partial<Problem> = {}): Answer {
  const problem = { type: PROBLEM_BASE + code.toLowerCase(), title: TITLES[status] ?? 'Error', status, code, detail, instance, ...extra }
  return { problem, headers: {} }
}

export function toProblem(err: FastifyError, req: FastifyRequest): Answer {
  const instance = req.url.split('?')[0]
  if (err instanceof HttpProblem) {
    const out = answer(err.status, err.code, err.message, instance, { title: err.title, ...(err.errors ? { errors: err.errors } : {}) })
    return { ...out, headers: err.headers }
  }
  if (err.validation) {
    const errors = err.validation.map((v) => {
      const params = v.params as { additionalProperty?: string }
      return {
        field: fieldOf(v, err.validationContext),
        message: params.additionalProperty ? 'is not an allowed field' : (v.message ?? 'is invalid'),
      }
    })
    const first = errors[0]!
    return answer(400, 'VALIDATION_FAILED', `${first.field} ${first.message}`, instance, { errors })
  }
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  if (status === 429) return answer(429, 'RATE_LIMITED', err.message, instance)
  if (status >= 500) {
    if (isDbUnavailable(err)) {
      const out = answer(503, 'SERVICE_UNAVAILABLE', 'a dependency is unavailable; retry shortly', instance)
      return { ...out, headers: { 'retry-after': '1' } }
    }
    return answer(500, 'INTERNAL', 'an unexpected error occurred; it has been logged', instance)
  }
  const code = CODES[err.code] ?? (status === 401 ? 'UNAUTHORIZED' : status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST')
  return answer(status, code, code === 'UNAUTHORIZED' ? 'a valid bearer token is required' : (DETAILS[err.code] ?? err.message), instance)
}

/** Fastify's frameworkErrors: the router's own errors (a bad or over-long path) in the one problem format. */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const { problem, headers } = toProblem(err, req)
  void sendProblem(reply, problem, headers)
}

export default fp(
  async (app) => {
    app.addSchema(ProblemSchema)
    app.setErrorHandler((err: FastifyError, req, reply) => {
      const { problem, headers } = toProblem(err, req)
      if (problem.status >= 500) req.log.error({ err }, 'request failed')
      else if (problem.status !== 404)
        req.log.info({ problem: { code: problem.code, status: problem.status } }, problem.detail ?? problem.title)
      // Rate-limit and shedding headers set by plugins (retry-after, x-ratelimit-*) are kept on the reply.
      return sendProblem(reply, problem, headers)
    })
    app.setNotFoundHandler((req, reply) => {
      const path = req.url.split('?')[0]
      return sendProblem(reply, answer(404, 'NOT_FOUND', `no route for ${req.method} ${path}`, path).problem)
    })
  },
  { name: 'opsdrill-errors' },
)
