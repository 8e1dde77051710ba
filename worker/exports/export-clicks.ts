// The export use-case: a link's clicks, oldest first, as CSV written to export_chunks while they are read. Keyset
// pages keep each query short; a chunk is written once CHUNK_BYTES have accumulated, so the worker holds at most one
// page and one chunk of an export, whatever its size.
import { stringify } from 'csv-stringify/sync'
import type { Db } from '../../common/db.ts'
import type { ExportJob } from '../../common/queues.ts'
import {
  clearExportChunks,
  countLinkClicks,
  failExport,
  finishExport,
  linkClicksPage,
  setExportProgress,
  startExport,
  writeExportChunk,
  type Cursor,
} from './exports.repository.ts'

export const CSV_COLUMNS = ['click_id', 'at', 'referrer', 'ua_family', 'country']

/** Size at which the buffered CSV is written as one chunk (a chunk ends at a page boundary, so it may exceed this by one page). */
export const CHUNK_BYTES = 256 * 1024

export interface ExportLimits {
  maxRows: number
  maxBytes: number
}

export type ExportResult =
  | { status: 'done'; rowCount: number; bytes: number; chunks: number }
  | { status: 'skipped'; reason: string }
  | { status: 'too_large'; reason: string }

/**
 * Referrer and user agent come from request headers anyone can set. A cell starting with = + - @ or a control
 * character is a formula to a spreadsheet, so it is prefixed with ' (https://owasp.org/www-community/attacks/CSV_Injection).
 */
export function neutralizeFormula(cell: string): string {
  return /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell
}

export async function exportClicks(
  db: Db,
  { exportId, linkId }: ExportJob,
  limits: ExportLimits,
  onProgress: (percent: number) => Promise<void>,
  pageSize = 1000,
): Promise<ExportResult> {
  if (!(await startExport(db, exportId, linkId))) return { status: 'skipped', reason: 'export not found or already done' }
  // A rerun (a retry, a replay, a job redelivered after a crash) rewrites the export from the start.
  await clearExportChunks(db, exportId)
  const total = await countLinkClicks(db, linkId)
  if (total > limits.maxRows) return tooLarge(db, exportId, `the link has ${total} clicks, more than EXPORT_MAX_ROWS (${limits.maxRows})`)

  let pending: Buffer[] = [Buffer.from(stringify([CSV_COLUMNS]))]
  let pendingBytes = pending[0]!.length
  let bytes = 0
  let chunks = 0
  const flush = async () => {
    await writeExportChunk(db, exportId, chunks++, Buffer.concat(pending, pendingBytes))
    bytes += pendingBytes
    pending = []
    pendingBytes = 0
  }

  let rows = 0
  let reported = 0
  let cursor: Cursor | null = null
  for (;;) {
    const page = await linkClicksPage(db, linkId, cursor, pageSize)
    if (page.length > 0) {
      const text = Buffer.from(
        stringify(page.map((r) => [r.id, r.at, neutralizeFormula(r.referrer ?? ''), neutralizeFormula(r.ua_family), r.country ?? ''])),
      )
      pending.push(text)
      pendingBytes += text.length
      rows += page.length
    }
    // Clicks keep arriving while the export runs: the cap is checked on what is written, not only on the first count.
    if (rows > limits.maxRows) return tooLarge(db, exportId, `more than EXPORT_MAX_ROWS (${limits.maxRows}) rows`)
    if (bytes + pendingBytes > limits.maxBytes) return tooLarge(db, exportId, `more than EXPORT_MAX_BYTES (${limits.maxBytes}) bytes`)
    if (pendingBytes >= CHUNK_BYTES) await flush()
    const last = page.at(-1)
    if (!last || page.length < pageSize) break
    cursor = { atKey: last.at_key, id: last.id }
    // The count is an estimate (clicks keep arriving): 100 is said only when done.
    const percent = Math.min(99, Math.floor((rows * 100) / Math.max(total, 1)))
    if (percent > reported) {
      reported = percent
      await Promise.all([setExportProgress(db, exportId, percent), onProgress(percent)])
    }
  }
  if (pendingBytes > 0) await flush()
  await finishExport(db, exportId, rows, bytes)
  await onProgress(100)
  return { status: 'done', rowCount: rows, bytes, chunks }
}

/** A too-large export can never succeed: the owner sees why on the row, and no retry or dead letter follows. */
async function tooLarge(db: Db, exportId: string, why: string): Promise<ExportResult> {
  const reason = `export too large: ${why}; export a link with fewer clicks or raise the limit`
  await clearExportChunks(db, exportId)
  await failExport(db, exportId, reason)
  return { status: 'too_large', reason }
}
