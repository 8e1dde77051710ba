// RFC 9457 problem details: one format, stable `code`s. 5xx bodies never carry internals.
import { Type, type Static } from 'typebox'

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
)
export type Problem = Static<typeof ProblemSchema>

export const PROBLEM_BASE = 'https://opsdrill.dev/problems/'

/** An error a use-case throws to answer with a 4xx/5xx problem. */
export class HttpProblem extends Error {
  readonly status: number
  readonly code: string
  readonly title: string
  readonly headers: Record<string, string>
  readonly errors: { field: string; message: string }[] | undefined
  constructor(
    status: number,
    code: string,
    title: string,
    detail?: string,
    opts: { headers?: Record<string, string>; errors?: { field: string; message: string }[] } = {},
  ) {
    super(detail ?? title)
    this.status = status
    this.code = code
    this.title = title
    this.headers = opts.headers ?? {}
    this.errors = opts.errors
  }
}

export const notFound = (what: string) => new HttpProblem(404, 'NOT_FOUND', 'Not Found', `${what} not found`)
export const conflict = (code: string, detail: string) => new HttpProblem(409, code, 'Conflict', detail)
export const gone = (detail: string) => new HttpProblem(410, 'GONE', 'Gone', detail)
export const unavailable = (detail: string, retryAfterSeconds = 1) =>
  new HttpProblem(503, 'SERVICE_UNAVAILABLE', 'Service Unavailable', detail, { headers: { 'retry-after': String(retryAfterSeconds) } })
export const invalidField = (field: string, message: string) =>
  new HttpProblem(400, 'VALIDATION_FAILED', 'Bad Request', `${field} ${message}`, { errors: [{ field, message }] })

/** Shared response map for routes: every route documents its problems. */
export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, Type.Ref('Problem')])) as Record<number, ReturnType<typeof Type.Ref>>
