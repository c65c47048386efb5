// Every migration, in order. Listed here rather than read from a folder at run time, so that the
// set is fixed by the code (and the bundle) and a stray file cannot become a migration.
import type { Migration, MigrationProvider } from 'kysely'
import * as history0001 from './0001-history.ts'
import * as webhooks0002 from './0002-webhooks.ts'
import * as backendName0003 from './0003-backend-name.ts'
import * as thumbnailsCreated0004 from './0004-thumbnails-created.ts'

const MIGRATIONS: Record<string, Migration> = {
  '0001-history': history0001,
  '0002-webhooks': webhooks0002,
  '0003-backend-name': backendName0003,
  '0004-thumbnails-created': thumbnailsCreated0004
}

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => MIGRATIONS
}
