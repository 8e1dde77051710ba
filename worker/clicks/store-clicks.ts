// The click-ingestion use-case: store a batch of clicks exactly once each and say, per click, what happened.
import type { Logger } from 'pino'
import { isDbUnavailable, type Db } from '../../common/db.ts'
import { metrics } from '../../common/metrics.ts'
import type { ClickJob } from '../../common/queues.ts'
import { observe } from '../lib/observe.ts'
import { insertClicks } from './clicks.repository.ts'

/** stored: written now; duplicate: written by an earlier delivery; link_deleted: its link is gone, nothing to count. */
export type ClickOutcome = 'stored' | 'duplicate' | 'link_deleted'

const FOREIGN_KEY_VIOLATION = '23503'
const isFkViolation = (err: unknown) => (err as { code?: string })?.code === FOREIGN_KEY_VIOLATION

/**
 * Writes the batch in one transaction. When the batch fails for a reason other than Postgres being unreachable,
 * its clicks are written one by one, so one bad click (say, of a link hard-deleted since) cannot hold back the rest.
 * Returns one outcome per click, in input order; an Error for a click that must be retried.
 */
export async function storeClicks(db: Db, log: Logger, clicks: ClickJob[]): Promise<(ClickOutcome | Error)[]> {
  observe(metrics.workerBatchSize, {}, clicks.length)
  try {
    return classify(clicks, await insertClicks(db, clicks))
  } catch (err) {
    if (isDbUnavailable(err)) throw err
    if (clicks.length > 1) log.warn({ err, batch: { size: clicks.length } }, 'click batch failed; writing its clicks one by one')
  }
  const outcomes: (ClickOutcome | Error)[] = []
  for (const click of clicks) {
    try {
      outcomes.push(...classify([click], await insertClicks(db, [click])))
    } catch (err) {
      if (isFkViolation(err)) {
        metrics.clicksDiscarded.inc({ reason: 'link_deleted' })
        log.warn({ click: { id: click.clickId }, link: { id: click.linkId } }, 'click dropped: its link no longer exists')
        outcomes.push('link_deleted')
      } else outcomes.push(err instanceof Error ? err : new Error(String(err)))
    }
  }
  return outcomes
}

function classify(clicks: ClickJob[], inserted: { id: string }[]): ClickOutcome[] {
  const fresh = new Set(inserted.map((r) => r.id))
  // The same click twice in one batch: the first is stored, the second is the duplicate.
  const outcomes = clicks.map((c): ClickOutcome => (fresh.delete(c.clickId) ? 'stored' : 'duplicate'))
  const stored = outcomes.filter((o) => o === 'stored').length
  metrics.clicksIngested.inc(stored)
  metrics.clicksDuplicate.inc(clicks.length - stored)
  return outcomes
}
