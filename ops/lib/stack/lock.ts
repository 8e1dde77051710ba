// One command at a time on a stack's state.json: `ops/stack up` in one shell, `scale` in another and the supervisor
// all read, change and write it, and two interleaved would double-start a part or drop one's record. The lock is
// proper-lockfile's (an atomic mkdir of state.json.lock, kept fresh while held, taken over once stale if its holder
// died); a sidecar file says who holds it, for the line a waiting command prints.
import { AsyncLocalStorage } from 'node:async_hooks'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import lockfile from 'proper-lockfile'

export class LockTimeout extends Error {}

interface Holder {
  pid: number
  what: string
  since: string
}

/** A lock holder refreshes the lock every 5 s; one not refreshed for 30 s (its process died) is taken over. */
const STALE_MS = 30_000

export class StateLock {
  private readonly held = new AsyncLocalStorage<true>()

  private readonly file: string
  private readonly opts: { waitMs: number; say: (line: string) => void }

  constructor(file: string, opts: { waitMs: number; say: (line: string) => void }) {
    this.file = file
    this.opts = opts
  }

  private get holderFile(): string {
    return `${this.file}.holder`
  }

  /**
   * Runs fn holding the lock; waits up to waitMs for another holder, then fails with one line naming it. Reentrant
   * within fn's async context (up() calls what scale() calls), never across independent calls of one process.
   */
  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.held.getStore()) return fn()
    mkdirSync(dirname(this.file), { recursive: true })
    const until = Date.now() + this.opts.waitMs
    let release: (() => Promise<void>) | undefined
    let told = false
    while (!release) {
      try {
        release = await lockfile.lock(this.file, {
          realpath: false,
          stale: STALE_MS,
          update: 5000,
          onCompromised: (err) => this.opts.say(`stack: lost the lock on ${this.file} (${err.message}); state may have changed under us`),
        })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err
        const h = this.holder()
        if (Date.now() >= until)
          throw new LockTimeout(
            `${this.file} is held by ${h ? `pid ${h.pid} (${h.what}, since ${h.since})` : 'another command'} for more than ${this.opts.waitMs / 1000} s: wait for it to finish, or stop that process`,
          )
        if (!told && h) this.opts.say(`    waiting for pid ${h.pid} (${h.what}) to finish with ${this.file}`)
        told = true
        await sleep(200)
      }
    }
    writeFileSync(this.holderFile, JSON.stringify({ pid: process.pid, what, since: new Date().toISOString() } satisfies Holder))
    try {
      return await this.held.run(true, fn)
    } finally {
      rmSync(this.holderFile, { force: true })
      await release().catch(() => undefined)
    }
  }

  private holder(): Holder | undefined {
    try {
      return JSON.parse(readFileSync(this.holderFile, 'utf8')) as Holder
    } catch {
      return undefined
    }
  }
}
