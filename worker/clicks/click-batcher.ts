// Collects clicks from concurrently running jobs and writes them in batches: a flush every maxSize clicks or maxWaitMs
// after the first waiting click, whichever comes first. Each job awaits its own click's outcome, so a job completes
// only once its click is committed, and fails (to be retried) only if its click could not be written.
import type { ClickJob } from '../../common/queues.ts'

export type BatchWriter<O> = (clicks: ClickJob[]) => Promise<(O | Error)[]>

interface Pending<O> {
  click: ClickJob
  resolve: (outcome: O) => void
  reject: (err: Error) => void
}

export class ClickBatcher<O> {
  readonly #write: BatchWriter<O>
  readonly #maxSize: number
  readonly #maxWaitMs: number
  #pending: Pending<O>[] = []
  #timer: NodeJS.Timeout | undefined
  readonly #writing = new Set<Promise<void>>()

  constructor(write: BatchWriter<O>, opts: { maxSize: number; maxWaitMs: number }) {
    this.#write = write
    this.#maxSize = opts.maxSize
    this.#maxWaitMs = opts.maxWaitMs
  }

  add(click: ClickJob): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#pending.push({ click, resolve, reject })
      if (this.#pending.length >= this.#maxSize) void this.flush()
      else this.#timer ??= setTimeout(() => void this.flush(), this.#maxWaitMs)
    })
  }

  /** Starts writing what is waiting now; resolves when that batch is written. */
  flush(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const batch = this.#pending
    if (batch.length === 0) return Promise.resolve()
    this.#pending = []
    const writing = this.#run(batch).finally(() => this.#writing.delete(writing))
    this.#writing.add(writing)
    return writing
  }

  /** Writes what is waiting and waits for every batch in flight. */
  async close(): Promise<void> {
    await this.flush()
    await Promise.all(this.#writing)
  }

  async #run(batch: Pending<O>[]): Promise<void> {
    try {
      const outcomes = await this.#write(batch.map((p) => p.click))
      batch.forEach((p, i) => {
        const o = outcomes[i]
        if (o === undefined) p.reject(new Error('batch writer returned no outcome for this click'))
        else if (o instanceof Error) p.reject(o)
        else p.resolve(o)
      })
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err))
      for (const p of batch) p.reject(e)
    }
  }
}
