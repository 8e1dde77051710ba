// The hot path: resolve a code (cache first) and record the click without waiting on the queue.
import { randomUUID } from 'node:crypto'
import Bowser from 'bowser'
import { isbot } from 'isbot'
import { LRUCache } from 'lru-cache'
import { metrics } from '../../common/metrics.ts'
import type { ClickJob } from '../../common/queues.ts'
import { gone, notFound } from '../problems.ts'
import type { LinkCache } from '../plugins/link-cache.ts'
import type { LinkTarget } from '../repositories/links.ts'
import type { ClickBuffer } from '../plugins/queues.ts'

const CODE_RE = /^[A-Za-z0-9_-]{3,32}$/
// User-agent strings repeat heavily; parse each distinct one once (isbot's pattern list is one large regex).
const userAgents = new LRUCache<string, { family: string; bot: boolean }>({ max: 5000 })

function parseUserAgent(ua: string): { family: string; bot: boolean } {
  let parsed = userAgents.get(ua)
  if (parsed === undefined) {
    parsed = { family: (Bowser.getParser(ua).getBrowserName() || 'other').slice(0, 64), bot: isbot(ua) }
    userAgents.set(ua, parsed)
  }
  return parsed
}

export function uaFamily(ua: string | undefined): string {
  return ua ? parseUserAgent(ua).family : 'unknown'
}

export interface ClickContext {
  method: string
  /** Purpose, Sec-Purpose, X-Purpose and X-Moz: how browsers mark a prefetch or preview. */
  purpose: string[]
  referrer: string | undefined
  userAgent: string | undefined
  /** Only what a trusted proxy set (routes/redirect.ts); never a header straight from the client. */
  country: string | undefined
}

/** Why a redirect records no click: nobody followed the link (a HEAD, a prefetch, a crawler). */
export function notAClick(ctx: ClickContext): 'head' | 'prefetch' | 'bot' | null {
  if (ctx.method === 'HEAD') return 'head'
  if (ctx.purpose.some((p) => /prefetch|prerender|preview/i.test(p))) return 'prefetch'
  if (ctx.userAgent && parseUserAgent(ctx.userAgent).bot) return 'bot'
  return null
}

/**
 * The target URL of a code, recording the click. An L1 cache hit answers synchronously (a string): the hot path then
 * takes no promise and no microtask hop; anything else answers with a promise.
 */
export function redirect(deps: { cache: LinkCache; clicks: ClickBuffer }, code: string, ctx: ClickContext): string | Promise<string> {
  if (!CODE_RE.test(code)) {
    metrics.redirects.inc({ outcome: 'not_found' })
    throw notFound('link')
  }
  const hit = deps.cache.cached(code)
  if (hit !== undefined) return follow(deps, hit, ctx)
  return deps.cache.resolve(code).then((target) => follow(deps, target, ctx))
}

function follow(deps: { clicks: ClickBuffer }, target: LinkTarget | null, ctx: ClickContext): string {
  if (!target) {
    metrics.redirects.inc({ outcome: 'not_found' })
    throw notFound('link')
  }
  if (target.deleted || (target.expiresAt !== null && target.expiresAt <= Date.now())) {
    metrics.redirects.inc({ outcome: 'gone' })
    throw gone(target.deleted ? 'this link was deleted' : 'this link has expired')
  }
  metrics.redirects.inc({ outcome: 'found' })
  const skip = notAClick(ctx)
  if (skip) {
    metrics.clicksUncounted.inc({ reason: skip })
    return target.url
  }
  const country = ctx.country?.toUpperCase()
  const click: ClickJob = {
    clickId: randomUUID(),
    linkId: target.id,
    at: new Date().toISOString(),
    referrer: ctx.referrer ? ctx.referrer.slice(0, 2048) : null,
    uaFamily: uaFamily(ctx.userAgent),
    country: country && /^[A-Z]{2}$/.test(country) ? country : null,
  }
  deps.clicks.push(click)
  return target.url
}
