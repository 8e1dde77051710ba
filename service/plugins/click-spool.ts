// The click spool: where click batches go when Redis cannot take them, so that an outage loses no click. Append-only
// segment files of JSON lines (one batch with its job id per line) in a directory this replica owns. Each append is
// written and fdatasync-ed before it counts as spooled: a process crash keeps it (it is in the page cache once
// written) and so does a power loss (it is on disk). Only the flush loop touches the spool, never a request.
// Replay adds each batch under its own deterministic job id, so a replay cut short and run again adds nothing twice
// while the first job is still in Redis, and the worker stores a click id once in any case.
import { mkdir, open, readdir, readFile, stat, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import { metrics, observeGauge } from '../../common/metrics.ts'
import { parseClickBatchJob, type ClickBatchJob } from '../../common/queues.ts'

export interface SpooledBatch {
  jobId: string
  data: ClickBatchJob
}

const SUFFIX = '.spool'

export interface ClickSpool {
  /** Writes the batches durably; otherwise says why nothing was written. */
  append(batches: SpooledBatch[]): Promise<'spooled' | 'spool_full' | 'spool_unwritable'>
  /** Adds every spooled batch through add, oldest first, deleting each segment once all its batches are added. */
  replay(add: (b: SpooledBatch) => Promise<void>): Promise<number>
  readonly bytes: number
  close(): Promise<void>
}

export async function openClickSpool(dir: string, maxBytes: number, log: FastifyBaseLogger): Promise<ClickSpool> {
  await mkdir(dir, { recursive: true })
  const segments = async () => (await readdir(dir)).filter((f) => f.endsWith(SUFFIX)).sort()
  let bytes = 0
  const left = await segments()
  for (const f of left) bytes += (await stat(join(dir, f))).size
  if (bytes > 0)
    log.warn(
      { click: { spool: { dir, bytes, segments: left.length } } },
      'click spool left by an earlier process; replaying it once Redis is ready',
    )
  observeGauge(metrics.clickSpoolBytes, (g) => g.set(bytes))
  let current: FileHandle | undefined
  let seq = 0
  let lastFullWarn = 0

  async function rotate(): Promise<void> {
    await current?.close()
    current = undefined
  }

  return {
    get bytes() {
      return bytes
    },
    async append(batches) {
      const text = batches.map((b) => `${JSON.stringify(b)}\n`).join('')
      const size = Buffer.byteLength(text)
      if (bytes + size > maxBytes) {
        // At most one line per 10 s while full; opsdrill_clicks_dropped_total{reason="spool_full"} has every click.
        if (Date.now() - lastFullWarn > 10_000) {
          lastFullWarn = Date.now()
          log.error(
            { click: { spool: { dir, bytes, maxBytes } } },
            'click spool full (CLICK_SPOOL_MAX_BYTES): clicks are dropped until Redis is back and the spool is replayed',
          )
        }
        return 'spool_full'
      }
      try {
        // Names sort by time of creation, so replay goes oldest first.
        current ??= await open(join(dir, `${String(Date.now()).padStart(15, '0')}-${String(seq++).padStart(6, '0')}${SUFFIX}`), 'a')
        await current.write(text)
        await current.datasync()
      } catch (err) {
        log.error({ err, click: { spool: { dir } } }, 'click spool write failed')
        await rotate().catch(() => undefined)
        return 'spool_unwritable'
      }
      bytes += size
      return 'spooled'
    },
    async replay(add) {
      // New appends go to a new segment while the closed ones are replayed.
      await rotate()
      let replayed = 0
      for (const f of await segments()) {
        const path = join(dir, f)
        const text = await readFile(path, 'utf8')
        for (const line of text.split('\n')) {
          if (!line) continue
          let batch: SpooledBatch
          try {
            const raw = JSON.parse(line) as SpooledBatch
            batch = { jobId: String(raw.jobId), data: parseClickBatchJob(raw.data) }
          } catch (err) {
            // Only a write cut by a crash leaves a partial line: its batch was never reported as spooled.
            log.error({ err, click: { spool: { segment: path } } }, 'unreadable line in the click spool; skipped')
            metrics.clicksDropped.inc({ reason: 'spool_unreadable' })
            continue
          }
          await add(batch)
          replayed += batch.data.clicks.length
          metrics.clicksReplayed.inc(batch.data.clicks.length)
        }
        await unlink(path)
        bytes = Math.max(0, bytes - Buffer.byteLength(text))
      }
      return replayed
    },
    close: rotate,
  }
}
