// One error handler and one not-found handler, both answering application/problem+json.
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { HttpProblem, PROBLEM_BASE, ProblemSchema, type Problem } from '../problems.ts'
import { isDbUnavailable } from '../../common/db.ts'

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
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

export function toProblem(err: FastifyError, req: FastifyRequest): { problem: Problem; headers: Record<string, string> } {
  const instance = req.url.split('?')[0]
  if (err instanceof HttpProblem) {
    return {
      problem: {
        type: PROBLEM_BASE + err.code.toLowerCase(),
        title: err.title,
        status: err.status,
        code: err.code,
        detail: err.message,
        instance,
        ...(err.errors ? { errors: err.errors } : {}),
      },
      headers: err.headers,
    }
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
    return {
      problem: {
        type: PROBLEM_BASE + 'validation_failed',
        title: 'Bad Request',
        status: 400,
        code: 'VALIDATION_FAILED',
        detail: `${first.field} ${first.message}`,
        instance,
        errors,
      },
      headers: {},
    }
  }
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  if (status === 429) {
    return {
      problem: { type: PROBLEM_BASE + 'rate_limited', title: TITLES[429]!, status, code: 'RATE_LIMITED', detail: err.message, instance },
      headers: {},
    }
  }
  if (status >= 500) {
    if (isDbUnavailable(err)) {
      return {
        problem: {
          type: PROBLEM_BASE + 'service_unavailable',
          title: TITLES[503]!,
          status: 503,
          code: 'SERVICE_UNAVAILABLE',
          detail: 'a dependency is unavailable; retry shortly',
          instance,
        },
        headers: { 'retry-after': '1' },
      }
    }
    return {
      problem: {
        type: PROBLEM_BASE + 'internal',
        title: TITLES[500]!,
        status: 500,
        code: 'INTERNAL',
        detail: 'an unexpected error occurred; it has been logged',
        instance,
      },
      headers: {},
    }
  }
  const code = CODES[err.code] ?? (status === 401 ? 'UNAUTHORIZED' : status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST')
  const detail = code === 'UNAUTHORIZED' ? 'a valid bearer token is required' : err.message
  return {
    problem: { type: PROBLEM_BASE + code.toLowerCase(), title: TITLES[status] ?? 'Error', status, code, detail, instance },
    headers: {},
  }
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
    app.setNotFoundHandler((req, reply) =>
      sendProblem(reply, {
        type: PROBLEM_BASE + 'not_found',
        title: 'Not Found',
        status: 404,
        code: 'NOT_FOUND',
        detail: `no route for ${req.method} ${req.url.split('?')[0]}`,
        instance: req.url.split('?')[0],
      }),
    )
  },
  { name: 'opsdrill-errors' },
)
