// The last lines of a process's log, for an error message that says why it failed without sending the reader to a file.
import { existsSync, readFileSync } from 'node:fs'

/** The last `lines` lines of file joined by `separator`; '' when the file does not exist. */
export function logTail(file: string, lines = 5, separator = '\n'): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(separator) : ''
}
