// The Postgres pool both processes use: bounded waits everywhere, an error listener, and query timing by operation.
import pg from 'pg'
import type { Log } from './logger.ts'
import { metrics } from './metrics.ts'

export interface DbOptions {
  url: string
  max: number
  connectTimeoutMs: number
  statementTimeoutMs: number
  queryTimeoutMs: number
  idleTimeoutMs: number
  applicationName: string
}

/** The pool settings both processes read from their environment (BaseEnv in config.ts). */
export interface DbEnv {
  DATABASE_URL: string
  PG_POOL_MAX: number
  PG_CONNECT_TIMEOUT_MS: number
  PG_STATEMENT_TIMEOUT_MS: number
  PG_QUERY_TIMEOUT_MS: number
  PG_IDLE_TIMEOUT_MS: number
}

export function dbOptions(env: DbEnv, applicationName: string): DbOptions {
  return {
    url: env.DATABASE_URL,
    max: env.PG_POOL_MAX,
    connectTimeoutMs: env.PG_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: env.PG_STATEMENT_TIMEOUT_MS,
    queryTimeoutMs: env.PG_QUERY_TIMEOUT_MS,
    idleTimeoutMs: env.PG_IDLE_TIMEOUT_MS,
    applicationName,
  }
}

/** The worker's pool for export and maintenance jobs: PG_CONNECT_TIMEOUT_MS and idle as usual, batch-sized limits. */
export function batchDbOptions(
  env: DbEnv & { BATCH_PG_POOL_MAX: number; BATCH_PG_STATEMENT_TIMEOUT_MS: number; BATCH_PG_QUERY_TIMEOUT_MS: number },
  applicationName: string,
): DbOptions {
  return {
    ...dbOptions(env, applicationName),
    max: env.BATCH_PG_POOL_MAX,
    statementTimeoutMs: env.BATCH_PG_STATEMENT_TIMEOUT_MS,
    queryTimeoutMs: env.BATCH_PG_QUERY_TIMEOUT_MS,
  }
}

export type Db = ReturnType<typeof createDb>
export type Queryable = Pick<pg.PoolClient, 'query'>

export function createDb(opts: DbOptions, log: Log) {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    statement_timeout: opts.statementTimeoutMs,
    query_timeout: opts.queryTimeoutMs,
    idleTimeoutMillis: opts.idleTimeoutMs,
    application_name: opts.applicationName,
  })
  // An idle client that loses its server emits here; without a listener the process would crash.
  pool.on('error', (err) => {
    metrics.pgErrors.inc({ kind: 'idle_client' })
    log.warn({ err }, 'postgres idle client error')
  })

  async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    operation: string,
    text: string,
    values: unknown[] = [],
    client: Queryable = pool,
  ): Promise<pg.QueryResult<R>> {
    const end = metrics.pgQueryDuration.startTimer({ operation })
    try {
      const res = await client.query<R>(text, values)
      end({ outcome: 'ok' })
      return res
    } catch (err) {
      end({ outcome: 'error' })
      throw err
    }
  }

  /**
   * Runs fn in a transaction; rolls back on any error. A client whose connection was lost or timed out is destroyed,
   * not put back in the pool.
   */
  async function tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect()
    // The pool listens for errors on idle clients only: a connection lost while checked out (Postgres restarting, a
    // network cut ending) emits 'error' here, and unheard it would end the process (the postgres-blackhole drill's
    // worker). The transaction's next query fails anyway.
    let broken: Error | undefined
    const onError = (err: Error) => {
      broken = err
      metrics.pgErrors.inc({ kind: 'checked_out_client' })
    }
    client.on('error', onError)
    try {
      await client.query('BEGIN')
      const out = await fn(client)
      await client.query('COMMIT')
      return out
    } catch (err) {
      if (isDbUnavailable(err)) broken ??= err as Error
      if (!broken) await client.query('ROLLBACK').catch(() => undefined)
      throw err
    } finally {
      client.off('error', onError)
      client.release(broken)
    }
  }

  async function ping(): Promise<void> {
    await pool.query('SELECT 1')
  }

  return { pool, query, tx, ping, close: () => pool.end() }
}

/** True when the error means Postgres could not be reached or answered too late. */
export function isDbUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string }
  if (
    e?.code &&
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', '57P01', '57P03', '08006', '08001', '08003', '57014'].includes(e.code)
  )
    return true
  return /timeout|Connection terminated|connect ECONNREFUSED|connection error/i.test(e?.message ?? '')
}
