// The export use-case: a link's clicks, oldest first, as CSV stored on the export row. Keyset pages keep each query
// short (within the statement timeout) however many clicks the link has.
import { stringify } from 'csv-stringify'
import type { Db } from '../../common/db.ts'
import type { ExportJob } from '../../common/queues.ts'
import { countLinkClicks, finishExport, linkClicksPage, setExportProgress, startExport, type Cursor } from './exports.repository.ts'

export const CSV_COLUMNS = ['click_id', 'at', 'referrer', 'ua_family', 'country']

export type ExportResult = { status: 'done'; rowCount: number; bytes: number } | { status: 'skipped'; reason: string }

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
  onProgress: (percent: number) => Promise<void>,
  pageSize = 1000,
): Promise<ExportResult> {
  if (!(await startExport(db, exportId, linkId))) return { status: 'skipped', reason: 'export not found or already done' }
  const total = await countLinkClicks(db, linkId)

  const csv = stringify({ header: true, columns: CSV_COLUMNS })
  const chunks: Buffer[] = []
  csv.on('data', (chunk: Buffer) => chunks.push(chunk))
  const ended = new Promise<void>((resolve, reject) => {
    csv.once('end', resolve)
    csv.once('error', reject)
  })

  let rows = 0
  let reported = 0
  let cursor: Cursor | null = null
  for (;;) {
    const page = await linkClicksPage(db, linkId, cursor, pageSize)
    for (const r of page) {
      csv.write([r.id, r.at, neutralizeFormula(r.referrer ?? ''), neutralizeFormula(r.ua_family), r.country ?? ''])
    }
    rows += page.length
    const last = page.at(-1)
    if (!last || page.length < pageSize) break
    cursor = { atKey: last.at_key, id: last.id }
    // Clicks keep arriving while the export runs, so the count is an estimate: 100 is said only when done.
    const percent = Math.min(99, Math.floor((rows * 100) / Math.max(total, 1)))
    if (percent > reported) {
      reported = percent
      await Promise.all([setExportProgress(db, exportId, percent), onProgress(percent)])
    }
  }
  csv.end()
  await ended
  const content = Buffer.concat(chunks)
  await finishExport(db, exportId, content, rows)
  await onProgress(100)
  return { status: 'done', rowCount: rows, bytes: content.length }
}
