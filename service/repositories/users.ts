import type { Db } from '../../common/db.ts'

export interface UserRow {
  id: string
  email: string
  password_hash: string
  role: 'user' | 'admin'
  created_at: Date
}

/**
 * Inserts a user unless the email is taken (case-insensitively). A taken email still writes (a no-op update of its
 * row), so both outcomes commit a write and take as long: the commit's WAL flush alone was 100 ms here, enough to tell
 * a taken email from a new one by timing.
 */
export async function insertUser(db: Db, u: { email: string; passwordHash: string; role: 'user' | 'admin' }): Promise<void> {
  await db.query(
    'user_insert',
    `INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)
     ON CONFLICT ((lower(email))) DO UPDATE SET email = users.email`,
    [u.email, u.passwordHash, u.role],
  )
}

export async function findUserByEmail(db: Db, email: string): Promise<UserRow | null> {
  const { rows } = await db.query<UserRow>(
    'user_by_email',
    'SELECT id, email, password_hash, role, created_at FROM users WHERE lower(email) = lower($1)',
    [email],
  )
  return rows[0] ?? null
}

/** The current role of a user; null when the user no longer exists. */
export async function findUserRole(db: Db, id: string): Promise<UserRow['role'] | null> {
  const { rows } = await db.query<Pick<UserRow, 'role'>>('user_role', 'SELECT role FROM users WHERE id = $1', [id])
  return rows[0]?.role ?? null
}
