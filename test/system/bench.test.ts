// `npm run bench` in a short form (1 s rounds, 20,000 clicks for the worker): it still starts every server and the
// trivial one, measures every row without errors, stores every click it queued or redirected, and judges every
// target. The figures themselves are read from a full run (docs/benchmarks.md), never asserted.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')

interface Ingestion {
  expected: number
  stored: number
  perSecond: number
}

interface Results {
  rows: { name: string; rps: number; p99: number; errors: number; non2xx3xx: number }[]
  ingestion: { workerOnly: Ingestion; endToEnd: Ingestion }
  checks: { what: string; value: number; pass: boolean }[]
  costs: { what: string; value: number }[]
  generator: number
}

void t.test(
  'when the benchmark runs in its short form, then every row is measured without errors, no click is lost and every target judged',
  { timeout: 300_000 },
  async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'opsdrill-bench-'))
    const env = {
      ...process.env,
      BENCH_DURATION: '1',
      BENCH_WARMUP: '1',
      BENCH_ROUNDS: '1',
      BENCH_INGEST_CLICKS: '20000',
      BENCH_OUT: out,
    }
    const res = spawnSync(process.execPath, ['ops/bench.ts'], { cwd: ROOT, env, encoding: 'utf8', timeout: 290_000 })
    t.equal(res.status, 0, `${res.stdout}\n${res.stderr}`.slice(-3000))
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results
    t.equal(results.rows.length, 14, `fourteen rows: ${results.rows.map((r) => r.name).join('; ')}`)
    t.match(results.rows[0]!.name, /^generator's limit/, 'the first row is the generator against the trivial server')
    for (const r of results.rows) {
      t.ok(r.rps > 0, `${r.name}: served requests (${r.rps} req/s)`)
      t.equal(r.errors + r.non2xx3xx, 0, `${r.name}: no errors and no bad statuses`)
    }
    const { workerOnly, endToEnd } = results.ingestion
    t.equal(workerOnly.expected, 20000, 'the worker-only run queued the clicks asked for')
    t.equal(workerOnly.stored, workerOnly.expected, 'the worker stored every queued click')
    t.ok(endToEnd.expected > 0, `the end-to-end run redirected (${endToEnd.expected} clicks)`)
    t.equal(endToEnd.stored, endToEnd.expected, 'every redirected click was stored')
    t.same(
      results.checks.map((c) => c.what),
      [
        "generator's limit / ceiling",
        'redirect cache on / ceiling',
        'redirect cache on / cache off',
        'redirect: observability on / off (throughput)',
        'redirect: observability on - off (p99 ms at a fixed rate)',
        'pg route: observability on / off (throughput)',
        'pg route: observability on - off (p99 ms at a fixed rate)',
        'worker-only ingestion (clicks/s stored by one worker)',
        'worker-only ingestion: clicks lost',
        'end-to-end: clicks lost (redirected, not stored)',
      ],
    )
    t.ok(
      [...results.checks, ...results.costs].every((c) => Number.isFinite(c.value)),
      'every ratio is a number',
    )
    t.match(readFileSync(join(out, 'results.md'), 'utf8'), /\| ratio \| value \| target \| met \| generator's limit \/ ceiling \|/)
  },
)
