// Link management. A user sees and changes only their own links (admin: all); another user's link is 404.
import { customAlphabet } from 'nanoid'
import ipaddr from 'ipaddr.js'
import type { Db, Queryable } from '../../common/db.ts'
import { metrics } from '../../common/metrics.ts'
import { conflict, HttpProblem, invalidField, notFound, unavailable } from '../problems.ts'
import * as repo from '../repositories/links.ts'
import type { LinkCache } from '../plugins/link-cache.ts'
import { unauthorized, type AccessClaims } from '../plugins/auth.ts'

export const CODE_PATTERN = '^[A-Za-z0-9_-]{3,32}$'
const CODE_RE = new RegExp(CODE_PATTERN)
// 7 base62 characters: 3.5e12 codes; a collision retries with a new code.
const newCode = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 7)
// Paths the API owns cannot be aliases.
const RESERVED = new Set(['api', 'docs', 'admin', 'healthz', 'readyz', 'metrics', 'favicon.ico', 'robots.txt'])

export interface LinkView {
  id: string
  code: string
  shortUrl: string
  url: string
  createdAt: string
  updatedAt: string
  expiresAt: string | null
  ownerId: string
}

export interface LinkDeps {
  db: Db
  cache: LinkCache
  publicBaseUrl: string
}

export function view(row: repo.LinkRow, publicBaseUrl: string): LinkView {
  return {
    id: row.id,
    code: row.code,
    shortUrl: `${publicBaseUrl.replace(/\/$/, '')}/${row.code}`,
    url: row.url,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    expiresAt: row.expires_at?.toISOString() ?? null,
    ownerId: row.owner_id,
  }
}

// Names that only resolve inside a network or on the machine itself: special-use names (RFC 6761, RFC 6762,
// RFC 8375, ICANN's .internal) and single-label names, which resolvers complete with a local search domain.
const LOCAL_NAME = /(^|\.)(localhost|local|internal|home\.arpa)$|^[^.]+$/

/**
 * Only absolute http(s) URLs to a public host: no credentials in the URL (a phishing disguise:
 * https://bank.example@evil.example), no loopback, private, link-local or other non-public address (IPv4 or IPv6, in
 * any of the forms the WHATWG parser normalises, such as http://2130706433/ or [::ffff:127.0.0.1]), no local or
 * internal name (localhost, metadata.google.internal), and not this shortener itself (a redirect loop). Host names
 * are judged as written and never resolved: the shortener never fetches the URL (README, design notes).
 */
export function checkTarget(url: string, publicBaseUrl: string, field = 'body.url'): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalidField(field, 'must be an absolute URL')
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalidField(field, 'must use http or https')
  if (!parsed.hostname) throw invalidField(field, 'must have a host')
  if (parsed.username || parsed.password) throw invalidField(field, 'must not carry a user name or password')
  const host = parsed.hostname.replace(/\.$/, '')
  const literal = host.startsWith('[') ? host.slice(1, -1) : host
  if (ipaddr.isValid(literal)) {
    // process() turns an IPv4-mapped IPv6 address into the IPv4 one; every other non-unicast range is refused.
    const range = ipaddr.process(literal).range()
    if (range !== 'unicast') throw invalidField(field, `must not point at a non-public address (${range})`)
  } else if (LOCAL_NAME.test(host)) throw invalidField(field, 'must not point at a local or internal host name')
  if (host === new URL(publicBaseUrl).hostname.replace(/\.$/, '')) throw invalidField(field, 'must not point at this shortener')
  return parsed.toString()
}

function checkExpiry(expiresAt: string | null | undefined, field = 'body.expiresAt'): Date | null | undefined {
  if (expiresAt === undefined || expiresAt === null) return expiresAt
  const d = new Date(expiresAt)
  if (Number.isNaN(d.getTime())) throw invalidField(field, 'must be an RFC 3339 date-time')
  if (d.getTime() <= Date.now()) throw invalidField(field, 'must be in the future')
  return d
}

const scope = (user: AccessClaims) => (user.role === 'admin' ? null : user.sub)

export async function createLink(
  deps: LinkDeps,
  user: AccessClaims,
  input: { url: string; alias?: string; expiresAt?: string },
): Promise<LinkView> {
  const url = checkTarget(input.url, deps.publicBaseUrl)
  const expiresAt = checkExpiry(input.expiresAt) ?? null
  if (input.alias !== undefined) {
    if (!CODE_RE.test(input.alias)) throw invalidField('body.alias', 'must be 3-32 characters of A-Z, a-z, 0-9, _ or -')
    if (RESERVED.has(input.alias.toLowerCase())) throw conflict('ALIAS_TAKEN', `alias "${input.alias}" is reserved`)
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const code = input.alias ?? newCode()
    const row = await repo
      .insertLink(deps.db, { code, ownerId: user.sub, url, isAlias: input.alias !== undefined, expiresAt })
      .catch((err: unknown) => {
        // foreign_key_violation on owner_id: the token outlived its user, so it no longer authenticates anyone.
        if ((err as { code?: string }).code === '23503') throw unauthorized()
        throw err
      })
    if (row) {
      metrics.linksCreated.inc()
      // A negative cache entry may exist for this code (someone tried it before it existed). Creation does not fail
      // when the tombstone cannot be written: such an entry then lives out CACHE_NEGATIVE_TTL_SECONDS (README).
      await deps.cache.fence(code, 1)
      await deps.cache.invalidate(code)
      return view(row, deps.publicBaseUrl)
    }
    if (input.alias !== undefined) throw conflict('ALIAS_TAKEN', `alias "${input.alias}" is taken`)
  }
  throw new HttpProblem(503, 'CODE_SPACE_EXHAUSTED', 'Service Unavailable', 'could not allocate a unique code; retry')
}

export async function getLink(deps: LinkDeps, user: AccessClaims, id: string): Promise<LinkView> {
  const row = await repo.findLink(deps.db, id, scope(user))
  if (!row) throw notFound('link')
  return view(row, deps.publicBaseUrl)
}

// createdAt stays the text Postgres gave (microseconds): rows created in the same millisecond must not be skipped.
export interface Cursor {
  createdAt: string
  id: string
}

export function encodeCursor(row: repo.PagedLinkRow): string {
  return Buffer.from(JSON.stringify([row.cursor_at, row.id])).toString('base64url')
}

export function decodeCursor(cursor: string): Cursor {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as [string, string]
    if (
      !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/.test(createdAt) ||
      Number.isNaN(new Date(createdAt).getTime()) ||
      !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)
    )
      throw new Error('bad cursor')
    return { createdAt, id }
  } catch {
    throw invalidField('querystring.cursor', 'is not a cursor this API returned')
  }
}

export async function listLinks(
  deps: LinkDeps,
  user: AccessClaims,
  q: { limit: number; cursor?: string },
): Promise<{ items: LinkView[]; nextCursor: string | null }> {
  const after = q.cursor ? decodeCursor(q.cursor) : null
  const rows = await repo.listLinks(deps.db, scope(user), q.limit + 1, after)
  const page = rows.slice(0, q.limit)
  return {
    items: page.map((r) => view(r, deps.publicBaseUrl)),
    nextCursor: rows.length > q.limit ? encodeCursor(page[page.length - 1]!) : null,
  }
}

// The cache is fenced inside the change's transaction: when the tombstone cannot be written the change is rolled back
// and answered 503, since a committed change the cache does not know of could redirect to the old target for an hour.
const notApplied = () => unavailable('the change was not applied; retry shortly')

async function changeAndFence<R extends { code: string; version: number }>(
  deps: LinkDeps,
  change: (client: Queryable) => Promise<R | null>,
): Promise<R> {
  const row = await deps.db.tx(async (client) => {
    const changed = await change(client)
    if (changed && !(await deps.cache.fence(changed.code, changed.version))) throw notApplied()
    return changed
  })
  if (!row) throw notFound('link')
  await deps.cache.invalidate(row.code)
  return row
}

export async function updateLink(
  deps: LinkDeps,
  user: AccessClaims,
  id: string,
  patch: { url?: string; expiresAt?: string | null },
): Promise<LinkView> {
  const url = patch.url === undefined ? undefined : checkTarget(patch.url, deps.publicBaseUrl)
  const expiresAt = checkExpiry(patch.expiresAt)
  const row = await changeAndFence(deps, (client) =>
    repo.updateLink(deps.db, client, id, scope(user), {
      ...(url !== undefined ? { url } : {}),
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    }),
  )
  return view(row, deps.publicBaseUrl)
}

export async function deleteLink(deps: LinkDeps, user: AccessClaims, id: string): Promise<void> {
  await changeAndFence(deps, (client) => repo.softDeleteLink(deps.db, client, id, scope(user)))
}

/** The owner check shared by stats and exports: 404 for a link the user may not see. */
export async function requireLink(db: Db, user: AccessClaims, id: string): Promise<repo.LinkRow> {
  const row = await repo.findLink(db, id, scope(user))
  if (!row) throw notFound('link')
  return row
}
