// `npm run bench` in a short form (1 s rounds): it still starts every server, measures every row without errors
// and judges every target. The figures themselves are read from a full run (docs/benchmarks.md), never asserted.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')

interface Results {
  rows: { name: string; rps: number; p99: number; errors: number; non2xx3xx: number }[]
  checks: { what: string; value: number; pass: boolean }[]
}

void t.test(
  'when the benchmark runs in its short form, then every row is measured without errors and every target judged',
  { timeout: 300_000 },
  async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'opsdrill-bench-'))
    const env = { ...process.env, BENCH_DURATION: '1', BENCH_WARMUP: '1', BENCH_ROUNDS: '1', BENCH_OUT: out }
    const res = spawnSync(process.execPath, ['ops/bench.ts'], { cwd: ROOT, env, encoding: 'utf8', timeout: 290_000 })
    t.equal(res.status, 0, `${res.stdout}\n${res.stderr}`.slice(-3000))
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results
    t.equal(results.rows.length, 10, `ten rows: ${results.rows.map((r) => r.name).join('; ')}`)
    for (const r of results.rows) {
      t.ok(r.rps > 0, `${r.name}: served requests (${r.rps} req/s)`)
      t.equal(r.errors + r.non2xx3xx, 0, `${r.name}: no errors and no bad statuses`)
    }
    t.same(
      results.checks.map((c) => c.what),
      [
        'redirect cache on / ceiling',
        'redirect cache on / cache off',
        'redirect: observability on / off (throughput)',
        'redirect: observability on - off (p99 ms at a fixed rate)',
        'pg route: observability on / off (throughput)',
        'pg route: observability on - off (p99 ms at a fixed rate)',
      ],
    )
    t.ok(
      results.checks.every((c) => Number.isFinite(c.value)),
      'every ratio is a number',
    )
    t.match(readFileSync(join(out, 'results.md'), 'utf8'), /\| ratio \| value \| target \| met \|/)
  },
)
