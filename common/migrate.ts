// Schema migrations with node-pg-migrate over the plain SQL files in migrations/.
import { runner } from 'node-pg-migrate'
import { fileURLToPath } from 'node:url'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url))

export async function migrate(databaseUrl: string, log: (msg: string) => void = () => undefined): Promise<string[]> {
  const done = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    // Runs start together (an init container in every new pod): a second run waits for the advisory lock and then
    // finds nothing to do, where node-pg-migrate's default ('fail') makes it throw.
    advisoryLockMode: 'wait',
    log,
  })
  return done.map((m) => m.name)
}
