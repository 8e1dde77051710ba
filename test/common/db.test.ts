import t from 'tap'
import { createDb } from '../../common/db.ts'
import { testDatabase } from '../helpers/env.ts'
import { sql } from '../helpers/service.ts'

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined }

void t.test(
  'when the connection of a transaction is lost between its queries, then the transaction fails, the process lives on, and the pool drops the client',
  async (t) => {
    const url = await testDatabase(t)
    const db = createDb(
      {
        url,
        max: 2,
        connectTimeoutMs: 2000,
        statementTimeoutMs: 2000,
        queryTimeoutMs: 2500,
        idleTimeoutMs: 10_000,
        applicationName: 'opsdrill-db-test',
      },
      quiet,
    )
    t.teardown(() => db.close())
    const admin = await sql(t, url)
    const uncaught: Error[] = []
    const onUncaught = (err: Error) => uncaught.push(err)
    process.on('uncaughtException', onUncaught)
    t.teardown(() => process.off('uncaughtException', onUncaught))

    const err = await db
      .tx(async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
        // The server ends this session while the client is checked out with no query running (a restart, a cut).
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid])
        await new Promise((resolve) => setTimeout(resolve, 200))
        await client.query('SELECT 1')
      })
      .then(
        () => undefined,
        (e: Error) => e,
      )
    t.ok(err, `the transaction failed: ${err?.message}`)
    t.same(uncaught, [], 'no uncaught error (the lost connection did not end the process)')
    t.equal(db.pool.totalCount, 0, 'the broken client was dropped, not put back in the pool')
    t.same((await db.pool.query('SELECT 1 AS ok')).rows, [{ ok: 1 }], 'the pool serves again')
  },
)
