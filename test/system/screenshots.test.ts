// The README's pictures come from a real run: the script must still produce them from the current code.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')

void t.test(
  'when the screenshot script runs, then it photographs the Swagger UI, bull-board and the k6 report',
  { timeout: 240_000 },
  async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'opsdrill-shots-'))
    const res = spawnSync(process.execPath, ['ops/screenshots.ts', '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 230_000 })
    t.equal(res.status, 0, `${res.stdout}\n${res.stderr}`.slice(-3000))
    for (const name of ['swagger-ui.png', 'bull-board.png', 'k6-report.png']) {
      const file = join(out, name)
      const head = readFileSync(file).subarray(0, 8)
      t.same([...head], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${name} is a PNG`)
      // An empty white page compresses to a few KiB; a rendered UI is far larger.
      t.ok(statSync(file).size > 20_000, `${name} shows a rendered page (${statSync(file).size} bytes)`)
    }
  },
)
