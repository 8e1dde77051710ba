// Logins share libuv's threadpool with the DNS lookup and SCRAM key derivation of every new Postgres connection. The
// argon2id work is held to HASH_CONCURRENCY at a time (service/usecases/auth.ts), so a spike of logins leaves a thread
// free for those; left to queue in the threadpool, a spike made new connections time out and logins answer 503.
import t from 'tap'
import { lookup } from 'node:dns/promises'
import { webcrypto } from 'node:crypto'
import { hash, verify } from '@node-rs/argon2'
import { ARGON2_OPTIONS, HASH_CONCURRENCY, hashPassword, verifyPassword } from '../../service/usecases/auth.ts'

const SPIKE = 40

/** What a new Postgres connection asks of the threadpool before its first query: the host's lookup, then SCRAM. */
async function connectionSetup(): Promise<void> {
  await lookup('localhost')
  const key = await webcrypto.subtle.importKey('raw', new TextEncoder().encode('password'), 'PBKDF2', false, ['deriveBits'])
  await webcrypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(16), iterations: 4096 }, key, 256)
}

/** Starts SPIKE verifications, then a connection's set-up: how many verifications finished before the set-up did. */
async function finishedBeforeSetup(check: (h: string, pw: string) => Promise<boolean>, passwordHash: string) {
  let finished = 0
  const all = Array.from({ length: SPIKE }, (_, i) => check(passwordHash, i === 0 ? 'right' : 'wrong').then((ok) => (finished++, ok)))
  await connectionSetup()
  const before = finished
  return { before, results: await Promise.all(all) }
}

void t.test(
  'when a spike of logins is hashing, then a new connection’s DNS lookup and SCRAM derivation wait for at most one hash each, not for the spike',
  async (t) => {
    t.equal(HASH_CONCURRENCY, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1, 'one threadpool thread is kept from argon2id')
    const passwordHash = await hashPassword('right')

    const limited = await finishedBeforeSetup(verifyPassword, passwordHash)
    t.same(limited.results, [true, ...Array(SPIKE - 1).fill(false)], 'every verification still answers, and rightly')
    // The set-up runs beside the HASH_CONCURRENCY running hashes; a few may finish in the meantime.
    t.ok(
      limited.before <= 2 * HASH_CONCURRENCY,
      `${limited.before} of ${SPIKE} verifications finished before the set-up (at most ${2 * HASH_CONCURRENCY})`,
    )

    // The same spike straight into the threadpool: the set-up queues behind it. This is what the test tells apart.
    const unlimited = await finishedBeforeSetup(verify, await hash('right', ARGON2_OPTIONS))
    t.ok(
      unlimited.before >= SPIKE / 2,
      `unbounded, ${unlimited.before} of ${SPIKE} verifications finished before the set-up (at least ${SPIKE / 2})`,
    )
  },
)
