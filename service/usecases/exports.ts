// CSV exports: the API records the request and enqueues it; the worker writes the file and reports progress.
import type { Queue } from 'bullmq'
import { Readable } from 'node:stream'
import type { Db } from '../../common/db.ts'
import { metrics } from '../../common/metrics.ts'
import { QUEUES, parseExportJob, type ExportJob } from '../../common/queues.ts'
import { HttpProblem, notFound, unavailable } from '../problems.ts'
import { exportChunk, findExport, insertExport, markExportFailed, type ExportRow } from '../repositories/exports.ts'
import type { AccessClaims } from '../plugins/auth.ts'

export interface ExportView {
  id: string
  linkId: string
  status: ExportRow['status']
  progress: number
  rowCount: number | null
  error: string | null
  createdAt: string
  finishedAt: string | null
  downloadUrl: string | null
}

export function view(row: ExportRow): ExportView {
  return {
    id: row.id,
    linkId: row.link_id,
    status: row.status,
    progress: row.progress,
    rowCount: row.row_count,
    error: row.error,
    createdAt: row.created_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    downloadUrl: row.status === 'done' ? `/api/v1/exports/${row.id}/download` : null,
  }
}

const scope = (user: AccessClaims) => (user.role === 'admin' ? null : user.sub)

export async function requestExport(
  deps: { db: Db; queue: Queue<ExportJob>; queueReady: () => boolean },
  user: AccessClaims,
  linkId: string,
): Promise<ExportView> {
  const row = await insertExport(deps.db, linkId, user.sub)
  try {
    if (!deps.queueReady()) throw new Error('the redis producer connection is not ready')
    const data = parseExportJob({ exportId: row.id, linkId })
    await deps.queue.add('export', data, { jobId: row.id })
    metrics.jobsAdded.inc({ queue: QUEUES.exports })
  } catch (err) {
    // Not acknowledged: record it as failed rather than leave a "queued" export nobody will run.
    await markExportFailed(deps.db, row.id, 'could not be queued')
    throw Object.assign(unavailable('the export queue is unavailable; retry shortly'), { cause: err })
  }
  return view(row)
}

export async function getExport(db: Db, user: AccessClaims, id: string): Promise<ExportView> {
  const row = await findExport(db, id, scope(user))
  if (!row) throw notFound('export')
  return view(row)
}

/** A finished export's CSV as a stream that reads one stored chunk at a time, and its size. */
export async function downloadExport(db: Db, user: AccessClaims, id: string): Promise<{ bytes: number; csv: Readable }> {
  const row = await findExport(db, id, scope(user))
  if (!row) throw notFound('export')
  if (row.status !== 'done')
    throw new HttpProblem(409, 'EXPORT_NOT_READY', 'Conflict', `export is ${row.status}; poll until status is done`)
  async function* chunks() {
    for (let seq = 0; ; seq++) {
      const chunk = await exportChunk(db, id, seq)
      if (!chunk) return
      yield chunk
    }
  }
  return { bytes: Number(row.bytes ?? 0), csv: Readable.from(chunks(), { objectMode: false }) }
}
