// Registration and login. Passwords: argon2id with OWASP's first recommended setting (m=19 MiB, t=2, p=1).
import { hash, verify, type Algorithm } from '@node-rs/argon2'
import pLimit from 'p-limit'
import type { Db } from '../../common/db.ts'
import { HttpProblem } from '../problems.ts'
import { findUserByEmail, insertUser, type UserRow } from '../repositories/users.ts'

// https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id
const ARGON2ID = 2 satisfies Algorithm
export const ARGON2_OPTIONS = { algorithm: ARGON2ID as Algorithm, memoryCost: 19456, timeCost: 2, parallelism: 1 }

/**
 * How many argon2id computations run at once: one fewer than libuv's threadpool (UV_THREADPOOL_SIZE, 4 by default),
 * and the rest wait their turn here. Left to queue in the threadpool, a login spike (60 verifications queued on a
 * replica held to half a core) made every other threadpool job wait behind it: the DNS lookup and the SCRAM key
 * derivation of a new Postgres connection, which then ran past PG_CONNECT_TIMEOUT_MS and answered the logins 503
 * (1.5-8.4% of a compose autoscale spike). The spare thread keeps those to one hash's wait.
 */
export const HASH_CONCURRENCY = Math.max(1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1)
const hashing = pLimit(HASH_CONCURRENCY)
/** argon2id hash and verify, at most HASH_CONCURRENCY at a time. */
export const hashPassword = (password: string) => hashing(() => hash(password, ARGON2_OPTIONS))
export const verifyPassword = (passwordHash: string, password: string) => hashing(() => verify(passwordHash, password))

// Verified against when the email is unknown, so both paths cost one argon2 verification (no user enumeration by timing).
const DUMMY_HASH = await hash('opsdrill-dummy-password', ARGON2_OPTIONS)

// Registration always makes a 'user': an unverified email proves nothing, so only an operator grants admin
// (npm run ops -- user promote EMAIL).
// It does not say whether the email was taken: both paths hash the password and commit one write (repositories/users.ts),
// so neither the answer nor its time tells an account exists.
export async function register(db: Db, input: { email: string; password: string }): Promise<void> {
  const passwordHash = await hashPassword(input.password)
  await insertUser(db, { email: input.email, passwordHash, role: 'user' })
}

export async function authenticate(db: Db, input: { email: string; password: string }): Promise<UserRow> {
  const user = await findUserByEmail(db, input.email)
  const ok = await verifyPassword(user?.password_hash ?? DUMMY_HASH, input.password)
  if (!user || !ok) throw new HttpProblem(401, 'INVALID_CREDENTIALS', 'Unauthorized', 'email or password is wrong')
  return user
}
