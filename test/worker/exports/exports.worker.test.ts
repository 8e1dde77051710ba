import t from 'tap'
import { testDatabase } from '../../helpers/env.ts'
import { createLink, createUser } from '../../helpers/factories.ts'
import { pgPool, producer, startTestWorker, waitFor } from '../../helpers/worker.ts'

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
  const row = (await pool.query('SELECT status, progress, row_count, content, finished_at FROM exports WHERE id = $1', [exportId])).rows[0]
  t.match(row, { status: 'done', progress: 100, row_count: 2501 })
  t.ok(row.finished_at instanceof Date, 'finished_at is set')

  const csv = (row.content as Buffer).toString('utf8')
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
