import t from 'tap'
import { testDatabase } from '../../helpers/env.ts'
import { createLink, createUser } from '../../helpers/factories.ts'
import type pg from 'pg'
import { count, pgPool, producer, startTestWorker, waitFor, type Producer } from '../../helpers/worker.ts'
import { CHUNK_BYTES } from '../../../worker/exports/export-clicks.ts'

void t.test('when an export runs, then the CSV holds every click of the link in time order and progress reaches 100', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const link = await createLink(pool, user.id)
  const other = await createLink(pool, user.id)
  // 2,500 clicks in the last hour (older ones would meet the retention job): three keyset pages of 1,000. Times run
  // backwards against insertion order, so the order must come from the query.
  await pool.query(
    `INSERT INTO clicks (id, link_id, at, referrer, ua_family, country)
     SELECT gen_random_uuid(), $1, date_trunc('second', now()) - g * interval '1 second',
            CASE WHEN g % 2 = 0 THEN 'https://ref.example/?a=1,b="2"' END, 'Chrome', CASE WHEN g % 3 = 0 THEN 'FR' END
     FROM generate_series(1, 2500) AS g`,
    [link.id],
  )
  await pool.query(
    `INSERT INTO clicks (id, link_id, at, referrer, ua_family, country) VALUES
       (gen_random_uuid(), $1, now() - interval '2 hours', '=HYPERLINK("http://evil.example")', '@SUM(A1)', NULL),
       (gen_random_uuid(), $2, now(), NULL, 'Safari', NULL)`,
    [link.id, other.id],
  )
  const { rows } = await pool.query<{ id: string }>('INSERT INTO exports (link_id, owner_id) VALUES ($1, $2) RETURNING id', [
    link.id,
    user.id,
  ])
  const exportId = rows[0]!.id
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)

  await p.exports.add('export', { exportId, linkId: link.id }, { jobId: exportId })
  const job = await waitFor(
    async () => {
      const j = await p.exports.getJob(exportId)
      return j?.finishedOn ? j : undefined
    },
    { what: 'the export job' },
  )

  t.equal(await job.getState(), 'completed')
  t.equal(job.progress, 100, 'job progress says 100')
  t.match(job.returnvalue, { status: 'done', rowCount: 2501 })
  const row = (await pool.query('SELECT status, progress, row_count, bytes, finished_at FROM exports WHERE id = $1', [exportId])).rows[0]
  t.match(row, { status: 'done', progress: 100, row_count: 2501 })
  t.ok(row.finished_at instanceof Date, 'finished_at is set')

  const csv = await storedCsv(pool, exportId)
  t.equal(Buffer.byteLength(csv), Number(row.bytes), 'bytes says the size of the CSV')
  t.equal(csv.split('\n')[0], 'click_id,at,referrer,ua_family,country', 'header first')
  const records = parseCsv(csv)
  t.equal(records.length, 2501, "only this link's clicks")
  t.same(
    records[0],
    {
      click_id: records[0]!.click_id,
      at: records[0]!.at,
      referrer: `'=HYPERLINK("http://evil.example")`,
      ua_family: `'@SUM(A1)`,
      country: '',
    },
    'a cell a spreadsheet would run as a formula is neutralised',
  )
  const expected = await pool.query<{ id: string; at: string }>(
    `SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at FROM clicks WHERE link_id = $1 ORDER BY clicks.at`,
    [link.id],
  )
  t.same(
    records.map((r) => [r.click_id, r.at]),
    expected.rows.map((r) => [r.id, r.at]),
    'every click once, oldest first, times in UTC ISO 8601',
  )
  t.equal(new Set(records.map((r) => r.click_id)).size, 2501, 'no click twice across pages')
  t.ok(
    records.some((r) => r.referrer === 'https://ref.example/?a=1,b="2"'),
    'commas and quotes survive the round trip',
  )
})

void t.test('when the export row was deleted before its job ran, then the job completes without doing anything', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const link = await createLink(pool, user.id)
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)
  const exportId = '00000000-0000-4000-8000-000000000001'

  await p.exports.add('export', { exportId, linkId: link.id }, { jobId: exportId })
  const job = await waitFor(async () => {
    const j = await p.exports.getJob(exportId)
    return j?.finishedOn ? j : undefined
  })
  t.equal(await job.getState(), 'completed')
  t.match(job.returnvalue, { status: 'skipped' })
})

/** The stored CSV: the chunks in order. */
async function storedCsv(pool: pg.Pool, exportId: string): Promise<string> {
  const { rows } = await pool.query<{ data: Buffer }>('SELECT data FROM export_chunks WHERE export_id = $1 ORDER BY seq', [exportId])
  return Buffer.concat(rows.map((r) => r.data)).toString('utf8')
}

async function newExport(pool: pg.Pool, linkId: string, ownerId: string): Promise<string> {
  const { rows } = await pool.query<{ id: string }>('INSERT INTO exports (link_id, owner_id) VALUES ($1, $2) RETURNING id', [
    linkId,
    ownerId,
  ])
  return rows[0]!.id
}

async function runExport(p: Producer, exportId: string, linkId: string) {
  await p.exports.add('export', { exportId, linkId }, { jobId: exportId })
  return waitFor(
    async () => {
      const j = await p.exports.getJob(exportId)
      return j?.finishedOn ? j : undefined
    },
    { what: 'the export job', timeoutMs: 60_000 },
  )
}

/** RFC 4180 records as objects keyed by the header; small enough to trust, independent of the writer. */
function parseCsv(text: string): Record<string, string>[] {
  const rows: string[][] = [[]]
  let cell = ''
  let quoted = false
  const endCell = () => {
    rows.at(-1)!.push(cell)
    cell = ''
  }
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted && c === '"' && text[i + 1] === '"') {
      cell += '"'
      i++
    } else if (c === '"') quoted = !quoted
    else if (!quoted && c === ',') endCell()
    else if (!quoted && c === '\n') {
      endCell()
      rows.push([])
    } else cell += c
  }
  if (rows.at(-1)!.length === 0) rows.pop()
  const [header, ...body] = rows
  return body.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i] ?? ''])))
}

void t.test('when a large export runs, then it is written in bounded chunks as the rows are read, never whole', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const link = await createLink(pool, user.id)
  // About 6 MB of CSV: 20,000 clicks with 250-byte referrers.
  await pool.query(
    `INSERT INTO clicks (id, link_id, at, referrer, ua_family)
     SELECT gen_random_uuid(), $1, now() - g * interval '1 millisecond', 'https://ref.example/' || repeat('x', 230), 'Chrome'
     FROM generate_series(1, 20000) AS g`,
    [link.id],
  )
  const exportId = await newExport(pool, link.id, user.id)
  const { config } = await startTestWorker(t, url)
  const p = producer(t, config)

  const job = await runExport(p, exportId, link.id)

  t.equal(await job.getState(), 'completed', job.failedReason)
  const { rows } = await pool.query<{ seq: number; size: number }>(
    'SELECT seq, length(data) AS size FROM export_chunks WHERE export_id = $1 ORDER BY seq',
    [exportId],
  )
  const total = rows.reduce((a, r) => a + r.size, 0)
  t.ok(total > 5_000_000, `${total} bytes of CSV`)
  t.equal(job.returnvalue.chunks, rows.length)
  t.same(
    rows.map((r) => r.seq),
    rows.map((_, i) => i),
    'numbered from 0 without gaps',
  )
  // A chunk is cut at the first page boundary past CHUNK_BYTES: one 1,000-row page (~260 KB here) at most above it.
  const largest = Math.max(...rows.map((r) => r.size))
  t.ok(largest < CHUNK_BYTES + 300_000, `the largest chunk is ${largest} bytes`)
  t.ok(rows.length >= Math.floor(total / (CHUNK_BYTES + 300_000)), `${rows.length} chunks`)
  t.equal(parseCsv(await storedCsv(pool, exportId)).length, 20000)
})

void t.test('when an export would exceed EXPORT_MAX_ROWS, then it fails at once with a message naming the limit', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const link = await createLink(pool, user.id)
  await pool.query(
    `INSERT INTO clicks (id, link_id, at, ua_family) SELECT gen_random_uuid(), $1, now(), 'Chrome' FROM generate_series(1, 150)`,
    [link.id],
  )
  const exportId = await newExport(pool, link.id, user.id)
  const { config } = await startTestWorker(t, url, { EXPORT_MAX_ROWS: '100' })
  const p = producer(t, config)

  const job = await runExport(p, exportId, link.id)

  t.equal(await job.getState(), 'completed', 'no retry: it could never succeed')
  t.equal(job.attemptsMade, 1)
  const row = (await pool.query('SELECT status, error FROM exports WHERE id = $1', [exportId])).rows[0]
  t.equal(row.status, 'failed')
  t.match(row.error, /^export too large: the link has 150 clicks, more than EXPORT_MAX_ROWS \(100\)/)
  t.equal(await count(pool, 'SELECT count(*) AS n FROM export_chunks WHERE export_id = $1', [exportId]), 0, 'nothing stored')
  t.equal(await p.deadLetters.getWaitingCount(), 0, 'and no dead letter')
})

void t.test('when an export would exceed EXPORT_MAX_BYTES, then it fails with a message naming the limit and keeps nothing', async (t) => {
  const url = await testDatabase(t)
  const pool = pgPool(t, url)
  const user = await createUser(pool)
  const link = await createLink(pool, user.id)
  await pool.query(
    `INSERT INTO clicks (id, link_id, at, referrer, ua_family)
     SELECT gen_random_uuid(), $1, now() - g * interval '1 millisecond', repeat('r', 500), 'Chrome' FROM generate_series(1, 3000) AS g`,
    [link.id],
  )
  const exportId = await newExport(pool, link.id, user.id)
  const { config } = await startTestWorker(t, url, { EXPORT_MAX_BYTES: '600000' })
  const p = producer(t, config)

  await runExport(p, exportId, link.id)

  const row = (await pool.query('SELECT status, error FROM exports WHERE id = $1', [exportId])).rows[0]
  t.equal(row.status, 'failed')
  t.match(row.error, /^export too large: more than EXPORT_MAX_BYTES \(600000\) bytes/)
  t.equal(
    await count(pool, 'SELECT count(*) AS n FROM export_chunks WHERE export_id = $1', [exportId]),
    0,
    'the chunks written are removed',
  )
})
