// Every feature's migrations together (composition): for `npm run db:migrate` and the tests, which migrate a
// database without building the app. The app itself collects them through app.database.registerMigrations.
import type { Kysely, Migration, MigrationProvider } from 'kysely'
import { fixedProvider, migrateToLatest as migrate } from './database/migrations.ts'
import { HISTORY_MIGRATIONS } from './history/migrations/index.ts'
import { WEBHOOKS_MIGRATIONS } from './webhooks/migrations/index.ts'
import { BULK_MIGRATIONS } from './bulk/migrations/index.ts'

export const MIGRATIONS: Record<string, Migration> = { ...HISTORY_MIGRATIONS, ...WEBHOOKS_MIGRATIONS, ...BULK_MIGRATIONS }

export const migrationProvider: MigrationProvider = fixedProvider(MIGRATIONS)

/** Applies every pending migration of every feature; returns the names applied. */
export async function migrateToLatest (db: Kysely<any>): Promise<string[]> {
  return await migrate(db, migrationProvider)
}
