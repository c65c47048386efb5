// The migration registry: each feature hands in its migrations under their stored names; one Migrator runs
// them all in one global order of names (Kysely compares them with the names already stored, so a name is
// never renamed and two features never give the same one).
import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely'

export class MigrationRegistry {
  readonly #migrations = new Map<string, { feature: string, migration: Migration }>()
  #closed = false

  register (feature: string, migrations: Record<string, Migration>): void {
    if (this.#closed) throw new Error(`database: ${feature} registered migrations after the database was migrated`)
    for (const [name, migration] of Object.entries(migrations)) {
      const known = this.#migrations.get(name)
      if (known !== undefined) throw new Error(`database: migration ${name} given twice (${known.feature}, ${feature})`)
      this.#migrations.set(name, { feature, migration })
    }
  }

  /** No more registrations: the set is what the migrator runs. */
  close (): void { this.#closed = true }

  get provider (): MigrationProvider {
    return { getMigrations: async () => Object.fromEntries([...this.#migrations].map(([name, { migration }]) => [name, migration])) }
  }
}

/** A provider for a fixed set (the CLI and the tests: src/migrations.ts). */
export function fixedProvider (migrations: Record<string, Migration>): MigrationProvider {
  return { getMigrations: async () => migrations }
}

/** Applies every pending migration; on PostgreSQL under an advisory lock, so instances starting together take turns. */
export async function migrateToLatest (db: Kysely<any>, provider: MigrationProvider): Promise<string[]> {
  const migrator = new Migrator({ db, provider })
  const { error, results = [] } = await migrator.migrateToLatest()
  const failed = results.find(result => result.status === 'Error')
  if (error !== undefined) {
    const which = failed === undefined ? 'history migrations' : `history migration ${failed.migrationName}`
    throw new Error(`${which} failed: ${(error as Error).message ?? String(error)}`, { cause: error })
  }
  return results.filter(result => result.status === 'Success').map(result => result.migrationName)
}
