// Small factories that seed rows directly with SQL. Each takes a pg Pool/Client (or anything with `pool`, such as
// common/db's Db) and returns the row it made; every field has a unique or harmless default.
import { randomBytes } from 'node:crypto'
import type pg from 'pg'

type Sql = Pick<pg.Pool, 'query'>
export type SqlTarget = Sql | { pool: Sql }

const sql = (db: SqlTarget): Sql => ('pool' in db ? db.pool : db)
const unique = () => randomBytes(5).toString('hex')

export interface UserRow {
  id: string
  email: string
  role: 'user' | 'admin'
}

export async function createUser(
  db: SqlTarget,
  {
    email = `u${unique()}@example.test`,
    role = 'user',
    passwordHash = 'not-a-real-hash',
  }: { email?: string; role?: 'user' | 'admin'; passwordHash?: string } = {},
): Promise<UserRow> {
  const res = await sql(db).query<UserRow>('INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3) RETURNING id, email, role', [
    email,
    passwordHash,
    role,
  ])
  return res.rows[0]!
}

export interface LinkRow {
  id: string
  code: string
  url: string
  owner_id: string
}

export async function createLink(
  db: SqlTarget,
  ownerId: string,
  {
    code = `c${unique()}`,
    url = 'https://example.com/',
    isAlias = false,
    expiresAt = null,
    deletedAt = null,
  }: { code?: string; url?: string; isAlias?: boolean; expiresAt?: Date | null; deletedAt?: Date | null } = {},
): Promise<LinkRow> {
  const res = await sql(db).query<LinkRow>(
    `INSERT INTO links (code, owner_id, url, is_alias, expires_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING id, code, url, owner_id`,
    [code, ownerId, url, isAlias, expiresAt, deletedAt],
  )
  return res.rows[0]!
}
