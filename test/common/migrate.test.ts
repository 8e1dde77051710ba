import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readdirSync } from 'node:fs'
import pg from 'pg'
import { migrate, MIGRATIONS_DIR } from '../../common/migrate.ts'

// Every new API and worker pod runs the migrations in an init container (k8s/base), so a rollout starts several
// runs against one database at once.
void t.test(
  'when several migration runs start at once on an empty database, then one applies every migration and the others wait and apply none',
  async (t) => {
    const admin = process.env.OPSDRILL_TEST_PG_ADMIN_URL
    if (!admin) throw new Error('OPSDRILL_TEST_PG_ADMIN_URL is not set: run the tests with `npm test` (or ops/test)')
    const name = `${process.env.OPSDRILL_TEST_DB_PREFIX ?? 'opsdrill_t_'}mig_${randomBytes(5).toString('hex')}`
    const run = async (sql: string) => {
      const c = new pg.Client({ connectionString: admin })
      await c.connect()
      await c.query(sql)
      await c.end()
    }
    await run(`CREATE DATABASE ${name}`)
    t.teardown(() => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
    const url = new URL(admin)
    url.pathname = `/${name}`

    const runs = await Promise.allSettled(Array.from({ length: 4 }, () => migrate(url.toString())))
    const failed = runs.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))
    t.same(failed, [], 'no run fails')
    const applied = runs.map((r) => (r.status === 'fulfilled' ? r.value.length : -1)).sort((a, b) => b - a)
    const all = readdirSync(MIGRATIONS_DIR).filter((f) => /\.(sql|js|ts)$/.test(f)).length
    t.same(applied, [all, 0, 0, 0], 'one run applies every migration, the others find nothing left to do')
  },
)
