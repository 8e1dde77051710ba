// Registration and login. Passwords: argon2id with OWASP's first recommended setting (m=19 MiB, t=2, p=1).
import { hash, verify, type Algorithm } from '@node-rs/argon2'
import type { Db } from '../../common/db.ts'
import { HttpProblem } from '../problems.ts'
import { findUserByEmail, insertUser, type UserRow } from '../repositories/users.ts'

// https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id
const ARGON2ID = 2 satisfies Algorithm
export const ARGON2_OPTIONS = { algorithm: ARGON2ID as Algorithm, memoryCost: 19456, timeCost: 2, parallelism: 1 }
// Verified against when the email is unknown, so both paths cost one argon2 verification (no user enumeration by timing).
const DUMMY_HASH = await hash('opsdrill-dummy-password', ARGON2_OPTIONS)

// Registration always makes a 'user': an unverified email proves nothing, so only an operator grants admin
// (npm run ops -- user promote EMAIL).
// It does not say whether the email was taken: both paths hash the password and commit one write (repositories/users.ts),
// so neither the answer nor its time tells an account exists.
export async function register(db: Db, input: { email: string; password: string }): Promise<void> {
  const passwordHash = await hash(input.password, ARGON2_OPTIONS)
  await insertUser(db, { email: input.email, passwordHash, role: 'user' })
}

export async function authenticate(db: Db, input: { email: string; password: string }): Promise<UserRow> {
  const user = await findUserByEmail(db, input.email)
  const ok = await verify(user?.password_hash ?? DUMMY_HASH, input.password)
  if (!user || !ok) throw new HttpProblem(401, 'INVALID_CREDENTIALS', 'Unauthorized', 'email or password is wrong')
  return user
}
