import type { Db } from '../../common/db.ts'

export interface ExportRow {
  id: string
  link_id: string
  owner_id: string
  status: 'queued' | 'running' | 'done' | 'failed'
  progress: number
  row_count: number | null
  /** Size of the CSV once done; bigint arrives as text. */
  bytes: string | null
  error: string | null
  created_at: Date
  finished_at: Date | null
}

const COLUMNS = 'id, link_id, owner_id, status, progress, row_count, bytes, error, created_at, finished_at'

export async function insertExport(db: Db, linkId: string, ownerId: string): Promise<ExportRow> {
  const { rows } = await db.query<ExportRow>(
    'export_insert',
    `INSERT INTO exports (link_id, owner_id) VALUES ($1, $2) RETURNING ${COLUMNS}`,
    [linkId, ownerId],
  )
  return rows[0]!
}

export async function markExportFailed(db: Db, id: string, error: string): Promise<void> {
  await db.query('export_fail', "UPDATE exports SET status = 'failed', error = $2, updated_at = now(), finished_at = now() WHERE id = $1", [
    id,
    error,
  ])
}

export async function findExport(db: Db, id: string, ownerId: string | null): Promise<ExportRow | null> {
  const { rows } = await db.query<ExportRow>(
    'export_by_id',
    `SELECT ${COLUMNS} FROM exports WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)`,
    [id, ownerId],
  )
  return rows[0] ?? null
}

/** One chunk of a finished export's CSV, by position; null past the last one. */
export async function exportChunk(db: Db, id: string, seq: number): Promise<Buffer | null> {
  const { rows } = await db.query<{ data: Buffer }>(
    'export_chunk_read',
    'SELECT data FROM export_chunks WHERE export_id = $1 AND seq = $2',
    [id, seq],
  )
  return rows[0]?.data ?? null
}
